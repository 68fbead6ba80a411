"""Compiled forests predict exactly what LightGBM predicts, from a shared disk cache."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from core_fixtures import simulated, trained_bundle

from models.bundle import compile_bundle
from models.decision import Decider
from training.score import score_frame

pytest.importorskip("lleaves")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    plain = trained_bundle()
    compiled = copy.deepcopy(plain)
    cache = tmp_path_factory.mktemp("compiled")
    assert compile_bundle(compiled, cache)
    return plain, compiled, cache


def test_batch_scores_identical(bundles):
    plain, compiled, _ = bundles
    log = simulated()[0].head(3000)
    a, b = score_frame(plain, log), score_frame(compiled, log)
    for column in ("openness", "p_none", "p_validate_purchase", "p_advise_new_uses"):
        np.testing.assert_allclose(a[column], b[column], rtol=0, atol=1e-12)
    assert (a["suggested_activity"] == b["suggested_activity"]).all()


def test_online_decisions_identical(bundles):
    plain, compiled, _ = bundles
    fast, native = Decider(plain), Decider(compiled)
    for row in simulated()[0].head(300).to_dict("records"):
        assert fast.decide(row) == native.decide(row)


def test_cache_is_reused(bundles):
    _, _, cache = bundles
    files = sorted(p.name for p in cache.glob("*.so"))
    assert len(files) == 2  # openness + stacked ranker
    again = copy.deepcopy(trained_bundle())
    assert compile_bundle(again, cache)
    assert sorted(p.name for p in cache.glob("*.so")) == files


def test_service_swaps_to_the_compiled_twin_in_the_background(tmp_path):
    """A worker serves at once with LightGBM, compiles off the request path, then serves
    the compiled forests with identical answers."""
    import time

    from models.registry import Registry
    from service.serving import ModelManager

    registry = Registry(tmp_path / "registry")
    registry.add(copy.deepcopy(trained_bundle()))
    manager = ModelManager(registry.root, poll_s=0.0, compile_cache=str(tmp_path / "cache"))
    context = simulated()[0].iloc[7].to_dict()
    manager.refresh(force=True)
    first = manager.decide(
        context, language="en", blocked_activities=frozenset(), allow_attempt=True
    )
    deadline = time.monotonic() + 120
    while not manager._decider.compiled and time.monotonic() < deadline:
        time.sleep(0.2)
    assert manager._decider.compiled
    second = manager.decide(
        context, language="en", blocked_activities=frozenset(), allow_attempt=True
    )
    assert first.result == second.result and not second.degraded


def test_a_weighted_reward_forest_compiles_to_the_same_numbers(tmp_path):
    """A weighted reward trains with the cross-entropy objective
    (models.boosting.probability_objective); its sigmoid must survive compilation."""
    import lightgbm as lgb

    from models.boosting import probability_objective
    from models.compiled import compile_booster

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 4))
    y = np.clip(0.5 + 0.2 * x[:, 0] + 0.1 * rng.normal(size=2000), 0.0, 1.0)
    params = {"objective": probability_objective(y), "verbose": -1, "num_threads": 1}
    assert params["objective"] == "cross_entropy"
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=30)
    compiled = compile_booster(booster, tmp_path)
    assert compiled is not None
    np.testing.assert_allclose(compiled.predict(x), booster.predict(x), rtol=0, atol=1e-12)
    assert booster.predict(x).min() > 0.0 and booster.predict(x).max() < 1.0
