"""Agent proficiency measured from outcomes, adjusted for case mix, with empirical Bayes.

For every agent and value activity we compare what happened with what the model expected
for the contacts that agent actually got:

* ``observed`` O: value-enhancement successes of the agent's attempts at the activity;
* ``expected`` E: the sum of the model's predicted success probability for those same
  contacts (an agent given easy customers has a high E, so a high O does not flatter them);
* the ratio O/E is the agent's lift over an average agent on the same contacts.

Raw O/E is noisy for agents with few contacts, so it is shrunk with the gamma-Poisson
model used for standardised ratios (Clayton & Kaldor 1987), made hierarchical because an
agent who is good at one value activity tends to be good at the others (the same person
listens, explains and reassures): the ratio of agent g at activity a is

    theta_ga = mu_a * u_g * v_ga,    E[u_g] = E[v_ga] = 1,

``mu_a`` the activity's pooled ratio, ``u_g`` the agent's general ability (variance
``sigma^2``, estimated from the covariance of the same agents' ratios across activities,
which the independent chance of each cell does not inflate) and ``v_ga`` the activity-
specific part (variance ``delta_a^2``: what is left of the activity's spread of true
ratios, fitted by the method of moments). The prior of a cell is centred on what the
agent's *other* activities say about ``u_g`` (leave-one-out, so no evidence is counted
twice) and widened by the uncertainty of that and by ``delta_a``; it is matched to a
gamma, and the posterior Gamma(alpha + O, beta + E) gives the proficiency (its mean) and
the 90% interval (its 5% and 95% quantiles). Without a general component (sigma = 0) this
is the plain per-activity prior. (Poisson overstates the variance of a sum of Bernoullis;
the counts enter as quasi-Poisson with the binomial dispersion, see ``estimate``.)

Few data. The activity's spread of true ratios cannot be estimated from one agent, or from
agents with a handful of attempts each: the moment estimate is 0 or noise. It used to be
floored at 1e-4 (a relative sd of 1%), so one agent with one contact got 2.00 [1.95, 2.05]
and only 6% of simulated one-agent intervals held the truth. The spread now gets a
weakly-informative half-normal hyperprior (relative sd of agents' lifts, scale 0.5) and its
posterior mean on a grid (``fit_prior``); the activity's mean is shrunk toward 1 (the
case-mix model's average agent) and its own uncertainty widens the prior. Why this and not
the alternatives: a proper posterior of the agent's own single observation needs a prior
anyway, and a flat one on a ratio gives intervals from 0 to absurd values; falling back to
the agent's own binomial interval when the prior cannot be estimated makes a cliff at an
arbitrary number of agents and throws away what the other agents say. The hyperprior
changes nothing that matters once agents carry evidence (the likelihood of 60 agents
overwhelms it: ``bench/pools.py`` gives the same rankings and false members) and degrades
smoothly to "as uncertain as agents in general are" as the data thin out. Coverage of the
90% interval on the simulator (``tests/test_proficiency.py``): 86-92% from one agent with
~5 attempts per activity to 60 agents with ~100 (before: 6%, 38%, 55%, 73%, 87%).

Membership: an agent joins the value pool for an activity when the interval's lower bound
beats the median agent's proficiency for that activity and they have at least
``min_contacts`` attempts; newcomers with little evidence stay in the general pool.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from models.activities import VALUE_ACTIVITIES
from models.pools import GENERAL, LIFT_DECIMALS, MAX_LIFT, MIN_LIFT, Pool, PoolConfig

INTERVAL = 0.90
DEFAULT_MIN_CONTACTS = 30
# Weakly-informative hyperprior on the between-agent spread of one activity's true ratios:
# their relative standard deviation tau / mu is half-normal with this scale (agents' lifts
# mostly within about 0.5x-1.5x of the average, nothing excluded). Many agents with evidence
# outweigh it; with one agent, or agents with a handful of attempts each, it stands, so a
# cell's interval is about as wide as what is known (see ``fit_prior``).
PRIOR_RELATIVE_SD = 0.5
# Grid of relative variances (tau / mu)^2 the hyperprior's posterior is evaluated on.
_SPREAD_GRID = np.geomspace(1e-4, 4.0, 81)
# The activity's mean ratio is shrunk toward 1 (the case-mix model is fitted on all agents,
# so the average agent scores 1) with the weight of this many expected successes.
PRIOR_MEAN_WEIGHT = 2.0
# Floor on the variances of the general ability and the activity-specific part (a zero
# estimate means "no such component"; the hyperprior keeps the activity's total above it,
# so this floor no longer decides how narrow an interval can get).
MIN_PRIOR_VARIANCE = 1e-4


@dataclass(frozen=True)
class Proficiency:
    agent_id: str
    activity: str
    contacts: int
    observed: float
    expected: float
    estimate: float  # posterior mean of O/E (1.0 = as the model expects of anyone)
    low: float  # 90% interval
    high: float
    qualified: bool = False

    @property
    def raw(self) -> float:
        return self.observed / self.expected if self.expected > 0 else math.nan

    def to_dict(self) -> dict:
        return {
            "agent_id": self.agent_id,
            "activity": self.activity,
            "contacts": self.contacts,
            "observed": round(self.observed, 3),
            "expected": round(self.expected, 3),
            "estimate": round(self.estimate, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "qualified": self.qualified,
        }


@dataclass(frozen=True)
class Prior:
    mean: float
    variance: float

    @property
    def alpha(self) -> float:
        return self.mean**2 / self.variance

    @property
    def beta(self) -> float:
        return self.mean / self.variance


@dataclass(frozen=True)
class Cell:
    """One agent's attempts at one activity: count, successes, and the model's expected
    successes and their binomial variance on those contacts."""

    contacts: int
    observed: float
    expected: float
    variance: float


def aggregate(records: Iterable[tuple[str, str, float, float]]) -> dict[tuple[str, str], Cell]:
    """``(agent_id, activity, success 0/1, predicted probability)`` per attempt ->
    ``{(agent, activity): Cell}``. Attempts at unknown activities, without an agent or
    with a missing probability are skipped."""
    totals: dict[tuple[str, str], list[float]] = {}
    for agent, activity, success, predicted in records:
        if not agent or activity not in VALUE_ACTIVITIES:
            continue
        if predicted is None or success is None or not math.isfinite(float(predicted)):
            continue
        p = min(max(float(predicted), 1e-4), 1.0 - 1e-4)
        cell = totals.setdefault((str(agent), activity), [0, 0.0, 0.0, 0.0])
        cell[0] += 1
        cell[1] += float(success)
        cell[2] += p
        cell[3] += p * (1.0 - p)
    return {key: Cell(int(n), o, e, v) for key, (n, o, e, v) in totals.items()}


def fit_prior(cells: list[Cell]) -> Prior:
    """Gamma prior of the true ratios of one activity's agents, honest when data are few.

    Under the model ``E[O_i / E_i] = mu`` and ``Var(O_i / E_i) = tau^2 + mu * V_i / E_i^2``
    (``V_i``: the binomial variance of the agent's successes), so ``mu`` is the pooled
    ratio and ``tau^2`` the spread of the ratios beyond what chance explains. A moment
    estimate of ``tau^2`` is 0 (or noise) with one agent or a few, which made every
    interval as narrow as a floor, so:

    * ``mu`` is shrunk toward 1 with ``PRIOR_MEAN_WEIGHT`` expected successes;
    * the relative spread ``r = (tau / mu)^2`` is its posterior mean under a half-normal
      hyperprior on ``tau / mu`` (scale ``PRIOR_RELATIVE_SD``) and the normal likelihood of
      the agents' relative deviations ``O_i / (mu E_i) - 1 ~ N(0, r + n_i)`` (``n_i`` the
      relative noise of chance), on a grid: few data leave the hyperprior (mean
      ``PRIOR_RELATIVE_SD^2``), many give the usual estimate;
    * the prior's variance adds the uncertainty of ``mu`` itself (``sum w_i^2 (r + n_i)``,
      ``w_i`` the agents' evidence shares), so an estimated mean is not taken as known.
    """
    cells = [c for c in cells if c.expected > 0]
    if not cells:
        return Prior(1.0, PRIOR_RELATIVE_SD**2)
    o = np.array([c.observed for c in cells])
    e = np.array([c.expected for c in cells])
    v = np.array([c.variance for c in cells])
    mu = max((o.sum() + PRIOR_MEAN_WEIGHT) / (e.sum() + PRIOR_MEAN_WEIGHT), 1e-3)
    noise = v / (mu * e**2)  # relative variance of each ratio from chance alone
    deviation2 = (o / (mu * e) - 1.0) ** 2
    total = _SPREAD_GRID[:, None] + noise[None, :]  # (grid, agents)
    loglik = -0.5 * (np.log(total) + deviation2[None, :] / total).sum(axis=1)
    # Half-normal on sqrt(r), as a density over log r (the grid's spacing).
    logprior = 0.5 * np.log(_SPREAD_GRID) - _SPREAD_GRID / (2.0 * PRIOR_RELATIVE_SD**2)
    post = loglik + logprior
    post = np.exp(post - post.max())
    r = float((post * _SPREAD_GRID).sum() / post.sum())
    share = e / (e.sum() + PRIOR_MEAN_WEIGHT)
    r_mean = float((share**2 * (r + noise)).sum())
    return Prior(mu, mu**2 * (r + r_mean))


def general_spread(cells: Mapping[tuple[str, str], Cell], priors: Mapping[str, Prior]) -> float:
    """Variance ``sigma^2`` of the agents' general ability ``u_g`` (relative scale).

    For two activities a != b the chance parts of an agent's ratios are independent, so
    ``E[(x_ga - 1)(x_gb - 1)] = sigma^2`` with ``x_ga = O_ga / (mu_a E_ga)``; the estimate
    is the evidence-weighted mean of these cross products over agents and activity pairs
    (floored at ``MIN_PRIOR_VARIANCE``)."""
    by_agent: dict[str, dict[str, Cell]] = {}
    for (agent, activity), cell in cells.items():
        if cell.expected > 0 and activity in priors:
            by_agent.setdefault(agent, {})[activity] = cell
    total = weight = 0.0
    for own in by_agent.values():
        names = sorted(own)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                ca, cb = own[a], own[b]
                xa = ca.observed / (priors[a].mean * ca.expected)
                xb = cb.observed / (priors[b].mean * cb.expected)
                w = math.sqrt(ca.expected * cb.expected)
                total += w * (xa - 1.0) * (xb - 1.0)
                weight += w
    if weight <= 0:
        return MIN_PRIOR_VARIANCE
    return max(total / weight, MIN_PRIOR_VARIANCE)


def estimate(
    cells: Mapping[tuple[str, str], Cell],
    *,
    min_contacts: int = DEFAULT_MIN_CONTACTS,
    interval: float = INTERVAL,
) -> list[Proficiency]:
    """Shrunk proficiency with interval and pool qualification for every agent x activity.

    The agent's evidence enters the gamma posterior as quasi-Poisson counts: successes
    count ``E / V`` times (``V / E`` is the binomial dispersion, below 1), so a ratio
    measured on likely successes is not judged as noisier than it is. The prior of each
    cell comes from the hierarchical model of the module docstring. The median is taken
    over the posterior means of the agents with at least ``min_contacts`` attempts at the
    activity (the established workforce); an agent qualifies when the lower bound of
    their interval is above it."""
    tail = (1.0 - interval) / 2.0
    priors = {
        activity: fit_prior([c for k, c in cells.items() if k[1] == activity])
        for activity in VALUE_ACTIVITIES
        if any(k[1] == activity for k in cells)
    }
    sigma2 = general_spread(cells, priors)
    # The agent's general ability from each activity, as quasi-Poisson counts against the
    # activity's pooled ratio: sum them, then leave the cell's own activity out.
    counts: dict[str, dict[str, tuple[float, float]]] = {}
    for (agent, activity), cell in cells.items():
        if cell.expected <= 0 or activity not in priors:
            continue
        dispersion = max(cell.variance / cell.expected, 1e-9)
        counts.setdefault(agent, {})[activity] = (
            cell.observed / dispersion,
            priors[activity].mean * cell.expected / dispersion,
        )
    result: list[Proficiency] = []
    for activity, prior in priors.items():
        keys = sorted(k for k in cells if k[1] == activity)
        group = [cells[k] for k in keys]
        n = np.array([c.contacts for c in group], dtype=float)
        o = np.array([c.observed for c in group])
        e = np.array([c.expected for c in group])
        dispersion = np.maximum(np.array([c.variance for c in group]) / np.maximum(e, 1e-9), 1e-9)
        # Activity-specific spread: the activity's total relative spread of true ratios,
        # less the general ability's: (1 + total) = (1 + sigma^2)(1 + delta^2).
        total = prior.variance / prior.mean**2
        delta2 = max((1.0 + total) / (1.0 + sigma2) - 1.0, MIN_PRIOR_VARIANCE)
        # u_g from the agent's other activities: Gamma(1/sigma^2 + O', 1/sigma^2 + E').
        rest = np.array(
            [
                [
                    sum(v[0] for b, v in counts.get(agent, {}).items() if b != activity),
                    sum(v[1] for b, v in counts.get(agent, {}).items() if b != activity),
                ]
                for agent, _ in keys
            ]
        ).reshape(-1, 2)
        u_shape = 1.0 / sigma2 + rest[:, 0]
        u_rate = 1.0 / sigma2 + rest[:, 1]
        u_mean = u_shape / u_rate
        u_second = u_mean**2 + u_shape / u_rate**2
        cell_mean = prior.mean * u_mean
        cell_var = prior.mean**2 * (u_second * (1.0 + delta2) - u_mean**2)
        shape = cell_mean**2 / cell_var + o / dispersion
        rate = cell_mean / cell_var + e / dispersion
        mean = shape / rate
        low = stats.gamma.ppf(tail, shape, scale=1.0 / rate)
        high = stats.gamma.ppf(1.0 - tail, shape, scale=1.0 / rate)
        established = n >= min_contacts
        median = float(np.median(mean[established])) if established.any() else math.inf
        for i, (agent, _) in enumerate(keys):
            result.append(
                Proficiency(
                    agent_id=agent,
                    activity=activity,
                    contacts=int(n[i]),
                    observed=float(o[i]),
                    expected=float(e[i]),
                    estimate=float(mean[i]),
                    low=float(low[i]),
                    high=float(high[i]),
                    qualified=bool(established[i] and low[i] > median),
                )
            )
    return result


def qualified_agents(proficiency: Iterable[Proficiency]) -> dict[str, list[str]]:
    """Activity -> agents who qualified for its value pool (sorted by estimate, best first)."""
    by_activity: dict[str, list[Proficiency]] = {}
    for item in proficiency:
        if item.qualified:
            by_activity.setdefault(item.activity, []).append(item)
    return {
        activity: [p.agent_id for p in sorted(items, key=lambda p: (-p.estimate, p.agent_id))]
        for activity, items in by_activity.items()
    }


@dataclass(frozen=True)
class Rebuild:
    config: PoolConfig
    changes: list[str]
    proficiency: list[Proficiency]


def rebuild_pools(
    config: PoolConfig,
    proficiency: list[Proficiency],
    *,
    min_contacts: int = DEFAULT_MIN_CONTACTS,
) -> Rebuild:
    """New members of every ``membership: proficiency`` pool (agents qualified for any of
    its activities) and the measured lift of every pool, with a line per change. Where no
    member has ``min_contacts`` attempts at an activity, the pool's lift for it is kept
    (with a line saying so)."""
    qualified = qualified_agents(proficiency)
    by_cell = {(p.agent_id, p.activity): p for p in proficiency}
    pools: list[Pool] = []
    changes: list[str] = []
    for pool in config.pools:
        if pool.id == GENERAL:
            pools.append(pool)
            continue
        members = pool.members
        if pool.membership == "proficiency":
            chosen = {agent for a in pool.activities for agent in qualified.get(a, ())}
            members = tuple(sorted(chosen))
            for agent in sorted(chosen - set(pool.members)):
                why = ", ".join(
                    _describe(by_cell[(agent, a)])
                    for a in sorted(pool.activities)
                    if (agent, a) in by_cell and by_cell[(agent, a)].qualified
                )
                changes.append(f"{pool.id}: + {agent} ({why})")
            for agent in sorted(set(pool.members) - chosen):
                cells = [
                    by_cell[(agent, a)] for a in sorted(pool.activities) if (agent, a) in by_cell
                ]
                why = ", ".join(_describe(c) for c in cells) or "no outcomes"
                changes.append(f"{pool.id}: - {agent} (no longer above the median: {why})")
        lift: dict[str, float] = {}
        for activity in sorted(pool.activities):
            cells = [
                by_cell[(agent, activity)]
                for agent in members
                if (agent, activity) in by_cell
                and by_cell[(agent, activity)].contacts >= min_contacts
            ]
            if cells:
                # Within the bounds every pools config is read with: a few lucky contacts
                # (min_contacts 1) can estimate more than MAX_LIFT, and members who failed
                # contacts the model was sure of less than MIN_LIFT (stored as 0). Outside
                # them the config could not be stored, and one hopeless static member would
                # stop every rebuild.
                measured = float(np.mean([c.estimate for c in cells]))
                lift[activity] = round(min(max(measured, MIN_LIFT), MAX_LIFT), LIFT_DECIMALS)
            elif activity in pool.lift:
                # Nothing measured is no evidence against the lift the pool has (an
                # operator's on a static pool, or an earlier rebuild's): kept, and said,
                # so a rebuild on too few outcomes never silently drops configured routing.
                lift[activity] = pool.lift[activity]
                changes.append(
                    f"{pool.id}: lift {activity} {_fmt(pool.lift[activity])} kept (no member "
                    f"has {min_contacts} attempts at it yet)"
                )
                continue
            old, new = pool.lift.get(activity), lift.get(activity)
            if old != new and not (old is not None and new is not None and abs(old - new) < 5e-4):
                changes.append(f"{pool.id}: lift {activity} {_fmt(old)} -> {_fmt(new)}")
        pools.append(replace(pool, members=members, lift=lift))
    return Rebuild(config.with_pools(pools), changes, proficiency)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _describe(item: Proficiency) -> str:
    return (
        f"{item.activity} {item.estimate:.2f} [{item.low:.2f}, {item.high:.2f}], "
        f"{item.contacts} contacts"
    )
