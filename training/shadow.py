"""Champion against a shadow challenger on the live log (``vea evaluate --shadow``).

While a shadow runs (``vea models shadow VERSION``), every stored decision carries the
champion's own first choice (``best_activity``, before exploration and the holdout) and
the shadow's choice (``shadow_activity``) for the same contact. Both are deterministic
policies over the logged contexts, so the same doubly robust comparison as the
promotion gate applies: the reward model is cross-fitted over customer folds, the
difference is paired on the same contacts, and the bootstrap resamples customers. The
verdict says whether the shadow would pass the gate (interval above zero and enough
effective rows), so a promotion can be decided before the shadow ever serves.

The comparison is on a named reward (``models.schema.Reward``; the CLI defaults to the
champion's own), which should be the one the gate will use: a verdict on another reward
answers a question the gate never asks. Rows whose reward is still unknown are left out
and counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.activities import ACTIONS
from models.economics import Economics
from models.schema import Reward
from training.fit import apply_reward
from training.loading import DataError
from training.ope import MAX_UNSUPPORTED
from training.retrain import (
    GATE_FOLDS,
    MEASURES,
    MIN_ESS,
    compare_greedy,
    customer_folds,
    customers_of,
    gate_refusal,
    numbered,
    policy_rows,
    refuse_overflowing,
)

CODES = {name: code for code, name in enumerate(ACTIONS)}


def _codes(frame: pd.DataFrame, column: str) -> np.ndarray:
    unknown = sorted(set(frame[column].dropna()) - set(CODES))
    if unknown:
        raise DataError(f"column {column!r}: unknown activities {unknown}")
    return frame[column].map(CODES).to_numpy(dtype=np.int64)


def shadow_rows(frame: pd.DataFrame, version: str | None = None) -> pd.DataFrame:
    """The labelled rows a shadow decided on (of ``version``, or the newest shadow)."""
    for column in ("best_activity", "shadow_activity", "shadow_version"):
        if column not in frame:
            raise DataError(f"no {column!r} column: export the service's log with `vea export`")
    rows = policy_rows(frame)
    rows = rows[rows["shadow_activity"].notna() & rows["best_activity"].notna()]
    if version is None and len(rows):
        newest = rows.sort_values("occurred_at")["shadow_version"].iloc[-1]
        version = str(newest)
    rows = rows[rows["shadow_version"] == version]
    return rows.reset_index(drop=True)


def compare_shadow(
    frame: pd.DataFrame,
    *,
    version: str | None = None,
    economics: Economics | None = None,
    folds: int = GATE_FOLDS,
    seed: int = 0,
    n_boot: int = 500,
    num_threads: int = 0,
    min_ess: float = MIN_ESS,
    reward: Reward | None = None,
) -> dict[str, Any]:
    """DR values of champion and shadow on the contacts both decided, their paired
    difference with a 95% interval, and whether the shadow would pass the gate, all on
    ``reward`` (default ``ve_success``; rows where it is unknown are left out)."""
    economics = economics or Economics()
    reward = reward or Reward()
    rows = shadow_rows(numbered(frame), version)
    if rows.empty:
        raise DataError("no labelled decisions with a shadow decision in this log")
    version = str(rows["shadow_version"].iloc[0])
    try:
        rows, left_out = apply_reward(rows, reward)
    except ValueError as exc:  # a reward part the log has no column for
        raise DataError(str(exc)) from exc
    if rows.empty:
        raise DataError(
            f"reward {reward.label}: no shadow decision of {version} has a known reward "
            f"({left_out} rows left out: retention window still open, or no answer)"
        )
    rows = refuse_overflowing(rows)
    fold_of = customer_folds(rows, folds, seed)
    if len(np.unique(fold_of)) < folds:
        raise DataError("too few customers with a shadow decision to cross-fit")
    champion, shadow = _codes(rows, "best_activity"), _codes(rows, "shadow_activity")
    result = compare_greedy(
        rows,
        fold_of,
        folds,
        {"champion": champion, "shadow": shadow},
        economics,
        seed=seed,
        num_threads=num_threads,
        n_boot=n_boot,
    )
    improvement, health = result.improvement, result.diagnostics
    values = {name: estimate.to_dict() for name, estimate in result.values.items()}
    refusal = gate_refusal(improvement, health, min_ess)
    unsupported = health["unsupported_mass"]
    # Past the share the gate tolerates the comparison is extrapolation, not evidence:
    # no verdict at all, whichever side of zero the interval lies.
    if unsupported > MAX_UNSUPPORTED:
        verdict = (
            f"cannot judge: for {unsupported:.0%} of the contacts the shadow chooses an "
            "activity the log never tried there (explore more, or the champion never "
            "learned it); the comparison would rest on the reward model's guesses"
        )
    elif refusal == "ess":
        verdict = (
            f"would be refused: effective sample size {health['ess']:.0f} < {min_ess:.0f} "
            "(the log barely covers the shadow's choices)"
        )
    elif refusal is None:
        verdict = "would pass the gate: the 95% interval of the DR improvement is above zero"
    elif improvement.ci_high < 0:
        verdict = "would be refused: the shadow is worse (interval below zero)"
    else:
        verdict = "would be refused: the interval of the DR improvement includes zero"
    return {
        "shadow_version": version,
        "champion_versions": sorted(rows["model_version"].astype(str).unique()),
        "rows": int(len(rows)),
        "customers": int(len(np.unique(customers_of(rows)))),
        "estimator": "dr",
        "measures": MEASURES,
        "reward": reward.label,
        "left_out": left_out,
        "champion_value": values["champion"],
        "shadow_value": values["shadow"],
        "improvement": improvement.to_dict(),
        "agreement": float(np.mean(champion == shadow)),
        "diagnostics": health,
        "would_pass_gate": refusal is None,
        "verdict": verdict,
    }
