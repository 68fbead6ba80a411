"""Feature encoding shared by training (whole frames) and serving (one mapping).

Categories become integer codes from a vocabulary fixed at fit time; a value never
seen in training becomes NaN, which LightGBM treats as missing instead of crashing.
Both paths read a value through ``category_code`` (its text as ``category_text`` writes
it, else its normal spelling) and produce the same float64 matrix, so a model scores a
row identically in batch (``vea score``, ``vea evaluate``, the retrain gate) and online.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.schema import category_key, category_text


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
            # ``category_text``: a store id column with one empty cell is floats, and
            # learning "101.0" left every live 101 unknown.
            values = category_texts(frame[name]).dropna().unique() if name in frame else []
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
                # Each distinct value read as serving reads it (a CRM log's "Premium"
                # learned, an export's "premium" scored), once; -1 is a missing value.
                rows, distinct = pd.factorize(frame[name])
                lookup = self._codes[name]
                found = [category_code(lookup, value) for value in distinct]
                out[:, j] = np.array([*found, np.nan], dtype=np.float64)[rows]
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
            # A string learned as it is (the API's categories) is one lookup here; any
            # other value goes the way batch encoding goes.
            code = codes.get(value) if type(value) is str else None
            out.append(code if code is not None else category_code(codes, value))
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


def category_texts(values: Any) -> Any:
    """A pandas Series of category values as a string Series of their ``category_text``
    (missing values stay missing), each distinct value converted once."""
    import pandas as pd

    rows, distinct = pd.factorize(values)
    texts = np.array([*(category_text(v) for v in distinct), None], dtype=object)
    return pd.Series(texts[rows], index=values.index, name=values.name, dtype="string")


def category_code(codes: Mapping[str, float], value: Any) -> float:
    """The code of one category value in ``codes`` (an encoder's lookup, normal spellings
    included), NaN when missing or unknown: its ``category_text`` as learned, else the
    value its ``category_key`` answers to. Serving and batch encoding both read values so."""
    if value is None or value != value:  # None or NaN: missing
        return math.nan
    text = category_text(value)
    code = codes.get(text)
    return code if code is not None else codes.get(category_key(text), math.nan)


def _with_normal_spellings(codes: dict[str, float]) -> dict[str, float]:
    """``codes`` where each value also answers to its normal spelling (``category_key``),
    unless that is a value of its own or shared by two values: the API loads categories in
    that spelling, and a model that learned "Premium" from a CRM's log must still know a
    decision's "premium" (and one that learned "101.0" a decision's 101)."""
    aliases: dict[str, list[float]] = {}
    for value, code in codes.items():
        normal = category_key(value)
        if normal != value and normal not in codes:
            aliases.setdefault(normal, []).append(code)
    return codes | {normal: found[0] for normal, found in aliases.items() if len(found) == 1}
