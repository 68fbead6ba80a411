"""Drift between the data a model was trained on and the traffic it now serves.

- **PSI** (population stability index) per feature: ``sum (live - ref) * ln(live / ref)``
  over the bins of a reference histogram stored in the bundle manifest at training time
  (quantile bins for numbers, category shares for categories, a bin for missing values).
  Categories are counted by ``category_key``, as the model reads them: a log's
  "Premium" and the API's "premium" are one bin, as are a store's 101.0 and 101.
  Rule of thumb: below 0.1 stable, 0.1-0.25 watch, above 0.25 act.
- **Calibration drift**: predicted openness against observed success, by openness band.

Plain data in and out (lists, dicts, numpy), no pandas: the service calls it on stored
features, training on a frame's columns.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from models.schema import category_key

NUMERIC_BINS = 10
MISSING = "__missing__"
OTHER = "__other__"
# Empty bins get this share so the logarithm stays finite (the usual PSI convention).
EPS = 1e-4
WATCH, ACT = 0.1, 0.25


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def reference_histogram(values: Sequence[Any], numeric: bool) -> dict[str, Any]:
    """The training distribution of one feature, small enough for a manifest."""
    n = len(values)
    missing = sum(1 for v in values if _is_missing(v))
    present = [v for v in values if not _is_missing(v)]
    if numeric:
        arr = np.asarray(present, dtype=np.float64)
        edges: list[float] = []
        if arr.size:
            quantiles = np.quantile(arr, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1])
            edges = sorted({round(float(q), 6) for q in quantiles})
        counts = np.bincount(np.searchsorted(edges, arr, side="right"), minlength=len(edges) + 1)
        shares = [float(c) / n for c in counts] if n else []
        return {
            "kind": "numeric",
            "edges": edges,
            "shares": shares,
            "missing": missing / n if n else 0.0,
        }
    counts = _key_counts(present)
    return {
        "kind": "categorical",
        "shares": {k: c / n for k, c in sorted(counts.items())},
        "missing": missing / n if n else 0.0,
    }


def _live_shares(reference: Mapping[str, Any], values: Sequence[Any]) -> tuple[list, list]:
    """(reference shares, live shares) over the same bins, missing values included."""
    n = len(values)
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        # A column of numbers already (NaN missing): counted at once, the same counts.
        known = ~np.isnan(values)
        present, missing = values[known], n - int(known.sum())
    else:
        # ``_is_missing`` inline: a call per value was most of the drift section.
        present = [
            v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))
        ]
        missing = n - len(present)
    if reference["kind"] == "numeric":
        arr = np.asarray(present, dtype=np.float64)
        edges = reference["edges"]
        counts = np.bincount(np.searchsorted(edges, arr, side="right"), minlength=len(edges) + 1)
        ref = [*reference["shares"], reference["missing"]]
        live = [*(c / n for c in counts), missing / n]
        return ref, live
    # By key on both sides: references stored before keys were counted hold "Premium"
    # or "101.0" (their shares add up), live values are the API's "premium" and 101.
    shares: dict[str, float] = {}
    for k, share in reference["shares"].items():
        key = category_key(k)
        shares[key] = shares.get(key, 0.0) + share
    names = list(shares)
    seen = _key_counts(present)
    counts = {k: seen.get(k, 0) for k in names}
    other = len(present) - sum(counts.values())
    ref_other = max(0.0, 1.0 - sum(shares.values()) - reference["missing"])
    ref = [*(shares[k] for k in names), reference["missing"], ref_other]
    live = [*(counts[k] / n for k in names), missing / n, other / n]
    return ref, live


def _key_counts(present: Sequence[Any]) -> dict[str, int]:
    """How many values have each ``category_key``, each distinct value keyed once (by
    type too: True and 1 are equal in a Counter but not one category)."""
    counts: dict[str, int] = {}
    for (_, value), count in Counter(zip(map(type, present), present, strict=True)).items():
        key = category_key(value)
        counts[key] = counts.get(key, 0) + count
    return counts


def psi(reference: Mapping[str, Any], values: Sequence[Any]) -> float | None:
    """PSI of live ``values`` against a ``reference_histogram``; None without live rows."""
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
    """PSI of every referenced feature that has live values."""
    return {name: psi(ref, live.get(name, [])) for name, ref in sorted(references.items())}


def level(value: float | None) -> str:
    if value is None:
        return "no_data"
    return "stable" if value < WATCH else ("watch" if value < ACT else "act")


def calibration_by_band(
    predicted: Iterable[float],
    observed: Iterable[float],
    bands: Sequence[float],
    weights: Iterable[float] | None = None,
) -> list[dict[str, Any]]:
    """Mean predicted openness against the observed success rate in each band, both
    weighted by ``weights`` when given (``n`` counts the rows). Openness predicts the
    success of an activity chosen uniformly (``models.openness``: attempts weighted by
    1 / propensity in training); the served attempts favour the model's best activity,
    so they are weighted the same way to be compared with it."""
    p = np.asarray(list(predicted), dtype=np.float64)
    y = np.asarray(list(observed), dtype=np.float64)
    w = np.ones_like(p) if weights is None else np.asarray(list(weights), dtype=np.float64)
    edges = [0.0, *bands, 1.0 + 1e-9]
    names = ["low", "medium", "high"] if len(bands) == 2 else [str(i) for i in range(len(edges))]
    out = []
    for i in range(len(edges) - 1):
        rows = (p >= edges[i]) & (p < edges[i + 1])
        n = int(rows.sum())
        predicted_mean = float(np.average(p[rows], weights=w[rows])) if n else None
        observed_rate = float(np.average(y[rows], weights=w[rows])) if n else None
        out.append(
            {
                "band": names[i],
                "n": n,
                "predicted": predicted_mean,
                "observed": observed_rate,
                "gap": None if not n else observed_rate - predicted_mean,
            }
        )
    return out
