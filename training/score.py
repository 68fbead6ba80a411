"""Batch scoring: every row of a log gets openness, each action's probability and a choice.

Vectorised over chunks (pandas and LightGBM on whole matrices), for offline analysis
and campaign planning; the online path is ``models.decision``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.activities import ACTIONS, VALUE_ACTIVITIES
from models.bundle import ModelBundle
from models.policy import action_names, choose_actions, expected_values

CHUNK_ROWS = 250_000


def score_arrays(bundle: ModelBundle, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Openness (n,) and success probability per action (n, 6), or None without a ranker."""
    x = bundle.encoder.transform(frame)
    openness = bundle.openness.predict_proba(x)
    success = bundle.ranker.predict_proba(x) if bundle.ranker is not None else None
    return openness, success


def score_frame(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """One output row per input row, in input order."""
    parts = []
    for start in range(0, len(frame), CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS]
        openness, success = score_arrays(bundle, chunk)
        if "interaction_id" in chunk:
            ids = chunk["interaction_id"].astype("string").to_numpy()
        else:
            ids = np.arange(start + 1, start + len(chunk) + 1)
        out = {"interaction_id": ids, "openness": openness}
        for i, action in enumerate(ACTIONS):
            if action in VALUE_ACTIVITIES or success is not None:
                out[f"p_{action}"] = success[:, i] if success is not None else np.nan
        if success is not None:
            values = expected_values(success, bundle.economics)
            chosen = choose_actions(values)
            out["suggested_activity"] = action_names(chosen)
            out["expected_value"] = np.take_along_axis(
                np.nan_to_num(values, nan=0.0), chosen[:, None], axis=1
            )[:, 0]
        else:
            out["suggested_activity"] = pd.array([None] * len(chunk), dtype="string")
        parts.append(pd.DataFrame(out))
    return pd.concat(parts, ignore_index=True)
