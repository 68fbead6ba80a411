"""Unit tests of models.fallback: the degraded-mode decision follows its documented rules
and has the Decider's output shape."""

import pytest

from models.activities import VALUE_ACTIVITIES
from models.fallback import decide_fallback


def check_shape(result: dict) -> None:
    assert set(result) >= {"openness", "activities", "suggested_activity", "reasons"}
    assert set(result["openness"]) == {"score", "band", "attempt"}
    assert 0.0 <= result["openness"]["score"] <= 1.0
    assert result["openness"]["band"] in {"low", "medium", "high"}
    assert [a["activity"] for a in result["activities"]].count("none") == 0
    assert sorted(a["activity"] for a in result["activities"]) == sorted(VALUE_ACTIVITIES)
    for item in result["activities"]:
        assert set(item) == {"activity", "success_probability", "expected_value", "hint", "reasons"}
        assert 0.0 <= item["success_probability"] <= 1.0
        assert item["hint"]
    assert result["suggested_activity"] in (*VALUE_ACTIVITIES, "none")


def test_inquiry_right_after_purchase_validates_the_purchase():
    result = decide_fallback({"issue_type": "inquiry", "tenure_months": 1, "channel": "voice"})
    check_shape(result)
    assert result["openness"]["band"] == "high" and result["openness"]["attempt"]
    assert result["suggested_activity"] == "validate_purchase"
    evs = [a["expected_value"] for a in result["activities"]]
    assert evs == sorted(evs, reverse=True)


def test_long_tenure_gets_new_uses():
    result = decide_fallback({"issue_type": "how_to", "tenure_months": 40})
    assert result["suggested_activity"] == "advise_new_uses"


def test_complaint_is_low_and_resolves_effortlessly():
    result = decide_fallback({"issue_type": "complaint", "sentiment": -0.8, "tenure_months": 5})
    check_shape(result)
    assert result["openness"]["band"] == "low"
    assert result["suggested_activity"] == "none" and not result["openness"]["attempt"]


def test_policy_inputs_are_respected():
    blocked = decide_fallback(
        {"issue_type": "inquiry", "tenure_months": 1}, blocked_activities={"validate_purchase"}
    )
    assert blocked["suggested_activity"] not in ("validate_purchase", "none")
    assert blocked["activities"][-1]["activity"] == "validate_purchase"
    stopped = decide_fallback({"issue_type": "inquiry"}, allow_attempt=False)
    assert stopped["suggested_activity"] == "none" and not stopped["openness"]["attempt"]


@pytest.mark.parametrize(
    "features",
    [
        {},
        {"issue_type": None, "tenure_months": "abc"},
        {"sentiment": float("nan")},
        {"issue_type": "unheard_of", "tenure_months": -3, "sentiment": 9},
    ],
)
def test_missing_or_odd_values_still_answer(features):
    check_shape(decide_fallback(features))


def test_japanese_hints():
    result = decide_fallback({"issue_type": "inquiry"}, language="ja")
    assert any("ご" in a["hint"] for a in result["activities"])
    assert decide_fallback({}, language="xx")["activities"][0]["hint"].isascii()
