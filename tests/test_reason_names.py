"""Sentences an agent reads name activities, channels and issue types in their language,
never by a machine id."""

from __future__ import annotations

import re

from models.activities import ACTIONS
from models.contact_policy import ContactPolicy, HistorySummary, evaluate
from models.fallback import decide_fallback
from models.reasons import ACTIVITY_NAMES

IDS = re.compile("|".join(ACTIONS[1:]) + "|billing|how_to|chat")


def test_the_rule_fallback_names_issue_and_activity_in_japanese():
    answer = decide_fallback(
        {"issue_type": "billing", "tenure_months": 2, "channel": "chat"}, language="ja"
    )
    text = " ".join(answer["reasons"])
    assert "問い合わせ種別 請求" in text
    assert any(f"「{name}」が適しています" in text for name in ACTIVITY_NAMES["ja"].values())
    assert not IDS.search(text), text
    english = " ".join(decide_fallback({"issue_type": "billing", "tenure_months": 2})["reasons"])
    assert "issue type billing" in english
    assert any(f"favours “{name}”" in english for name in ACTIVITY_NAMES["en"].values())


def test_a_declined_activity_is_named_in_both_languages():
    history = HistorySummary(declined_days_ago={"advise_new_uses": 2.0})
    for language, name in (("ja", "「新しい使い方のご提案」"), ("en", "“Advise on new uses”")):
        reasons = evaluate(ContactPolicy(decline_days=14), history, language=language).reasons
        assert len(reasons) == 1 and name in reasons[0] and not IDS.search(reasons[0])


def test_a_continued_contact_names_the_earlier_channel_and_issue_in_japanese(client, keys, new_id):
    customer = new_id("c-")
    for channel, interaction in (("chat", new_id("i-")), ("voice", new_id("i-"))):
        body = {
            "interaction_id": interaction,
            "customer": {"customer_id": customer, "tenure_months": 4},
            "contact": {"channel": channel, "issue_type": "how_to", "language": "ja"},
        }
        answer = client.post("/v1/decisions", json=body, headers=keys["desktop"])
        assert answer.status_code == 201, answer.json
    notes = [r for r in answer.json["reasons"] if "続き" in r]
    assert notes and "チャット でのお問い合わせの続きです（内容: 使い方）" in notes[0], notes
