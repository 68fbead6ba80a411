"""`--learner auto` values the candidate learners out of fold with a customer's contacts
on one side of every split, and resamples customers in its bootstrap: split by row, a
candidate was valued on contacts of customers it had learned from, and its interval
treated a customer's contacts as independent draws."""

from __future__ import annotations

import numpy as np
import pytest
from core_fixtures import simulated

from training import fit as fit_module
from training.fit import selection_folds, train_bundle
from training.retrain import customers_of


def _sides(folds, customers):
    """For every split, the customers found on both sides of it."""
    return [set(customers[fit]) & set(customers[held]) for fit, held in folds]


@pytest.mark.parametrize("n", [3_000, 60_000, 400_000])
def test_a_customer_stays_on_one_side_of_every_split(n):
    rng = np.random.default_rng(0)
    customers = np.array([f"c{k}" for k in rng.integers(0, n // 3, n)], dtype=object)
    folds = selection_folds(n, 0, customers)
    assert all(not both for both in _sides(folds, customers))
    held = np.concatenate([h for _, h in folds])
    # Every row is valued once (one split on the largest logs: about a fifth of them).
    if len(folds) > 1:
        assert np.array_equal(np.sort(held), np.arange(n))
    else:
        assert 0.15 < len(held) / n < 0.25
    for fit, h in folds:
        assert np.intersect1d(fit, h).size == 0 and len(fit) + len(h) == n


def test_without_customers_the_row_splits_are_the_ones_of_before():
    """No customer id (e.g. the dask engine's sample): the same splits as before."""
    n = 1000
    order = np.random.default_rng(17).permutation(n)
    parts = np.array_split(order, 5)
    folds = selection_folds(n, 0)
    for i, (_, held) in enumerate(folds):
        assert np.array_equal(held, np.sort(parts[i]))
    few = np.array(["a", "b"] * 500, dtype=object)  # fewer customers than folds: by row
    by_row = selection_folds(n, 0, few)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(by_row, folds, strict=True))


def test_learner_selection_splits_and_resamples_by_customer(monkeypatch):
    log = simulated(3000, 5)[0]
    customers = customers_of(log)
    assert len(set(customers)) < len(log)  # customers recur: the case that matters
    made, clusters = [], []
    real_folds, real_compare = fit_module.selection_folds, fit_module.compare_policies

    def folds_spy(*args, **kwargs):
        made.append(real_folds(*args, **kwargs))
        return made[-1]

    def compare_spy(*args, **kwargs):
        clusters.append(kwargs.get("clusters"))
        return real_compare(*args, **kwargs)

    monkeypatch.setattr(fit_module, "selection_folds", folds_spy)
    monkeypatch.setattr(fit_module, "compare_policies", compare_spy)
    bundle = train_bundle(log, learner="auto", seed=0, num_threads=1, progress=False)
    assert "dr_value" in bundle.manifest["metrics"]["learner_selection"]
    (folds,) = made
    assert all(not both for both in _sides(folds, customers))
    assert clusters and all(c is not None and len(set(c)) < len(c) for c in clusters)
