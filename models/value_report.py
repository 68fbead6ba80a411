"""The value report: does value enhancement pay? Pure computation on plain columns.

Input: one entry per decision (equal-length sequences by column name: the columns of the
service's export), output: plain dicts the service serializes. Missing values are None or
NaN and are left out of each mean separately (a survey not answered does not erase the
handle time of the same contact).

- **Measures by group**: VES (both items and their mean), success rate, acceptance (among
  offered attempts), handle time, CSAT and 60-day retention by activity, segment, issue
  type, channel, pool and agent.
- **Uplift** of the treated arm over the randomized holdout for success, retention and
  VES: difference of means with a 95% interval, cluster-robust by customer (arms are
  assigned by a hash of the customer id, so the difference is causal, and a customer's
  repeated contacts are not independent observations), on a Student t with
  Welch-Satterthwaite degrees of freedom counted in customers: the normal quantile covers
  only ~89% with 5 customers per arm, the t ~94% (and the two agree from a few dozen).
- **ROI**: per contact, ``value_of_retention * retained - cost_per_second * handle_time``
  compared between the arms (with its interval), and scaled by the treated contacts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import stdtrit

GROUPS = ("activity", "segment", "issue_type", "channel", "pool_id", "agent_id")
UPLIFT_MEASURES = ("ve_success", "retained_60d", "ves")
UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class ValueSettings:
    value_of_retention: float = 200.0
    cost_per_second: float = 0.02
    declared_measures: tuple[str, ...] = ()
    declared_at: str | None = None  # ISO date/time the measures were fixed


def _num(values: Sequence[Any] | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def measures(cols: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, Any]:
    """The report's measures over the selected rows."""
    offered = cols["offered"][rows]
    accepted = cols["accepted"][rows]
    return {
        "n": int(rows.sum()),
        "ves_confidence": _mean(cols["ves_confidence"][rows]),
        "ves_ability": _mean(cols["ves_ability"][rows]),
        "ves": _mean(cols["ves"][rows]),
        "success_rate": _mean(cols["ve_success"][rows]),
        "offered_rate": _mean(offered),
        "acceptance": _mean(np.where(offered == 1, accepted, np.nan)),
        "handle_time_s": _mean(cols["handle_time_s"][rows]),
        "csat": _mean(cols["csat"][rows]),
        "retained_60d": _mean(cols["retained_60d"][rows]),
    }


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
) -> dict[str, Any]:
    """Mean(treated) - mean(control) with a 95% Welch t interval (cluster-robust when
    cluster ids, e.g. customers, are given); None values when either arm has fewer than two
    observations (or customers)."""
    keep_t, keep_c = np.isfinite(treated), np.isfinite(control)
    t, c = treated[keep_t], control[keep_c]
    ct = None if treated_clusters is None else np.asarray(treated_clusters)[keep_t]
    cc = None if control_clusters is None else np.asarray(control_clusters)[keep_c]
    out: dict[str, Any] = {
        "treated": _mean(t),
        "holdout": _mean(c),
        "n_treated": int(t.size),
        "n_holdout": int(c.size),
        "value": None,
        "ci_low": None,
        "ci_high": None,
    }
    if t.size < 2 or c.size < 2:
        return out
    diff = float(t.mean() - c.mean())
    (v_t, g_t), (v_c, g_c) = _var_of_mean(t, ct), _var_of_mean(c, cc)
    se = math.sqrt(v_t + v_c)
    if not math.isfinite(se):
        return out
    half = float(stdtrit(_welch_df(v_t, g_t, v_c, g_c), 0.975)) * se
    out.update(value=diff, ci_low=diff - half, ci_high=diff + half)
    return out


def value_report(
    columns: Mapping[str, Sequence[Any]],
    settings: ValueSettings,
    period: tuple[str | None, str | None] = (None, None),
) -> dict[str, Any]:
    """The whole report from the export's columns (decisions with and without outcomes)."""
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
            "retained_60d",
        )
    }
    # VES: the mean of its two items (1-7), where both were answered.
    cols["ves"] = (cols["ves_confidence"] + cols["ves_ability"]) / 2.0
    has_outcome = np.array([bool(v) for v in columns.get("has_outcome", [True] * n)], dtype=bool)
    arm = np.array([str(v) for v in columns.get("experiment_arm", ["treatment"] * n)])
    everything = has_outcome
    by: dict[str, list[dict[str, Any]]] = {}
    for group in (*GROUPS, "experiment_arm"):
        labels = np.array(
            [UNKNOWN if v is None or v != v else str(v) for v in columns.get(group, [None] * n)]
        )
        rows_of = []
        for label in sorted(set(labels[everything].tolist())):
            rows = everything & (labels == label)
            rows_of.append({"group": label, **measures(cols, rows)})
        by[group] = sorted(rows_of, key=lambda item: -item["n"])
    treated, holdout = everything & (arm == "treatment"), everything & (arm == "holdout")
    customers = np.array([str(v) for v in columns.get("customer_id", range(n))])
    ct, cc = customers[treated], customers[holdout]
    declared = set(settings.declared_measures)
    pre_declared = _pre_declared(settings.declared_at, period[0])
    uplift = {}
    for name in UPLIFT_MEASURES:
        entry = difference(cols[name][treated], cols[name][holdout], ct, cc)
        entry["declared"] = name in declared
        entry["pre_declared"] = name in declared and pre_declared
        uplift[name] = entry
    per_contact = (
        settings.value_of_retention * cols["retained_60d"]
        - settings.cost_per_second * cols["handle_time_s"]
    )
    roi = difference(per_contact[treated], per_contact[holdout], ct, cc)
    roi.update(
        value_of_retention=settings.value_of_retention,
        cost_per_second=settings.cost_per_second,
        treated_contacts=int(treated.sum()),
        total=None if roi["value"] is None else roi["value"] * int(treated.sum()),
        handle_time=difference(
            cols["handle_time_s"][treated], cols["handle_time_s"][holdout], ct, cc
        ),
    )
    return {
        "period": {"from": period[0], "to": period[1]},
        "decisions": n,
        "with_outcome": int(has_outcome.sum()),
        "pending": int(n - has_outcome.sum()),
        "overall": measures(cols, everything),
        "by": by,
        "uplift": uplift,
        "roi": roi,
        "success_measures": {
            "declared": sorted(declared),
            "declared_at": settings.declared_at,
            "pre_declared": pre_declared,
            "note": (
                "measures fixed before the period began"
                if pre_declared
                else "no measures were declared before the period began: treat as exploratory"
            ),
        },
    }


def _pre_declared(declared_at: str | None, start: str | None) -> bool:
    """Declared measures count as pre-declared when fixed no later than the period start."""
    if not declared_at or not start:
        return False
    return _iso_key(declared_at) <= _iso_key(start)


def _iso_key(text: str) -> str:
    # ISO-8601 strings in UTC compare as text; a bare date means its midnight.
    text = text.replace(" ", "T").removesuffix("Z").split("+")[0]
    return text if "T" in text else f"{text}T00:00:00"
