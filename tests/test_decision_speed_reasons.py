"""The decide fast path answers exactly like the plain definitions it replaces: the top
two reasons per activity, cached phrases, and predictors bound to reused buffers."""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
from core_fixtures import simulated, trained_bundle

from models.activities import ACTIONS
from models.decision import MIN_REASON_SCORE, VALUE_CODES, Decider, _top_two
from models.fast_predict import FastRowPredictor
from models.reasons import describe, describe_cached


def _sorted_top_two(relative: list[list[float]], a: int) -> list[int]:
    """The definition: a sort per action, ties to the later feature."""
    ranked = sorted(
        ((scores[a], j) for j, scores in enumerate(relative) if scores[a] > MIN_REASON_SCORE),
        reverse=True,
    )
    return [j for _, j in ranked[:2]]


def test_top_two_is_the_sorted_definition_including_ties():
    rng = random.Random(0)
    # Few distinct values, so ties, the threshold itself and NaN all come up often.
    pool = [-0.5, 0.0, MIN_REASON_SCORE, 2e-6, 0.1, 0.1, 0.3, math.nan, -0.0]
    for _ in range(3000):
        n = rng.randint(0, 10)
        relative = [[rng.choice(pool) for _ in ACTIONS] for _ in range(n)]
        codes = list(range(len(ACTIONS)))
        expected = [_sorted_top_two(relative, a) for a in codes] if n else [[] for _ in codes]
        assert _top_two(relative, codes) == expected, relative


@pytest.mark.parametrize("language", ["en", "ja"])
def test_cached_phrases_are_describe(language):
    values = [
        "voice",
        "premium",
        "1",
        1,
        1.0,
        True,
        0,
        0.0,
        -0.0,
        math.nan,
        None,
        3,
        2.25,
        -1.5,
        "x" * 30,
        ["a"],
    ]
    for name in ("channel", "tenure_months", "prior_contacts_30d", "sentiment", "extra"):
        for _ in range(2):  # the second round is answered from the cache
            for value in values:
                assert describe_cached(name, value, language) == describe(name, value, language)


def test_fast_row_predictor_bound_to_a_buffer_follows_its_refills():
    bundle = trained_bundle()
    predictor = FastRowPredictor(bundle.openness.booster_)
    rows = bundle.encoder.transform(simulated()[0].head(20))
    buffer = np.empty(rows.shape[1], dtype=np.float64)
    bound = predictor.bind(buffer)
    for row in rows:
        buffer[:] = row
        assert bound()[0] == predictor.predict(np.ascontiguousarray(row))[0]
    with pytest.raises(ValueError):
        predictor.bind(np.empty(rows.shape[1] + 1))


def _reuse_matches_fresh(bundle) -> None:
    reused = Decider(bundle)
    contexts = simulated()[0].head(40).to_dict("records")
    contexts += [{}, {"channel": "carrier-pigeon", "tenure_months": "n/a", "sentiment": -0.0}]
    for i, context in enumerate(contexts):
        kwargs = {
            "language": "ja" if i % 3 == 0 else "en",
            "blocked_activities": {"achieve_goals"} if i % 4 == 0 else (),
            "allow_attempt": i % 5 != 0,
        }
        assert reused.decide(context, **kwargs) == Decider(bundle).decide(context, **kwargs)


def test_a_reused_decider_answers_like_a_fresh_one():
    _reuse_matches_fresh(trained_bundle())


def test_a_reused_compiled_decider_answers_like_a_fresh_one(tmp_path):
    pytest.importorskip("lleaves")
    from models.bundle import compile_bundle

    bundle = copy.deepcopy(trained_bundle())
    assert compile_bundle(bundle, tmp_path)
    _reuse_matches_fresh(bundle)


def test_value_codes_are_the_value_activities():
    assert [ACTIONS[a] for a in VALUE_CODES] == list(ACTIONS[1:])
