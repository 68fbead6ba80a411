"""Routing on the simulator: outcomes of routed contacts drawn from the agents' true skill,
and a contact-center queue to compare routers once capacity binds.

The simulator (``training.simulate``) knows every agent's true per-activity skill, so the
success of a contact handled by a chosen agent is known exactly. Two uses:

* **Feedback from the service**: ``true_success`` gives the true probability for the
  contexts, served activities and agents the service's answers led to, and
  ``pick_agent`` chooses the agent of the routed pool (a member who speaks the customer's
  language, else anyone of the general pool who does); tests post the drawn outcomes back
  through the API so proficiency is re-measured from routed traffic.
* **Routers under load** (``run_queue``): contacts arrive in time order; an agent takes
  one contact at a time for its handle time; a pool's expected wait is the time until the
  first of its members (speaking the language) is free. Assumptions: Poisson arrivals at
  ``load`` x the agents' capacity, handle time = the simulator's channel/issue base (mean of
  the lognormal) plus the activity's extra seconds, one queue per agent (first free member
  takes the contact), customers abandon after an exponential patience (mean 3 min). The
  routers compared are vea's (``models.matching`` with live waits: it discounts a pool's
  value by the chance the customer is still there after its wait and applies the
  effortless-first fallbacks), a random eligible pool, the best pool by proficiency
  ignoring capacity, and ``general``: no pools, the first free agent of the language, every
  suggested activity attempted whatever the queue (no wait limit, no downgrade), so under
  heavy load it makes value attempts that vea's fallback rules drop to spare the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.activities import ACTION_INDEX, ACTIONS, NONE, VALUE_ACTIVITIES
from models.economics import Economics
from models.matching import Availability, RoutingRules, route
from models.pools import GENERAL, PoolConfig
from models.schema import primary_language
from training.simulate import (
    BASE_HANDLE_S,
    ISSUE_HANDLE_FACTOR,
    ORGANIC_INTERCEPT,
    ORGANIC_OPENNESS,
    P_CEILING,
    P_OFFERED,
    _context_codes,
    _fit,
    _openness,
    _sigmoid,
    agent_skills,
)


def true_success(
    context: pd.DataFrame,
    actions: Sequence[str],
    agent_ids: Sequence[str],
    agents: pd.DataFrame,
) -> np.ndarray:
    """True success probability of each row when ``agent_ids[i]`` serves ``actions[i]``
    (the simulator's model: delivered with ``P_OFFERED``, else only the organic chance)."""
    c = _context_codes(context)
    openness = _openness(context, c)
    base = openness[:, None] + _fit(context, c)
    organic = P_CEILING * _sigmoid(ORGANIC_INTERCEPT + ORGANIC_OPENNESS * openness)
    index = pd.Index(agents["agent_id"]).get_indexer(pd.Index(agent_ids))
    if (index < 0).any():
        raise ValueError("unknown agent ids")
    skills = agents[[f"skill_{a}" for a in VALUE_ACTIVITIES]].to_numpy()[index]
    codes = np.array([ACTION_INDEX[a] for a in actions])
    column = np.maximum(codes - 1, 0)
    rows = np.arange(len(context))
    delivered = P_CEILING * _sigmoid(base[rows, column] + skills[rows, column])
    value = P_OFFERED * delivered + (1.0 - P_OFFERED) * organic
    return np.where(codes == ACTION_INDEX[NONE], organic, value)


def speakers(agents: pd.DataFrame, language: str) -> set[str]:
    """The agents who speak ``language``, matched on the primary language as routing
    matches pools (``models.schema.primary_language``): a ja-JP customer is served by a
    ``ja`` agent."""
    primary = primary_language(language)
    return {
        str(agent)
        for agent, spoken in zip(agents["agent_id"], agents["language"], strict=True)
        if primary_language(str(spoken)) == primary
    }


def pick_agent(
    pool: str,
    language: str,
    config: PoolConfig,
    agents: pd.DataFrame,
    rng: np.random.Generator,
) -> str:
    """A member of ``pool`` speaking ``language``; else any agent who speaks it (general)."""
    speaks = speakers(agents, language)
    pools = config.by_id()
    members = [m for m in (pools[pool].members if pool in pools else ()) if m in speaks]
    candidates = members or sorted(speaks) or list(agents["agent_id"])
    return str(candidates[rng.integers(len(candidates))])


# ------------------------------------------------------------------------- queues
@dataclass(frozen=True)
class QueueResult:
    router: str
    success: np.ndarray  # true success probability of every contact
    drawn: np.ndarray  # 0/1 outcome drawn from it
    wait_s: np.ndarray
    activity: np.ndarray
    pool: np.ndarray

    def summary(self) -> dict[str, float]:
        n = len(self.drawn)
        rate = float(self.drawn.mean())
        half = 1.96 * float(np.sqrt(rate * (1 - rate) / n))
        return {
            "router": self.router,
            "success_rate": rate,
            "ci_low": rate - half,
            "ci_high": rate + half,
            "true_success": float(self.success.mean()),
            "mean_wait_s": float(self.wait_s.mean()),
            "p95_wait_s": float(np.percentile(self.wait_s, 95)),
            "value_attempts": float(
                np.mean((self.activity != NONE) & (self.activity != ABANDONED))
            ),
            "abandoned": float(np.mean(self.activity == ABANDONED)),
        }


# Customers hang up after an exponential patience (mean 3 minutes: an assumption in the
# range contact centers report for voice and chat queues); an abandoned contact has no
# success and takes no agent time.
MEAN_PATIENCE_S = 180.0
ABANDONED = "abandoned"

Router = Callable[[int, str, Mapping[str, Availability]], tuple[str, str]]


def handle_seconds(
    context: pd.DataFrame, actions: Sequence[str], economics: Economics
) -> np.ndarray:
    base = np.array(
        [
            BASE_HANDLE_S[ch] * ISSUE_HANDLE_FACTOR[it]
            for ch, it in zip(context["channel"], context["issue_type"], strict=True)
        ]
    )
    extra = np.array([economics.extra_handle_time_s.get(a, 0.0) for a in actions])
    return base * np.exp(0.45**2 / 2) + extra  # mean of the simulator's lognormal


def run_queue(
    context: pd.DataFrame,
    suggested: Sequence[str],
    activities: Sequence[Sequence[Mapping]],
    config: PoolConfig,
    *,
    seed: int,
    n_agents: int,
    router: str,
    rules: RoutingRules,
    none_values: Sequence[float] | None = None,
    load: float = 0.9,
) -> QueueResult:
    """Route ``context`` (assisted channels) in arrival order through one router.

    ``suggested`` and ``activities`` are the decision's suggested activity and activity
    list (``models.decision`` output) per row; ``router`` is ``vea``, ``random`` (an
    eligible pool at random), ``best_pool`` (highest proficiency lift, capacity ignored) or
    ``general`` (no pools: the baseline for the added wait)."""
    agents = agent_skills(seed, n_agents)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7, len(router)]))
    economics = Economics()
    n = len(context)
    base_handle = handle_seconds(context, [NONE] * n, economics)
    mean_handle = float(base_handle.mean()) + 60.0
    rate = load * n_agents / mean_handle  # arrivals per second
    arrivals = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, n))
    patience = np.random.default_rng([seed, 3]).exponential(MEAN_PATIENCE_S, n)
    ids = list(agents["agent_id"])
    language_of = dict(zip(agents["agent_id"], agents["language"], strict=True))
    free_at = {a: 0.0 for a in ids}
    pools = config.by_id()
    members_by_lang = {
        (p.id, lang): [
            m for m in (p.members if p.id != GENERAL else ids) if language_of.get(m) == lang
        ]
        for p in config.pools
        for lang in ("ja", "en")
    }
    served, chosen_agents, pool_ids, waits = [], [], [], []
    languages = context["language"].to_numpy()
    segments = context["segment"].to_numpy()
    channels = context["channel"].to_numpy()
    for i in range(n):
        now, lang = arrivals[i], languages[i]

        def wait_of(pool_id: str, lang: str = lang, now: float = now) -> float:
            members = members_by_lang.get((pool_id, lang)) or []
            if not members:
                return float("inf")
            return max(0.0, min(free_at[m] for m in members) - now)

        activity = suggested[i]
        eligible = [
            p.id
            for p in config.pools
            if p.serves(activity, channels[i], lang, segments[i])
            and (p.id == GENERAL or members_by_lang.get((p.id, lang)))
        ]
        if router == "vea":
            availability = {p: Availability(expected_wait_s=min(wait_of(p), 1e6)) for p in eligible}
            answer = route(
                config,
                activity=activity,
                activities=activities[i],
                openness=0.0,
                channel=channels[i],
                language=lang,
                segment=segments[i],
                availability=availability,
                rules=rules,
                none_value=none_values[i] if none_values is not None else 0.0,
            )
            pool, activity = answer["pool"], answer["activity"]
        elif router == "general":
            pool = GENERAL
        elif router == "random" or activity == NONE:
            pool = eligible[rng.integers(len(eligible))] if activity != NONE else GENERAL
        elif router == "best_pool":
            pool = max(eligible, key=lambda p: (pools[p].lift_for(activity), p != GENERAL))
        else:
            raise ValueError(f"unknown router {router!r}")
        members = members_by_lang.get((pool, lang)) or members_by_lang[(GENERAL, lang)]
        agent = min(members, key=lambda m: (free_at[m], rng.random()))
        start = max(now, free_at[agent])
        if start - now > patience[i]:
            # The customer hangs up before an agent is free: no contact, no success.
            served.append(ABANDONED)
            chosen_agents.append(agent)
            pool_ids.append(pool)
            waits.append(float(patience[i]))
            continue
        handle = base_handle[i] + economics.extra_handle_time_s.get(activity, 0.0)
        free_at[agent] = start + handle
        served.append(activity)
        chosen_agents.append(agent)
        pool_ids.append(pool)
        waits.append(start - now)
    served_arr = np.array(served, dtype=object)
    abandoned = served_arr == ABANDONED
    success = (
        true_success(context, np.where(abandoned, NONE, served_arr), chosen_agents, agents)
        * ~abandoned
    )
    drawn = (np.random.default_rng([seed, 11]).random(n) < success).astype(int)
    return QueueResult(router, success, drawn, np.array(waits), served_arr, np.array(pool_ids))


def suggestions_from_truth(truth: pd.DataFrame, economics: Economics | None = None):
    """A perfect model's decision per row: the average agent's true probabilities as the
    activities' success probabilities and the best expected value as the suggestion (so
    the comparison measures routing, not the model). Returns ``(suggested, activity
    lists, value of none)``."""
    economics = economics or Economics()
    p = truth[[f"p_{a}_avg_agent" for a in ACTIONS]].to_numpy()
    values = p * economics.value_of_success - np.asarray(economics.action_costs())[None, :]
    best = np.array(ACTIONS, dtype=object)[values.argmax(axis=1)]
    lists = [
        [
            {
                "activity": a,
                "success_probability": float(p[i, j + 1]),
                "expected_value": float(values[i, j + 1]),
            }
            for j, a in enumerate(VALUE_ACTIVITIES)
        ]
        for i in range(len(truth))
    ]
    return list(best), lists, list(values[:, 0])


def paired_difference(a: QueueResult, b: QueueResult) -> dict[str, float]:
    """Success of ``a`` minus ``b`` on the same contacts (common random numbers), with a
    95% normal interval of the paired differences."""
    d = a.drawn.astype(float) - b.drawn.astype(float)
    half = 1.96 * float(d.std(ddof=1)) / np.sqrt(len(d))
    return {
        "difference": float(d.mean()),
        "ci_low": float(d.mean()) - half,
        "ci_high": float(d.mean()) + half,
    }


# ------------------------------------------------------------------ truth of a pool
def pool_members(config: PoolConfig, agents: pd.DataFrame, language: str) -> dict[str, list[str]]:
    """Per pool, the agents ``pick_agent`` draws from for a customer speaking ``language``:
    the members who speak it, else anyone who speaks it (general), else anyone."""
    speaks = speakers(agents, language)
    fallback = sorted(speaks) or list(agents["agent_id"])
    out = {}
    for pool in config.pools:
        members = [m for m in pool.members if m in speaks]
        out[pool.id] = members or fallback
    return out


def pool_success(context: pd.DataFrame, config: PoolConfig, agents: pd.DataFrame) -> np.ndarray:
    """``(n, 6, P)`` true success probability of each row with each action (``ACTIONS``
    order) when routed to each pool (``config.pools`` order), the agent drawn at random
    among the pool's members as ``pick_agent`` does: the mean of ``true_success`` over
    them. The truth of any routing policy on these contexts is this cube averaged by the
    policy's pool probabilities (exact, no outcome noise)."""
    n = len(context)
    ids = list(agents["agent_id"])
    out = np.empty((n, len(ACTIONS), len(config.pools)), dtype=np.float64)
    languages = context["language"].to_numpy()
    for lang in np.unique(languages):
        rows = np.flatnonzero(languages == lang)
        sub = context.iloc[rows]
        members = pool_members(config, agents, str(lang))
        needed = sorted({m for ms in members.values() for m in ms}, key=ids.index)
        # (rows, 6, agents): true_success for every action with every agent needed.
        cube = np.empty((len(rows), len(ACTIONS), len(needed)), dtype=np.float64)
        for j, agent in enumerate(needed):
            for k, action in enumerate(ACTIONS):
                cube[:, k, j] = true_success(sub, [action] * len(rows), [agent] * len(rows), agents)
        column = {agent: j for j, agent in enumerate(needed)}
        for p, pool in enumerate(config.pools):
            cols = [column[m] for m in members[pool.id]]
            out[rows, :, p] = cube[:, :, cols].mean(axis=2)
    return out
