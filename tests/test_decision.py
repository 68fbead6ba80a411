"""The online decision: shape of the answer, consistency with batch scoring, reasons."""

from __future__ import annotations

import numpy as np
import pytest
from core_fixtures import simulated, trained_bundle

from models.activities import ACTIONS, VALUE_ACTIVITIES
from models.decision import Decider
from training.score import score_frame

CONTEXT = {
    "channel": "voice",
    "issue_type": "inquiry",
    "segment": "premium",
    "persona": "enthusiast",
    "tenure_months": 0.5,
    "switching_effort": "high",
    "prior_contacts_30d": 0,
    "sentiment": 0.3,
    "language": "ja",
}


@pytest.fixture(scope="module")
def decider() -> Decider:
    return Decider(trained_bundle())


def test_answer_has_every_part(decider):
    out = decider.decide(CONTEXT, language="en")
    assert 0.0 <= out["openness"]["score"] <= 1.0
    assert out["openness"]["band"] in ("low", "medium", "high")
    assert [a["activity"] for a in out["activities"]] != []
    assert sorted(a["activity"] for a in out["activities"]) == sorted(VALUE_ACTIVITIES)
    values = [a["expected_value"] for a in out["activities"]]
    assert values == sorted(values, reverse=True), "activities are ranked best first"
    for item in out["activities"]:
        assert 0.0 < item["success_probability"] < 1.0
        assert item["hint"] and item["reasons"]
    assert out["suggested_activity"] in ACTIONS
    assert out["openness"]["attempt"] == (out["suggested_activity"] != "none")


def test_online_matches_batch_scoring(decider):
    log = simulated()[0].head(50)
    batch = score_frame(decider.bundle, log)
    for i in range(0, 50, 7):
        row = log.iloc[i].to_dict()
        out = decider.decide(row)
        assert out["openness"]["score"] == pytest.approx(batch["openness"].iloc[i], abs=1e-6)
        probs = {a["activity"]: a["success_probability"] for a in out["activities"]}
        for activity in VALUE_ACTIVITIES:
            assert probs[activity] == pytest.approx(batch[f"p_{activity}"].iloc[i], abs=1e-5)
        assert out["suggested_activity"] == batch["suggested_activity"].iloc[i]


def test_reasons_and_hints_follow_language(decider):
    ja = decider.decide(CONTEXT, language="ja")
    en = decider.decide(CONTEXT, language="en")
    assert ja["activities"][0]["hint"] != en["activities"][0]["hint"]
    text = " ".join(r for a in ja["activities"] for r in a["reasons"])
    assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)


def test_blocked_and_disallowed(decider):
    best = decider.decide(CONTEXT)["suggested_activity"]
    if best != "none":
        out = decider.decide(CONTEXT, blocked_activities={best})
        assert out["suggested_activity"] != best
        blocked = next(a for a in out["activities"] if a["activity"] == best)
        assert any("contact policy" in r for r in blocked["reasons"])
    out = decider.decide(CONTEXT, allow_attempt=False)
    assert out["suggested_activity"] == "none" and not out["openness"]["attempt"]


def test_unknown_and_missing_values_do_not_crash(decider):
    out = decider.decide({"channel": "carrier-pigeon", "tenure_months": "n/a", "extra": 1})
    assert out["suggested_activity"] in ACTIONS
    assert decider.decide({})["openness"]["score"] >= 0


def test_recent_purchase_favours_validation():
    """Simulator truth: validation pays right after purchase; the model learns it."""
    log = simulated()[0]
    bundle = trained_bundle()
    scored = score_frame(bundle, log)
    recent = log["tenure_months"].to_numpy() < 1
    late = log["tenure_months"].to_numpy() > 36
    gap = scored["p_validate_purchase"] - scored["p_advise_new_uses"]
    assert np.mean(gap[recent]) > np.mean(gap[late])


def test_japanese_decision_notes_are_polite_sentences(decider):
    """An agent reads whole sentences in です・ます (was the plain 提案を行わない)."""
    stopped = decider.decide(CONTEXT, language="ja", allow_attempt=False)
    assert stopped["reasons"] == ["このお問い合わせでは価値向上の提案を行いません"]
