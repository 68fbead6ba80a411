"""An outcome (or event) retried with the same facts, spelled otherwise, is the stored one.

An outbox retry may be serialised differently from the first post: a null sent for a
field left out, the default activity or pool spelled out, the derived ``ve_success``
given. Each was a 409 ``outcome_exists`` with empty ``fields``, which the desktop client
takes as a permanent refusal. Now the comparison is of what would be stored: the same
facts answer 200 with the stored outcome, a real difference is still a 409 and names
the fields that differ.
"""

from __future__ import annotations

import sqlalchemy as sa
from test_api_outcomes_events import CONTACT_TIME, make_decision

from service.db import customer_events, outcomes


def _count(app, table, column, value) -> int:
    with app.extensions["vea"].engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(table).where(column == value)
        ).scalar_one()


def test_a_retry_of_the_same_facts_spelled_otherwise_is_the_stored_outcome(
    app, client, keys, new_id
):
    decision = make_decision(client, keys["desktop"], new_id)
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    first = client.post(url, json={"offered": False}, headers=keys["desktop"])
    assert first.status_code == 201, first.json
    retries = [
        {"accepted": None},
        {"csat": None},
        {"agent_id": None},
        {"pool_id": None},
        {"ve_success": None},
        {"occurred_at": None},
        {"activity": decision["suggested_activity"]},  # the default that was stored
        {"pool_id": first.json["pool_id"]} if first.json["pool_id"] else {},
        {"accepted": None, "csat": None, "nps": None, "resolved": None},
    ]
    for extra in retries:
        again = client.post(url, json={"offered": False, **extra}, headers=keys["desktop"])
        assert again.status_code == 200, (extra, again.json)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json == first.json
    assert _count(app, outcomes, outcomes.c.decision_id, decision["decision_id"]) == 1


def test_the_derived_ve_success_spelled_out_is_the_same_outcome(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id)
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    sent = {"offered": False, "ves_confidence": 7, "ves_ability": 7}
    first = client.post(url, json=sent, headers=keys["desktop"])
    assert first.status_code == 201 and first.json["ve_success"] is True
    again = client.post(url, json={**sent, "ve_success": True}, headers=keys["desktop"])
    assert again.status_code == 200, again.json
    assert again.json == first.json


def test_a_real_difference_is_409_naming_each_field_that_differs(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id, occurred_at=CONTACT_TIME)
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    sent = {"offered": False, "csat": 4, "ves_confidence": 7, "ves_ability": 7}
    assert client.post(url, json=sent, headers=keys["desktop"]).status_code == 201

    changed = {**sent, "csat": 2, "agent_id": "a-9", "ve_success": False}
    conflict = client.post(url, json=changed, headers=keys["desktop"])
    assert conflict.status_code == 409, conflict.json
    error = conflict.json["error"]
    assert error["code"] == "outcome_exists"
    assert error["fields"] == {
        "csat": ["4 is already recorded"],
        "agent_id": ["already recorded without a value"],
        "ve_success": ["true is already recorded"],
    }
    # A null for an answer that was given is a difference too (it would store none).
    dropped = client.post(url, json={**sent, "csat": None}, headers=keys["desktop"])
    assert dropped.status_code == 409
    assert dropped.json["error"]["fields"] == {"csat": ["4 is already recorded"]}
    # Stored without a time (recorded then): a retry naming another time differs.
    timed = client.post(
        url, json={**sent, "occurred_at": "2025-03-01T10:00:00+09:00"}, headers=keys["desktop"]
    )
    assert timed.status_code == 409
    assert list(timed.json["error"]["fields"]) == ["occurred_at"]


def test_a_retry_matches_an_outcome_the_survey_filled_in_later(client, keys, new_id):
    """The survey's answers, posted after the outcome, are in the stored row; the
    agent's retry without them (or with them) is still the same outcome."""
    decision = make_decision(client, keys["desktop"], new_id)
    base = f"/v1/decisions/{decision['decision_id']}"
    first = client.post(f"{base}/outcome", json={"offered": False}, headers=keys["desktop"])
    assert first.status_code == 201
    survey = {"ves_confidence": 7, "ves_ability": 6, "csat": 4}
    assert client.post(f"{base}/survey", json=survey, headers=keys["desktop"]).status_code == 201
    filled = client.get(base, headers=keys["desktop"]).json["outcome"]
    assert filled["ve_success"] is True and filled["csat"] == 4

    for sent in ({"offered": False}, {"offered": False, **survey, "ve_success": True}):
        again = client.post(f"{base}/outcome", json=sent, headers=keys["desktop"])
        assert again.status_code == 200, (sent, again.json)
        assert again.json == filled
    other = client.post(
        f"{base}/outcome", json={"offered": False, "csat": 3}, headers=keys["desktop"]
    )
    assert other.status_code == 409
    assert other.json["error"]["fields"] == {"csat": ["4 is already recorded"]}


def test_a_concurrent_twin_spelled_otherwise_answers_the_stored_outcome(
    app, client, keys, new_id, monkeypatch
):
    """The twin's insert hits the unique key (its look-up saw nothing yet): read back,
    the same facts are the stored outcome, not a 409."""
    from service import decisions

    decision = make_decision(client, keys["desktop"], new_id)
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    first = client.post(url, json={"offered": False}, headers=keys["desktop"])
    real, calls = decisions._existing_outcome, []

    def twin(*args):
        calls.append(args)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(decisions, "_existing_outcome", twin)
    again = client.post(url, json={"offered": False, "accepted": None}, headers=keys["desktop"])
    assert len(calls) == 2
    assert again.status_code == 200, again.json
    assert again.json == first.json


def test_an_event_retried_with_an_explicit_null_is_the_stored_event(app, client, keys, new_id):
    customer = new_id("c-")
    url = f"/v1/customers/{customer}/events"
    event = {"type": "upgraded", "event_id": "crm-1"}
    first = client.post(url, json=event, headers=keys["desktop"])
    assert first.status_code == 201
    again = client.post(url, json={**event, "value": None}, headers=keys["desktop"])
    assert again.status_code == 200, again.json
    assert again.json == first.json
    other = client.post(url, json={**event, "value": 12.5}, headers=keys["desktop"])
    assert other.status_code == 409
    assert other.json["error"]["code"] == "event_exists"
    assert other.json["error"]["fields"] == {"value": ["already recorded without a value"]}
    assert _count(app, customer_events, customer_events.c.customer_id, customer) == 1
