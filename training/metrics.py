"""Offline metrics for the openness model (calibration, ranking) and the activity ranker (uplift).

Why these:

- The openness score is shown to agents and multiplied by money in the activity choice, so
  it must be a *calibrated probability*, not only a good ranking: we report Brier score,
  log loss and the expected calibration error (ECE) with its reliability table beside
  ROC AUC and PR AUC.
- ECE uses **equal-frequency** (quantile) bins by default: openness scores crowd into a
  narrow range, and equal-width bins would leave most bins empty and put nearly all rows in
  one or two. Ties are kept in one bin (so a bin edge never splits identical scores),
  which can leave fewer than ``bins`` bins. ``strategy="uniform"`` gives equal-width bins.
- An activity ranker is judged by **uplift**: does targeting the rows it ranks highest
  gain more successes from the activity than targeting at random? ``qini_curve`` answers
  on logged data: treated = rows where the activity was logged, control = rows where
  ``none`` was logged, each weighted by ``1/propensity`` so that both groups stand for the
  whole population despite a non-uniform logging policy.

All functions accept optional non-negative row weights and return plain dicts and lists
(JSON-ready) for the evaluation report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

_EPS = 1e-15


def _arrays(
    y: np.ndarray, p: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError("y and p must have the same length")
    if y.size == 0:
        raise ValueError("no rows")
    if not np.all((y >= 0) & (y <= 1)):
        raise ValueError("y must be 0/1 (or a weighted reward in [0, 1])")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("p must be probabilities in [0, 1]")
    w = _weights(weights, y.shape[0])
    return y, p, w


def _weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape[0] != n:
        raise ValueError("weights must have one value per row")
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return w


def _none_if_nan(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


# --------------------------------------------------------------------------- calibration


def _bin_ids(
    p: np.ndarray, w: np.ndarray, bins: int, strategy: str
) -> tuple[np.ndarray, np.ndarray]:
    """Bin index per row and the bin edges, for equal-frequency or equal-width bins."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, bins + 1)
    elif strategy == "quantile":
        order = np.argsort(p, kind="stable")
        ps, cw = p[order], np.cumsum(w[order])
        targets = cw[-1] * np.arange(1, bins) / bins
        inner = ps[np.minimum(np.searchsorted(cw, targets, side="left"), ps.size - 1)]
        edges = np.unique(np.concatenate([[p.min()], inner, [p.max()]]))
        if edges.size == 1:  # constant predictor: one bin
            edges = np.array([edges[0], edges[0]])
    else:
        raise ValueError("strategy must be 'quantile' or 'uniform'")
    # Right-closed bins except the first: (e0, e1] ... and the first includes e0.
    ids = np.clip(np.searchsorted(edges[1:-1], p, side="left"), 0, edges.size - 2)
    return ids, edges


def calibration_table(
    y: np.ndarray,
    p: np.ndarray,
    bins: int = 10,
    weights: np.ndarray | None = None,
    strategy: str = "quantile",
) -> list[dict[str, float]]:
    """Reliability table: per bin the mean prediction against the observed success rate.

    One dict per non-empty bin: ``bin, lower, upper, count, weight, mean_predicted,
    observed_rate, gap`` (observed - predicted). A calibrated model has gaps near 0.
    """
    y, p, w = _arrays(y, p, weights)
    ids, edges = _bin_ids(p, w, bins, strategy)
    nb = edges.size - 1
    count = np.bincount(ids, minlength=nb)
    wsum = np.bincount(ids, weights=w, minlength=nb)
    psum = np.bincount(ids, weights=w * p, minlength=nb)
    ysum = np.bincount(ids, weights=w * y, minlength=nb)
    table = []
    for b in range(nb):
        if count[b] == 0 or wsum[b] <= 0:
            continue
        mp, obs = psum[b] / wsum[b], ysum[b] / wsum[b]
        table.append(
            {
                "bin": b,
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": int(count[b]),
                "weight": float(wsum[b]),
                "mean_predicted": float(mp),
                "observed_rate": float(obs),
                "gap": float(obs - mp),
            }
        )
    return table


def expected_calibration_error(
    y: np.ndarray,
    p: np.ndarray,
    bins: int = 10,
    weights: np.ndarray | None = None,
    strategy: str = "quantile",
) -> float:
    """Weight-averaged ``|observed - predicted|`` over the bins of ``calibration_table``."""
    return _ece(calibration_table(y, p, bins, weights, strategy))


def _ece(table: list[dict[str, float]]) -> float:
    total = sum(row["weight"] for row in table)
    return float(sum(row["weight"] * abs(row["gap"]) for row in table) / total)


def classification_metrics(
    y: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None, bins: int = 10
) -> dict[str, Any]:
    """Ranking and probability-quality metrics of predicted success probabilities.

    Returns ``n, base_rate, mean_predicted, auc, pr_auc, brier, log_loss, ece,
    ece_uniform, ece_binning ("equal_frequency"), bins, calibration`` (the equal-frequency
    reliability table). ``auc`` and ``pr_auc`` are ``None`` when ``y`` has one class.

    A label between 0 and 1 (a weighted reward) counts as a success with weight ``y``
    and a failure with weight ``1 - y``: the log loss and the calibration are exactly
    that, and the ranking measures split each such row in two. The Brier score is the
    squared error against the label itself.
    """
    y, p, w = _arrays(y, p, weights)
    wsum = w.sum()
    both = 0 < (w * y).sum() < wsum
    pc = np.clip(p, _EPS, 1.0 - _EPS)
    table = calibration_table(y, p, bins, w, "quantile")
    ranked_y, ranked_p, ranked_w = y, p, w
    if not np.all((y == 0) | (y == 1)):
        ranked_y = np.concatenate([np.ones_like(y), np.zeros_like(y)])
        ranked_p = np.concatenate([p, p])
        ranked_w = np.concatenate([w * y, w * (1.0 - y)])
    return {
        "n": int(y.shape[0]),
        "base_rate": float((w * y).sum() / wsum),
        "mean_predicted": float((w * p).sum() / wsum),
        "auc": float(roc_auc_score(ranked_y, ranked_p, sample_weight=ranked_w)) if both else None,
        "pr_auc": (
            float(average_precision_score(ranked_y, ranked_p, sample_weight=ranked_w))
            if both
            else None
        ),
        "brier": float((w * (p - y) ** 2).sum() / wsum),
        "log_loss": float(-(w * (y * np.log(pc) + (1 - y) * np.log1p(-pc))).sum() / wsum),
        "ece": _ece(table),
        "ece_uniform": expected_calibration_error(y, p, bins, w, "uniform"),
        "ece_binning": "equal_frequency",
        "bins": int(bins),
        "calibration": table,
    }


# --------------------------------------------------------------------------- uplift


def _gain_curves(
    y: np.ndarray, treated: np.ndarray, score: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targeted fraction, Qini and uplift curves at every distinct score threshold.

    Rows are taken in decreasing score; rows with equal scores enter together (only the
    last row of each tie group is a point), so the curve does not depend on row order.
    Both curves are divided so that they end at the average treatment effect.
    """
    order = np.argsort(-score, kind="stable")
    s, yt, tt, wt = score[order], y[order], treated[order], w[order]
    last = np.r_[s[1:] != s[:-1], True]
    n_t = np.cumsum(wt * tt)[last]
    n_c = np.cumsum(wt * (1 - tt))[last]
    y_t = np.cumsum(wt * tt * yt)[last]
    y_c = np.cumsum(wt * (1 - tt) * yt)[last]
    total_t, total_c = n_t[-1], n_c[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        qini = np.where(n_c > 0, y_t - y_c * n_t / n_c, y_t) / total_t
        uplift = np.where((n_t > 0) & (n_c > 0), (y_t / n_t - y_c / n_c) * (n_t + n_c), 0.0) / (
            total_t + total_c
        )
    frac = (n_t + n_c) / (total_t + total_c)
    zero = np.zeros(1)
    return np.r_[zero, frac], np.r_[zero, qini], np.r_[zero, uplift]


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def qini_curve(
    y: np.ndarray,
    treated: np.ndarray,
    uplift_score: np.ndarray,
    weights: np.ndarray | None = None,
    n_points: int = 101,
) -> dict[str, Any]:
    """Qini and uplift curves of an uplift ranking, with their areas normalised against random.

    ``y``: outcome per row (0/1 or any number); ``treated``: 1 where the activity was logged,
    0 for control (``none``); ``uplift_score``: the model's predicted gain from treating.

    Curves (sampled at ``n_points`` evenly spaced targeted fractions, for plotting):

    - ``qini[f]``: incremental successes from treating the top fraction ``f``, per treated
      row, ``(Y_T(f) - Y_C(f) * N_T(f)/N_C(f)) / N_T``; it ends at the average effect (ATE).
    - ``uplift[f]``: ``(mean_T(f) - mean_C(f)) * f``, the population-level gain of treating
      only the top ``f``; it also ends at the ATE.
    - ``random``: the straight line ``ATE * f`` both curves are compared with.
    - ``perfect``: the Qini curve of the best possible ranking of these rows (treated
      successes first, control successes last), the ceiling used for normalisation.

    Scalars: ``auuc`` (area under the uplift curve), ``auuc_random`` (``ATE / 2``),
    ``qini_area`` (area between Qini curve and random line) and ``qini_coefficient``
    (``qini_area`` divided by the perfect ranking's area: 1 is perfect, 0 is random,
    negative is worse than random; ``None`` if undefined). ``ate``, ``n_treated``,
    ``n_control`` (rows) and ``weight_treated``, ``weight_control`` complete it.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    t = np.asarray(treated).astype(np.float64).ravel()
    s = np.asarray(uplift_score, dtype=np.float64).ravel()
    if not (y.shape == t.shape == s.shape):
        raise ValueError("y, treated and uplift_score must have the same length")
    if not np.all((t == 0) | (t == 1)):
        raise ValueError("treated must be 0/1")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(s))):
        raise ValueError("y and uplift_score must be finite")
    w = _weights(weights, y.shape[0])
    wt, wc = float((w * t).sum()), float((w * (1 - t)).sum())
    if wt <= 0 or wc <= 0:
        raise ValueError("qini_curve needs both treated and control rows")

    frac, qini, uplift = _gain_curves(y, t, s, w)
    pf, pq, _ = _gain_curves(y, t, np.where(t == 1, y, -y), w)
    ate = float(qini[-1])
    random_area = ate / 2.0
    qini_area = _area(frac, qini) - random_area
    perfect_area = _area(pf, pq) - random_area
    coef = qini_area / perfect_area if perfect_area > 0 else float("nan")

    grid = np.linspace(0.0, 1.0, n_points)
    return {
        "fraction": grid.tolist(),
        "qini": np.interp(grid, frac, qini).tolist(),
        "uplift": np.interp(grid, frac, uplift).tolist(),
        "random": (ate * grid).tolist(),
        "perfect": np.interp(grid, pf, pq).tolist(),
        "auuc": _area(frac, uplift),
        "auuc_random": random_area,
        "qini_area": qini_area,
        "qini_coefficient": _none_if_nan(coef),
        "ate": ate,
        "n_treated": int((t == 1).sum()),
        "n_control": int((t == 0).sum()),
        "weight_treated": wt,
        "weight_control": wc,
    }
