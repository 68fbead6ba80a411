"""The decision policy: expected value of every action and the choice among them."""

from __future__ import annotations

import numpy as np

from models.activities import ACTION_INDEX, ACTIONS, NONE
from models.economics import Economics

NONE_CODE = ACTION_INDEX[NONE]


def expected_values(success: np.ndarray, economics: Economics) -> np.ndarray:
    """``p * value_of_success - extra handle-time cost`` per action; NaN where p is unknown."""
    costs = np.asarray(economics.action_costs())
    return np.asarray(success, dtype=np.float64) * economics.value_of_success - costs


def choose_actions(values: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Index of the best allowed action per row; `none` when nothing else is allowed or known.

    `none` is always allowed: plain effortless resolution is never refused.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64)).copy()
    values[np.isnan(values)] = -np.inf
    if allowed is not None:
        values[~np.atleast_2d(allowed)] = -np.inf
    # A row whose `none` value is unknown (no control rows in training) scores it at 0:
    # with no evidence of organic success, resolving plainly is worth nothing extra.
    none_col = values[:, NONE_CODE]
    none_col[np.isneginf(none_col)] = 0.0
    return np.argmax(values, axis=1)


def action_names(codes: np.ndarray) -> np.ndarray:
    return np.asarray(ACTIONS, dtype=object)[np.asarray(codes, dtype=np.int64)]
