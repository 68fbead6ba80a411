"""The activity ranker: success probability of every action for a contact.

Logged data is biased: the logging policy chose some activities more often for some
customers. Four learners correct for it differently, and training picks among them by
off-policy value (see ``training.fit``), not by habit:

- ``s``: one LightGBM over context + action (the action a categorical feature);
  unbiased when the logging policy depends only on logged context;
- ``s_ipw``: the same, rows weighted by 1 / propensity so every action is fitted on a
  population that looks like all customers;
- ``t``: one LightGBM per action, each on the rows where that action was logged (an
  action whose logged outcomes are all successes, or all failures, gets its smoothed
  success rate as a constant: ``smoothed_rate``);
- ``dr``: a doubly robust learner: cross-fitted ``s`` predictions corrected by the
  inverse-propensity-weighted residual, regressed on context + action.

``s``, ``s_ipw`` and ``dr`` score all actions of a contact in one LightGBM call (one
row per action), which keeps an online decision near the cost of a single predict.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np

from models.activities import ACTIONS
from models.boosting import (
    default_params,
    fit_booster,
    probability_objective,
    refit_rounds,
    split_indices,
)

LEARNERS = ("s", "s_ipw", "t", "dr")
ACTION_FEATURE = "action"
# Fewer logged rows than this for an action: the ranker does not score it (NaN)
# rather than guess, and the policy never suggests it.
MIN_ACTION_SUPPORT = 30
# Inverse propensities are capped here so a few unlikely choices cannot dominate.
PROPENSITY_FLOOR = 0.01
K = len(ACTIONS)


def too_few_rows(counts: Sequence[int]) -> str:
    """Why no action can be learned, with the minimum and the rows of every action."""
    found = ", ".join(f"{a} {int(c)}" for a, c in zip(ACTIONS, counts, strict=True))
    return (
        "no action has enough logged rows to learn from: each needs at least "
        f"{MIN_ACTION_SUPPORT}; the {int(sum(counts))} rows hold {found}"
    )


def smoothed_rate(y: np.ndarray) -> float:
    """Success rate under a uniform Beta(1, 1) prior (Laplace's rule): (sum + 1) / (n + 2).

    For an action whose logged outcomes are all one class the raw rate is exactly 0 or 1,
    a certainty that a few hundred rows do not prove; smoothed, 422 successes in 422 rows
    give 0.998 and 300 failures in 300 give 0.003."""
    y = np.asarray(y, dtype=np.float64)
    return float((y.sum() + 1.0) / (len(y) + 2.0))


def constant_booster(
    p: float,
    x: np.ndarray,
    *,
    categorical: list[int] | None = None,
    feature_names: list[str] | None = None,
    num_threads: int = 0,
) -> lgb.Booster:
    """A LightGBM model over ``x``'s features that predicts ``p`` for every row.

    It is one single-leaf tree holding logit(p) (every label equals ``p``, so boosting
    from the average leaves no gradient to split on). Being an ordinary booster, it is
    saved, loaded, compiled and explained (zero feature contributions) like any other."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a constant success probability must be in (0, 1), got {p}")
    params = default_params("cross_entropy", 0, len(x), num_threads)
    params["boost_from_average"] = True
    data = lgb.Dataset(
        x,
        np.full(len(x), p),
        categorical_feature=categorical or [],
        feature_name=feature_names or "auto",
    )
    return lgb.train(params, data, num_boost_round=1)


def stack_actions(x: np.ndarray, actions: Sequence[int]) -> np.ndarray:
    """Repeat each context row once per action, adding the action code as last column."""
    n = len(x)
    codes = np.asarray(actions, dtype=np.float64)
    stacked = np.repeat(x, len(codes), axis=0)
    return np.hstack([stacked, np.tile(codes, n)[:, None]])


class ActivityRanker:
    """Predicts P(success | context, action) for each action in ``ACTIONS``."""

    def __init__(
        self,
        learner: str = "s",
        seed: int = 0,
        validation_fraction: float = 0.2,
        max_rounds: int = 2000,
        num_threads: int = 0,
        refit: bool = True,
    ) -> None:
        self.learner = learner
        self.refit = refit
        self.seed = seed
        self.validation_fraction = validation_fraction
        self.max_rounds = max_rounds
        self.num_threads = num_threads

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        x: np.ndarray,
        actions: np.ndarray,
        y: np.ndarray,
        propensity: np.ndarray,
        *,
        categorical: list[int] | None = None,
        feature_names: list[str] | None = None,
    ) -> ActivityRanker:
        if self.learner not in LEARNERS:
            raise ValueError(f"unknown learner {self.learner!r}; choose one of {LEARNERS}")
        actions = np.asarray(actions, dtype=np.int64)
        y = np.asarray(y, dtype=np.float64)
        propensity = np.clip(np.asarray(propensity, dtype=np.float64), PROPENSITY_FLOOR, 1.0)
        self.n_features_ = x.shape[1]
        self.feature_names_ = list(feature_names or [f"f{i}" for i in range(x.shape[1])])
        self.categorical_ = list(categorical or [])
        counts = np.bincount(actions, minlength=K)
        self.actions_seen_ = counts >= MIN_ACTION_SUPPORT
        if self.actions_seen_.sum() < 1:
            raise ValueError(too_few_rows(counts))
        keep = self.actions_seen_[actions]
        x, actions, y, propensity = x[keep], actions[keep], y[keep], propensity[keep]
        # Actions given a constant model (t only): their one tree says nothing about how
        # many rounds the action's data supports (training.distributed reads this).
        self.constant_actions_ = np.zeros(K, dtype=bool)
        if self.learner == "t":
            self.boosters_ = self._fit_t(x, actions, y)
        elif self.learner == "dr":
            self.boosters_ = [self._fit_dr(x, actions, y, propensity)]
        else:
            weight = None
            if self.learner == "s_ipw":
                weight = 1.0 / propensity
                weight /= weight.mean()
            self.boosters_ = [self._fit_s(x, actions, y, weight, self.seed)]
        return self

    def _stacked_meta(self) -> tuple[list[int], list[str]]:
        return [*self.categorical_, self.n_features_], [*self.feature_names_, ACTION_FEATURE]

    def _fit_s(self, x, actions, y, weight, seed) -> lgb.Booster:
        categorical, names = self._stacked_meta()
        xa = np.hstack([x, actions[:, None].astype(np.float64)])
        train, valid = split_indices(len(y), self.validation_fraction, seed)
        params = default_params(probability_objective(y), seed, len(train), self.num_threads)
        w = weight
        booster = fit_booster(
            params,
            xa[train],
            y[train],
            xa[valid],
            y[valid],
            weight_train=None if w is None else w[train],
            weight_valid=None if w is None else w[valid],
            categorical=categorical,
            feature_names=names,
            max_rounds=self.max_rounds,
        )
        if not self.refit:
            return booster
        # Early stopping found the number of rounds; the final model learns from every
        # row, which matters most on small logs. More rows support a few more rounds.
        rounds = int(round(booster.num_trees() / (1.0 - self.validation_fraction)))
        return refit_rounds(
            params, xa, y, rounds, weight=w, categorical=categorical, feature_names=names
        )

    def _fit_t(self, x, actions, y) -> list[lgb.Booster | None]:
        boosters: list[lgb.Booster | None] = []
        for a in range(K):
            rows = actions == a
            if not self.actions_seen_[a]:
                boosters.append(None)
                continue
            xa, ya = x[rows], y[rows]
            train, valid = split_indices(len(ya), self.validation_fraction, self.seed + a)
            if len(np.unique(ya[train])) < 2:
                # All successes (or all failures), at least in the part LightGBM would
                # learn from: nothing to split on, and LightGBM would predict a certain
                # 0 or 1. The action is still ranked, at its smoothed logged rate.
                self.constant_actions_[a] = True
                boosters.append(
                    constant_booster(
                        smoothed_rate(ya),
                        xa,
                        categorical=self.categorical_,
                        feature_names=self.feature_names_,
                        num_threads=self.num_threads,
                    )
                )
                continue
            params = default_params(
                probability_objective(ya), self.seed + a, len(train), self.num_threads
            )
            booster = fit_booster(
                params,
                xa[train],
                ya[train],
                xa[valid],
                ya[valid],
                categorical=self.categorical_,
                feature_names=self.feature_names_,
                max_rounds=self.max_rounds,
            )
            boosters.append(self._refit(booster, params, xa, ya, None, self.categorical_))
        return boosters

    def _refit(self, booster, params, x, y, weight, categorical, names=None) -> lgb.Booster:
        """The final model on every row for the early-stopped rounds / (1 - validation
        fraction), as ``_fit_s`` does: without it ``t`` and ``dr`` kept a model of 80% of
        the rows (and ``t`` on the cluster, trained on all rows, differed from local)."""
        if not self.refit:
            return booster
        rounds = int(round(booster.num_trees() / (1.0 - self.validation_fraction)))
        return refit_rounds(
            params,
            x,
            y,
            rounds,
            weight=weight,
            categorical=categorical,
            feature_names=names or self.feature_names_,
        )

    def _fit_dr(self, x, actions, y, propensity) -> lgb.Booster:
        seen = np.flatnonzero(self.actions_seen_)
        # Cross-fitted outcome model: each half is predicted by a model that never saw it.
        half_a, half_b = split_indices(len(y), 0.5, self.seed + 101)
        mu = np.empty((len(y), len(seen)))
        for fit_rows, predict_rows, offset in ((half_a, half_b, 0), (half_b, half_a, 1)):
            booster = self._fit_s(
                x[fit_rows], actions[fit_rows], y[fit_rows], None, self.seed + 7 + offset
            )
            mu[predict_rows] = booster.predict(stack_actions(x[predict_rows], seen)).reshape(
                -1, len(seen)
            )
        logged = (actions[:, None] == seen[None, :]).astype(np.float64)
        pseudo = mu + logged / propensity[:, None] * (y[:, None] - mu)
        stacked_x = stack_actions(x, seen)
        stacked_y = pseudo.reshape(-1)
        categorical, names = self._stacked_meta()
        # Split by contact, not by stacked row, so validation contacts are unseen.
        train, valid = split_indices(len(y), self.validation_fraction, self.seed + 202)
        width = len(seen)
        train_rows = (train[:, None] * width + np.arange(width)).reshape(-1)
        valid_rows = (valid[:, None] * width + np.arange(width)).reshape(-1)
        params = default_params("regression", self.seed, len(train), self.num_threads)
        booster = fit_booster(
            params,
            stacked_x[train_rows],
            stacked_y[train_rows],
            stacked_x[valid_rows],
            stacked_y[valid_rows],
            categorical=categorical,
            feature_names=names,
            max_rounds=self.max_rounds,
        )
        return self._refit(booster, params, stacked_x, stacked_y, None, categorical, names)

    # -------------------------------------------------------------- predicting
    @property
    def stacked(self) -> bool:
        """True when one booster scores every action (context + action feature)."""
        return self.learner != "t"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, len(ACTIONS)) success probabilities; NaN for actions never learned."""
        n = len(x)
        out = np.full((n, K), np.nan)
        seen = np.flatnonzero(self.actions_seen_)
        predictors = getattr(self, "compiled_", None) or self.boosters_
        if self.stacked:
            scores = predictors[0].predict(stack_actions(x, seen)).reshape(n, len(seen))
            out[:, seen] = scores
        else:
            for a in seen:
                if predictors[a] is not None:
                    out[:, a] = predictors[a].predict(x)
        return np.clip(out, 0.001, 0.999)

    @classmethod
    def from_parts(
        cls,
        learner: str,
        boosters: list[lgb.Booster | None],
        actions_seen: Sequence[bool],
        feature_names: list[str],
        categorical: list[int],
    ) -> ActivityRanker:
        ranker = cls(learner=learner)
        ranker.boosters_ = boosters
        ranker.actions_seen_ = np.asarray(actions_seen, dtype=bool)
        ranker.feature_names_ = list(feature_names)
        ranker.categorical_ = list(categorical)
        ranker.n_features_ = len(feature_names)
        return ranker


def action_contributions(ranker: ActivityRanker, x: np.ndarray) -> np.ndarray:
    """(n, len(ACTIONS), n_features) LightGBM contributions of each context feature to
    each action's raw score; NaN for actions never learned. Slow (TreeSHAP): training only."""
    n, k = x.shape
    out = np.full((n, K, k), np.nan)
    seen = np.flatnonzero(ranker.actions_seen_)
    if ranker.stacked:
        contrib = ranker.boosters_[0].predict(stack_actions(x, seen), pred_contrib=True)
        out[:, seen, :] = contrib.reshape(n, len(seen), -1)[:, :, :k]
    else:
        for a in seen:
            if ranker.boosters_[a] is not None:
                out[:, a, :] = ranker.boosters_[a].predict(x, pred_contrib=True)[:, :k]
    return out
