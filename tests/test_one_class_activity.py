"""An activity whose logged outcomes are all successes (or all failures) is still ranked,
at its smoothed rate, by every learner; bundles keep it and evaluation never crashes."""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from core_fixtures import simulated

from models.activities import ACTIONS
from models.bundle import ModelBundle, compile_bundle, load_bundle, save_bundle
from models.decision import Decider
from models.ranker import MIN_ACTION_SUPPORT, ActivityRanker
from models.schema import LABEL
from training.evaluate import evaluate_bundle
from training.fit import train_bundle
from training.score import score_arrays

ALWAYS = "validate_purchase"  # every logged attempt succeeded
NEVER = "advise_new_uses"  # every logged attempt failed


@lru_cache(maxsize=1)
def one_class_log() -> pd.DataFrame:
    log = simulated(3000, 11)[0].copy()
    log.loc[log["activity"] == ALWAYS, LABEL] = 1
    log.loc[log["activity"] == NEVER, LABEL] = 0
    return log


@lru_cache(maxsize=1)
def t_bundle() -> ModelBundle:
    return train_bundle(
        one_class_log(), learner="t", seed=11, progress=False, data_fingerprint="one-class"
    )


def _rows(activity: str) -> int:
    return int((one_class_log()["activity"] == activity).sum())


def test_t_learner_scores_one_class_activities_at_their_smoothed_rate():
    ranker = t_bundle().ranker
    assert _rows(ALWAYS) >= MIN_ACTION_SUPPORT and _rows(NEVER) >= MIN_ACTION_SUPPORT
    _, success = score_arrays(t_bundle(), one_class_log())
    assert np.isfinite(success).all()
    n = _rows(ALWAYS)
    always = success[:, ACTIONS.index(ALWAYS)]
    np.testing.assert_allclose(
        always, min((n + 1) / (n + 2), 0.999), rtol=1e-6
    )  # LightGBM keeps labels as float32
    never = success[:, ACTIONS.index(NEVER)]
    np.testing.assert_allclose(
        never, max(1 / (_rows(NEVER) + 2), 0.001), rtol=1e-6
    )  # LightGBM keeps labels as float32
    assert all(b is not None for b in ranker.boosters_)


def test_an_activity_that_always_succeeded_is_suggested():
    decider = Decider(t_bundle())
    rows = one_class_log().head(50).to_dict("records")
    suggested = [decider.decide(row)["suggested_activity"] for row in rows]
    assert ALWAYS in suggested


def test_one_class_models_survive_save_load_and_compilation(tmp_path):
    pytest.importorskip("lleaves")
    log = one_class_log().head(500)
    saved = save_bundle(copy.deepcopy(t_bundle()), tmp_path / "bundle")
    assert (saved / f"ranker_{ALWAYS}.txt").exists() and (saved / f"ranker_{NEVER}.txt").exists()
    loaded = load_bundle(saved)
    expected = score_arrays(t_bundle(), log)[1]
    np.testing.assert_allclose(score_arrays(loaded, log)[1], expected, rtol=0, atol=1e-12)
    assert compile_bundle(loaded, tmp_path / "cache")
    np.testing.assert_allclose(score_arrays(loaded, log)[1], expected, rtol=0, atol=1e-12)
    fast, native = Decider(t_bundle()), Decider(loaded)
    for row in log.head(50).to_dict("records"):
        assert fast.decide(row) == native.decide(row)


def test_evaluation_gives_uplift_for_one_class_activities():
    test_log = simulated(2000, 12)[0]
    result = evaluate_bundle(t_bundle(), test_log, n_boot=50)
    assert {ALWAYS, NEVER} <= set(result["uplift"])
    assert not result["warnings"]


def test_evaluation_skips_an_activity_without_a_model_and_names_it():
    """Bundles trained before one-class activities got a constant model list the activity
    as learned but hold no model for it: evaluation names it instead of failing."""
    old = copy.deepcopy(t_bundle())
    old.ranker.boosters_[ACTIONS.index(NEVER)] = None
    result = evaluate_bundle(old, simulated(2000, 12)[0], n_boot=50)
    assert NEVER not in result["uplift"] and ALWAYS in result["uplift"]
    assert any(
        f"uplift of {NEVER} not computed" in w and "no success probability" in w
        for w in result["warnings"]
    )
    assert "model" in result["policy_value"]


@pytest.mark.parametrize("learner", ["s", "s_ipw", "dr"])
def test_stacked_learners_score_one_class_activities(learner):
    """The stacked learners pool every action in one model, so a one-class action gets a
    finite (shrunk) score without special handling."""
    log = one_class_log()
    bundle = train_bundle(log, learner=learner, seed=11, progress=False)
    _, success = score_arrays(bundle, log)
    assert np.isfinite(success).all()
    always, never = success[:, ACTIONS.index(ALWAYS)], success[:, ACTIONS.index(NEVER)]
    assert always.mean() > success[:, ACTIONS.index("none")].mean() > never.mean()


def test_too_few_rows_names_the_minimum_and_the_counts():
    rng = np.random.default_rng(0)
    actions = np.repeat(np.arange(len(ACTIONS)), 5)
    with pytest.raises(ValueError) as excinfo:
        ActivityRanker(learner="s").fit(
            rng.normal(size=(len(actions), 3)),
            actions,
            rng.integers(0, 2, len(actions)),
            np.full(len(actions), 1 / len(ACTIONS)),
        )
    message = str(excinfo.value)
    assert f"at least {MIN_ACTION_SUPPORT}" in message
    assert all(f"{a} 5" in message for a in ACTIONS)
