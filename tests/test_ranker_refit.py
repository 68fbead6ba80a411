"""Every learner's final model learns from all rows: ``s`` and ``s_ipw`` refitted for the
early-stopped rounds / 0.8, but ``t`` and ``dr`` kept the model of their 80% split (and
the cluster's ``t``, trained on every row, differed from the local one)."""

from __future__ import annotations

import numpy as np
import pytest
from core_fixtures import simulated

import models.ranker
from models.activities import ACTIONS
from models.ranker import ActivityRanker
from training.fit import feature_encoder_for
from training.loading import action_codes


def _inputs():
    log = simulated(3000, 11)[0]
    encoder = feature_encoder_for(log)
    x = encoder.transform(log)
    actions = action_codes(log)
    args = (x, actions, log["ve_success"].to_numpy(float), log["propensity"].to_numpy())
    meta = {
        "categorical": list(range(len(encoder.categorical))),
        "feature_names": encoder.feature_names,
    }
    return args, meta


@pytest.mark.parametrize("learner", ["t", "dr"])
def test_the_final_model_is_refitted_on_every_row(learner, monkeypatch):
    args, meta = _inputs()
    x, actions = args[0], args[1]
    refits: list[tuple[int, int]] = []  # (rows, rounds) of each final fit
    original = models.ranker.refit_rounds

    def spy(params, x, y, rounds, **kwargs):
        refits.append((len(x), rounds))
        return original(params, x, y, rounds, **kwargs)

    monkeypatch.setattr(models.ranker, "refit_rounds", spy)
    split = ActivityRanker(learner=learner, seed=3, num_threads=1, refit=False).fit(*args, **meta)
    assert not refits
    final = ActivityRanker(learner=learner, seed=3, num_threads=1).fit(*args, **meta)
    counts = np.bincount(actions, minlength=len(ACTIONS))
    if learner == "t":
        assert [rows for rows, _ in refits] == counts.tolist()
        for early, refitted in zip(split.boosters_, final.boosters_, strict=True):
            assert refitted.num_trees() == max(1, round(early.num_trees() / 0.8))
    else:
        # The last fit is the pseudo-outcome regression: one stacked row per contact and
        # action (the ones before are the cross-fitted outcome models on halves).
        assert refits[-1][0] == len(x) * int((counts >= 30).sum())
        assert final.boosters_[0].num_trees() == refits[-1][1]
