"""Simulated contact-center interactions whose true success probabilities are known.

The simulator is the development ground truth of design section 5. It writes a log in the
canonical format of design section 4 and, beside it, the truth: the success probability of
every action for every row, so any policy can be scored against the oracle.

The model, in the order it is drawn (every figure is an assumption; the comments next to each
constant say where it comes from):

1. Customers recur: about ``rows / 3`` customers with a heavy-tailed number of contacts,
   partly clustered as follow-ups, over a 180-day window. ``prior_contacts_30d`` is counted
   from this simulated history itself.
2. Customer attributes: segment, persona, language (ja ~60%), switching effort (higher for
   business segments) and tenure (time since purchase: many recent purchasers, a long tail
   to ~10 years). Contact attributes: channel, issue type (inquiries most frequent) and
   sentiment (lower on complaints and cancellations).
3. True success of a value activity ``a`` delivered by agent ``g``::

       p = P_CEILING * sigmoid(openness(context) + fit(a, context) + skill(g, a))

   openness holds what lowers or raises every activity (issue type: inquiry most open,
   complaint least (seed 001); sentiment; fatigue from prior contacts; persona; segment;
   channel). fit holds what makes one activity better than another (validation right after
   purchase, new uses for long tenure, education for how-to and novices, goals for
   business customers, anticipation for premium / mid tenure). ``none`` succeeds only
   organically, with a small probability that follows openness weakly. A suggested
   activity is delivered with probability ``P_OFFERED``; when it is not, only the organic
   chance remains. The truth ``p_<action>`` is this mixture, so ``ve_success`` of a logged
   row is exactly Bernoulli(``p_<activity>``).
4. Agents: skill logits per activity = a general value-enhancement ability shared by the
   agent's activities + an activity-specific part, most near 0, ~15% markedly better on one
   or two activities (design section 1: "a minority are markedly better"); each contact
   goes to a random agent who speaks its language, independently of the activity.
5. The logging policy is a context-dependent softmax of habits (lots of ``none`` on
   complaints, education on how-to even when the customer is upset, validation by a crude
   tenure threshold) mixed with a floor, so every action keeps propensity >= 0.02.
6. Outcomes: offered / accepted / the two VES items (top-box on both iff success) /
   handle time (channel and issue base plus the activity's extra seconds from Economics) /
   CSAT / 60-day retention, which follows the seed 001 switching figures for customers
   actively considering a switch (latent, ~20%, mostly on cancellation and complaint
   contacts).

Calibration (checked in tests/test_simulate.py, design section 5): under the oracle policy
with default Economics value enhancement succeeds on 35-50% of contacts (seed 001: "35-50% of
conversations"), the oracle still picks ``none`` on a sizeable share (complaints, low
openness), no single activity is best for most rows, and the best constant action falls
clearly short of the oracle.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.activities import (
    ACTION_INDEX,
    ACTIONS,
    CHANNELS,
    ISSUE_TYPES,
    LANGUAGES,
    NONE,
    SEGMENTS,
    VALUE_ACTIVITIES,
)
from models.economics import Economics
from models.schema import CONTEXT_COLUMNS, LOG_COLUMNS

Policy = Callable[[pd.DataFrame], np.ndarray]

PERSONAS: tuple[str, ...] = ("pragmatist", "enthusiast", "novice", "skeptic")
SWITCHING_EFFORTS: tuple[str, ...] = ("low", "high")

# Canonical log columns (design section 4, ``models.schema``); the CONTEXT_COLUMNS are
# what a `policy` receives. `offered` is the export-only column of section 4 (the agent
# actually delivered the suggestion).

# --- Timeline ------------------------------------------------------------------------------
WINDOW_DAYS = 180.0  # brief: contacts spread over ~180 days
CONTACTS_PER_CUSTOMER = 3.0  # brief: n_customers ~ rows / 3, so customers have history
# Extra contacts per customer ~ NegativeBinomial(0.5, 0.2): mean 2, sd ~3.2, so most
# customers call once or twice and a few call often (the ones fatigue hurts).
EXTRA_CONTACTS_NB = (0.5, 0.2)
# Repeat contacts: 40% are follow-ups a few days later (mean 3 days), the rest come
# independently (mean gap 35 days). Assumption: unresolved issues bring customers back soon.
FOLLOW_UP_SHARE, FOLLOW_UP_GAP_DAYS, LATER_GAP_DAYS = 0.4, 3.0, 35.0
DAYS_PER_MONTH = 365.25 / 12

# --- Customers -----------------------------------------------------------------------------
# Assumed consumer-heavy mix of a B2C-and-B2B contact center.
SEGMENT_SHARES = {"consumer": 0.58, "premium": 0.20, "small_business": 0.15, "enterprise": 0.07}
PERSONA_SHARES = {"pragmatist": 0.40, "enthusiast": 0.20, "novice": 0.25, "skeptic": 0.15}
LANGUAGE_SHARES = {"ja": 0.60, "en": 0.40}  # brief: ja ~60%, en ~40%
# P(switching effort is high): contracts, integrations and data make business customers
# harder to move (seed 004 on B2B expectations; assumption on the figures).
HIGH_EFFORT_SHARE = {"consumer": 0.30, "premium": 0.45, "small_business": 0.65, "enterprise": 0.85}
# Tenure at first contact (months since purchase): 35% recent purchasers (exponential, mean
# 2 months), the rest a long tail (exponential, mean 30 months), capped at 10 years.
RECENT_PURCHASER_SHARE, RECENT_MEAN_MONTHS, TAIL_MEAN_MONTHS, MAX_TENURE_MONTHS = (
    0.35,
    2.0,
    30.0,
    120.0,
)

# --- Contacts ------------------------------------------------------------------------------
CHANNEL_SHARES = {
    "voice": 0.40,
    "chat": 0.25,
    "email": 0.15,
    "messaging": 0.10,
    "self_service": 0.10,
}
# Seed 001 (2008 vs 2020 figure): inquiries are a growing share of contacts, complaints a
# shrinking one. Figures assumed.
ISSUE_SHARES = {
    "inquiry": 0.28,
    "how_to": 0.18,
    "billing": 0.14,
    "technical": 0.14,
    "order_change": 0.10,
    "complaint": 0.08,
    "cancellation": 0.08,
}
# Mean sentiment by issue type (sd 0.4, clipped to [-1, 1]): complaints and cancellations
# arrive upset (brief).
SENTIMENT_MEAN = {
    "inquiry": 0.20,
    "how_to": 0.10,
    "billing": -0.10,
    "technical": -0.15,
    "order_change": 0.10,
    "complaint": -0.50,
    "cancellation": -0.35,
}
SENTIMENT_SD = 0.40

# --- True success model (logits) -----------------------------------------------------------
# Every p is P_CEILING * sigmoid(logit): even a well-chosen, well-delivered activity does not
# earn a top-box VES from everyone (brief: no p above ~0.9).
P_CEILING = 0.9
# The openness terms are wide on purpose: seed 001 says the chance "differs greatly by
# contact reason", and the calibration needs both very open contacts (the oracle succeeds on
# 35-50% overall) and closed ones where no attempt pays for its handle time (`none`).
OPENNESS_INTERCEPT = 0.6
# Seed 001: the chance is largest on inquiry contacts and smallest on complaints.
OPENNESS_ISSUE = {
    "inquiry": 0.90,
    "how_to": 0.50,
    "billing": -0.80,
    "technical": -0.50,
    "order_change": 0.30,
    "complaint": -2.60,
    "cancellation": -1.80,
}
OPENNESS_SEGMENT = {"consumer": 0.0, "premium": 0.20, "small_business": 0.10, "enterprise": 0.10}
OPENNESS_PERSONA = {"pragmatist": 0.0, "enthusiast": 0.60, "novice": 0.10, "skeptic": -0.90}
# A live conversation leaves room for value; e-mail less, self-service content least
# (assumed; seed 001 step 5 asks to deliver value through self-service too, so it is not 0).
OPENNESS_CHANNEL = {
    "voice": 0.20,
    "chat": 0.0,
    "email": -0.80,
    "messaging": 0.0,
    "self_service": -1.40,
}
OPENNESS_SENTIMENT = 1.8  # per unit of sentiment: upset customers are not open (brief)
# Fatigue: every prior contact in the last 30 days lowers openness, counted up to 5: a
# customer calling again about the same problem wants it fixed, not enhanced (brief).
FATIGUE_PER_CONTACT, FATIGUE_CAP = 0.50, 5
# `none`: the customer's VES can still be top-box organically (seed 001: value is already
# created "ad hoc"). logit = ORGANIC_INTERCEPT + ORGANIC_OPENNESS * openness: small (~3-8%)
# and only weakly tied to openness, so on closed contacts an attempt barely beats it.
ORGANIC_INTERCEPT, ORGANIC_OPENNESS = -2.8, 0.15
# Probability that a suggested activity is actually delivered (brief: ~0.95).
P_OFFERED = 0.95

# --- Agents --------------------------------------------------------------------------------
AGENT_SKILL_SD = 0.15  # most agents are near 0 (brief)
# A shared value-enhancement ability of the agent, added to every activity's skill. Seed 001
# pools "agents who have shown they raise the score" and trains agents in the principles of
# value enhancement (steps 3-4): an ability of the person that carries across activities,
# not only a knack for one. Its spread equals the per-activity one, the most that keeps the
# markedly better agents (> 0.45 logits at some activity) a minority of about 20% (design
# section 1; tests/test_simulate.py). Drawn last, so stars and languages are unchanged.
AGENT_GENERAL_SD = 0.15
STAR_SHARE = 0.15  # a minority markedly better (design section 1 and 5)
STAR_BOOST = (0.6, 1.0)  # ... by +0.6..+1.0 logits on one or two activities (brief)
AGENT_JA_SHARE = 0.60  # agents speak the customers' languages in proportion

# --- Logging policy ------------------------------------------------------------------------
MIN_PROPENSITY = 0.02  # floor: every action keeps propensity >= 0.02 (brief), for OPE

# --- Outcomes ------------------------------------------------------------------------------
P_ACCEPT_IF_SUCCESS, P_ACCEPT_IF_FAILURE = 0.92, 0.35  # acceptance tracks success (assumed)
# Handle time: lognormal around a median per channel (seconds) times a factor per issue type.
BASE_HANDLE_S = {
    "voice": 360.0,
    "chat": 540.0,
    "email": 300.0,
    "messaging": 420.0,
    "self_service": 120.0,
}
ISSUE_HANDLE_FACTOR = {
    "inquiry": 0.8,
    "how_to": 1.1,
    "billing": 1.0,
    "technical": 1.4,
    "order_change": 0.9,
    "complaint": 1.5,
    "cancellation": 1.3,
}
HANDLE_SIGMA, EXTRA_HANDLE_SIGMA = 0.45, 0.30
# Share of contacts resolved (drives CSAT): complaints and technical issues resolve less.
P_RESOLVED = {
    "inquiry": 0.92,
    "how_to": 0.88,
    "billing": 0.85,
    "technical": 0.75,
    "order_change": 0.90,
    "complaint": 0.65,
    "cancellation": 0.70,
}
# Actively considering a switch (latent): logit by issue type plus upset customers; ~20%
# overall, most on cancellation and complaint contacts (brief).
SWITCH_INTERCEPT, SWITCH_SENTIMENT = -2.0, -1.0
SWITCH_ISSUE = {
    "inquiry": 0.0,
    "how_to": 0.0,
    "billing": 0.6,
    "technical": 0.4,
    "order_change": 0.0,
    "complaint": 1.4,
    "cancellation": 2.6,
}
# Seed 001 figure: retention of customers actively considering a switch, with / without
# value enhancement: 90% / 73% when switching is hard, 69% / 52% when it is easy.
RETAIN_CONSIDERING = {"high": (0.90, 0.73), "low": (0.69, 0.52)}
RETAIN_OTHERS = (0.97, 0.95)  # not considering: high retention, a small lift (assumed)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _lookup(table: dict[str, float], names: Sequence[str], codes: np.ndarray) -> np.ndarray:
    """Per-row value of ``table`` for category codes into ``names``."""
    return np.array([table[n] for n in names], dtype=float)[codes]


def _codes(values: pd.Series | np.ndarray | Sequence[str], names: Sequence[str]) -> np.ndarray:
    """Category codes of ``values`` in ``names`` order; unknown values raise."""
    codes = pd.Index(list(names)).get_indexer(pd.Series(values))
    if (codes < 0).any():
        unknown = sorted({str(v) for v in pd.Series(values)[codes < 0].head(1000)})[:5]
        raise ValueError(f"values outside {list(names)}: {unknown}")
    return codes.astype(np.int64)


def _draw(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    p = np.array(list(shares.values()), dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


# --- Agents --------------------------------------------------------------------------------


def agent_skills(seed: int, n_agents: int) -> pd.DataFrame:
    """True agent skill, reproducible from ``(seed, n_agents)``.

    Columns: ``agent_id``, ``language`` (the one language the agent takes contacts in) and
    ``skill_<activity>`` for each value activity: a logit offset added to the activity's
    success. ``none`` has no skill column: nothing is attempted.
    """
    if n_agents < 1:
        raise ValueError("n_agents must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    # A stream of its own, so agents do not change when `rows` changes.
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    skills = rng.normal(0.0, AGENT_SKILL_SD, size=(n_agents, len(VALUE_ACTIVITIES)))
    n_stars = round(STAR_SHARE * n_agents)
    for agent in rng.permutation(n_agents)[:n_stars]:
        # Stars shine at one or two activities, not at everything.
        n_best = rng.integers(1, 3)
        best = rng.choice(len(VALUE_ACTIVITIES), size=n_best, replace=False)
        skills[agent, best] += rng.uniform(*STAR_BOOST, size=n_best)
    # At least one agent per language when there are two agents or more.
    n_ja = 1 if n_agents == 1 else min(max(1, round(AGENT_JA_SHARE * n_agents)), n_agents - 1)
    language = np.where(rng.permutation(n_agents) < n_ja, "ja", "en")
    skills += rng.normal(0.0, AGENT_GENERAL_SD, size=(n_agents, 1))
    width = max(3, len(str(n_agents)))
    frame = pd.DataFrame(
        {"agent_id": [f"agent-{i + 1:0{width}d}" for i in range(n_agents)], "language": language}
    )
    for j, activity in enumerate(VALUE_ACTIVITIES):
        frame[f"skill_{activity}"] = skills[:, j]
    return frame


# --- Success model -------------------------------------------------------------------------


def _context_codes(context: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "issue": _codes(context["issue_type"], ISSUE_TYPES),
        "segment": _codes(context["segment"], SEGMENTS),
        "persona": _codes(context["persona"], PERSONAS),
        "channel": _codes(context["channel"], CHANNELS),
    }


def _openness(context: pd.DataFrame, c: dict[str, np.ndarray]) -> np.ndarray:
    """Logit shared by every value activity: how open this customer is right now."""
    fatigue = np.minimum(context["prior_contacts_30d"].to_numpy(), FATIGUE_CAP)
    return (
        OPENNESS_INTERCEPT
        + _lookup(OPENNESS_ISSUE, ISSUE_TYPES, c["issue"])
        + _lookup(OPENNESS_SEGMENT, SEGMENTS, c["segment"])
        + _lookup(OPENNESS_PERSONA, PERSONAS, c["persona"])
        + _lookup(OPENNESS_CHANNEL, CHANNELS, c["channel"])
        + OPENNESS_SENTIMENT * context["sentiment"].to_numpy(dtype=float)
        - FATIGUE_PER_CONTACT * fatigue
    )


def _fit(context: pd.DataFrame, c: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 5) logit offsets of each value activity: why one activity suits a customer better.

    Seed 001 names the signals (time since purchase, persona, issue type) and the activities;
    the shapes and sizes below are assumptions chosen so the best activity depends on the
    customer and a good model pays.
    """
    tenure = context["tenure_months"].to_numpy(dtype=float)
    upset = np.maximum(0.0, -context["sentiment"].to_numpy(dtype=float))
    issue, segment, persona = c["issue"], c["segment"], c["persona"]

    def is_issue(*names: str) -> np.ndarray:
        return np.isin(issue, [ISSUE_TYPES.index(n) for n in names])

    def is_segment(*names: str) -> np.ndarray:
        return np.isin(segment, [SEGMENTS.index(n) for n in names])

    def is_persona(name: str) -> np.ndarray:
        return persona == PERSONAS.index(name)

    fit = np.empty((len(context), len(VALUE_ACTIVITIES)))
    # Validate the purchase: reassurance matters right after buying and fades within
    # months (design section 5: "validation right after purchase"); skeptics and customers
    # changing an order or about to cancel doubt the decision most.
    fit[:, 0] = (
        -1.5
        + 2.5 * np.exp(-tenure / 3.0)
        + 0.4 * is_persona("skeptic")
        + 0.3 * is_issue("order_change", "cancellation")
    )
    # Anticipate needs: works once the customer is settled but still growing (peak around a
    # year of tenure), and for premium / enterprise customers who expect need-sensing
    # (seed 004).
    mid_tenure = np.exp(-0.5 * ((np.log1p(tenure) - np.log(13.0)) / 0.6) ** 2)
    fit[:, 1] = (
        -0.9
        + 0.9 * mid_tenure
        + 0.6 * is_segment("premium")
        + 0.4 * is_segment("enterprise")
        + 0.2 * is_issue("inquiry", "order_change")
    )
    # Help achieve goals: business customers bought for a goal (seed 004); pragmatists care
    # about outcomes; consumers rarely frame a purchase as a goal.
    fit[:, 2] = (
        -0.8
        + _lookup(
            {"consumer": -0.4, "premium": 0.1, "small_business": 0.9, "enterprise": 1.1},
            SEGMENTS,
            segment,
        )
        + 0.3 * is_persona("pragmatist")
        + 0.2 * is_issue("inquiry")
    )
    # Educate on better usage: the natural answer to how-to and technical contacts and to
    # novices, early in tenure; enthusiasts already know. Never helps upset customers: being
    # taught when angry reads as blame (seed 001: teach best use, not what they did wrong).
    fit[:, 3] = (
        -1.0
        + 1.0 * is_issue("how_to")
        + 0.7 * is_issue("technical")
        + 0.8 * is_persona("novice")
        - 0.4 * is_persona("enthusiast")
        + 0.3 * np.exp(-tenure / 6.0)
        - 3.0 * upset
        - 0.6 * is_issue("complaint", "cancellation")
    )
    # Advise on new uses: long-tenure customers have outgrown what they first used
    # (design section 5: "new uses for long tenure"); enthusiasts love it, novices are not
    # ready.
    fit[:, 4] = (
        -1.5
        + 1.4 * (1.0 - np.exp(-tenure / 24.0))
        + _lookup(
            {"pragmatist": 0.0, "enthusiast": 0.8, "novice": -0.6, "skeptic": -0.2},
            PERSONAS,
            persona,
        )
        + 0.2 * is_segment("premium")
    )
    return fit


def _success_truth(
    context: pd.DataFrame, skills: np.ndarray, agent_of_row: np.ndarray, agents: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """True probabilities: (delivered with this agent, organic, truth with this agent,
    truth with an average agent), the truths as (n, 6) in ``ACTIONS`` order."""
    c = _context_codes(context)
    openness = _openness(context, c)
    base = openness[:, None] + _fit(context, c)  # (n, 5) logits before the agent
    delivered = P_CEILING * _sigmoid(base + skills[agent_of_row])
    organic = P_CEILING * _sigmoid(ORGANIC_INTERCEPT + ORGANIC_OPENNESS * openness)

    # Average agent: the mean over the agents who could take the contact (same language),
    # i.e. what a random assignment achieves and what a model without agent features learns.
    delivered_avg = np.empty_like(base)
    language = np.asarray(context["language"])
    for lang in LANGUAGES:
        rows = np.flatnonzero(language == lang)
        pool = _agents_for(agents, lang)
        for start in range(0, len(rows), 20_000):  # chunks keep the (rows, agents, 5) cube small
            chunk = rows[start : start + 20_000]
            cube = _sigmoid(base[chunk, None, :] + skills[pool][None, :, :])
            delivered_avg[chunk] = P_CEILING * cube.mean(axis=1)

    def with_delivery(p_delivered: np.ndarray) -> np.ndarray:
        p_value = P_OFFERED * p_delivered + (1.0 - P_OFFERED) * organic[:, None]
        return np.column_stack([organic, p_value])

    return delivered, organic, with_delivery(delivered), with_delivery(delivered_avg)


def _agents_for(agents: pd.DataFrame, language: str) -> np.ndarray:
    pool = np.flatnonzero(agents["language"].to_numpy() == language)
    return pool if len(pool) else np.arange(len(agents))  # nobody speaks it: anyone takes it


# --- Logging policy ------------------------------------------------------------------------


def default_logging_policy(context: pd.DataFrame) -> np.ndarray:
    """The habits of agents without vea: (n, 6) probabilities in ``ACTIONS`` order.

    A softmax of a heuristic score, mixed with a floor so each action keeps propensity
    >= MIN_PROPENSITY. It is deliberately imperfect: it plays safe with ``none`` on
    complaints, cancellations and billing, teaches on how-to and technical contacts even
    when the customer is upset, validates by a crude "bought within 3 months" rule and
    ignores persona except enthusiasm.
    """
    c = _context_codes(context)
    issue, segment = c["issue"], c["segment"]
    tenure = context["tenure_months"].to_numpy(dtype=float)
    sentiment = context["sentiment"].to_numpy(dtype=float)
    persona = c["persona"]
    score = np.zeros((len(context), len(ACTIONS)))
    idx = ACTION_INDEX
    cold = np.isin(issue, [ISSUE_TYPES.index(i) for i in ("complaint", "cancellation")])
    score[:, idx[NONE]] = (
        1.0 + 1.6 * cold + 0.5 * (issue == ISSUE_TYPES.index("billing")) + 0.5 * (sentiment < -0.3)
    )
    score[:, idx["validate_purchase"]] = 0.2 + 0.9 * (tenure < 3.0)
    score[:, idx["anticipate_needs"]] = 0.6 * (segment == SEGMENTS.index("premium"))
    score[:, idx["achieve_goals"]] = 0.7 * np.isin(
        segment, [SEGMENTS.index("small_business"), SEGMENTS.index("enterprise")]
    )
    score[:, idx["educate_usage"]] = 1.3 * np.isin(
        issue, [ISSUE_TYPES.index("how_to"), ISSUE_TYPES.index("technical")]
    )
    score[:, idx["advise_new_uses"]] = 0.6 * (persona == PERSONAS.index("enthusiast"))
    score -= score.max(axis=1, keepdims=True)
    soft = np.exp(score)
    soft /= soft.sum(axis=1, keepdims=True)
    return MIN_PROPENSITY + (1.0 - MIN_PROPENSITY * len(ACTIONS)) * soft


def _check_policy_output(probs: object, n: int) -> np.ndarray:
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (n, len(ACTIONS)):
        raise ValueError(f"policy must return shape ({n}, {len(ACTIONS)}), got {probs.shape}")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("policy probabilities must be finite and >= 0")
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("policy probabilities must sum to 1 on every row")
    return probs


def _sample_actions(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One action per row by inverse CDF; an action with probability 0 is never drawn."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((cum <= u[:, None]).sum(axis=1), len(ACTIONS) - 1)


# --- Timeline ------------------------------------------------------------------------------


def _timeline(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customer of each contact, day of the contact in the window and prior contacts in the
    30 days before it; rows grouped by customer, in time order within a customer."""
    target = max(1, round(rows / CONTACTS_PER_CUSTOMER))
    counts = np.empty(0, dtype=np.int64)
    while counts.sum() < rows:  # almost always one round; more only for tiny `rows`
        counts = np.concatenate([counts, 1 + rng.negative_binomial(*EXTRA_CONTACTS_NB, target)])
    customer = np.repeat(np.arange(len(counts)), counts)[:rows]
    first = np.r_[True, customer[1:] != customer[:-1]]
    first_index = np.flatnonzero(first)
    group = np.cumsum(first) - 1  # customer's position among first_index

    gaps = np.where(
        rng.random(rows) < FOLLOW_UP_SHARE,
        rng.exponential(FOLLOW_UP_GAP_DAYS, rows),
        rng.exponential(LATER_GAP_DAYS, rows),
    )
    gaps[first] = 0.0
    cumulative = np.cumsum(gaps)
    offset = cumulative - cumulative[first_index][group]
    span = np.maximum.reduceat(offset, first_index)
    # Histories longer than the window are compressed into it; the rest start at random.
    scale = np.minimum(1.0, (WINDOW_DAYS - 1e-6) / np.maximum(span, 1e-9))
    start = rng.uniform(0.0, 1.0, len(first_index)) * (WINDOW_DAYS - span * scale)
    day = start[group] + offset * scale[group]

    # Contacts of the same customer in [day - 30, day): rows are sorted by (customer, day),
    # so one searchsorted on a combined key counts them for every row at once.
    key = customer * (2.0 * WINDOW_DAYS) + day
    prior = np.arange(rows) - np.searchsorted(key, key - 30.0, side="left")
    return customer, day, prior


# --- Simulation ----------------------------------------------------------------------------


def simulate(
    rows: int,
    seed: int,
    n_agents: int = 60,
    economics: Economics | None = None,
    policy: Policy | None = None,
    start: str = "2026-01-01",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (log, truth).

    ``log`` has the canonical columns of design section 4 (``LOG_COLUMNS``), sorted by
    ``occurred_at``. ``truth`` has ``interaction_id``, ``p_<action>`` (true success
    probability of each action with the row's agent), ``p_<action>_avg_agent`` (with an
    average agent of the row's language) and the latent ``considering_switch``.

    ``policy`` replaces the logging policy: it receives the ``CONTEXT_COLUMNS`` of the log
    and returns an (n, 6) probability matrix in ``ACTIONS`` order; the logged
    ``propensity`` is its probability of the sampled activity. ``economics`` sets the extra
    handle time of each activity. Same arguments, same output.
    """
    if rows < 1:
        raise ValueError("rows must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    economics = economics or Economics()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
    agents = agent_skills(seed, n_agents)

    # Customers and their history.
    customer, day, prior = _timeline(rng, rows)
    n_customers = int(customer.max()) + 1
    segment = _draw(rng, SEGMENT_SHARES, n_customers)
    persona = _draw(rng, PERSONA_SHARES, n_customers)
    language = _draw(rng, LANGUAGE_SHARES, n_customers)
    high_share = np.array([HIGH_EFFORT_SHARE[s] for s in SEGMENTS])[segment]
    high_effort = rng.random(n_customers) < high_share
    recent = rng.random(n_customers) < RECENT_PURCHASER_SHARE
    tenure0 = rng.exponential(np.where(recent, RECENT_MEAN_MONTHS, TAIL_MEAN_MONTHS))
    tenure0 = np.minimum(tenure0, MAX_TENURE_MONTHS)
    first_day = np.minimum.reduceat(day, np.flatnonzero(np.r_[True, np.diff(customer) != 0]))

    # Contacts in time order (stable, so equal times keep a reproducible order).
    order = np.argsort(day, kind="stable")
    customer, day, prior = customer[order], day[order], prior[order]
    tenure = tenure0[customer] + (day - first_day[customer]) / DAYS_PER_MONTH
    channel = _draw(rng, CHANNEL_SHARES, rows)
    issue = _draw(rng, ISSUE_SHARES, rows)
    sentiment = np.clip(
        _lookup(SENTIMENT_MEAN, ISSUE_TYPES, issue) + rng.normal(0.0, SENTIMENT_SD, rows), -1, 1
    )

    origin = pd.Timestamp(start)
    origin = origin.tz_localize("UTC") if origin.tzinfo is None else origin.tz_convert("UTC")
    seconds = np.round(day * 86_400.0).astype("int64")
    customer_names = np.array([f"cust-{seed}-{k}" for k in range(n_customers)], dtype=object)
    log = pd.DataFrame(
        {
            # The size is part of the id: a log of another size from the same seed holds
            # other contacts, and its truth must not be taken for this one's.
            "interaction_id": pd.Series(np.arange(rows)).map(lambda i: f"sim-{seed}-{rows}-{i}"),
            "customer_id": customer_names[customer],
            "occurred_at": origin + pd.to_timedelta(seconds, unit="s"),
            "channel": np.array(CHANNELS, dtype=object)[channel],
            "issue_type": np.array(ISSUE_TYPES, dtype=object)[issue],
            "segment": np.array(SEGMENTS, dtype=object)[segment[customer]],
            "persona": np.array(PERSONAS, dtype=object)[persona[customer]],
            "tenure_months": tenure,
            "switching_effort": np.where(high_effort[customer], "high", "low").astype(object),
            "prior_contacts_30d": prior.astype(np.int64),
            "sentiment": sentiment,
            "language": np.array(LANGUAGES, dtype=object)[language[customer]],
        }
    )

    # Activity from the logging policy; propensity is exactly its probability.
    probs = (policy or default_logging_policy)(log[list(CONTEXT_COLUMNS)].copy())
    probs = _check_policy_output(probs, rows)
    action = _sample_actions(rng, probs)
    propensity = probs[np.arange(rows), action]

    # Agents: random per contact among those speaking the language, independent of the
    # activity (routing on skill is what vea adds, not what the log shows).
    agent = np.empty(rows, dtype=np.int64)
    for lang in LANGUAGES:
        mask = log["language"].to_numpy() == lang
        pool = _agents_for(agents, lang)
        agent[mask] = pool[rng.integers(0, len(pool), mask.sum())]
    skills = agents[[f"skill_{a}" for a in VALUE_ACTIVITIES]].to_numpy()
    delivered, organic, p_true, p_avg = _success_truth(log, skills, agent, agents)

    # Outcomes. A value activity is delivered with P_OFFERED; if it is, success follows the
    # delivered probability, otherwise only the organic one, so that overall
    # P(success | activity) == p_true[activity].
    is_value = action != ACTION_INDEX[NONE]
    offered = is_value & (rng.random(rows) < P_OFFERED)
    value_col = np.maximum(action - 1, 0)  # column in `delivered` (ignored for `none`)
    p_now = np.where(offered, delivered[np.arange(rows), value_col], organic)
    success = rng.random(rows) < p_now
    accepted = offered & (
        rng.random(rows) < np.where(success, P_ACCEPT_IF_SUCCESS, P_ACCEPT_IF_FAILURE)
    )
    ves_confidence, ves_ability = _ves_items(rng, success, sentiment, offered)

    extra = np.array([economics.extra_handle_time_s.get(a, 0.0) for a in ACTIONS])[action]
    base_handle = _lookup(BASE_HANDLE_S, CHANNELS, channel) * _lookup(
        ISSUE_HANDLE_FACTOR, ISSUE_TYPES, issue
    )
    handle = base_handle * rng.lognormal(0.0, HANDLE_SIGMA, rows) + np.where(
        offered, extra * rng.lognormal(-0.5 * EXTRA_HANDLE_SIGMA**2, EXTRA_HANDLE_SIGMA, rows), 0.0
    )  # the extra time's noise has mean 1, so it averages Economics.extra_handle_time_s

    resolved = rng.random(rows) < _lookup(P_RESOLVED, ISSUE_TYPES, issue)
    csat_latent = 2.6 + 1.3 * resolved + 0.9 * sentiment + 0.3 * success + rng.normal(0, 0.7, rows)
    csat = np.clip(np.rint(csat_latent), 1, 5).astype(np.int64)

    considering = rng.random(rows) < _sigmoid(
        SWITCH_INTERCEPT + _lookup(SWITCH_ISSUE, ISSUE_TYPES, issue) + SWITCH_SENTIMENT * sentiment
    )
    high = high_effort[customer]
    p_retain = np.where(
        considering,
        np.where(
            high,
            np.where(success, *RETAIN_CONSIDERING["high"]),
            np.where(success, *RETAIN_CONSIDERING["low"]),
        ),
        np.where(success, *RETAIN_OTHERS),
    )
    retained = rng.random(rows) < p_retain

    log["activity"] = np.array(ACTIONS, dtype=object)[action]
    log["propensity"] = propensity
    log["agent_id"] = agents["agent_id"].to_numpy(dtype=object)[agent]
    log["pool_id"] = "general"
    log["ve_success"] = success.astype(np.int64)
    log["ves_confidence"] = ves_confidence
    log["ves_ability"] = ves_ability
    log["accepted"] = accepted.astype(np.int64)
    log["offered"] = offered.astype(np.int64)
    log["handle_time_s"] = handle
    log["csat"] = csat
    log["retained_60d"] = retained.astype(np.int64)
    log = log[list(LOG_COLUMNS)]

    truth = pd.DataFrame({"interaction_id": log["interaction_id"]})
    for j, a in enumerate(ACTIONS):
        truth[f"p_{a}"] = p_true[:, j]
    for j, a in enumerate(ACTIONS):
        truth[f"p_{a}_avg_agent"] = p_avg[:, j]
    truth["considering_switch"] = considering.astype(np.int64)
    return log, truth


def _ves_items(
    rng: np.random.Generator, success: np.ndarray, sentiment: np.ndarray, offered: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The two VES items (1-7): both top-box (6-7) exactly when value was enhanced."""
    n = len(success)
    # Failures: a shared impression of the contact plus item noise; an attempt that did not
    # land still lifts the items a little.
    mood = 3.6 + 1.2 * sentiment + 0.5 * offered + rng.normal(0.0, 0.8, n)
    items = np.clip(np.rint(mood[:, None] + rng.normal(0.0, 0.9, (n, 2))), 1, 7)
    # A failure can not be top-box on both: pull one of the two items (at random) below 6.
    both_top = (items >= 6).all(axis=1) & ~success
    which = rng.integers(0, 2, n)
    lowered = rng.integers(4, 6, n)  # to 4 or 5
    items[both_top, which[both_top]] = lowered[both_top]
    # Successes: both items top-box, 7 a little more often than 6.
    top = 6 + (rng.random((n, 2)) < 0.55)
    items[success] = top[success]
    items = items.astype(np.int64)
    return items[:, 0], items[:, 1]


# --- Truth helpers -------------------------------------------------------------------------


def true_expected_values(truth: pd.DataFrame, economics: Economics | None = None) -> np.ndarray:
    """(n, 6) true expected value of each action (``ACTIONS`` order):
    ``p_<action> * value_of_success - cost[action]``."""
    economics = economics or Economics()
    p = truth[[f"p_{a}" for a in ACTIONS]].to_numpy(dtype=float)
    return p * economics.value_of_success - np.asarray(economics.action_costs())[None, :]


def oracle_actions(truth: pd.DataFrame, economics: Economics | None = None) -> np.ndarray:
    """Per row the action with the highest true expected value (ties go to the first, so
    `none` wins a tie)."""
    best = true_expected_values(truth, economics).argmax(axis=1)
    return np.array(ACTIONS, dtype=object)[best]


def true_policy_value(
    truth: pd.DataFrame,
    actions: np.ndarray | Sequence[str],
    economics: Economics | None = None,
) -> float:
    """Mean true expected value (``p_true[action] * value_of_success - cost[action]``) of
    choosing ``actions`` (one action name per row of ``truth``)."""
    actions = np.asarray(actions)
    if actions.shape != (len(truth),):
        raise ValueError(f"need one action per row ({len(truth)}), got shape {actions.shape}")
    codes = _codes(actions, ACTIONS)
    values = true_expected_values(truth, economics)
    return float(values[np.arange(len(truth)), codes].mean())


# --- Output --------------------------------------------------------------------------------


def write_simulation(log: pd.DataFrame, truth: pd.DataFrame, out: str | Path) -> Path:
    """Write ``log`` to ``out`` (Parquet for .parquet, CSV for .csv) and ``truth`` beside it
    as ``<stem>.truth.<ext>``; returns the truth path. Each file is written to a temporary
    file in the same directory and moved into place, so no reader sees half a file."""
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in (".parquet", ".csv"):
        raise ValueError(f"output must end in .parquet or .csv, got {out.name!r}")
    truth_path = out.with_name(f"{out.stem}.truth{out.suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    for frame, path in ((log, out), (truth, truth_path)):
        _write_atomic(frame, path, ext)
    return truth_path


def _write_atomic(frame: pd.DataFrame, path: Path, ext: str) -> None:
    # A hidden sibling (same file system, so os.replace is atomic), created by the writer
    # itself so the final file gets the usual permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if ext == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
