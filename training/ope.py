"""Off-policy evaluation: what a policy would have earned on logs another policy produced.

vea logs every decision with the probability the serving (logging) policy gave the action it
took. That makes it possible to score a *different* policy, a challenger, the best single
activity, a random policy, on the same rows without running it live:

- **IPS** (inverse propensity scoring) reweights each row by ``pi(a_i|x_i) / mu(a_i|x_i)``.
  Unbiased when the logger gave every action the target may take a positive probability,
  but high variance when weights are large.
- **SNIPS** (self-normalised IPS) divides by the sum of weights instead of ``n``: slightly
  biased, much lower variance, invariant to adding a constant to every reward.
- **DR** (doubly robust) starts from a reward model ``q_hat(x, a)`` (the "direct method") and
  corrects it with IPS on the residual of the logged action. Unbiased if either the
  propensities or ``q_hat`` are right, lower variance than IPS when ``q_hat`` is good, and the
  only one of the three that can value actions the logger never took (its direct part).

Arrays, not DataFrames: ``logged_actions`` are integer codes indexing
``models.activities.ACTIONS``; ``target_probs`` and ``q_hat`` are ``(n, k)`` matrices in
that action order.

Confidence intervals are BCa (bias-corrected and accelerated) bootstraps. Every statistic
here is a ratio of two sums (IPS and DR: sum of terms / rows; SNIPS: sum of ``w r`` / sum of
``w``), so the bootstrap works on per-cluster sums: with ``clusters`` (e.g. customer ids)
whole customers are resampled, because a customer's contacts share the customer and are
not independent draws; without, every row is its own cluster. BCa rather than the plain
percentile interval because heavy importance weights (an effective sample size of a few
percent to ~15% of the rows is common) make the estimate's distribution skewed; the
acceleration is the closed-form skewness of the clusters' influence values, so it costs no
jackknife. The bootstrap draws multinomial resampling counts per replicate (``bincount``
of uniform indices) and takes every statistic as one matrix product, in chunks of
replicates, so a million rows and 500 replicates take a few seconds and a bounded amount
of memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from models.activities import ACTION_INDEX, ACTIONS

# Upper bound on (replicates x rows) materialised at once by the bootstrap: the
# resampling counts of one chunk are a float64 matrix of this many cells (64 MB).
_BOOT_CHUNK_CELLS = 8_000_000
# Rows of target_probs must be distributions; allow float round-off from softmaxes.
_PROB_SUM_TOL = 1e-6


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its (1 - alpha) bootstrap confidence interval over ``n`` rows."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; non-finite numbers become ``None`` so the JSON stays standard."""
        return {
            "value": _json_float(self.value),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
            "n": int(self.n),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Estimate:
        def num(key: str) -> float:
            v = data.get(key)
            return float("nan") if v is None else float(v)

        return cls(num("value"), num("ci_low"), num("ci_high"), int(data.get("n") or 0))

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero (a significant difference)."""
        return bool(self.ci_low > 0 or self.ci_high < 0)


def _json_float(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


# --------------------------------------------------------------------------- inputs


def encode_actions(names: Sequence[str] | np.ndarray) -> np.ndarray:
    """Map action ids (``"none"``, ``"educate_usage"``, ...) to their integer codes."""
    arr = np.asarray(names, dtype=object)
    uniq, inverse = np.unique(arr.astype(str), return_inverse=True)
    unknown = [u for u in uniq if u not in ACTION_INDEX]
    if unknown:
        raise ValueError(f"unknown actions: {unknown[:5]}; expected one of {ACTIONS}")
    codes = np.array([ACTION_INDEX[u] for u in uniq], dtype=np.int64)
    return codes[inverse].reshape(arr.shape)


def deterministic_probs(actions: np.ndarray, k: int) -> np.ndarray:
    """One-hot ``(n, k)`` probabilities of a policy that always takes ``actions[i]``."""
    actions = np.asarray(actions)
    if actions.ndim != 1:
        raise ValueError("actions must be one-dimensional")
    if actions.size and (actions.min() < 0 or actions.max() >= k):
        raise ValueError(f"action codes must be in [0, {k})")
    out = np.zeros((actions.shape[0], k), dtype=np.float64)
    out[np.arange(actions.shape[0]), actions.astype(np.int64)] = 1.0
    return out


def uniform_probs(n: int, k: int) -> np.ndarray:
    """The uniformly random policy: every action with probability ``1/k``."""
    return np.full((n, k), 1.0 / k, dtype=np.float64)


def _check(
    rewards: np.ndarray,
    logged_actions: np.ndarray,
    propensities: np.ndarray,
    target_probs: np.ndarray,
    q_hat: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate shapes and ranges once, so estimators fail loudly instead of returning NaN."""
    r = np.asarray(rewards, dtype=np.float64)
    a = np.asarray(logged_actions)
    p = np.asarray(propensities, dtype=np.float64)
    t = np.asarray(target_probs, dtype=np.float64)
    if r.ndim != 1 or a.ndim != 1 or p.ndim != 1:
        raise ValueError("rewards, logged_actions and propensities must be one-dimensional")
    n = r.shape[0]
    if a.shape[0] != n or p.shape[0] != n:
        raise ValueError("rewards, logged_actions and propensities must have the same length")
    if n == 0:
        raise ValueError("no rows to evaluate")
    if t.ndim != 2 or t.shape[0] != n:
        raise ValueError(f"target_probs must have shape (n={n}, k), got {t.shape}")
    k = t.shape[1]
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.mod(a, 1) == 0):
            raise ValueError("logged_actions must be integer action codes (see encode_actions)")
        a = a.astype(np.int64)
    if a.min() < 0 or a.max() >= k:
        raise ValueError(f"logged action codes must be in [0, {k})")
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards must be finite")
    if not np.all((p > 0) & (p <= 1)):
        raise ValueError("propensities must be in (0, 1]")
    if not np.all(np.isfinite(t)) or t.min() < 0:
        raise ValueError("target_probs must be finite and non-negative")
    if np.abs(t.sum(axis=1) - 1.0).max() > _PROB_SUM_TOL:
        raise ValueError("each row of target_probs must sum to 1")
    q = None
    if q_hat is not None:
        q = np.asarray(q_hat, dtype=np.float64)
        if q.shape != t.shape:
            raise ValueError(f"q_hat must have the shape of target_probs {t.shape}, got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError("q_hat must be finite")
    return r, a.astype(np.int64, copy=False), p, t, q


# The least logged propensity the estimators can take: its importance weight (1 / p, up
# to 1e50) must stay finite through the squares of the effective sample size and the
# cubes of the bootstrap's influence values (float64 ends at 1.8e308). A propensity of
# 1e-300 made them overflow into NaN and the evaluation JSON unwritable, naming no row.
MIN_OPE_PROPENSITY = 1e-50


def overflowing_rows(propensities: np.ndarray) -> np.ndarray:
    """Positions of the propensities below ``MIN_OPE_PROPENSITY`` (their weights overflow)."""
    return np.flatnonzero(np.asarray(propensities, dtype=np.float64) < MIN_OPE_PROPENSITY)


def overflow_message(rows: Sequence[int], values: Sequence[float], field: str) -> list[str]:
    """The problems of rows (1-based, as the loader numbers them) whose propensity is too
    small to value a policy with, the first 5 named."""
    problems = [
        f"row {row}, field {field}: too small to value a policy with, under "
        f"{MIN_OPE_PROPENSITY:g} (got {value:g}): its importance weight, 1/propensity, "
        "overflows the estimators"
        for row, value in list(zip(rows, values, strict=True))[:5]
    ]
    if len(rows) > 5:
        problems.append(f"field {field}: {len(rows) - 5:,} more rows too small")
    return problems


# --------------------------------------------------------------------------- estimators


def importance_weights(
    logged_actions: np.ndarray, propensities: np.ndarray, target_probs: np.ndarray
) -> np.ndarray:
    """``pi(a_i|x_i) / mu(a_i|x_i)`` per row: how much the target policy 'wants' each logged row."""
    a = np.asarray(logged_actions, dtype=np.int64)
    t = np.asarray(target_probs, dtype=np.float64)
    return t[np.arange(a.shape[0]), a] / np.asarray(propensities, dtype=np.float64)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``.

    How many equally weighted rows the weighted estimate is worth: far below ``n`` means a
    few rows with huge weights dominate and the interval will be wide or unreliable.
    """
    w = np.asarray(weights, dtype=np.float64)
    sq = float(np.dot(w, w))
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


def ips(
    rewards: np.ndarray,
    logged_actions: np.ndarray,
    propensities: np.ndarray,
    target_probs: np.ndarray,
) -> np.ndarray:
    """Per-row IPS contributions ``w_i * r_i``; their mean is the IPS value estimate."""
    r, a, p, t, _ = _check(rewards, logged_actions, propensities, target_probs)
    return importance_weights(a, p, t) * r


def snips(
    rewards: np.ndarray,
    logged_actions: np.ndarray,
    propensities: np.ndarray,
    target_probs: np.ndarray,
) -> float:
    """Self-normalised IPS value ``sum(w r) / sum(w)`` (a ratio, so there are no per-row terms).

    NaN when the target policy never agrees with a logged action (all weights zero).
    """
    r, a, p, t, _ = _check(rewards, logged_actions, propensities, target_probs)
    w = importance_weights(a, p, t)
    total = float(w.sum())
    return float(np.dot(w, r) / total) if total > 0 else float("nan")


def dr(
    rewards: np.ndarray,
    logged_actions: np.ndarray,
    propensities: np.ndarray,
    target_probs: np.ndarray,
    q_hat: np.ndarray,
) -> np.ndarray:
    """Per-row doubly robust contributions; their mean is the DR value estimate.

    ``sum_a pi(a|x_i) q_hat(x_i, a) + w_i (r_i - q_hat(x_i, a_i))``: the direct part values
    every action the target may take, including ones the logger never tried; the weighted
    residual removes the reward model's bias where the logs can see it.
    """
    r, a, p, t, q = _check(rewards, logged_actions, propensities, target_probs, q_hat)
    if q is None:
        raise ValueError("dr needs q_hat")
    return _dr_terms(r, a, p, t, q)


def _dr_terms(
    r: np.ndarray, a: np.ndarray, p: np.ndarray, t: np.ndarray, q: np.ndarray
) -> np.ndarray:
    direct = np.einsum("ij,ij->i", t, q)
    return direct + importance_weights(a, p, t) * (r - q[np.arange(r.shape[0]), a])


# --------------------------------------------------------------------------- bootstrap


def _bootstrap_sums(columns: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Column sums of ``n_boot`` row-resamples of ``columns`` (shape (m, n)) -> (n_boot, m).

    Each replicate's multinomial resampling counts come from a ``bincount`` of uniform row
    indices; all statistics of a chunk of replicates are then one matrix product. Every
    statistic shares the same resamples, which is what makes ratio (SNIPS) and paired
    (policy difference) intervals correct.
    """
    m, n = columns.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, m), dtype=np.float64)
    chunk = int(max(1, min(n_boot, _BOOT_CHUNK_CELLS // max(n, 1))))
    counts = np.empty((chunk, n), dtype=np.float64)
    idx_dtype = np.uint32 if n < 2**32 else np.int64
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n), dtype=idx_dtype)
        for j in range(b):
            counts[j] = np.bincount(idx[j], minlength=n)
        out[start : start + b] = counts[:b] @ columns.T
    return out


def _check_boot(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")


def _cluster_sums(
    columns: np.ndarray, clusters: Sequence[Any] | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of ``columns`` (m, n) -> (m, G) and the rows of each cluster (G,).

    Without ``clusters`` every row is its own cluster (the row bootstrap)."""
    n = columns.shape[1]
    if clusters is None:
        return columns, np.ones(n, dtype=np.float64)
    ids = np.asarray(clusters)
    if ids.shape != (n,):
        raise ValueError(f"clusters must have one id per row ({n}), got shape {ids.shape}")
    _, group = np.unique(ids.astype(str), return_inverse=True)
    g = int(group.max()) + 1
    sums = np.vstack([np.bincount(group, weights=c, minlength=g) for c in columns])
    return sums, np.bincount(group, minlength=g).astype(np.float64)


def _bca(
    samples: np.ndarray, point: float, influence: np.ndarray, alpha: float
) -> tuple[float, float]:
    """BCa interval from bootstrap ``samples`` of a statistic whose estimate is ``point``.

    ``z0`` corrects the median bias (the share of replicates below the estimate) and the
    acceleration ``a`` the skewness, from the clusters' influence values (for a ratio of
    sums ``N / D``: ``N_g - point * D_g``; Efron's ``a = sum u^3 / (6 (sum u^2)^1.5)``).
    With no spread at all the interval is the point itself.
    """
    finite = samples[np.isfinite(samples)]
    if finite.size == 0 or not np.isfinite(point):
        return float("nan"), float("nan")
    b = finite.size
    # Ties count half, and the share stays inside (0, 1) so z0 is finite.
    below = (np.count_nonzero(finite < point) + 0.5 * np.count_nonzero(finite == point)) / b
    normal = NormalDist()
    z0 = normal.inv_cdf(min(max(below, 0.5 / b), 1.0 - 0.5 / b))
    ss = float(np.dot(influence, influence))
    a = float((influence**3).sum() / (6.0 * ss**1.5)) if ss > 0 else 0.0
    levels = []
    for z in (normal.inv_cdf(alpha / 2.0), normal.inv_cdf(1.0 - alpha / 2.0)):
        shifted = z0 + z
        denom = 1.0 - a * shifted
        # |a| is ~skewness / (6 sqrt(G)), far below 1 / |z0 + z| in any usable log; guard
        # the degenerate case by falling back to the bias-corrected percentile.
        levels.append(normal.cdf(z0 + shifted / denom) if denom > 0 else normal.cdf(z0 + shifted))
    lo, hi = np.quantile(finite, levels)
    return float(lo), float(hi)


def _ratio_estimates(
    numerators: np.ndarray,
    denominators: np.ndarray,
    n_boot: int,
    seed: int,
    alpha: float,
) -> list[tuple[float, float, float]]:
    """``(value, ci_low, ci_high)`` of ``sum(num_j) / sum(den_j)`` for every row ``j`` of the
    per-cluster (m, G) matrices, from one shared set of cluster resamples (so paired and
    ratio statistics stay correct)."""
    m = numerators.shape[0]
    boot = _bootstrap_sums(np.vstack([numerators, denominators]), n_boot, seed)
    out = []
    for j in range(m):
        num, den = float(numerators[j].sum()), float(denominators[j].sum())
        value = num / den if den > 0 else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            samples = np.where(boot[:, m + j] > 0, boot[:, j] / boot[:, m + j], np.nan)
        influence = numerators[j] - (value if np.isfinite(value) else 0.0) * denominators[j]
        out.append((value, *_bca(samples, value, influence, alpha)))
    return out


def evaluate_policy(
    rewards: np.ndarray,
    logged_actions: np.ndarray,
    propensities: np.ndarray,
    target_probs: np.ndarray,
    q_hat: np.ndarray | None = None,
    n_boot: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
    clusters: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, Estimate]:
    """Value of the policy ``target_probs`` by IPS, SNIPS and (with ``q_hat``) DR.

    Returns ``{"ips": Estimate, "snips": Estimate[, "dr": Estimate]}`` with BCa bootstrap
    intervals at level ``1 - alpha``; the three share the same resamples. Pass the customer
    of every row as ``clusters`` when customers recur in the log: the bootstrap then
    resamples customers, not contacts.
    """
    _check_boot(n_boot, alpha)
    r, a, p, t, q = _check(rewards, logged_actions, propensities, target_probs, q_hat)
    n = r.shape[0]
    w = importance_weights(a, p, t)
    cols = [w * r, w, np.ones(n)]
    if q is not None:
        cols.append(_dr_terms(r, a, p, t, q))
    sums, rows = _cluster_sums(np.vstack(cols), clusters)
    # Numerator / denominator pairs: IPS = sum(w r) / rows, SNIPS = sum(w r) / sum(w),
    # DR = sum(terms) / rows.
    nums = [sums[0], sums[0]] + ([sums[3]] if q is not None else [])
    dens = [rows, sums[1]] + ([rows] if q is not None else [])
    est = _ratio_estimates(np.vstack(nums), np.vstack(dens), n_boot, seed, alpha)
    names = ["ips", "snips"] + (["dr"] if q is not None else [])
    return {name: Estimate(*e, n) for name, e in zip(names, est, strict=True)}


def mean_value(
    values: np.ndarray,
    n_boot: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
    clusters: Sequence[Any] | np.ndarray | None = None,
) -> Estimate:
    """The mean of ``values`` (the logging policy's own value: its mean logged reward)
    with the BCa interval of the policies' values, from resamples of the same clusters."""
    _check_boot(n_boot, alpha)
    v = np.asarray(values, dtype=np.float64)
    sums, rows = _cluster_sums(v[None, :], clusters)
    (value, lo, hi) = _ratio_estimates(sums, rows[None, :], n_boot, seed, alpha)[0]
    return Estimate(value, lo, hi, v.shape[0])


def compare_policies(
    rewards: np.ndarray,
    logged_actions: np.ndarray,
    propensities: np.ndarray,
    target_a: np.ndarray,
    target_b: np.ndarray,
    q_hat: np.ndarray | None = None,
    n_boot: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
    clusters: Sequence[Any] | np.ndarray | None = None,
) -> Estimate:
    """Estimate of ``value(b) - value(a)`` on the same rows, with a paired BCa bootstrap CI.

    Both policies are scored on identical resamples, so the noise they share (the same
    customers, the same outcomes) cancels and the interval on the difference is much
    narrower than two separate intervals suggest. DR when ``q_hat`` is given, else IPS.
    ``clusters`` (customer per row) resamples customers instead of contacts. A
    champion/challenger gate promotes b over a only when ``ci_low > 0``.
    """
    _check_boot(n_boot, alpha)
    r, a, p, ta, q = _check(rewards, logged_actions, propensities, target_a, q_hat)
    _, _, _, tb, _ = _check(r, a, p, target_b, q_hat)
    if ta.shape != tb.shape:
        raise ValueError("target_a and target_b must have the same shape")
    if q is not None:
        diff = _dr_terms(r, a, p, tb, q) - _dr_terms(r, a, p, ta, q)
    else:
        diff = (importance_weights(a, p, tb) - importance_weights(a, p, ta)) * r
    sums, rows = _cluster_sums(diff[None, :], clusters)
    (value, lo, hi) = _ratio_estimates(sums, rows[None, :], n_boot, seed, alpha)[0]
    return Estimate(value, lo, hi, r.shape[0])


# Above this share of target mass where logging never acts, a comparison rests on the
# reward model's guesses rather than on the log: the gate and the shadow check refuse to
# judge it.
MAX_UNSUPPORTED = 0.05


def diagnostics(
    logged_actions: np.ndarray,
    propensities: np.ndarray,
    target_probs: np.ndarray,
    logging_probs: np.ndarray | None = None,
) -> dict[str, float]:
    """Health of an off-policy estimate: is the logged data able to say anything about pi?

    - ``ess`` / ``ess_fraction``: effective sample size of the importance weights.
    - ``max_weight``: the largest single weight (one row can swing IPS by ``max_weight/n``).
    - ``mean_weight``: about 1 when the logger covers the target; well below 1 means the
      target puts mass where the logger never acts (IPS/SNIPS are then biased; trust DR).
    - ``unsupported_mass``: average target probability on actions with logging probability
      0, exact when ``logging_probs`` (n, k) is given. Else: on a row logged with
      probability 1 (no exploration, the holdout) every other action; on the other rows
      the actions absent from the whole log. There DR rests on the reward model alone.
    """
    a = np.asarray(logged_actions, dtype=np.int64)
    t = np.asarray(target_probs, dtype=np.float64)
    w = importance_weights(a, propensities, t)
    if logging_probs is not None:
        mu = np.asarray(logging_probs, dtype=np.float64)
        unsupported = float((t * (mu <= 0)).sum(axis=1).mean())
    elif a.size:
        seen = np.bincount(a, minlength=t.shape[1]) > 0
        per_row = t[:, ~seen].sum(axis=1)
        certain = np.asarray(propensities, dtype=np.float64) >= 1.0 - 1e-9
        per_row[certain] = 1.0 - t[certain, a[certain]]
        unsupported = float(per_row.mean())
    else:
        unsupported = 0.0
    ess = effective_sample_size(w)
    return {
        "n": float(a.shape[0]),
        "ess": ess,
        "ess_fraction": ess / max(a.shape[0], 1),
        "max_weight": float(w.max()) if w.size else 0.0,
        "mean_weight": float(w.mean()) if w.size else 0.0,
        "unsupported_mass": unsupported,
    }


# --------------------------------------------------------------------------- the joint choice
#
# vea logs two probabilities per decision: the activity's (``propensity``) and the pool's
# (``pool_propensity``, models.matching pool exploration), and the pool is drawn after the
# activity, so the probability of the joint (activity, pool) choice is their product. The
# estimators above are indifferent to what an "action" is, so routing is valued with pools
# as the actions (the activity as logged: the activity policy unchanged) and a joint policy
# with the activity x pool pairs as the actions (``joint_actions``, ``joint_probs``).
#
# Support: a pool the log never tried for a context cannot be valued from that context's
# outcomes; the direct part of DR would only guess it from the reward model. Such mass is
# reported per pool (``unsupported_by_pool``) and the estimate is made on the rows where
# the target is fully supported, saying how many rows that is, rather than guessed.


def joint_actions(activity_codes: np.ndarray, pool_codes: np.ndarray, n_pools: int) -> np.ndarray:
    """Code of each logged (activity, pool) pair: ``activity * n_pools + pool``."""
    a = np.asarray(activity_codes, dtype=np.int64)
    p = np.asarray(pool_codes, dtype=np.int64)
    if p.size and (p.min() < 0 or p.max() >= n_pools):
        raise ValueError(f"pool codes must be in [0, {n_pools})")
    return a * n_pools + p


def joint_probs(activity_probs: np.ndarray, pool_probs: np.ndarray) -> np.ndarray:
    """``(n, A * P)`` probabilities of a joint policy: ``pi(a|x) * pi(pool|x, a)``.

    ``activity_probs`` is ``(n, A)``; ``pool_probs`` is ``(n, A, P)`` (the pool policy may
    depend on the activity) or ``(n, P)`` (it does not)."""
    act = np.asarray(activity_probs, dtype=np.float64)
    pools = np.asarray(pool_probs, dtype=np.float64)
    if pools.ndim == 2:
        pools = np.broadcast_to(pools[:, None, :], (act.shape[0], act.shape[1], pools.shape[1]))
    if pools.shape[:2] != act.shape:
        raise ValueError(f"pool_probs must be (n, {act.shape[1]}, P), got {pools.shape}")
    return (act[:, :, None] * pools).reshape(act.shape[0], -1)


def support_from_log(
    context_keys: Sequence[Any] | np.ndarray, logged: np.ndarray, k: int
) -> np.ndarray:
    """``(n, k)`` mask: was action ``j`` ever logged in row ``i``'s context cell?

    Used when the logging distribution is not known in full (an export stores only the
    probability of the chosen pool): an action never tried in a cell (e.g. the same
    activity, channel, language and segment) is unsupported there."""
    keys = np.asarray(context_keys).astype(str)
    a = np.asarray(logged, dtype=np.int64)
    _, cell = np.unique(keys, return_inverse=True)
    seen = np.zeros((int(cell.max()) + 1 if cell.size else 0, k), dtype=bool)
    seen[cell, a] = True
    return seen[cell]


def unsupported_by_pool(
    target_probs: np.ndarray, supported: np.ndarray, pools: Sequence[str]
) -> dict[str, float]:
    """Average target probability per pool on actions the log does not support.

    ``target_probs`` and ``supported`` are ``(n, k)`` with ``k`` a multiple of
    ``len(pools)`` (pools alone, or activity x pool pairs with the pool varying fastest)."""
    t = np.asarray(target_probs, dtype=np.float64)
    mask = ~np.asarray(supported, dtype=bool)
    n_pools = len(pools)
    if t.shape != mask.shape or t.shape[1] % n_pools:
        raise ValueError("target_probs and supported must be (n, k), k a multiple of the pools")
    mass = (t * mask).reshape(t.shape[0], -1, n_pools).sum(axis=1).mean(axis=0)
    return {pool: float(m) for pool, m in zip(pools, mass, strict=True)}


def cell_mean_q(
    rewards: np.ndarray,
    logged: np.ndarray,
    k: int,
    context_keys: Sequence[Any] | np.ndarray,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    folds: int = 5,
    prior: float = 20.0,
    seed: int = 0,
) -> np.ndarray:
    """A simple cross-fitted reward model ``q_hat (n, k)`` for DR.

    ``q(cell, a)`` is the mean reward of action ``a`` in the context cell, shrunk towards
    the action's overall mean with ``prior`` pseudo-rows; each row's ``q`` is fitted on the
    other folds (folds by ``groups``, e.g. customers, when given), so a row's own outcome
    never enters its reward model. DR stays unbiased with exact propensities whatever the
    quality of ``q``; a better ``q`` only narrows the interval."""
    r = np.asarray(rewards, dtype=np.float64)
    a = np.asarray(logged, dtype=np.int64)
    n = r.shape[0]
    _, cell = np.unique(np.asarray(context_keys).astype(str), return_inverse=True)
    n_cells = int(cell.max()) + 1
    if groups is None:
        fold = np.random.default_rng(seed).integers(0, folds, n)
    else:
        _, g = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        fold = np.random.default_rng(seed).integers(0, folds, int(g.max()) + 1)[g]
    q = np.empty((n, k), dtype=np.float64)
    overall = float(r.mean())
    for f in range(folds):
        train, test = fold != f, fold == f
        if not test.any():
            continue
        cnt_a = np.bincount(a[train], minlength=k).astype(float)
        sum_a = np.bincount(a[train], weights=r[train], minlength=k)
        mean_a = (sum_a + 1.0 * overall) / (cnt_a + 1.0)
        flat = cell[train] * k + a[train]
        cnt = np.bincount(flat, minlength=n_cells * k).reshape(n_cells, k)
        tot = np.bincount(flat, weights=r[train], minlength=n_cells * k).reshape(n_cells, k)
        fitted = (tot + prior * mean_a[None, :]) / (cnt + prior)
        q[test] = fitted[cell[test]]
    return q


def evaluate_supported(
    rewards: np.ndarray,
    logged_actions: np.ndarray,
    propensities: np.ndarray,
    target_probs: np.ndarray,
    supported: np.ndarray,
    pools: Sequence[str],
    q_hat: np.ndarray | None = None,
    n_boot: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
    clusters: Sequence[Any] | np.ndarray | None = None,
    baseline_probs: np.ndarray | None = None,
) -> dict[str, Any]:
    """``evaluate_policy`` on the rows where the target only takes supported actions.

    Returns the estimates (IPS, SNIPS, DR with ``q_hat``), the rows evaluated and left
    out, the unsupported mass per pool over all rows, the importance-weight diagnostics
    and, with ``baseline_probs`` (e.g. the logging policy's), the paired DR difference of
    the target over it on the same rows. ``propensities`` are the logged probabilities of
    the logged actions (for a joint action, activity x pool probability)."""
    t = np.asarray(target_probs, dtype=np.float64)
    mask = np.asarray(supported, dtype=bool)
    off = (t * ~mask).sum(axis=1) > _PROB_SUM_TOL
    keep = ~off
    out: dict[str, Any] = {
        "rows": int(t.shape[0]),
        "rows_evaluated": int(keep.sum()),
        "rows_unsupported": int(off.sum()),
        "unsupported_by_pool": unsupported_by_pool(t, mask, pools),
        "scope": "all rows"
        if not off.any()
        else "rows where every pool the policy may choose was tried by the log",
    }
    if not keep.any():
        out["estimates"] = {}
        return out
    r = np.asarray(rewards, dtype=np.float64)[keep]
    a = np.asarray(logged_actions, dtype=np.int64)[keep]
    p = np.asarray(propensities, dtype=np.float64)[keep]
    q = None if q_hat is None else np.asarray(q_hat, dtype=np.float64)[keep]
    cl = None if clusters is None else np.asarray(clusters)[keep]
    est = evaluate_policy(r, a, p, t[keep], q, n_boot=n_boot, seed=seed, alpha=alpha, clusters=cl)
    out["estimates"] = {name: e.to_dict() for name, e in est.items()}
    out["diagnostics"] = diagnostics(a, p, t[keep])
    if baseline_probs is not None:
        base = np.asarray(baseline_probs, dtype=np.float64)[keep]
        diff = compare_policies(
            r, a, p, base, t[keep], q, n_boot=n_boot, seed=seed, alpha=alpha, clusters=cl
        )
        out["difference_over_baseline"] = diff.to_dict()
    return out


# --------------------------------------------------------------------------- routing on a log

ROUTING_POLICIES = ("general-only", "best-proficiency", "random-eligible")


def routing_policy_probs(
    config: Any, activity: str, eligible: Sequence[int], name: str
) -> np.ndarray:
    """A named routing policy's pool probabilities (``config.pools`` order) for a contact
    whose eligible pools are ``eligible`` (indexes): ``general-only``, ``best-proficiency``
    (highest lift for the activity; a value pool before general on a tie) or
    ``random-eligible`` (uniform). ``none`` always goes to general."""
    ids = [p.id for p in config.pools]
    general = ids.index("general")
    probs = np.zeros(len(ids))
    if activity == "none" or name == "general-only" or not eligible:
        probs[general] = 1.0
    elif name == "best-proficiency":
        pools = config.pools
        best = max(eligible, key=lambda j: (pools[j].lift_for(activity), j != general, -j))
        probs[best] = 1.0
    elif name == "random-eligible":
        probs[list(eligible)] = 1.0 / len(eligible)
    else:
        raise ValueError(f"unknown routing policy {name!r}; one of {ROUTING_POLICIES}")
    return probs


def evaluate_routing_log(
    frame: Any,
    config: Any,
    policy: str,
    *,
    activity: str | None = None,
    n_boot: int = 500,
    seed: int = 0,
    reward: str = "ve_success",
) -> dict[str, Any]:
    """Off-policy value of a routing policy (``activity=None``: the activity as logged) or
    of the joint policy "always ``activity``, routed by ``policy``" on a vea export.

    Pools are eligible as ``models.matching`` has them (the pool serves the activity,
    channel, language and segment, and has members or is general); the export does not
    carry the waits, so every eligible pool counts as within the limit. Support comes from
    the log: a pool (or activity x pool pair) never logged in a context cell (activity,
    channel, language, segment) is unsupported there; those rows are left out of the
    estimate and the mass is reported per pool. DR uses cross-fitted cell means
    (``cell_mean_q``); intervals are 95% BCa, resampling customers. The logged pool is
    ``routed_pool_id`` where the log has it (a vea export), else ``pool_id``."""
    need = ["activity", "propensity", "pool_id", reward, "channel", "language", "segment"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValueError(f"the log lacks {missing} (use a `vea export` log)")
    if "routed_pool_id" in frame.columns:
        # The logged action is the pool routing chose (its probability is
        # pool_propensity), not the one that handled the contact after an overflow.
        frame = frame.assign(pool_id=frame["routed_pool_id"].fillna(frame["pool_id"]))
    ids = [p.id for p in config.pools]
    index = {pool: j for j, pool in enumerate(ids)}
    ok = frame["pool_id"].isin(ids) & frame[reward].notna() & frame["activity"].isin(ACTIONS)
    data = frame.loc[ok].reset_index(drop=True)
    n, n_pools = len(data), len(ids)
    if n == 0:
        raise ValueError("no routed rows with an outcome and a pool of this config")
    pool_prop = (
        data["pool_propensity"].to_numpy(dtype=float, na_value=np.nan)
        if "pool_propensity" in data
        else np.ones(n)
    )
    if np.isnan(pool_prop).any():
        # Not 1: a pool drawn among several and logged without its probability would be
        # valued as if routing had never explored (the CLI's loader refuses it first).
        rows = (np.flatnonzero(ok.to_numpy())[np.isnan(pool_prop)] + 1)[:5].tolist()
        raise ValueError(f"pool_propensity missing on rows {rows} (the routed pool's probability)")
    r = data[reward].to_numpy(dtype=float)
    logged_pool = data["pool_id"].map(index).to_numpy(dtype=np.int64)
    logged_activity = encode_actions(data["activity"].astype(str).to_numpy())
    text = {c: data[c].astype(str).to_numpy() for c in ("channel", "language", "segment")}
    place = np.char.add(np.char.add(np.char.add(text["channel"], "|"), text["language"]), "|")
    place = np.char.add(place, text["segment"])
    issue = data["issue_type"].astype(str).to_numpy() if "issue_type" in data else np.full(n, "")
    clusters = data["customer_id"].astype(str).to_numpy() if "customer_id" in data else None
    chosen = [activity] * n if activity is not None else list(data["activity"].astype(str))
    target_pool = np.zeros((n, n_pools))
    cache: dict[tuple[str, ...], np.ndarray] = {}
    for i in range(n):
        key = (chosen[i], text["channel"][i], text["language"][i], text["segment"][i])
        if key not in cache:
            eligible = [
                j
                for j, pool in enumerate(config.pools)
                if pool.serves(key[0], key[1], key[2], key[3])
                and (pool.id == "general" or pool.members)
            ]
            cache[key] = routing_policy_probs(config, key[0], eligible, policy)
        target_pool[i] = cache[key]
    file_rows = np.flatnonzero(ok.to_numpy()) + 1  # the loader's row numbers
    if activity is None:
        cells = np.char.add(np.char.add(data["activity"].astype(str).to_numpy(), "|"), place)
        logged, prop, target = logged_pool, pool_prop, target_pool
        supported = support_from_log(cells, logged_pool, n_pools)
        k = n_pools
    else:
        if activity not in ACTION_INDEX:
            raise ValueError(f"unknown activity {activity!r}")
        cells = place
        logged = joint_actions(logged_activity, logged_pool, n_pools)
        prop = data["propensity"].to_numpy(dtype=float) * pool_prop
        act = deterministic_probs(np.full(n, ACTION_INDEX[activity]), len(ACTIONS))
        target = joint_probs(act, target_pool)
        k = len(ACTIONS) * n_pools
        supported = support_from_log(cells, logged, k)
    tiny = overflowing_rows(prop)
    if tiny.size:
        field = "pool_propensity" if activity is None else "propensity x pool_propensity"
        raise ValueError("; ".join(overflow_message(file_rows[tiny], prop[tiny], field)))
    q = cell_mean_q(r, logged, k, np.char.add(np.char.add(cells, "|"), issue), groups=clusters)
    result = evaluate_supported(
        r, logged, prop, target, supported, ids, q_hat=q, n_boot=n_boot, seed=seed,
        clusters=clusters,
    )  # fmt: skip
    keep = (target * ~supported).sum(axis=1) <= _PROB_SUM_TOL
    return {
        "policy": policy,
        "activity": activity or "as logged",
        "kind": "routing" if activity is None else "joint (activity x pool)",
        "reward": reward,
        "rows_dropped": int((~ok).sum()),
        "logged_value": float(r[keep].mean()) if keep.any() else None,
        "explored_share": float(np.mean(pool_prop < 1.0)),
        **result,
    }
