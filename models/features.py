"""Feature encoding shared by training (whole frames) and serving (one mapping).

Categories become integer codes from a vocabulary fixed at fit time; a value never
seen in training becomes NaN, which LightGBM treats as missing instead of crashing.
Both paths produce the same float64 matrix, so a model scores a row identically in
batch and online.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class FeatureEncoder:
    """Maps named context values to a float matrix in a fixed column order."""

    def __init__(self, categorical: Sequence[str] = (), numeric: Sequence[str] = ()) -> None:
        self.categorical = tuple(categorical)
        self.numeric = tuple(numeric)

    @property
    def feature_names(self) -> list[str]:
        return [*self.categorical, *self.numeric]

    def fit(self, frame: Any) -> FeatureEncoder:
        """Learn each categorical column's vocabulary from a pandas DataFrame."""
        self.vocabulary_: dict[str, list[str]] = {}
        for name in self.categorical:
            values = frame[name].dropna().astype(str).unique() if name in frame else []
            self.vocabulary_[name] = sorted(values)
        self._build_lookup()
        return self

    def _build_lookup(self) -> None:
        self._codes = {
            name: {value: float(i) for i, value in enumerate(vocab)}
            for name, vocab in self.vocabulary_.items()
        }

    def transform(self, frame: Any) -> np.ndarray:
        """Encode a DataFrame; columns it lacks are all-missing."""
        import pandas as pd

        out = np.full((len(frame), len(self.feature_names)), np.nan, dtype=np.float64)
        for j, name in enumerate(self.categorical):
            if name in frame:
                values = frame[name].astype("string")
                codes = pd.Categorical(values, categories=self.vocabulary_[name]).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
        offset = len(self.categorical)
        for j, name in enumerate(self.numeric):
            if name in frame:
                out[:, offset + j] = pd.to_numeric(frame[name], errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
        return out

    def encode_row(self, values: Mapping[str, Any]) -> np.ndarray:
        """Encode one mapping into a (1, n_features) row: the serving fast path."""
        row = np.empty((1, len(self.categorical) + len(self.numeric)), dtype=np.float64)
        for j, name in enumerate(self.categorical):
            value = values.get(name)
            row[0, j] = math.nan if value is None else self._codes[name].get(str(value), math.nan)
        offset = len(self.categorical)
        for j, name in enumerate(self.numeric):
            value = values.get(name)
            try:
                row[0, offset + j] = math.nan if value is None else float(value)
            except (TypeError, ValueError):
                row[0, offset + j] = math.nan
        return row

    def to_dict(self) -> dict[str, Any]:
        return {
            "categorical": list(self.categorical),
            "numeric": list(self.numeric),
            "vocabulary": self.vocabulary_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        encoder = cls(data["categorical"], data["numeric"])
        encoder.vocabulary_ = {k: list(v) for k, v in data["vocabulary"].items()}
        encoder._build_lookup()
        return encoder
