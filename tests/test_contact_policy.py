"""Unit tests of models.contact_policy: each rule fires alone, is visible, and can be
turned off."""

from datetime import datetime, timedelta

import pytest

from models.contact_policy import (
    ContactPolicy,
    HistorySummary,
    PastContact,
    evaluate,
    summarize_history,
)

NOW = datetime(2025, 3, 1, 12, 0, 0)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_summary_counts_attempts_of_the_last_week_and_latest_declines():
    contacts = [
        PastContact(ago(1), "advise_new_uses", offered=True, accepted=False),
        PastContact(ago(5), "advise_new_uses", offered=True, accepted=False),
        PastContact(ago(2), "educate_usage"),  # no outcome yet: counts as an attempt
        PastContact(ago(3), "achieve_goals", offered=False),  # agent did not offer it
        PastContact(ago(3), "none"),
        PastContact(ago(9), "validate_purchase", offered=True, accepted=True),
        PastContact(NOW + timedelta(hours=1), "educate_usage"),  # in the future: ignored
    ]
    summary = summarize_history(contacts, NOW)
    assert summary.attempts_last_7d == 3
    assert summary.declined_days_ago == {"advise_new_uses": pytest.approx(1.0)}


def test_no_history_blocks_nothing():
    result = evaluate(ContactPolicy(), HistorySummary(), issue_type="inquiry", sentiment=0.5)
    assert result.allow_attempt and not result.blocked_activities and result.reasons == []


def test_recent_decline_blocks_that_activity_only():
    history = HistorySummary(declined_days_ago={"advise_new_uses": 3.2, "educate_usage": 20.0})
    result = evaluate(ContactPolicy(decline_days=14), history)
    assert result.blocked_activities == {"advise_new_uses"}
    assert result.allow_attempt
    assert len(result.reasons) == 1 and "“Advise on new uses” was declined" in result.reasons[0]
    assert "3 day" in result.reasons[0]
    # decline_days=0 disables the rule
    assert not evaluate(ContactPolicy(decline_days=0), history).blocked_activities


def test_weekly_cap_stops_attempts():
    policy = ContactPolicy(max_attempts_per_week=2)
    assert evaluate(policy, HistorySummary(attempts_last_7d=1)).allow_attempt
    capped = evaluate(policy, HistorySummary(attempts_last_7d=2))
    assert not capped.allow_attempt
    assert "limit 2" in capped.reasons[0]
    assert evaluate(
        ContactPolicy(max_attempts_per_week=None), HistorySummary(attempts_last_7d=9)
    ).allow_attempt


def test_negative_complaint_rule_and_its_switch():
    policy = ContactPolicy(negative_sentiment_threshold=-0.3)
    angry = evaluate(policy, HistorySummary(), issue_type="complaint", sentiment=-0.7)
    assert not angry.allow_attempt and "complaint" in angry.reasons[0]
    # mild sentiment, a non-complaint, or unknown sentiment do not fire
    assert evaluate(policy, HistorySummary(), issue_type="complaint", sentiment=-0.1).allow_attempt
    assert evaluate(policy, HistorySummary(), issue_type="billing", sentiment=-0.9).allow_attempt
    assert evaluate(policy, HistorySummary(), issue_type="complaint").allow_attempt
    allowed = ContactPolicy(allow_negative_complaints=True)
    assert evaluate(allowed, HistorySummary(), issue_type="complaint", sentiment=-0.9).allow_attempt


def test_reasons_in_japanese():
    result = evaluate(ContactPolicy(), HistorySummary(attempts_last_7d=5), language="ja")
    assert "コンタクトポリシー" in result.reasons[0]


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        ContactPolicy(decline_days=-1)
    with pytest.raises(ValueError):
        ContactPolicy(negative_sentiment_threshold=-2)


@pytest.mark.parametrize(
    ("days_ago", "en", "ja"),
    [
        (0.2, "was declined in the last 24 hours", "は24時間以内に辞退されています"),
        (1.5, "was declined 1 day ago", "は1日前に辞退されています"),
        (3.0, "was declined 3 days ago", "は3日前に辞退されています"),
    ],
)
def test_a_decline_says_when_in_words(days_ago, en, ja):
    # Was "declined 0 day(s) ago" / "0 日前に断られています".
    history = HistorySummary(declined_days_ago={"educate_usage": days_ago})
    english = evaluate(ContactPolicy(), history).reasons[0]
    japanese = evaluate(ContactPolicy(), history, language="ja").reasons[0]
    assert en in english and "(s)" not in english, english
    assert ja in japanese and "（14日間は再提案しません）" in japanese, japanese


def test_the_weekly_cap_counts_one_attempt_as_one():
    one = evaluate(ContactPolicy(max_attempts_per_week=1), HistorySummary(attempts_last_7d=1))
    three = evaluate(ContactPolicy(), HistorySummary(attempts_last_7d=3))
    assert "1 value attempt in the last 7 days (limit 1 per week)" in one.reasons[0]
    assert "3 value attempts in the last 7 days (limit 2 per week)" in three.reasons[0]
    japanese = evaluate(ContactPolicy(), HistorySummary(attempts_last_7d=3), language="ja")
    assert "直近7日間の価値向上の提案が3回（上限は週2回）" in japanese.reasons[0]
