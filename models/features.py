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

from models.schema import normal_category


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
            name: _with_normal_spellings({value: float(i) for i, value in enumerate(vocab)})
            for name, vocab in self.vocabulary_.items()
        }
        # (name, codes) in column order: one decision then needs no lookup by name.
        self._categorical_codes = [(name, self._codes[name]) for name in self.categorical]

    def transform(self, frame: Any) -> np.ndarray:
        """Encode a DataFrame; columns it lacks are all-missing."""
        import pandas as pd

        out = np.full((len(frame), len(self.feature_names)), np.nan, dtype=np.float64)
        for j, name in enumerate(self.categorical):
            if name in frame:
                values = frame[name].astype("string")
                # -1 for a missing or unseen value (pandas deprecates building a
                # Categorical from values outside its categories).
                codes = pd.Index(self.vocabulary_[name]).get_indexer(values)
                out[:, j] = np.where(codes < 0, np.nan, codes)
        offset = len(self.categorical)
        for j, name in enumerate(self.numeric):
            if name in frame:
                out[:, offset + j] = pd.to_numeric(frame[name], errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
        return out

    def encode_row(self, values: Mapping[str, Any]) -> np.ndarray:
        """Encode one mapping into a (1, n_features) row."""
        return np.array([self.encode_values(values)], dtype=np.float64)

    def encode_values(self, values: Mapping[str, Any]) -> list[float]:
        """One mapping as a plain list of floats in column order: the serving fast path
        (filling a Python list and handing it to numpy once beats item-by-item stores)."""
        nan = math.nan
        out: list[float] = []
        for name, codes in self._categorical_codes:
            value = values.get(name)
            out.append(nan if value is None else codes.get(str(value), nan))
        for name in self.numeric:
            value = values.get(name)
            if value is None:
                out.append(nan)
                continue
            try:
                out.append(float(value))
            except (TypeError, ValueError):
                out.append(nan)
        return out

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


def _with_normal_spellings(codes: dict[str, float]) -> dict[str, float]:
    """``codes`` where each value also answers to its normal spelling (``normal_category``),
    unless that is a value of its own or shared by two values: the API loads categories in
    that spelling, and a model that learned "Premium" from a CRM's log must still know a
    decision's "premium"."""
    aliases: dict[str, list[float]] = {}
    for value, code in codes.items():
        normal = normal_category(value)
        if normal != value and normal not in codes:
            aliases.setdefault(normal, []).append(code)
    return codes | {normal: found[0] for normal, found in aliases.items() if len(found) == 1}
