"""The value report: does value enhancement pay? Pure computation on plain columns.

Input: one entry per decision (equal-length sequences by column name: the columns of the
service's export), output: plain dicts the service serializes. Missing values are None or
NaN and are left out of each mean separately (a survey not answered does not erase the
handle time of the same contact).

- **Measures by group**: VES (both items and their mean), success rate, acceptance (among
  offered attempts), handle time, CSAT, NPS, CES and 60-day retention by activity,
  segment, issue type, channel, pool and agent, over the treated contacts only (with the
  holdout mixed in, "none" pooled the control group with the model's own "none" and
  agents' rates mixed in their control-group contacts), each with the number of answers
  behind it (``ves_n``, ``nps_n``..., ``acceptance_n`` the offers with a recorded
  answer); and by experiment arm over every contact.
- **Treated vs holdout** for CSAT, NPS, CES, handle time and upgrades: the difference
  with its 95% interval, as the uplift (NPS as +100/0/-100 per answer, whose mean is
  the score).
- **Uplift** of the treated arm over the randomized holdout for success, retention and
  VES: difference of means with a 95% interval, cluster-robust by customer (arms are
  assigned by a hash of the customer id, so the difference is causal, and a customer's
  repeated contacts are not independent observations), on a Student t with
  Welch-Satterthwaite degrees of freedom counted in customers: the normal quantile covers
  only ~89% with 5 customers per arm, the t ~94% (and the two agree from a few dozen).
- **ROI**: per customer, ``value_of_retention`` x retained 60 days after the customer's
  first contact of the period, plus the revenue of their upgrades in those 60 days (the
  customer events' ``value``: ``upgrade_revenue_60d``), minus ``cost_per_second`` x the
  handle time of all their contacts, compared between the arms (customers are the
  randomized units: retention and upgrades are a customer's, counted once however often
  they called); the total is that difference x the treated customers, and per contact
  the total over the treated contacts. The upgrade revenue is also given on its own
  (``roi.upgrade_revenue``: per customer, treated vs holdout with its interval), as the
  handle time is (``roi.handle_time``). An upgrade sent without a value counts 0 and is
  counted per arm (``roi.upgrades_without_value``); ``roi.upgrade_revenue_note`` then says
  which figures are lower (or upper) bounds.
- **Enough data**: an interval needs at least ``MIN_CUSTOMERS`` customers in each arm;
  with fewer the difference is shown without one and says so (two customers per arm
  who all succeeded gave a zero-width interval).
- **Reward**: the report names the reward it reports (``models.schema.Reward``:
  ``ve_success`` by default, ``accepted``, a retention window, or a weighted value),
  gives its mean per group and its uplift; contacts whose reward is still unknown
  (retention window open) are left out of it and counted.
- **Offered vs accepted**: per group (so per agent and per pool), how many value
  suggestions there were, how many the agent offered and how many of the offered the
  customer took up, with the rates, all on the suggested contacts. An offer where
  nothing was suggested is counted apart; in the holdout it contaminates the control
  group (``holdout_offers``, with a warning).
- **Sample ratio** (``srm``): the customers seen in each arm against the split that was
  in force. The decisions do not record the share they were assigned under, but the arm
  is a hash of the customer id salted by the experiment, so each stored arm bounds it:
  the report reads the share(s) in force from the decisions themselves (a period run
  under another share than the configured one is tested against its own, a change within
  the period is found, dated and flags the uplift) and falls back to the configured share
  when the arms do not follow the configured experiment's hash.
- **Shadow**: champion against each shadow challenger on the period's labelled
  treated decisions the shadow decided (``shadow_comparison``; the holdout gets `none`
  whatever the policy): doubly robust value of each
  policy, their paired difference with a 95% interval (cluster-robust by customer),
  whether the shadow would pass the promotion gate (lower bound above zero) and the
  share of contacts where its choice was impossible under logging. A live glance: the
  direct-method term is the champion's stored expected values, not a cross-fitted reward
  model; ``vea evaluate --shadow`` is the thorough offline comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy.special import chdtrc, stdtrit

from models.activities import ACTIONS, NONE
from models.exploration import holdout_draw
from models.schema import Reward

GROUPS = ("activity", "segment", "issue_type", "channel", "pool_id", "agent_id")
UPLIFT_MEASURES = ("ve_success", "retained_60d", "ves", "reward")


def uplift_shown(name: str, report: Mapping[str, Any]) -> bool:
    """Whether a reader is shown the uplift row ``name`` of ``report``: the reward's only
    when it is not the success rate again (the default reward)."""
    return name != "reward" or (report.get("reward") or {}).get("name") != "ve_success"


# What value selling must not cost (satisfaction, promoters, effort, call length) and the
# upgrades it may bring: treated against holdout, with intervals, beside the uplift.
ARM_MEASURES = ("csat", "nps", "ces", "handle_time_s", "upgraded")
BY_NOTE = (
    "treated contacts only: a manager compares activities, pools and agents among the "
    "contacts the model served (the holdout's 'none' is not the model choosing none); "
    "the holdout is in by.experiment_arm and treated_vs_holdout"
)
K = len(ACTIONS)
CODES = {name: code for code, name in enumerate(ACTIONS)}
MEASURES = "the suggestion (intent to treat)"
# As ``training.shadow``: above this share of contacts whose shadow choice the logging
# policy could never make, the comparison rests on guesses, not on the log.
MAX_UNSUPPORTED = 0.05
REWARD_PARTS_READ = (
    "ve_success",
    "accepted",
    "offered",
    "retained_30d",
    "retained_60d",
    "retained_90d",
    "upgraded",
)
UNKNOWN = "(unknown)"
# Below this many customers in an arm an interval is not given: the t interval still has
# its coverage with about 8 per arm, but with a handful every outcome is often the same
# and the interval collapses to a point.
MIN_CUSTOMERS = 10
# Sample ratio mismatch: flagged below this p-value (the industry convention: with many
# reports a day, a looser level would cry wolf).
SRM_ALPHA = 0.001
# Tested only when every category of the test (holdout, treated, and both arms when a
# share changed) expects at least this many customers: Cochran's rule for Pearson's
# chi-square approximation, below which its p-value is off. A property of the test, not
# a business choice, so not in VEA_VALUE_CONFIG (a lower value would only buy a wrong
# p-value); reported as ``srm.min_expected``.
SRM_MIN_EXPECTED = 5.0
# A share changed once or twice in a period is plausible; arms needing more changes do
# not follow this experiment's hash (a period under another VEA_EXPERIMENT breaks at
# nearly every other decision), so no share is read from them.
SRM_MAX_SHARE_CHANGES = 3
# Per decision: the revenue of the customer's upgrades in the 60 days after it (the same
# window as ``retained_60d``, and known when it is), NaN while that window is open.
UPGRADE_REVENUE = "upgrade_revenue_60d"
# Per decision: how many of those upgrades were sent without a value (counted 0 in the
# revenue, which is then a lower bound), NaN while the window is open.
UPGRADES_WITHOUT_VALUE = "upgrades_without_value_60d"


@dataclass(frozen=True)
class ValueSettings:
    value_of_retention: float = 200.0
    cost_per_second: float = 0.02
    declared_measures: tuple[str, ...] = ()
    declared_at: str | None = None  # ISO date/time the measures were fixed
    reward: Reward = Reward()
    # The configured holdout (``VEA_HOLDOUT_SHARE``, ``VEA_EXPERIMENT``): the sample ratio
    # mismatch check compares the observed arms with it.
    holdout_share: float = 0.0
    experiment: str | None = None

    def __post_init__(self) -> None:
        unknown = [m for m in self.declared_measures if m not in UPLIFT_MEASURES]
        if unknown:
            # A misspelt measure would be reported as declared while the measure meant
            # to be fixed in advance silently is not.
            raise ValueError(
                f"unknown success measure {unknown[0]!r}: "
                f"the measures are {', '.join(UPLIFT_MEASURES)}"
            )
        if self.declared_at:
            try:
                _timestamp(self.declared_at)
            except ValueError:
                raise ValueError(
                    f"declared_at {self.declared_at!r} is not an ISO date or date-time"
                ) from None


def _num(values: Sequence[Any] | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        # Numbers already (a frame's column): the same floats, NaN missing, without a
        # Python float per value (a second of a page at 100,000 decisions over ~20 columns).
        return values.astype(np.float64)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _texts(values: Sequence[Any] | None, n: int, default: str) -> list[str]:
    """Each value as text, ``default`` where there is none (the column or the value)."""
    if values is None:
        return [default] * n
    return [default if v is None else str(v) for v in _plain(values)]


def _plain(values: Sequence[Any]) -> Sequence[Any]:
    # A list iterates several times faster than a numpy array of objects.
    return values.tolist() if isinstance(values, np.ndarray) else values


def _flags(values: Sequence[Any] | None, n: int) -> np.ndarray:
    """Each value's truth (true throughout without the column)."""
    if values is None:
        return np.ones(n, dtype=bool)
    if isinstance(values, np.ndarray) and values.dtype == bool:
        return values.copy()
    return np.array([bool(v) for v in _plain(values)], dtype=bool)


def _ranked(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Each text's rank among the distinct texts, and those texts: the order and the
    texts ``np.unique`` gives an array of them (numpy's text drops trailing NULs, so
    they are dropped here too), from one pass of a dict and a sort of the distinct few,
    without sorting every row's text (customer ids grouped every interval again)."""
    first: dict[str, int] = {}
    codes = np.fromiter(
        (first.setdefault(v, len(first)) for v in values), dtype=np.int64, count=len(values)
    )
    names = sorted({v.rstrip("\x00") for v in first})
    rank = {name: i for i, name in enumerate(names)}
    ranks = np.array([rank[v.rstrip("\x00")] for v in first], dtype=np.int64)
    return ranks[codes], names


def _mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def measures(cols: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, Any]:
    """The report's measures over the selected rows. Offers count on one base: the
    contacts where a value activity was suggested (``offered`` of ``suggested``,
    ``accepted`` of ``offered``); an offer made where none was suggested (the holdout, or
    the model chose ``none``) is counted apart, as ``offered_unsuggested``. ``rows``: a
    mask, or the rows' positions in ascending order (the same values in the same order,
    so the same sums to the last bit, without a pass over every row per group)."""
    if rows.dtype == bool:
        rows = np.flatnonzero(rows)
    offered = cols["offered"][rows] == 1
    accepted = cols["accepted"][rows]
    suggested = cols["suggested"][rows]
    offered_suggestion = suggested & offered
    answered = offered_suggestion & np.isfinite(accepted)
    n_suggested, n_offered = int(suggested.sum()), int(offered_suggestion.sum())
    n_accepted, n_answered = int((offered_suggestion & (accepted == 1)).sum()), int(answered.sum())
    return {
        "n": int(rows.size),
        "reward": _mean(cols["reward"][rows]),
        "reward_n": int(np.isfinite(cols["reward"][rows]).sum()),
        "suggested": n_suggested,
        "offered": n_offered,
        "offer_rate": n_offered / n_suggested if n_suggested else None,
        "accepted": n_accepted,
        # Offers whose answer was not recorded are left out of the rate, not counted as no.
        "acceptance": n_accepted / n_answered if n_answered else None,
        "offered_unsuggested": int((offered & ~suggested).sum()),
        "ves_confidence": _mean(cols["ves_confidence"][rows]),
        "ves_ability": _mean(cols["ves_ability"][rows]),
        "ves": _mean(cols["ves"][rows]),
        "success_rate": _mean(cols["ve_success"][rows]),
        "handle_time_s": _mean(cols["handle_time_s"][rows]),
        "csat": _mean(cols["csat"][rows]),
        "nps": _net_promoter(cols["nps"][rows]),
        "ces": _mean(cols["ces"][rows]),
        "retained_60d": _mean(cols["retained_60d"][rows]),
        # The answers behind each mean: a rate from a handful of answers is noise.
        **{f"{name}_n": _answered(cols[column][rows]) for name, column in ANSWER_COUNTS},
        # The base of ``acceptance``: offers whose answer was recorded (37 offers of which
        # 2 answered make a rate of 2 answers, not of 37). Last: the keys before it keep
        # their places.
        "acceptance_n": n_answered,
    }


# Each count's name (``<name>_n``) and the column it counts known values of.
ANSWER_COUNTS = (
    ("ves", "ves"),
    ("success", "ve_success"),
    ("handle_time", "handle_time_s"),
    ("csat", "csat"),
    ("nps", "nps"),
    ("ces", "ces"),
    ("retained_60d", "retained_60d"),
)


def _groups(labels: Sequence[str], among: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each label of the rows ``among`` (sorted) with the positions of its rows there, in
    ascending order: one sort, where comparing every row with each label took a quarter
    of a second per grouping (150 agents)."""
    rows = np.flatnonzero(among)
    if not rows.size:
        return []
    ranks, names = _ranked(labels)
    which = ranks[rows]
    order = np.argsort(which, kind="stable")
    present, starts = np.unique(which[order], return_index=True)
    parts = np.split(rows[order], starts[1:])
    return [(names[k], part) for k, part in zip(present.tolist(), parts, strict=True)]


def _answered(x: np.ndarray) -> int:
    return int(np.isfinite(x).sum())


def _promoter_points(scores: np.ndarray) -> np.ndarray:
    """Each NPS answer as +100 (promoter, 9-10), -100 (detractor, 0-6) or 0: their mean
    is the net promoter score, so its difference between arms gets an interval like any
    mean. NaN where not answered."""
    points = 100.0 * (scores >= 9) - 100.0 * (scores <= 6)
    return np.where(np.isfinite(scores), points, np.nan)


def _net_promoter(scores: np.ndarray) -> float | None:
    """% promoters (9-10) minus % detractors (0-6) among the customers who answered."""
    answered = scores[np.isfinite(scores)]
    if answered.size == 0:
        return None
    return float(100.0 * ((answered >= 9).mean() - (answered <= 6).mean()))


def _var_of_mean(x: np.ndarray, clusters: np.ndarray | None) -> tuple[float, int]:
    """Variance of the mean of ``x`` and its number of independent units (rows, or
    clusters when ``clusters`` is given). Cluster-robust because a customer's contacts are
    not independent (the arm and the customer's traits are shared), with the small-sample
    factor G / (G - 1)."""
    n = x.size
    if clusters is None:
        return float(x.var(ddof=1) / n), n
    _, group = np.unique(clusters, return_inverse=True)
    sums = np.bincount(group, weights=x - x.mean())
    g = sums.size
    if g < 2:
        return float("nan"), g
    return float((sums**2).sum() / n**2 * g / (g - 1)), g


def _welch_df(v_t: float, g_t: int, v_c: float, g_c: int) -> float:
    """Welch-Satterthwaite degrees of freedom of ``v_t + v_c`` with ``g - 1`` per arm."""
    denom = v_t**2 / (g_t - 1) + v_c**2 / (g_c - 1)
    # No spread in either arm: the interval is a point anyway; any df will do.
    return (v_t + v_c) ** 2 / denom if denom > 0 else float(g_t + g_c - 2)


def difference(
    treated: np.ndarray,
    control: np.ndarray,
    treated_clusters: np.ndarray | None = None,
    control_clusters: np.ndarray | None = None,
    min_units: int = 2,
) -> dict[str, Any]:
    """Mean(treated) - mean(control) with a 95% Welch t interval (cluster-robust when
    cluster ids, e.g. customers, are given). ``units_*`` count the independent units
    (customers, else observations); with fewer than ``min_units`` in an arm the interval
    is None and ``enough_data`` false, and with fewer than two the difference too."""
    keep_t, keep_c = np.isfinite(treated), np.isfinite(control)
    t, c = treated[keep_t], control[keep_c]
    ct = None if treated_clusters is None else np.asarray(treated_clusters)[keep_t]
    cc = None if control_clusters is None else np.asarray(control_clusters)[keep_c]
    units_t = int(t.size if ct is None else np.unique(ct).size)
    units_c = int(c.size if cc is None else np.unique(cc).size)
    out: dict[str, Any] = {
        "treated": _mean(t),
        "holdout": _mean(c),
        "n_treated": int(t.size),
        "n_holdout": int(c.size),
        "units_treated": units_t,
        "units_holdout": units_c,
        "enough_data": min(units_t, units_c) >= max(min_units, 2),
        "value": None,
        "ci_low": None,
        "ci_high": None,
    }
    if t.size < 2 or c.size < 2:
        return out
    diff = float(t.mean() - c.mean())
    out["value"] = diff
    if not out["enough_data"]:
        return out
    (v_t, g_t), (v_c, g_c) = _var_of_mean(t, ct), _var_of_mean(c, cc)
    se = math.sqrt(v_t + v_c)
    if not math.isfinite(se):
        return out
    half = float(stdtrit(_welch_df(v_t, g_t, v_c, g_c), 0.975)) * se
    out.update(ci_low=diff - half, ci_high=diff + half)
    return out


def _by_customer(
    rows: np.ndarray, customers: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of ``rows`` in time order (by ``order``), each customer's first of them
    (their first contact: a position in that order) and each row's customer number."""
    idx = np.flatnonzero(rows)
    idx = idx[np.argsort(order[idx], kind="stable")]
    # ``return_index`` is each customer's first row in time order: their first contact.
    _, first, which = np.unique(customers[idx], return_index=True, return_inverse=True)
    return idx, first, which


def customer_values(
    rows: np.ndarray,
    customers: np.ndarray,
    order: np.ndarray,
    retained: np.ndarray,
    handle_time_s: np.ndarray,
    settings: ValueSettings,
    upgrade_revenue: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Per customer of ``rows``: ``value_of_retention`` x retained after their first
    contact (by ``order``), plus ``upgrade_revenue`` at that first contact (the revenue of
    their upgrades in the same window; None: not counted), minus ``cost_per_second`` x
    the handle time of all their contacts (a contact without a reported time counts at
    the customer's mean), NaN while the retention or the revenue is not known; and the
    number of contacts."""
    idx, first, which = _by_customer(rows, customers, order)
    if idx.size == 0:
        return np.empty(0), 0
    handle = handle_time_s[idx]
    known = np.isfinite(handle)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_handle = np.bincount(which, weights=np.where(known, handle, 0.0)) / np.bincount(
            which, weights=known.astype(float)
        )
    cost = settings.cost_per_second * mean_handle * np.bincount(which)
    value = settings.value_of_retention * retained[idx][first] - cost
    if upgrade_revenue is not None:
        value = value + upgrade_revenue[idx][first]
    return value, int(idx.size)


def first_contact_values(
    rows: np.ndarray, customers: np.ndarray, order: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Per customer of ``rows`` (in the order of ``customer_values``): ``values`` at the
    customer's first contact (e.g. the revenue of their upgrades in the 60 days after)."""
    idx, first, _ = _by_customer(rows, customers, order)
    return values[idx][first] if idx.size else np.empty(0)


def roi(
    cols: Mapping[str, np.ndarray],
    treated: np.ndarray,
    holdout: np.ndarray,
    customers: np.ndarray,
    order: np.ndarray,
    settings: ValueSettings,
) -> dict[str, Any]:
    """Treated minus holdout value per customer (``customer_values``) with its interval,
    the total over the treated customers and the same per treated contact (``value``;
    ``treated`` and ``holdout`` are each arm's value per customer on that scale, so their
    difference is ``value``), and the
    upgrade revenue per customer on its own (``upgrade_revenue``). Without an
    ``upgrade_revenue_60d`` column (a log from before it) upgrades are not valued and
    ``upgrade_revenue`` has no value. Upgrades without a value are counted per arm
    (``upgrades_without_value``, from an ``upgrades_without_value_60d`` column) with a note
    on what they make of the figures."""
    revenue = cols.get(UPGRADE_REVENUE)
    value_t, contacts_t = customer_values(
        treated, customers, order, cols["retained_60d"], cols["handle_time_s"], settings, revenue
    )
    value_c, contacts_c = customer_values(
        holdout, customers, order, cols["retained_60d"], cols["handle_time_s"], settings, revenue
    )
    per_customer = difference(value_t, value_c, min_units=MIN_CUSTOMERS)
    if revenue is None:
        upgrades = difference(np.empty(0), np.empty(0), min_units=MIN_CUSTOMERS)
    else:
        upgrades = difference(
            first_contact_values(treated, customers, order, revenue),
            first_contact_values(holdout, customers, order, revenue),
            min_units=MIN_CUSTOMERS,
        )
    customers_t = int(value_t.size)
    unvalued = _unvalued_upgrades(cols, treated, holdout, customers, order)

    def scaled(value: float | None, factor: float | None) -> float | None:
        return None if value is None or factor is None else value * factor

    # No treated contacts: no per-contact scale (0 showed the holdout's value as 0.00).
    per_contact = customers_t / contacts_t if contacts_t else None
    return {
        # The total spread over the treated contacts, and each arm's value per customer on
        # that same scale (the holdout's as if its customers called as often), so that
        # treated - holdout is the value: each arm per its own contacts read, with treated
        # customers calling 4 times as often, -5 vs 90 beside a difference of -27.5.
        **{key: scaled(per_customer[key], per_contact) for key in ("value", "ci_low", "ci_high")},
        "treated": scaled(per_customer["treated"], per_contact),
        "holdout": scaled(per_customer["holdout"], per_contact),
        "n_treated": contacts_t,
        "n_holdout": contacts_c,
        "units_treated": per_customer["units_treated"],
        "units_holdout": per_customer["units_holdout"],
        "enough_data": per_customer["enough_data"],
        "per_customer": per_customer,
        "treated_customers": customers_t,
        "treated_contacts": contacts_t,
        "total": scaled(per_customer["value"], customers_t),
        "total_ci_low": scaled(per_customer["ci_low"], customers_t),
        "total_ci_high": scaled(per_customer["ci_high"], customers_t),
        "value_of_retention": settings.value_of_retention,
        "cost_per_second": settings.cost_per_second,
        # Per customer, in the 60 days after their first contact: part of the net value.
        "upgrade_revenue": upgrades,
        "upgrades_valued": revenue is not None,
        # Upgrades in those windows sent without a value, per arm (None: the log does not
        # say), and what they make of the money figures.
        "upgrades_without_value": unvalued,
        "upgrade_revenue_note": _unvalued_note(unvalued),
    }


def _unvalued_upgrades(
    cols: Mapping[str, np.ndarray],
    treated: np.ndarray,
    holdout: np.ndarray,
    customers: np.ndarray,
    order: np.ndarray,
) -> dict[str, int | None]:
    """Per arm, the upgrades without a value in the windows the revenue counts (each
    customer's first contact, where that window is known); None for a log without the
    count (from before it, or without revenue at all)."""
    counts = cols.get(UPGRADES_WITHOUT_VALUE)
    if counts is None or cols.get(UPGRADE_REVENUE) is None:
        return {"treated": None, "holdout": None}

    def total(rows: np.ndarray) -> int:
        per_customer = first_contact_values(rows, customers, order, counts)
        return int(np.nansum(per_customer)) if per_customer.size else 0

    return {"treated": total(treated), "holdout": total(holdout)}


def _unvalued_note(unvalued: Mapping[str, int | None]) -> str | None:
    """Which money figures an upgrade without a value (counted 0) makes bounds: an arm's
    revenue is then at least what is shown, so the difference treated - holdout is a lower
    bound when only treated upgrades lack a value, an upper bound when only holdout ones
    do, and may be off either way when both arms have some."""
    t, h = unvalued["treated"] or 0, unvalued["holdout"] or 0
    if not t and not h:
        return None
    said = (
        f"{t} upgrades of treated customers and {h} of holdout customers were sent "
        "without a value and count 0"
    )
    if t and h:
        effect = (
            "each arm's upgrade revenue and net value are lower bounds, and the difference "
            "(upgrade revenue and ROI) may be off in either direction"
        )
    elif t:
        effect = (
            "the treated arm's upgrade revenue is a lower bound, so the difference (upgrade "
            "revenue and ROI) is a lower bound too"
        )
    else:
        effect = (
            "the holdout's upgrade revenue is a lower bound, so the difference (upgrade "
            "revenue and ROI) may be overstated: an upper bound"
        )
    return f"{said}: {effect}. Send the value with every upgraded event."


def value_report(
    columns: Mapping[str, Sequence[Any]],
    settings: ValueSettings,
    period: tuple[str | None, str | None] = (None, None),
    shadow: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole report from the export's columns (decisions with and without outcomes);
    ``shadow``: the inputs of ``shadow_comparison`` beyond these columns (see there)."""
    n = len(columns.get("decision_id", ()))
    cols = {
        name: _num(columns.get(name), n)
        for name in (
            "ve_success",
            "ves_confidence",
            "ves_ability",
            "accepted",
            "offered",
            "handle_time_s",
            "csat",
            "nps",
            "ces",
            "retained_60d",
        )
    }
    for name in (UPGRADE_REVENUE, UPGRADES_WITHOUT_VALUE):
        if name in columns:
            cols[name] = _num(columns[name], n)
    # VES: the mean of its two items (1-7), where both were answered.
    cols["ves"] = (cols["ves_confidence"] + cols["ves_ability"]) / 2.0
    has_outcome = _flags(columns.get("has_outcome"), n)
    reward = settings.reward
    parts = {name: _num(columns.get(name), n) for name in REWARD_PARTS_READ}
    cols["reward"] = np.where(has_outcome, reward.values(parts, n), np.nan)
    served = _texts(columns.get("activity"), n, NONE)
    cols["suggested"] = np.array([a != NONE for a in served], dtype=bool)
    arm = np.array([str(v) for v in _plain(columns.get("experiment_arm", ["treatment"] * n))])
    everything = has_outcome
    treated, holdout = everything & (arm == "treatment"), everything & (arm == "holdout")
    by: dict[str, list[dict[str, Any]]] = {}
    for group in (*GROUPS, "experiment_arm"):
        # The arms themselves over every contact; every other grouping over the treated.
        among = everything if group == "experiment_arm" else treated
        labels = [
            UNKNOWN if v is None or v != v else str(v)
            for v in _plain(columns.get(group, [None] * n))
        ]
        rows_of = [
            {"group": label, **measures(cols, rows)} for label, rows in _groups(labels, among)
        ]
        by[group] = sorted(rows_of, key=lambda item: -item["n"])
    # The customers as integers ordered as their ids: every interval and per-customer sum
    # groups them, and the same groups in the same order give the same figures.
    customer_codes, customer_ids = _ranked(
        [str(v) for v in _plain(columns.get("customer_id", np.arange(n)))]
    )
    customers = np.array(customer_ids)[customer_codes] if n else np.array([])
    ct, cc = customer_codes[treated], customer_codes[holdout]
    declared = set(settings.declared_measures)
    order = _order(columns, n)
    timed = everything & np.isfinite(order) if "occurred_at" in columns else everything & False
    first = float(order[timed].min()) if timed.any() else math.inf
    pre_declared = _pre_declared(settings.declared_at, period[0], first)
    uplift = {}
    for name in UPLIFT_MEASURES:
        entry = difference(
            cols[name][treated], cols[name][holdout], ct, cc, min_units=MIN_CUSTOMERS
        )
        entry["declared"] = name in declared
        entry["pre_declared"] = name in declared and pre_declared
        uplift[name] = entry
    arm_values = {**cols, "nps": _promoter_points(cols["nps"]), "upgraded": parts["upgraded"]}
    treated_vs_holdout = {
        name: difference(
            arm_values[name][treated], arm_values[name][holdout], ct, cc, MIN_CUSTOMERS
        )
        for name in ARM_MEASURES
    }
    money = roi(cols, treated, holdout, customer_codes, order, settings)
    money["handle_time"] = difference(
        cols["handle_time_s"][treated], cols["handle_time_s"][holdout], ct, cc,
        min_units=MIN_CUSTOMERS,
    )  # fmt: skip
    known = np.isfinite(cols["reward"])
    # Every stored decision counts, outcome or not: the arm is assigned when deciding.
    srm = sample_ratio(customers, arm, settings.holdout_share, settings.experiment, order)
    uplift_note = None
    if srm["share_changes"]:
        uplift_note = (
            "the holdout share changed during the period: the arms mix splits, the uplift and "
            "ROI figures cannot be trusted; report each side of the change as its own period "
            "(see srm)"
        )
    elif srm["mismatch"]:
        uplift_note = (
            "sample ratio mismatch: the arms are not the randomized split, the uplift and ROI "
            "figures cannot be trusted (see srm)"
        )
    return {
        "uplift_trustworthy": not srm["mismatch"],
        "uplift_note": uplift_note,
        "period": {"from": period[0], "to": period[1]},
        "reward": {
            **reward.to_dict(),
            "known": int(known.sum()),
            "unknown": int((has_outcome & ~known).sum()),
            "note": (
                "contacts with an outcome whose reward is not known yet (a retention window "
                "still open, or a part not reported) are left out of the reward and counted"
            ),
        },
        "decisions": n,
        "with_outcome": int(has_outcome.sum()),
        "pending": int(n - has_outcome.sum()),
        "overall": measures(cols, everything),
        "by": by,
        "by_note": BY_NOTE,
        "uplift": uplift,
        "treated_vs_holdout": treated_vs_holdout,
        "min_customers": MIN_CUSTOMERS,
        "holdout_offers": holdout_offers(cols["offered"], holdout, customer_codes),
        "roi": money,
        "success_measures": {
            "declared": sorted(declared),
            "declared_at": settings.declared_at,
            "pre_declared": pre_declared,
            "note": _declared_note(settings.declared_at, pre_declared, period[0], first),
        },
        "shadow": shadow_section(columns, cols["reward"], shadow),
        "srm": srm,
    }


def chi_square_gof(observed: Sequence[float], expected: Sequence[float]) -> tuple[float, float]:
    """Pearson's chi-square goodness-of-fit statistic and its p-value (k - 1 degrees of
    freedom), as ``scipy.stats.chisquare``."""
    obs, exp = np.asarray(observed, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    stat = float(((obs - exp) ** 2 / exp).sum())
    return stat, float(chdtrc(obs.size - 1, stat))


def assignment_draws(customers: Sequence[str], experiment: str) -> np.ndarray:
    """Each customer's assignment draw (``models.exploration.holdout_draw``, the number
    ``holdout_arm`` holds a customer out by when it is below the share in force), so each
    stored arm bounds the share it was assigned under."""
    return np.array([holdout_draw(str(c), experiment) for c in customers], dtype=np.float64)


def share_history(
    draws: np.ndarray, holdout: np.ndarray, order: np.ndarray, share: float
) -> list[dict[str, Any]] | None:
    """The holdout share(s) in force over the period, read from the decisions: a holdout
    decision says the share was above its customer's draw, a treated one at most it.

    In time order (``order``), the longest runs one share explains (greedy, so the fewest
    changes), each with the range it allows (``share_low`` exclusive, ``share_high``
    inclusive), its ``share`` (the configured ``share`` when the range holds it, else the
    middle: exact to about 1 / customers), its number of ``decisions`` and their
    ``rows`` (indices). None when more than ``SRM_MAX_SHARE_CHANGES`` changes would be
    needed: the arms do not follow these draws (another experiment, or wrong arms)."""
    idx = np.argsort(order, kind="stable")
    u, h = draws[idx], holdout[idx]
    runs: list[dict[str, Any]] = []
    start = 0
    while start < idx.size:
        if len(runs) > SRM_MAX_SHARE_CHANGES:
            return None
        # Running bounds from the run's start: the highest holdout draw (-1: none yet) and
        # the lowest treated draw (2: none yet); the run ends where they cross.
        low = np.maximum.accumulate(np.where(h[start:], u[start:], -1.0))
        high = np.minimum.accumulate(np.where(h[start:], 2.0, u[start:]))
        crossed = np.flatnonzero(low >= high)
        size = int(crossed[0]) if crossed.size else idx.size - start
        lo, hi = float(low[size - 1]), float(high[size - 1])
        in_force = share if lo < share <= hi else (max(lo, 0.0) + min(hi, 1.0)) / 2
        runs.append(
            {
                "rows": idx[start : start + size],
                "decisions": size,
                "share": in_force,
                "share_low": max(lo, 0.0),
                "share_high": min(hi, 1.0),
            }
        )
        start += size
    return runs


def _moment(posix: float) -> str | None:
    """A decision's time (``_order``) as ISO UTC with a Z, to the millisecond, as every
    time in the API (2026-03-21T14:00:05.120Z), None when unknown."""
    if not math.isfinite(posix):
        return None
    moment = datetime.fromtimestamp(posix, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def sample_ratio(
    customers: np.ndarray,
    arm: np.ndarray,
    share: float,
    experiment: str | None,
    order: np.ndarray | None = None,
) -> dict[str, Any]:
    """Sample ratio mismatch: are the customers seen in each arm the split that was in
    force? Customers are the unit (the hash assigns a customer, not a contact).

    The decisions do not record the share they were assigned under, but the assignment
    is a hash of the customer id salted by ``experiment``, so each stored arm bounds it
    (``share_history``): a period run wholly under another share than the configured
    ``share`` is tested against the one in force, and a change within the period is
    found and dated (and flags the uplift: the arms mix splits). Each customer is
    expected in the holdout only, the treated arm only or both by the lowest and highest
    share of their decisions. Without ``experiment``, or when the arms do not follow its
    hash, the configured ``share`` is all there is. ``order``: each decision's time as a
    POSIX number (``_order``; the row order when None)."""
    n = customers.size
    order = np.arange(n, dtype=np.float64) if order is None else order
    is_holdout = arm == "holdout"
    in_force = np.full(n, float(share))
    out: dict[str, Any] = {
        "configured_share": share,
        "experiment": experiment,
        "share_source": "configured",
        "share_changes": None,
        "share_history": None,
        "assigned_otherwise": None,
    }
    source = "" if n else "No decisions in the period."
    if experiment is None:
        source = "VEA_EXPERIMENT unknown: compared with the configured share only."
    elif n:
        unique, which = np.unique(customers, return_inverse=True)
        draws = assignment_draws(unique.tolist(), experiment)[which]
        otherwise = int((is_holdout != (draws < share)).sum())
        out["assigned_otherwise"] = otherwise
        runs = share_history(draws, is_holdout, order, share) if otherwise else None
        if not otherwise:
            out["share_changes"] = 0
            source = (
                "Every decision is in the arm VEA_HOLDOUT_SHARE and VEA_EXPERIMENT give its "
                "customer."
            )
        elif runs is None:
            out["share_source"] = "unchecked"
            source = (
                f"{otherwise} decisions are not in the arm VEA_HOLDOUT_SHARE and "
                f"VEA_EXPERIMENT ({experiment}) give their customer, and at most "
                f"{SRM_MAX_SHARE_CHANGES} share changes do not explain them: the period ran "
                "under another experiment, or arms are logged wrongly. Compared with the "
                "configured share, right only if it was in force."
            )
        else:
            history = []
            for k, run in enumerate(runs):
                in_force[run["rows"]] = run["share"]
                times = order[run["rows"]]
                history.append(
                    {
                        "from": _moment(float(times.min())),
                        "to": _moment(float(times.max())),
                        "changed_after": _changed_after(
                            runs[k - 1]["rows"], run["share"], draws, is_holdout, order
                        )
                        if k
                        else None,
                        **{key: v for key, v in run.items() if key != "rows"},
                    }
                )
            out.update(share_source="decisions", share_changes=len(runs) - 1)
            out["share_history"] = history
            source = _history_text(history, share)
    out.update(_split_test(customers, is_holdout, in_force))
    if out["expected_share"] is None:  # no customers: the configured share is all there is
        out["expected_share"] = float(share)
    # Beyond the test: customers in both arms where one share held (the hash cannot put
    # them there), and a change of share within the period (the arms mix splits).
    changed = bool(out["share_changes"])
    unexpected_both = out["both_arms_customers"] > 0 and not changed
    out["mismatch"] = out["mismatch"] or changed or unexpected_both
    out["message"] = _srm_message(out, source, unexpected_both)
    return out


def _changed_after(
    rows: np.ndarray, share: float, draws: np.ndarray, holdout: np.ndarray, order: np.ndarray
) -> str | None:
    """The last of ``rows`` (the run before a change) that ``share`` (the run after it)
    cannot explain: the change came after it. The runs split greedily, so the earlier run
    may end with decisions that either share explains."""
    wrong = holdout[rows] != (draws[rows] < share)
    return _moment(float(order[rows][wrong].max())) if wrong.any() else None


def _history_text(history: list[dict[str, Any]], share: float) -> str:
    """What the decisions say of the share in force, for the message."""
    if len(history) == 1:
        run = history[0]
        return (
            f"The decisions follow a holdout share of {run['share']:.1%} (between "
            f"{run['share_low']:.2%} and {run['share_high']:.2%}), not the configured "
            f"{share:.1%}: VEA_HOLDOUT_SHARE changed before or after the period; tested "
            "against the share in force."
        )
    runs = "; ".join(
        (f"then, changed after {run['changed_after'] or '?'}, " if k else "")
        + f"{run['share']:.1%} from {run['from'] or '?'} to {run['to'] or '?'}"
        for k, run in enumerate(history)
    )
    changes = len(history) - 1
    return (
        f"The holdout share changed {changes} time{'s' if changes > 1 else ''} during the "
        f"period ({runs}), or arms were logged wrongly (a run of a handful of decisions is "
        "more likely that). The arms mix splits, so the uplift and ROI cannot be trusted: "
        "report each side of a change as its own period. Tested against the shares in "
        "force."
    )


def _split_test(
    customers: np.ndarray, is_holdout: np.ndarray, in_force: np.ndarray
) -> dict[str, Any]:
    """Customers in the holdout only, the treated arm only and both, against what the
    shares in force at their decisions expect (a customer drawn below the lowest is held
    out throughout, at or above the highest treated throughout, in between both), by a
    chi-square goodness of fit; ``both`` is its own category only when enough are
    expected (else it is left out, as when one share held)."""
    unique, which = np.unique(customers, return_inverse=True)
    seen_h = np.bincount(which, weights=is_holdout, minlength=unique.size) > 0
    seen_t = np.bincount(which, weights=~is_holdout, minlength=unique.size) > 0
    low = np.full(unique.size, np.inf)
    high = np.full(unique.size, -np.inf)
    np.minimum.at(low, which, in_force)
    np.maximum.at(high, which, in_force)
    n_b = int((seen_h & seen_t).sum())
    n_h, n_t = int(seen_h.sum()) - n_b, int(seen_t.sum()) - n_b
    e_h, e_t, e_b = float(low.sum()), float((1.0 - high).sum()), float((high - low).sum())
    total = n_h + n_t
    out: dict[str, Any] = {
        "holdout_customers": n_h,
        "treated_customers": n_t,
        "both_arms_customers": n_b,
        "both_arms_expected": e_b,
        "observed_share": n_h / total if total else None,
        "expected_share": e_h / (e_h + e_t) if e_h + e_t > 0 else None,
        "chi_square": None,
        "p_value": None,
        "alpha": SRM_ALPHA,
        "min_expected": SRM_MIN_EXPECTED,
        "tested": False,
        "mismatch": False,
    }
    if e_b >= SRM_MIN_EXPECTED:
        observed, expected = (n_t, n_h, n_b), (e_t, e_h, e_b)
    else:
        scale = total / (e_h + e_t) if e_h + e_t > 0 else 0.0
        observed, expected = (n_t, n_h), (e_t * scale, e_h * scale)
    if e_h > 0 and total and min(expected) >= SRM_MIN_EXPECTED:
        stat, p = chi_square_gof(observed, expected)
        out.update(chi_square=stat, p_value=p, tested=True, mismatch=bool(p < SRM_ALPHA))
    return out


def _srm_message(srm: Mapping[str, Any], source: str, unexpected_both: bool) -> str:
    """The check in words, ending with where the expected split came from (``source``)."""
    n_h, n_t, n_b = srm["holdout_customers"], srm["treated_customers"], srm["both_arms_customers"]
    total = n_h + n_t
    mixed = (
        f" {n_b} customers were seen in both arms: the share or the experiment (salt) "
        "changed during the period, or the arm is logged wrongly."
        if unexpected_both
        else ""
    )
    expected = srm["expected_share"]
    if expected == 0.0:
        return f"no holdout in force (share 0): nothing to test.{mixed} {source}".strip()
    if not srm["tested"]:
        return (
            f"too few customers for the test ({total}: it needs at least "
            f"{SRM_MIN_EXPECTED:g} expected in each arm).{mixed} {source}"
        ).strip()
    p = srm["p_value"]
    observed = (
        f"{n_h} of {total} customers in the holdout ({n_h / total:.1%}, expected "
        f"{expected:.1%}), p = {p:.2g}"
    )
    if p < SRM_ALPHA:
        return (
            f"sample ratio mismatch: {observed}. The assignment or the logging is broken "
            "(a desk dropping holdout decisions, bots, VEA_HOLDOUT_SHARE or VEA_EXPERIMENT "
            "changed in a way the decisions cannot show): the uplift cannot be trusted. "
            f"Check the desks' logging.{mixed} {source}"
        )
    if srm["mismatch"]:
        return f"{observed}, but:{mixed} {source}"
    return f"no sample ratio mismatch: {observed}. {source}"


def holdout_offers(
    offered: np.ndarray, holdout: np.ndarray, customers: np.ndarray
) -> dict[str, Any]:
    """Holdout contacts where the agent made a value offer anyway. The control group is
    meant to get none: each such offer makes the holdout look more like the treated arm
    and shrinks the measured uplift, so it is counted and warned about."""
    contaminated = holdout & (offered == 1)
    contacts, total = int(contaminated.sum()), int(holdout.sum())
    share = contacts / total if total else None
    warning = None
    if contacts:
        warning = (
            f"{contacts} of {total} holdout (control group) contacts ({share:.1%}) received "
            "a value offer although none was suggested: the control group is contaminated "
            "and the uplift understates the effect"
        )
    return {
        "contacts": contacts,
        "holdout_contacts": total,
        "share": share,
        "customers": int(np.unique(customers[contaminated]).size),
        "warning": warning,
    }


def _order(columns: Mapping[str, Sequence[Any]], n: int) -> np.ndarray:
    """Each row's place in time (``occurred_at``; the row order when it is absent)."""
    times = columns.get("occurred_at")
    if times is None:
        return np.arange(n, dtype=np.float64)
    if isinstance(times, np.ndarray) and times.dtype == np.dtype("datetime64[us]"):
        return _posix(times)
    return np.array([np.inf if t is None else _timestamp(t) for t in times], dtype=np.float64)


def _posix(times: np.ndarray) -> np.ndarray:
    """Naive UTC ``datetime64[us]`` times as ``_timestamp`` reads each (inf where NaT):
    whole microseconds over 10**6, the one rounding a datetime's ``timestamp()`` makes
    (the integers are exact in a float), without a datetime per row."""
    seconds = times.view(np.int64).astype(np.float64) / 1e6
    seconds[np.isnat(times)] = np.inf
    return seconds


def _timestamp(moment: Any) -> float:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _declared_note(
    declared_at: str | None, pre_declared: bool, start: str | None, first: float
) -> str:
    if pre_declared:
        return "measures fixed before the period began"
    if declared_at and not start and not math.isfinite(first):
        # Nothing to compare the declaration with: an open period without decisions.
        return "measures declared; the period has no decisions yet"
    return "no measures were declared before the period began: treat as exploratory"


def _pre_declared(declared_at: str | None, start: str | None, first: float) -> bool:
    """Declared measures count as pre-declared when fixed no later than the period start
    (without one: the period's first decision, ``first`` as a POSIX time). Compared as
    instants: a time with an offset is converted, a naive one or a bare date is UTC."""
    if not declared_at:
        return False
    begins = _timestamp(start) if start else first
    return math.isfinite(begins) and _timestamp(declared_at) <= begins


# --------------------------------------------------------------------- shadow
SHADOW_DESCRIPTION = (
    "Champion against the shadow challenger on this period's treated decisions (the "
    "holdout gets none whatever the policy) that the shadow also decided and whose reward "
    "is known: doubly robust value of each policy (logged "
    "propensities; the direct-method term is the champion's stored expected value of each "
    "activity for the contact), their paired difference with a 95% t interval clustered by "
    "customer, and whether the shadow would pass the promotion gate (lower bound above "
    "zero). Values are net, in the economics' money units: reward x value_of_success minus "
    "the served activity's extra handle-time cost. A live glance: `vea evaluate --shadow` "
    "is the thorough offline comparison (cross-fitted reward model, customer bootstrap, "
    "effective-sample-size check)."
)


def _interval(x: np.ndarray, clusters: np.ndarray) -> dict[str, Any]:
    """Mean with a 95% t interval, cluster-robust (G - 1 degrees of freedom)."""
    out: dict[str, Any] = {"value": float(x.mean()) if x.size else None}
    out.update(ci_low=None, ci_high=None)
    if x.size < 2:
        return out
    var, g = _var_of_mean(x, clusters)
    if g < 2 or not math.isfinite(var):
        return out
    half = float(stdtrit(g - 1, 0.975)) * math.sqrt(var)
    out.update(ci_low=out["value"] - half, ci_high=out["value"] + half)
    return out


def dr_terms(
    rewards: np.ndarray,
    logged: np.ndarray,
    propensity: np.ndarray,
    target: np.ndarray,
    q: np.ndarray,
) -> np.ndarray:
    """Per-contact doubly robust value of a deterministic policy choosing ``target``:
    ``q(x, target) + 1[logged == target] / propensity * (reward - q(x, logged))``."""
    rows = np.arange(len(rewards))
    hit = (logged == target).astype(np.float64)
    return q[rows, target] + hit / propensity * (rewards - q[rows, logged])


def shadow_comparison(
    *,
    rewards: np.ndarray,
    logged: np.ndarray,
    propensity: np.ndarray,
    champion: np.ndarray,
    shadow: np.ndarray,
    q: np.ndarray,
    supported: np.ndarray,
    customers: np.ndarray,
) -> dict[str, Any]:
    """Champion vs shadow on the same contacts (action codes in ``ACTIONS`` order).

    ``rewards``: net reward of each contact; ``q``: (n, K) direct-method values (NaN where
    unknown, taken as 0); ``supported``: (n, K) whether logging could serve each action.
    """
    q = np.nan_to_num(np.asarray(q, dtype=np.float64), nan=0.0)
    champ = dr_terms(rewards, logged, propensity, champion, q)
    shad = dr_terms(rewards, logged, propensity, shadow, q)
    rows = np.arange(len(rewards))
    unsupported = float(np.mean(~supported[rows, shadow])) if len(rewards) else 0.0
    gain = _interval(shad - champ, customers)
    passes = gain["ci_low"] is not None and gain["ci_low"] > 0
    if gain["ci_low"] is None:
        verdict = "too few contacts or customers for an interval"
    elif unsupported > MAX_UNSUPPORTED:
        verdict = (
            f"cannot judge: for {unsupported:.0%} of the contacts the shadow chooses an "
            "activity the logging policy could not serve there; the comparison rests on "
            "the champion's guesses"
        )
    elif passes:
        verdict = "would pass the gate: the 95% interval of the improvement is above zero"
    elif gain["ci_high"] < 0:
        verdict = "would be refused: the shadow is worse (interval below zero)"
    else:
        verdict = "would be refused: the interval of the improvement includes zero"
    return {
        "rows": int(len(rewards)),
        "customers": int(len(np.unique(customers))),
        "champion_value": _interval(champ, customers),
        "shadow_value": _interval(shad, customers),
        "improvement": gain,
        "agreement": float(np.mean(champion == shadow)) if len(rewards) else None,
        "unsupported": unsupported,
        "would_pass_gate": bool(passes and unsupported <= MAX_UNSUPPORTED),
        "verdict": verdict,
    }


def shadow_section(
    columns: Mapping[str, Sequence[Any]],
    reward: np.ndarray,
    shadow: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The report's shadow section, one comparison per shadow version.

    ``shadow`` holds, aligned with ``columns``: ``q`` (n, K) the champion's expected value
    of every action (NaN without a shadow or unknown), ``supported`` (n, K) bool,
    ``value_of_success`` (n,) and ``costs`` (n, K) of the economics of each decision's
    model. Rows used: treated (not holdout) contacts where a shadow decided, the
    champion's own choice is known and the reward is known.
    """
    out: dict[str, Any] = {
        "description": SHADOW_DESCRIPTION,
        "estimator": "dr",
        "measures": MEASURES,
        "comparisons": [],
    }
    n = len(reward)
    if shadow is None or n == 0:
        return out
    # Only the rows a shadow decided (a tenth or so) are worked: the same values in the
    # same order as picking them from every row, without a pass over each row per column.
    shadowed = np.flatnonzero(
        [v is not None for v in _plain(columns.get("shadow_version", [None] * n))]
    )
    if not shadowed.size:
        return out

    def picked(name: str, default: Any = None) -> list[Any]:
        values = columns.get(name)
        if values is None:
            return [default] * shadowed.size
        values = _plain(values)
        return [values[i] for i in shadowed.tolist()]

    versions = [str(v) for v in picked("shadow_version")]
    best = np.array([CODES.get(str(v), -1) for v in picked("best_activity")], dtype=int)
    chosen = np.array([CODES.get(str(v), -1) for v in picked("shadow_activity")], dtype=int)
    logged = np.array([CODES.get(str(v), -1) for v in picked("activity")], dtype=int)
    propensity = _num(columns.get("propensity"), n)[shadowed]
    arms = [str(v) for v in picked("experiment_arm", "treatment")]
    rewards = reward[shadowed]
    usable = (
        # A holdout contact gets `none` whatever either policy chooses: compared there, a
        # choice reads as unsupported (a 10% holdout alone passed the 5% a verdict
        # allows) and is valued by the champion's guesses. As `vea evaluate --shadow`.
        np.array([a != "holdout" for a in arms], dtype=bool)
        & (best >= 0)
        & (chosen >= 0)
        & (logged >= 0)
        & np.isfinite(rewards)
        & (propensity > 0)
    )
    if "customer_id" in columns:
        customers = np.array([str(v) for v in picked("customer_id")])
    else:
        customers = np.array([str(i) for i in shadowed.tolist()])
    model_versions = [str(v) for v in picked("model_version")]
    value_of_success = np.asarray(shadow["value_of_success"], dtype=np.float64)[shadowed]
    costs = np.asarray(shadow["costs"], dtype=np.float64)[shadowed]
    net = rewards * value_of_success - costs[np.arange(shadowed.size), np.maximum(logged, 0)]
    q = np.asarray(shadow["q"], dtype=np.float64)[shadowed]
    supported = np.asarray(shadow["supported"], dtype=bool)[shadowed]
    for version in sorted({v for v, ok in zip(versions, usable, strict=True) if ok}):
        rows = usable & np.array([v == version for v in versions], dtype=bool)
        entry = shadow_comparison(
            rewards=net[rows],
            logged=logged[rows],
            propensity=propensity[rows],
            champion=best[rows],
            shadow=chosen[rows],
            q=q[rows],
            supported=supported[rows],
            customers=customers[rows],
        )
        champions = sorted({m for m, r in zip(model_versions, rows, strict=True) if r})
        out["comparisons"].append(
            {"shadow_version": version, "champion_versions": champions, **entry}
        )
    out["comparisons"].sort(key=lambda c: -c["rows"])
    return out
