"""The value report, drift and shadow alignment as they were before the cold dashboard
was made faster (commit 6d1d94f), kept as the reference its figures must equal: every
column a list converted value by value, each group selected by comparing every row with
its label, customers as text. Only the functions that changed are here; the rest is the
current module's (unchanged since).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from models.activities import ACTIONS, NONE
from models.decision import DEFAULT_BANDS
from models.drift import EPS, _is_missing, calibration_by_band, level
from models.openness import MIN_PROPENSITY as OPENNESS_MIN_PROPENSITY
from models.registry import Registry
from models.schema import Reward
from models.value_report import (
    ANSWER_COUNTS,
    ARM_MEASURES,
    BY_NOTE,
    CODES,
    GROUPS,
    MEASURES,
    MIN_CUSTOMERS,
    REWARD_PARTS_READ,
    SHADOW_DESCRIPTION,
    UNKNOWN,
    UPGRADE_REVENUE,
    UPGRADES_WITHOUT_VALUE,
    UPLIFT_MEASURES,
    ValueSettings,
    _answered,
    _declared_note,
    _mean,
    _net_promoter,
    _pre_declared,
    _promoter_points,
    _timestamp,
    difference,
    holdout_offers,
    roi,
    sample_ratio,
    shadow_comparison,
)
from service.config import Settings
from service.export import decision_frame, shadow_inputs, surveys_pending
from service.reports import _columns, _economics_of, _iso, value_settings


def _num(values: Sequence[Any] | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def measures(cols: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, Any]:
    offered = cols["offered"][rows] == 1
    accepted = cols["accepted"][rows]
    suggested = cols["suggested"][rows]
    offered_suggestion = suggested & offered
    answered = offered_suggestion & np.isfinite(accepted)
    n_suggested, n_offered = int(suggested.sum()), int(offered_suggestion.sum())
    n_accepted, n_answered = int((offered_suggestion & (accepted == 1)).sum()), int(answered.sum())
    return {
        "n": int(rows.sum()),
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
        # Added since: the offers with a recorded answer (the base of the acceptance).
        "acceptance_n": n_answered,
    }


def value_report(
    columns: Mapping[str, Sequence[Any]],
    settings: ValueSettings,
    period: tuple[str | None, str | None] = (None, None),
    shadow: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
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
    has_outcome = np.array([bool(v) for v in columns.get("has_outcome", [True] * n)], dtype=bool)
    reward = settings.reward
    parts = {name: _num(columns.get(name), n) for name in REWARD_PARTS_READ}
    cols["reward"] = np.where(has_outcome, reward.values(parts, n), np.nan)
    served = [str(v) if v is not None else NONE for v in columns.get("activity", [NONE] * n)]
    cols["suggested"] = np.array([a != NONE for a in served], dtype=bool)
    arm = np.array([str(v) for v in columns.get("experiment_arm", ["treatment"] * n)])
    everything = has_outcome
    treated, holdout = everything & (arm == "treatment"), everything & (arm == "holdout")
    by: dict[str, list[dict[str, Any]]] = {}
    for group in (*GROUPS, "experiment_arm"):
        # The arms themselves over every contact; every other grouping over the treated.
        among = everything if group == "experiment_arm" else treated
        labels = np.array(
            [UNKNOWN if v is None or v != v else str(v) for v in columns.get(group, [None] * n)]
        )
        rows_of = []
        for label in sorted(set(labels[among].tolist())):
            rows = among & (labels == label)
            rows_of.append({"group": label, **measures(cols, rows)})
        by[group] = sorted(rows_of, key=lambda item: -item["n"])
    customers = np.array([str(v) for v in columns.get("customer_id", range(n))])
    ct, cc = customers[treated], customers[holdout]
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
    money = roi(cols, treated, holdout, customers, order, settings)
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
        "holdout_offers": holdout_offers(cols["offered"], holdout, customers),
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


def _order(columns: Mapping[str, Sequence[Any]], n: int) -> np.ndarray:
    times = columns.get("occurred_at")
    if times is None:
        return np.arange(n, dtype=np.float64)
    return np.array([np.inf if t is None else _timestamp(t) for t in times], dtype=np.float64)


def shadow_section(
    columns: Mapping[str, Sequence[Any]],
    reward: np.ndarray,
    shadow: Mapping[str, Any] | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": SHADOW_DESCRIPTION,
        "estimator": "dr",
        "measures": MEASURES,
        "comparisons": [],
    }
    n = len(reward)
    if shadow is None or n == 0:
        return out
    versions = [None if v is None else str(v) for v in columns.get("shadow_version", [None] * n)]
    best = [CODES.get(str(v), -1) for v in columns.get("best_activity", [None] * n)]
    chosen = [CODES.get(str(v), -1) for v in columns.get("shadow_activity", [None] * n)]
    logged = np.array([CODES.get(str(v), -1) for v in columns.get("activity", [None] * n)])
    propensity = _num(columns.get("propensity"), n)
    best, chosen = np.array(best), np.array(chosen)
    arms = [str(v) for v in columns.get("experiment_arm", ["treatment"] * n)]
    usable = (
        np.array([v is not None for v in versions])
        # A holdout contact gets `none` whatever either policy chooses: compared there, a
        # choice reads as unsupported (a 10% holdout alone passed the 5% a verdict
        # allows) and is valued by the champion's guesses. As `vea evaluate --shadow`.
        & np.array([a != "holdout" for a in arms])
        & (best >= 0)
        & (chosen >= 0)
        & (logged >= 0)
        & np.isfinite(reward)
        & (propensity > 0)
    )
    customers = np.array([str(v) for v in columns.get("customer_id", range(n))])
    model_versions = [str(v) for v in columns.get("model_version", [None] * n)]
    value_of_success = np.asarray(shadow["value_of_success"], dtype=np.float64)
    costs = np.asarray(shadow["costs"], dtype=np.float64)
    net = reward * value_of_success - costs[np.arange(n), np.maximum(logged, 0)]
    q = np.asarray(shadow["q"], dtype=np.float64)
    supported = np.asarray(shadow["supported"], dtype=bool)
    for version in sorted({v for v, ok in zip(versions, usable, strict=True) if ok}):
        rows = usable & np.array([v == version for v in versions])
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


def _live_shares(reference: Mapping[str, Any], values: Sequence[Any]) -> tuple[list, list]:
    n = len(values)
    missing = sum(1 for v in values if _is_missing(v))
    present = [v for v in values if not _is_missing(v)]
    if reference["kind"] == "numeric":
        arr = np.asarray(present, dtype=np.float64)
        edges = reference["edges"]
        counts = np.bincount(np.searchsorted(edges, arr, side="right"), minlength=len(edges) + 1)
        ref = [*reference["shares"], reference["missing"]]
        live = [*(c / n for c in counts), missing / n]
        return ref, live
    names = list(reference["shares"])
    counts = dict.fromkeys(names, 0)
    other = 0
    for v in present:
        key = str(v)
        if key in counts:
            counts[key] += 1
        else:
            other += 1
    ref_other = max(0.0, 1.0 - sum(reference["shares"].values()) - reference["missing"])
    ref = [*(reference["shares"][k] for k in names), reference["missing"], ref_other]
    live = [*(counts[k] / n for k in names), missing / n, other / n]
    return ref, live


def psi(reference: Mapping[str, Any], values: Sequence[Any]) -> float | None:
    if not len(values):
        return None
    ref, live = _live_shares(reference, values)
    total = 0.0
    for r, v in zip(ref, live, strict=True):
        r, v = max(r, EPS), max(v, EPS)
        total += (v - r) * math.log(v / r)
    return float(total)


def feature_psi(
    references: Mapping[str, Mapping[str, Any]], live: Mapping[str, Sequence[Any]]
) -> dict[str, float | None]:
    return {name: psi(ref, live.get(name, [])) for name, ref in sorted(references.items())}


def _shadow(engine, settings: Settings, frame, start, end) -> dict[str, Any] | None:
    if frame.empty or not frame["shadow_activity"].notna().any():
        return None
    extra = shadow_inputs(engine, start, end).set_index("decision_id")
    n, k = len(frame), len(ACTIONS)
    q = np.full((n, k), np.nan)
    supported = np.zeros((n, k), dtype=bool)
    position = {d: i for i, d in enumerate(frame["decision_id"])}
    rows = [position[d] for d in extra.index if d in position]
    known = [d for d in extra.index if d in position]
    if rows:
        q[rows] = extra.loc[known, [f"q_{a}" for a in ACTIONS]].to_numpy(dtype=np.float64)
        supported[rows] = extra.loc[known, [f"can_{a}" for a in ACTIONS]].to_numpy(dtype=bool)
    # Each version's economics once, then spread to its rows: asked per row, the costs
    # took most of a second at 100,000 decisions.
    codes, versions = pd.factorize(frame["model_version"].astype(str))
    economics = _economics_of(settings, set(versions))
    value_of_success = np.array([economics[v].value_of_success for v in versions])
    costs = np.array([economics[v].action_costs() for v in versions]).reshape(len(versions), k)
    return {
        "q": q,
        "supported": supported,
        "value_of_success": value_of_success[codes],
        "costs": costs[codes].reshape(n, k),
    }


def value(
    engine,
    settings: Settings,
    start: datetime | None,
    end: datetime | None,
    reward: Reward | None = None,
    frame: pd.DataFrame | None = None,
) -> dict[str, Any]:
    if frame is None:
        frame = decision_frame(engine, start, end)
    shadow = _shadow(engine, settings, frame, start, end)
    report = value_report(
        _columns(frame),
        value_settings(settings, reward),
        (_iso(start), _iso(end)),
        shadow=shadow,
    )
    # Answers the survey system sent for contacts whose outcome is still missing: not in
    # any figure yet (a contact counts from its outcome), but a manager should see them.
    report["surveys_pending"] = surveys_pending(engine, start, end) if report["pending"] else 0
    return report


def drift(
    engine,
    settings: Settings,
    registry: Registry,
    start: datetime | None,
    end: datetime | None,
    frame: pd.DataFrame | None = None,
) -> dict[str, Any]:
    champion = registry.champion()
    references: dict[str, Any] = {}
    if champion is not None:
        references = registry.load(champion).manifest.get("drift_reference") or {}
    if frame is None:
        frame = decision_frame(engine, start, end)
    live = {name: _columns(frame[[name]])[name] for name in references if name in frame}
    psi = feature_psi(references, live)
    attempts = frame[(frame["activity"] != "none") & frame["ve_success"].notna()]
    # Weighted as the openness model is trained (``training.fit.openness_weights``):
    # openness is the success of an average activity, and an exploring service serves
    # the model's best more often, whose success runs above it. (Without exploration
    # every weight is 1 and the rate is the model's own choice's: see the README.)
    propensity = attempts["propensity"].to_numpy(dtype=float)
    calibration = calibration_by_band(
        attempts["openness"].to_numpy(dtype=float),
        attempts["ve_success"].to_numpy(dtype=float),
        DEFAULT_BANDS,
        weights=1.0 / np.clip(np.nan_to_num(propensity, nan=1.0), OPENNESS_MIN_PROPENSITY, 1.0),
    )
    threshold = settings.drift_psi_threshold
    return {
        "period": {"from": _iso(start), "to": _iso(end)},
        "model_version": champion,
        "has_reference": bool(references),
        "decisions": int(len(frame)),
        "threshold": threshold,
        "features": [
            {
                "feature": name,
                "psi": value,
                "level": level(value),
                "drifted": value is not None and value > threshold,
            }
            for name, value in psi.items()
        ],
        "calibration": calibration,
    }
