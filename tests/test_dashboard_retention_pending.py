"""The default 30-day dashboard never has a 60-day retention, so its ROI tiles read "–":
the page says why and what period to choose, in the page's language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.test_pages import log_in, raw_key


def _contact(client, keys, new_id, days_ago: int) -> None:
    when = datetime.now(UTC) - timedelta(days=days_ago)
    body = {
        "interaction_id": new_id("i-"),
        "customer": {"customer_id": new_id("c-"), "tenure_months": 2},
        "contact": {"channel": "chat", "issue_type": "inquiry", "occurred_at": when.isoformat()},
    }
    decision = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert decision.status_code == 201, decision.json
    answer = client.post(
        f"/v1/decisions/{decision.json['decision_id']}/outcome",
        json={"offered": False, "handle_time_s": 300.0},
        headers=keys["desktop"],
    )
    assert answer.status_code == 201, answer.json


def test_a_period_without_any_known_retention_says_why_the_roi_is_empty(client, keys, new_id):
    _contact(client, keys, new_id, days_ago=2)
    log_in(client, raw_key(keys["manager"]))
    english = client.get("/dashboard?period=30&lang=en").get_data(as_text=True)
    assert 'id="retention-pending"' in english
    assert "at least 60 days ago" in english
    japanese = client.get("/dashboard?period=30&lang=ja").get_data(as_text=True)
    assert "60日以上前に終わる期間" in japanese


def test_no_such_words_once_a_retention_is_known(client, keys, new_id):
    _contact(client, keys, new_id, days_ago=70)  # its 60-day window has closed
    log_in(client, raw_key(keys["manager"]))
    page = client.get("/dashboard?period=90").get_data(as_text=True)
    assert 'id="table-uplift"' in page
    assert 'id="retention-pending"' not in page
