"""What `vea retrain` promotes is what its gate valued: the challenger is fitted on the
treated rows the gate's cross-fitted challengers are drawn from (a holdout contact gets
`none` whatever the model; the promoted challenger learned from them too, which no
valued one did), the gate's record and console say what its interval is of and what
decides, and --min-rows counts the rows the gate judges (here a log of 430 rows, 125 of
them holdout, passed --min-rows 400, and the gate judged 305)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.exploration import HOLDOUT, holdout_arm
from models.registry import Registry
from service.web.content import gate_reason
from training import retrain as retrain_module
from training.fit import train_bundle
from training.retrain import GATE_FOLDS, describe, retrain
from training.simulate import simulate


def _fit(rows: pd.DataFrame):
    return train_bundle(rows, learner="s", seed=0, num_threads=1, progress=False)


def with_holdout(log: pd.DataFrame, share: float = 0.25) -> pd.DataFrame:
    """``log`` as a vea export with a holdout: a share of customers served `none` at
    probability 1 and marked so."""
    held = np.array([holdout_arm(c, share, "test") == HOLDOUT for c in log["customer_id"]])
    out = log.copy()
    out["experiment_arm"] = np.where(held, "holdout", "treatment")
    out.loc[held, "activity"] = "none"
    out.loc[held, "propensity"] = 1.0
    return out


@pytest.fixture(scope="module")
def logs():
    return simulate(rows=1200, seed=11)[0], with_holdout(simulate(rows=2000, seed=12)[0])


@pytest.fixture
def registry(tmp_path, logs):
    reg = Registry(tmp_path / "registry")
    reg.add(_fit(logs[0]))
    return reg


def test_the_promoted_challenger_learns_from_the_rows_the_gate_judged(registry, logs):
    log = logs[1]
    seen: list[pd.DataFrame] = []

    def fit(rows: pd.DataFrame):
        seen.append(rows)
        return _fit(rows)

    result = retrain(log, registry, min_rows=100, fit=fit, n_boot=50, num_threads=1)
    treated = int((log["experiment_arm"] == "treatment").sum())
    # The gate's challengers, then the one to serve: none learned from a holdout contact,
    # and the last learned from every row the others were drawn from.
    assert len(seen) == GATE_FOLDS + 1
    assert all((rows["experiment_arm"] == "treatment").all() for rows in seen)
    promoted = seen[-1]
    assert len(promoted) == treated
    drawn = set().union(*(set(rows["interaction_id"]) for rows in seen[:-1]))
    assert set(promoted["interaction_id"]) == drawn
    stored = registry.load(result.challenger)
    assert stored.manifest["training_rows"] == treated  # was every row, holdout included
    assert result.gate.rows == result.rows == treated
    assert result.holdout == len(log) - treated


def test_the_gate_says_what_its_interval_is_of_and_what_decides(registry, logs):
    interval_of = retrain_module.interval_of
    promotes_when = retrain_module.PROMOTES_WHEN
    result = retrain(logs[1], registry, min_rows=100, n_boot=50, num_threads=1)
    record = next(e for e in reversed(registry.history()) if e.get("event") == "gate")
    assert record["interval_of"] == interval_of(GATE_FOLDS)
    assert "this learner trained on this log's treated rows, cross-fitted" in interval_of(5)
    assert "the other 4/5 of the customers" in interval_of(5)
    assert record["promotes_when"] == promotes_when
    assert "one-sided 97.5% lower bound" in promotes_when
    assert result.gate.to_dict()["interval_of"] == record["interval_of"]
    text = describe(result)
    assert f"holdout rows left out; {GATE_FOLDS}-fold cross-fitted DR" in text
    assert f"the 95% interval is of {interval_of(GATE_FOLDS)}" in text
    assert f"it promotes when {promotes_when}" in text
    # The status line still says the one decision (the explanation never says
    # "promoted" or "refused", which scripts read the status by).
    explanation = promotes_when + interval_of(GATE_FOLDS)
    assert "promoted" not in explanation and "refused" not in explanation


def test_min_rows_counts_the_rows_the_gate_judges(registry, logs):
    log = logs[1].head(430).reset_index(drop=True)
    treated = int((log["experiment_arm"] == "treatment").sum())
    held = len(log) - treated
    assert held > 0 and treated < 400 < len(log)
    before = registry.version_ids()
    result = retrain(log, registry, min_rows=400, n_boot=50, num_threads=1)
    assert result.status == "skipped"  # was: trained, and gated on the treated rows alone
    assert registry.version_ids() == before
    assert result.reason == f"{treated} rows < --min-rows 400"
    record = registry.history()[-1]
    assert record["decision"] == "skipped"
    counted = retrain_module.MIN_ROWS_COUNT
    assert record["rows_counted"] == counted and record["holdout_rows"] == held
    # The sentence is still one the dashboard translates.
    assert gate_reason(record["reason"], "ja").startswith(f"{treated} 行 < --min-rows 400")
    text = describe(result)
    assert f"skipped: {treated} rows < --min-rows 400; nothing trained" in text
    assert f"counted: {counted}; {held} holdout rows not counted" in text
