"""Organic value (models.opportunities): attempts agents make without vea's suggestion,
by situation and activity, and the candidates to suggest next."""

from __future__ import annotations

import math

import pytest

from models.opportunities import organic_opportunities, wilson_interval


def rows_to_columns(rows: list[dict]) -> dict[str, list]:
    names = ["activity", "delivered_activity", "offered", "ve_success", "has_outcome",
             "segment", "issue_type", "channel"]  # fmt: skip
    return {name: [row.get(name) for row in rows] for name in names}


def contacts(n: int, successes: int, **row) -> list[dict]:
    base = {"offered": 1.0, "has_outcome": True, "segment": "premium", "issue_type": "how_to",
            "channel": "voice"}  # fmt: skip
    return [{**base, **row, "ve_success": float(k < successes)} for k in range(n)]


# The contact center's other attempts: 200, 30% succeed.
ELSEWHERE = contacts(
    200, 60, segment="basic", issue_type="billing", activity="validate_purchase",
    delivered_activity="validate_purchase",
)  # fmt: skip


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_agents_succeeding_where_vea_suggests_nothing_are_a_candidate():
    organic = contacts(40, 32, activity="none", delivered_activity="educate_usage")
    report = organic_opportunities(rows_to_columns(ELSEWHERE + organic))
    assert report["baseline_success_rate"] == pytest.approx(92 / 240)
    assert report["organic_attempts"] == 40 and report["candidates"] == 1
    (top, *_) = report["rows"]
    assert top["situation"] == {"segment": "premium", "issue_type": "how_to"}
    assert top["activity"] == "educate_usage" and top["candidate"]
    assert top["organic_success_rate"] == pytest.approx(0.8)
    assert top["interval"][0] > report["baseline_success_rate"]
    assert top["suggested_share"] == 0.0 and top["contacts"] == 40


def test_no_candidate_where_vea_already_suggests_it_or_too_few_tried():
    # vea suggests educate_usage in 3 of 4 contacts here; agents add it in the fourth.
    suggested = contacts(120, 60, activity="educate_usage", delivered_activity="educate_usage")
    organic = contacts(40, 32, activity="none", delivered_activity="educate_usage")
    report = organic_opportunities(rows_to_columns(ELSEWHERE + suggested + organic))
    (cell,) = report["rows"]
    assert cell["suggested_share"] == pytest.approx(0.75) and not cell["candidate"]

    few = contacts(10, 10, activity="none", delivered_activity="advise_new_uses")
    report = organic_opportunities(rows_to_columns(ELSEWHERE + few))
    (cell,) = report["rows"]
    assert cell["organic_success_rate"] == 1.0 and not cell["candidate"]  # 10 < 30
    assert (
        organic_opportunities(rows_to_columns(ELSEWHERE + few), min_attempts=10)["candidates"] == 1
    )


def test_what_counts_as_an_organic_attempt():
    rows = [
        *contacts(3, 3, activity="none", delivered_activity="educate_usage"),  # organic
        *contacts(2, 2, activity="anticipate_needs", delivered_activity="educate_usage"),  # another
        *contacts(4, 4, activity="educate_usage", delivered_activity="educate_usage"),  # suggested
        *contacts(5, 0, activity="none", delivered_activity="educate_usage", offered=0.0),
        *contacts(6, 0, activity="none", delivered_activity="none"),  # nothing offered
        *contacts(7, 0, activity="none", delivered_activity=None, has_outcome=False),
    ]
    rows += [{**rows[0], "ve_success": math.nan}]  # tried, no survey yet
    report = organic_opportunities(rows_to_columns(rows))
    (cell,) = report["rows"]
    assert cell["organic_attempts"] == 6 and cell["organic_with_result"] == 5
    assert cell["organic_successes"] == 5
    assert cell["contacts"] == len(rows)
    assert cell["suggested_share"] == pytest.approx(4 / len(rows))


def test_situations_by_other_features_and_unknown_values():
    rows = contacts(3, 1, activity="none", delivered_activity="educate_usage", channel=None)
    report = organic_opportunities(rows_to_columns(rows), situation=["channel"])
    (cell,) = report["rows"]
    assert cell["situation"] == {"channel": "(unknown)"}
    assert report["situation"] == ["channel"]


def test_an_empty_period_has_no_rows_and_no_baseline():
    report = organic_opportunities(rows_to_columns([]))
    assert report["rows"] == [] and report["baseline_success_rate"] is None
    assert report["contacts"] == 0 and report["candidates"] == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"situation": ["agent_id"]}, "situation: agent_id is not one of"),
        ({"situation": []}, r"situation: \(none\)"),
        ({"situation": ["segment", "segment"]}, "named twice"),
        ({"min_attempts": 0}, "min_attempts: must be >= 1"),
    ],
)
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        organic_opportunities(rows_to_columns([]), **options)
