"""Outcomes and customer events: stored once, idempotent retries, 404/409/422."""

from __future__ import annotations

import sqlalchemy as sa

from service.db import customer_events


def make_decision(client, headers, new_id, customer_id=None, occurred_at=None):
    contact = {"channel": "voice", "issue_type": "how_to"}
    if occurred_at:
        contact["occurred_at"] = occurred_at
    body = {
        "interaction_id": new_id("i-"),
        "customer": {"customer_id": customer_id or new_id("c-"), "tenure_months": 4},
        "contact": contact,
    }
    response = client.post("/v1/decisions", json=body, headers=headers)
    assert response.status_code == 201
    return response.json


CONTACT_TIME = "2025-03-01T09:40:00+09:00"  # FULL_OUTCOME happened 20 minutes later
FULL_OUTCOME = {
    "activity": "educate_usage",
    "offered": True,
    "accepted": True,
    "ves_confidence": 7,
    "ves_ability": 6,
    "resolved": True,
    "handle_time_s": 312.5,
    "csat": 5,
    "agent_id": "agent-17",
    "occurred_at": "2025-03-01T10:00:00+09:00",
}


def test_outcome_is_recorded_with_derived_success(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id, occurred_at=CONTACT_TIME)
    response = client.post(
        f"/v1/decisions/{decision['decision_id']}/outcome",
        json=FULL_OUTCOME,
        headers=keys["desktop"],
    )
    assert response.status_code == 201, response.json
    outcome = response.json
    assert outcome["ve_success"] is True  # top-2-box on both VES items
    assert outcome["activity"] == "educate_usage"
    assert outcome["occurred_at"].startswith("2025-03-01T01:00:00")  # stored in UTC
    assert outcome["pool_id"] == decision["route"]["pool"]


def test_outcome_defaults_to_the_suggested_activity(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id)
    outcome = client.post(
        f"/v1/decisions/{decision['decision_id']}/outcome",
        json={"offered": False},
        headers=keys["desktop"],
    ).json
    assert outcome["activity"] == decision["suggested_activity"]
    assert outcome["ve_success"] is None


def test_repeated_outcome_is_idempotent_and_never_double_counted(app, client, keys, new_id):
    from service.db import outcomes

    decision = make_decision(client, keys["desktop"], new_id, occurred_at=CONTACT_TIME)
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    first = client.post(url, json=FULL_OUTCOME, headers=keys["desktop"])
    again = client.post(url, json=FULL_OUTCOME, headers=keys["desktop"])
    assert first.status_code == 201 and again.status_code == 200
    assert again.json == first.json
    different = client.post(url, json={**FULL_OUTCOME, "csat": 1}, headers=keys["desktop"])
    assert different.status_code == 409
    assert different.json["error"]["code"] == "outcome_exists"
    with app.extensions["vea"].engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(outcomes)
            .where(outcomes.c.decision_id == decision["decision_id"])
        ).scalar_one()
    assert count == 1


def test_outcome_for_unknown_decision_is_404(client, keys):
    response = client.post(
        "/v1/decisions/0123456789abcdef/outcome", json={"offered": False}, headers=keys["desktop"]
    )
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_outcome_path_too_long_is_422(client, keys):
    response = client.post(
        f"/v1/decisions/{'a' * 40}/outcome", json={"offered": False}, headers=keys["desktop"]
    )
    assert response.status_code == 422
    assert response.json["error"]["message"] == "request parameters failed validation"


def test_a_customer_id_in_the_path_is_checked_as_in_a_decision(app, client, keys):
    """NUL answered 500 on PostgreSQL (and was stored on SQLite), a carriage return was
    stored (it splits an exported CSV row): 422 like the same id in a decision body."""
    for path_id in ("a%00b", "a%0Db", "a" * 129):
        response = client.post(
            f"/v1/customers/{path_id}/events", json={"type": "renewed"}, headers=keys["desktop"]
        )
        assert response.status_code == 422, (path_id, response.json)
        assert response.json["error"]["code"] == "validation_error"
    with app.extensions["vea"].engine.connect() as conn:
        ids = conn.execute(sa.select(customer_events.c.customer_id)).scalars().all()
    assert not [i for i in ids if "\x00" in i or "\r" in i or len(i) > 128]


def test_a_path_of_invalid_utf8_is_400_and_nothing_is_stored(app, client, keys):
    # A server hands the path's raw bytes to the app as latin-1 (the test client would
    # have replaced them already), here the bytes of %ed%a0%80: a UTF-16 surrogate.
    response = client.post(
        "/v1/customers/x/events",
        json={"type": "renewed"},
        headers=keys["desktop"],
        environ_overrides={"PATH_INFO": "/v1/customers/\xed\xa0\x80/events"},
    )
    assert response.status_code == 400, response.json
    assert response.json["error"]["message"] == "the URL is not valid UTF-8"
    query = client.get("/desk?interaction_id=x%ff&customer_id=c&channel=chat")
    assert query.status_code == 400  # a desk link: the id would be stored as U+FFFD
    with app.extensions["vea"].engine.connect() as conn:
        mangled = customer_events.c.customer_id.contains("\ufffd")  # what it was stored as
        assert conn.execute(sa.select(sa.func.count()).where(mangled)).scalar() == 0
    japanese = client.post(
        "/v1/customers/%E9%A1%A7%E5%AE%A2-1/events",
        json={"type": "renewed"},
        headers=keys["desktop"],
    )
    assert japanese.status_code == 201 and japanese.json["customer_id"] == "顧客-1"


def test_offered_on_a_decision_that_suggested_nothing_must_name_the_activity(client, keys, new_id):
    body = {
        "interaction_id": new_id(),
        "customer": {"customer_id": new_id("c-"), "tenure_months": 3},
        "contact": {"channel": "voice", "issue_type": "complaint", "sentiment": -0.9},
    }
    decision = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    assert decision["suggested_activity"] == "none"
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    vague = client.post(url, json={"offered": True, "accepted": True}, headers=keys["desktop"])
    assert vague.status_code == 422 and "activity" in vague.json["error"]["fields"]
    named = client.post(
        url,
        json={"offered": True, "accepted": True, "activity": "educate_usage"},
        headers=keys["desktop"],
    )
    assert named.status_code == 201 and named.json["activity"] == "educate_usage"


def test_inconsistent_outcomes_are_422(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id)
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    cases = [
        ({"offered": False, "accepted": True}, "accepted"),
        ({"offered": True, "activity": "none"}, "offered"),
        ({"offered": True, "ves_confidence": 8}, "ves_confidence"),
        ({"offered": True, "csat": 0}, "csat"),
        ({"offered": True, "handle_time_s": -1}, "handle_time_s"),
        ({"offered": True, "activity": "upsell"}, "activity"),
        ({"accepted": False}, "offered"),
        ({"offered": "maybe"}, "offered"),
    ]
    for body, field in cases:
        response = client.post(url, json=body, headers=keys["desktop"])
        assert response.status_code == 422, (body, response.json)
        assert field in response.json["error"]["fields"], (body, response.json)


def test_customer_events_are_recorded_and_linked(client, keys, new_id):
    customer = new_id("c-")
    make_decision(client, keys["desktop"], new_id, customer)
    make_decision(client, keys["desktop"], new_id, customer)
    response = client.post(
        f"/v1/customers/{customer}/events",
        json={"type": "upgraded", "value": 120.0, "event_id": "crm-1"},
        headers=keys["desktop"],
    )
    assert response.status_code == 201, response.json
    event = response.json
    assert event["customer_id"] == customer and event["follows_decisions"] == 2
    again = client.post(
        f"/v1/customers/{customer}/events",
        json={"type": "upgraded", "value": 120.0, "event_id": "crm-1"},
        headers=keys["desktop"],
    )
    assert again.status_code == 200 and again.json == event
    conflict = client.post(
        f"/v1/customers/{customer}/events",
        json={"type": "churned", "event_id": "crm-1"},
        headers=keys["desktop"],
    )
    assert conflict.status_code == 409


def test_events_without_id_are_each_stored(client, keys, new_id):
    customer = new_id("c-")
    ids = {
        client.post(
            f"/v1/customers/{customer}/events", json={"type": "renewed"}, headers=keys["desktop"]
        ).json["id"]
        for _ in range(2)
    }
    assert len(ids) == 2


def test_invalid_events_are_422(client, keys, new_id):
    url = f"/v1/customers/{new_id()}/events"
    for body in ({"type": "exploded"}, {}, {"type": "renewed", "value": "lots"}):
        response = client.post(url, json=body, headers=keys["desktop"])
        assert response.status_code == 422, body
    long_customer = client.post(
        f"/v1/customers/{'c' * 200}/events", json={"type": "renewed"}, headers=keys["desktop"]
    )
    assert long_customer.status_code == 422


def test_nps_and_ces_are_recorded_exported_and_reported(app, client, keys, new_id, tmp_path):
    import pandas as pd

    from service.export import decision_frame
    from service.reports import value

    scores = [(10, 2), (9, 1), (3, 6), (7, None)]  # 2 promoters, 1 detractor, 1 passive
    ids = []
    for nps, ces in scores:
        decision = make_decision(client, keys["desktop"], new_id)
        ids.append(decision["decision_id"])
        outcome = {"offered": False, "nps": nps, "ces": ces, "occurred_at": None}
        response = client.post(
            f"/v1/decisions/{decision['decision_id']}/outcome",
            json=outcome,
            headers=keys["desktop"],
        )
        assert response.status_code == 201, response.json
        assert response.json["nps"] == nps and response.json["ces"] == ces
    for bad in ({"offered": False, "nps": 11}, {"offered": False, "ces": 0},
                {"offered": False, "nps": 7.5}):  # fmt: skip
        decision = make_decision(client, keys["desktop"], new_id)
        response = client.post(
            f"/v1/decisions/{decision['decision_id']}/outcome", json=bad, headers=keys["desktop"]
        )
        assert response.status_code == 422 and response.json["error"]["fields"]

    state = app.extensions["vea"]
    frame = decision_frame(state.engine)
    mine = frame[frame["decision_id"].isin(ids)].set_index("decision_id").loc[ids]
    assert mine["nps"].tolist() == [10.0, 9.0, 3.0, 7.0]
    assert mine["ces"].iloc[:3].tolist() == [2.0, 1.0, 6.0] and pd.isna(mine["ces"].iloc[3])
    report = value(state.engine, state.settings, None, None)
    overall = report["overall"]
    assert overall["nps"] is not None and -100.0 <= overall["nps"] <= 100.0
    assert 1.0 <= overall["ces"] <= 7.0


def test_values_of_the_wrong_json_type_are_422_not_coerced(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id)
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    cases = [
        ({"offered": "yes"}, "offered"),
        ({"offered": 1}, "offered"),
        ({"offered": "on"}, "offered"),
        ({"offered": True, "accepted": "false"}, "accepted"),
        ({"offered": True, "resolved": "n"}, "resolved"),
        ({"offered": True, "csat": "5"}, "csat"),
        ({"offered": True, "csat": True}, "csat"),
        ({"offered": True, "handle_time_s": "200"}, "handle_time_s"),
        ({"offered": True, "handle_time_s": False}, "handle_time_s"),
    ]
    for body, field in cases:
        response = client.post(url, json=body, headers=keys["desktop"])
        assert response.status_code == 422, (body, response.json)
        assert field in response.json["error"]["fields"], (body, response.json)
    fine = client.post(url, json={"offered": False, "handle_time_s": 200}, headers=keys["desktop"])
    assert fine.status_code == 201 and fine.json["handle_time_s"] == 200.0

    customer = {"customer_id": new_id("c-")}
    for extra, field in (
        ({"tenure_months": "3"}, "tenure_months"),
        ({"tenure_months": True}, "tenure_months"),
        ({"prior_contacts_30d": 2.0}, "prior_contacts_30d"),
        ({"prior_contacts_30d": True}, "prior_contacts_30d"),
    ):
        body = {
            "interaction_id": new_id(),
            "customer": {**customer, **extra},
            "contact": {"channel": "chat"},
        }
        response = client.post("/v1/decisions", json=body, headers=keys["desktop"])
        assert response.status_code == 422, (extra, response.json)
        assert field in response.json["error"]["fields"]["customer"], response.json
    events = client.post(
        f"/v1/customers/{new_id()}/events",
        json={"type": "upgraded", "value": "120"},
        headers=keys["desktop"],
    )
    assert events.status_code == 422 and "value" in events.json["error"]["fields"]


def test_outcomes_and_events_cannot_lie_in_the_future(client, keys, new_id):
    from datetime import UTC, datetime, timedelta

    ahead = (datetime.now(UTC) + timedelta(days=200)).isoformat()
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()  # clock skew: fine
    customer = new_id("c-")
    url = f"/v1/customers/{customer}/events"
    late = client.post(url, json={"type": "churned", "occurred_at": ahead}, headers=keys["desktop"])
    assert late.status_code == 422 and "occurred_at" in late.json["error"]["fields"]
    fine = client.post(url, json={"type": "renewed", "occurred_at": soon}, headers=keys["desktop"])
    assert fine.status_code == 201, fine.json
    decision = make_decision(client, keys["desktop"], new_id, customer)
    outcome = client.post(
        f"/v1/decisions/{decision['decision_id']}/outcome",
        json={"offered": False, "occurred_at": ahead},
        headers=keys["desktop"],
    )
    assert outcome.status_code == 422 and "occurred_at" in outcome.json["error"]["fields"]


def test_the_same_instant_in_another_offset_is_the_same_request(client, keys, new_id):
    customer = new_id("c-")
    url = f"/v1/customers/{customer}/events"
    utc = {"type": "renewed", "event_id": new_id("e-"), "occurred_at": "2026-11-20T00:00:00Z"}
    tokyo = {**utc, "occurred_at": "2026-11-20T09:00:00+09:00"}
    assert client.post(url, json=utc, headers=keys["desktop"]).status_code == 201
    again = client.post(url, json=tokyo, headers=keys["desktop"])
    assert again.status_code == 200, again.json

    body = {
        "interaction_id": new_id("i-"),
        "customer": {"customer_id": customer},
        "contact": {"channel": "chat", "occurred_at": "2026-11-20T00:00:00Z"},
    }
    first = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert first.status_code == 201
    body["contact"]["occurred_at"] = "2026-11-20T09:00:00+09:00"
    replay = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true"

    outcome_url = f"/v1/decisions/{first.json['decision_id']}/outcome"
    outcome = {"offered": False, "occurred_at": "2026-11-20T00:10:00Z"}
    assert client.post(outcome_url, json=outcome, headers=keys["desktop"]).status_code == 201
    outcome["occurred_at"] = "2026-11-20T09:10:00+09:00"
    assert client.post(outcome_url, json=outcome, headers=keys["desktop"]).status_code == 200


def test_an_outcome_cannot_predate_its_contact(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id)
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    early = client.post(
        url, json={"offered": False, "occurred_at": "1990-01-01T00:00:00Z"}, headers=keys["desktop"]
    )
    assert early.status_code == 422 and "occurred_at" in early.json["error"]["fields"]
    assert client.post(url, json={"offered": False}, headers=keys["desktop"]).status_code == 201


def _twin_then_outage(monkeypatch, name: str):
    """``service.decisions.<name>`` sees nothing inside the write (a concurrent twin
    commits the same row first, so the insert hits the unique key), then the database
    is gone when the row is read back."""
    from sqlalchemy.exc import OperationalError

    from service import decisions

    calls = []

    def twin(*args):
        calls.append(args)
        if len(calls) == 1:
            return None
        raise OperationalError("SELECT ...", {}, Exception("connection refused"))

    monkeypatch.setattr(decisions, name, twin)
    return calls


def test_a_write_whose_twin_cannot_be_read_back_is_503_and_nothing_is_lost(
    app, client, keys, new_id, monkeypatch
):
    """The read-back after a unique-key clash was outside the 503 mapping: a 500."""
    decision = make_decision(client, keys["desktop"], new_id, occurred_at=CONTACT_TIME)
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    stored = client.post(url, json=FULL_OUTCOME, headers=keys["desktop"])
    customer = new_id("c-")
    events = f"/v1/customers/{customer}/events"
    event = {"type": "renewed", "event_id": "crm-7"}
    assert client.post(events, json=event, headers=keys["desktop"]).status_code == 201
    retry_after = str(app.extensions["vea"].settings.retry_after_s)

    with monkeypatch.context() as patched:
        calls = _twin_then_outage(patched, "_existing_outcome")
        lost = client.post(url, json=FULL_OUTCOME, headers=keys["desktop"])
        assert len(calls) == 2, calls
    assert lost.status_code == 503, lost.json
    assert lost.headers["Retry-After"] == retry_after
    assert lost.json["error"] == {
        "code": "unavailable",
        "message": "database unavailable: the outcome was not stored; retry later",
        "fields": {},
    }
    with monkeypatch.context() as patched:
        calls = _twin_then_outage(patched, "_existing_event")
        lost = client.post(events, json=event, headers=keys["desktop"])
        assert len(calls) == 2, calls
    assert lost.status_code == 503, lost.json
    assert lost.headers["Retry-After"] == retry_after
    assert lost.json["error"]["message"] == (
        "database unavailable: the event was not stored; retry later"
    )

    # The retries find what the first requests stored, once.
    again = client.post(url, json=FULL_OUTCOME, headers=keys["desktop"])
    assert again.status_code == 200 and again.json == stored.json
    assert client.post(events, json=event, headers=keys["desktop"]).status_code == 200
    with app.extensions["vea"].engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(customer_events)
            .where(customer_events.c.customer_id == customer)
        ).scalar_one()
    assert count == 1


def test_an_unreachable_database_answers_503_with_what_was_not_stored(
    app, client, keys, new_id, tmp_path
):
    from test_api_decisions import unreachable_url

    from service.db import make_engine

    decision = make_decision(client, keys["desktop"], new_id)
    state = app.extensions["vea"]
    state.engine = make_engine(unreachable_url(str(state.engine.url), tmp_path))
    for url, body, what in (
        (f"/v1/decisions/{decision['decision_id']}/outcome", {"offered": False}, "outcome"),
        (f"/v1/customers/{new_id('c-')}/events", {"type": "renewed"}, "event"),
    ):
        answer = client.post(url, json=body, headers=keys["desktop"])
        assert answer.status_code == 503, answer.json
        assert answer.headers["Retry-After"] == str(state.settings.retry_after_s)
        assert answer.json["error"]["message"] == (
            f"database unavailable: the {what} was not stored; retry later"
        )
