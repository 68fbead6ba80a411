"""Why one activity rather than the others: reasons cheap enough for every decision.

Exact per-row contributions (TreeSHAP) cost milliseconds for a contact, far beyond the
serving budget. At training time we compute them on a sample and keep, for every
activity, feature and feature bin, the mean contribution *relative to the mean over
the activities*: what this value of this feature does for this activity compared with
the alternatives. Serving looks the contact's bins up, which takes microseconds.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

import numpy as np

from models.activities import ACTIONS, VALUE_ACTIVITIES

MAX_BINS = 8
VALUE_CODES = [ACTIONS.index(a) for a in VALUE_ACTIVITIES]


class ReasonTable:
    """Per feature: bin edges (numeric) or category codes, and a (actions, bins) score table."""

    def __init__(
        self, n_categorical: int, edges: list[list[float]], scores: list[np.ndarray]
    ) -> None:
        self.n_categorical = n_categorical
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        self.scores = [np.asarray(s, dtype=np.float64) for s in scores]
        # Plain-list copies for one row at a time, where numpy's per-call overhead loses:
        # per feature, per bin, the score of each action; and the numeric bin edges.
        self.by_bin_ = [table.T.tolist() for table in self.scores]
        self.cuts_ = [cuts.tolist() for cuts in self.edges]

    @classmethod
    def fit(
        cls, x: np.ndarray, contributions: np.ndarray, n_categorical: int, vocab_sizes: list[int]
    ) -> ReasonTable:
        """`contributions`: (n, actions, features) from ``action_contributions``."""
        value = contributions[:, VALUE_CODES, :]
        with np.errstate(invalid="ignore"):
            relative = contributions - np.nanmean(value, axis=1, keepdims=True)
        relative = np.nan_to_num(relative, nan=0.0)
        edges: list[list[float]] = []
        scores: list[np.ndarray] = []
        for j in range(x.shape[1]):
            column = x[:, j]
            if j < n_categorical:
                cuts: list[float] = []
                n_bins = vocab_sizes[j]
            else:
                present = column[~np.isnan(column)]
                quantiles = (
                    np.quantile(present, np.linspace(0, 1, MAX_BINS + 1)[1:-1])
                    if len(present)
                    else []
                )
                cuts = sorted(set(np.round(quantiles, 6).tolist()))
                n_bins = len(cuts) + 1
            table = np.zeros((len(ACTIONS), n_bins + 1))  # the last bin: value missing
            bins = cls._bins(column, j, n_categorical, np.asarray(cuts), n_bins)
            for b in range(n_bins + 1):
                rows = bins == b
                if rows.any():
                    table[:, b] = relative[rows, :, j].mean(axis=0)
            edges.append(cuts)
            scores.append(table)
        return cls(n_categorical, edges, scores)

    @staticmethod
    def _bins(
        column: np.ndarray, j: int, n_categorical: int, cuts: np.ndarray, n_bins: int
    ) -> np.ndarray:
        missing = np.isnan(column)
        if j < n_categorical:
            bins = np.where(missing, n_bins, np.nan_to_num(column, nan=0.0)).astype(np.int64)
        else:
            bins = np.searchsorted(cuts, np.nan_to_num(column, nan=0.0), side="right")
            bins = np.where(missing, n_bins, bins)
        return bins

    def row_scores(self, row: np.ndarray) -> list[list[float]]:
        """Per feature, the relative contribution of this row's value to each action."""
        return self.value_scores(row.tolist())

    def value_scores(self, values: list[float]) -> list[list[float]]:
        """``row_scores`` for one row given as a plain list (``FeatureEncoder.encode_values``).

        Plain Python lists and ``bisect``: on one row this beats numpy's per-call overhead.
        """
        n_categorical = self.n_categorical
        out = []
        for j, (value, by_bin) in enumerate(zip(values, self.by_bin_, strict=True)):
            if value != value:  # NaN: the missing bin is last
                out.append(by_bin[-1])
            elif j < n_categorical:
                out.append(by_bin[int(value)])
            else:
                out.append(by_bin[bisect_right(self.cuts_[j], value)])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_categorical": self.n_categorical,
            "edges": [e.tolist() for e in self.edges],
            "scores": [np.round(s, 6).tolist() for s in self.scores],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReasonTable:
        return cls(data["n_categorical"], data["edges"], [np.asarray(s) for s in data["scores"]])
