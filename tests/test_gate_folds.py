"""The gate's customer folds: a customer's contacts stay in one fold, and no fold is
empty while there are at least as many customers as folds (a hash modulo the folds left
one empty for about half the logs of ten customers, and vea retrain stopped). With
fewer, the gate says how many customers the log has and how many it needs. Where the
hash left no fold empty, a seed gives the folds it gave before (and so the same gate
decision on the same log)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from core_fixtures import trained_bundle

from training.loading import DataError
from training.retrain import GATE_FOLDS, customer_folds, gate
from training.simulate import simulate


def _log_of(customers: int, rows: int = 400) -> pd.DataFrame:
    log = simulate(rows=rows, seed=5)[0]
    return log.assign(customer_id=[f"account-{i % customers}" for i in range(len(log))])


@pytest.mark.parametrize("customers", [GATE_FOLDS, 8, 10, 23])
def test_every_fold_holds_customers_whatever_the_seed(customers):
    log = _log_of(customers)
    for seed in range(60):
        fold_of = customer_folds(log, GATE_FOLDS, seed)
        sizes = [len(set(log.loc[fold_of == f, "customer_id"])) for f in range(GATE_FOLDS)]
        assert min(sizes) >= 1
        for _, rows in log.groupby("customer_id").groups.items():
            assert len(set(fold_of[rows])) == 1


def test_the_folds_follow_the_seed_and_rows_without_a_customer_stand_alone():
    log = _log_of(40)
    assert not np.array_equal(
        customer_folds(log, GATE_FOLDS, 1), customer_folds(log, GATE_FOLDS, 2)
    )
    np.testing.assert_array_equal(
        customer_folds(log, GATE_FOLDS, 1), customer_folds(log, GATE_FOLDS, 1)
    )
    anonymous = pd.DataFrame({"customer_id": [None] * 10})
    assert len(set(customer_folds(anonymous, GATE_FOLDS, 0))) == GATE_FOLDS


def test_a_seed_gives_the_folds_it_gave_before():
    log = pd.DataFrame({"customer_id": [f"customer-{i}" for i in range(30)]})
    before = [
        1,
        0,
        1,
        4,
        4,
        1,
        4,
        0,
        4,
        4,
        1,
        2,
        4,
        3,
        4,
        4,
        1,
        3,
        1,
        2,
        0,
        1,
        1,
        4,
        1,
        3,
        2,
        4,
        2,
        2,
    ]
    assert customer_folds(log, GATE_FOLDS, 7).tolist() == before


def test_too_few_customers_is_said_with_the_counts():
    log = _log_of(GATE_FOLDS - 1)

    def never_fitted(train):
        raise AssertionError("no challenger is fitted for a log the gate cannot judge")

    with pytest.raises(
        DataError, match=rf"from {GATE_FOLDS - 1} customers.*{GATE_FOLDS} customer folds"
    ):
        gate(log, trained_bundle(), never_fitted, n_boot=50)
