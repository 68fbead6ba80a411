"""LightGBM settings and the fit-with-early-stopping step shared by every model."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

# More LightGBM threads than this only oversubscribe the machine: thousands stalled it
# for minutes, 100,000 crashed the process.
MAX_THREADS = 256


def probability_objective(y: np.ndarray) -> str:
    """LightGBM objective for a success probability: ``binary`` on 0/1 labels, else
    ``cross_entropy``, the same log loss on labels in [0, 1] (a weighted reward), which
    ``binary`` would round up to 1. Both predict through the sigmoid."""
    y = np.asarray(y, dtype=np.float64)
    return "binary" if np.isin(y, (0.0, 1.0)).all() else "cross_entropy"


def default_params(objective: str, seed: int, n_rows: int, num_threads: int = 0) -> dict[str, Any]:
    """Conservative parameters that hold up from 20k to millions of rows.

    Leaves need more support on small data, or the ranker learns noise in the
    activity x context interactions it exists to find.

    Each round learns from a random 70% of the rows (stochastic gradient boosting,
    Friedman 2002): the trees disagree on noise and agree on signal, which cuts the
    variance a 20,000-row log leaves in the ranker's activity x context differences.
    Measured with ``bench/small_logs.py --rows 20000 200000 --seeds 1 3 5 7 9`` (the
    greedy policy's true value / the oracle's on a 100,000-row test log, mean of the
    seeds): 20,000 rows 0.9616 -> 0.9685, 200,000 rows 0.9901 -> 0.9916, every seed
    better at both sizes; training time unchanged.
    """
    return {
        "objective": objective,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": int(max(40, n_rows // 2000)),
        "lambda_l2": 10.0,
        "bagging_fraction": 0.7,
        "bagging_freq": 1,
        "max_cat_to_onehot": 8,
        "cat_smooth": 10.0,
        "feature_pre_filter": False,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": num_threads,
        "verbose": -1,
    }


def fit_booster(
    params: dict[str, Any],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    *,
    weight_train: np.ndarray | None = None,
    weight_valid: np.ndarray | None = None,
    categorical: list[int] | None = None,
    feature_names: list[str] | None = None,
    max_rounds: int = 2000,
    early_stopping_rounds: int = 50,
) -> lgb.Booster:
    """Train with early stopping on the validation part; return the booster cut at its best round."""
    categorical = categorical or []
    names = feature_names or "auto"
    train = lgb.Dataset(
        x_train,
        y_train,
        weight=weight_train,
        categorical_feature=categorical,
        feature_name=names,
        free_raw_data=True,
    )
    valid = lgb.Dataset(
        x_valid,
        y_valid,
        weight=weight_valid,
        categorical_feature=categorical,
        feature_name=names,
        reference=train,
    )
    booster = lgb.train(
        params,
        train,
        num_boost_round=max_rounds,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    booster.best_iteration = booster.best_iteration or booster.current_iteration()
    # Keep only the useful rounds so the saved text model and serving are no bigger than needed.
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))


def refit_rounds(
    params: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    rounds: int,
    *,
    weight: np.ndarray | None = None,
    categorical: list[int] | None = None,
    feature_names: list[str] | None = None,
) -> lgb.Booster:
    """Train on all rows for a number of rounds found by early stopping on a split."""
    data = lgb.Dataset(
        x,
        y,
        weight=weight,
        categorical_feature=categorical or [],
        feature_name=feature_names or "auto",
    )
    return lgb.train(params, data, num_boost_round=max(1, rounds))


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split of row indices (validation gets `fraction`)."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * (1.0 - fraction)))
    return np.sort(order[:cut]), np.sort(order[cut:])
