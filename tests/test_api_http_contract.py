"""The API as an integrator's HTTP client meets it, on SQLite and PostgreSQL: bodies
at the edge of what JSON allows, query strings, and twins of one request at once."""

from __future__ import annotations

import threading
from datetime import datetime

import orjson
import pytest
import sqlalchemy as sa
from test_api_decisions import decision_body
from test_api_outcomes_events import CONTACT_TIME, make_decision

from service.db import decisions, outcomes

DEPTH = 1000  # orjson reads bodies nested up to 1024 levels


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def json_headers(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/json"}


@pytest.mark.parametrize("where", ["top", "customer", "features"])
def test_a_deeply_nested_decision_body_is_422_not_500(client, keys, new_id, where):
    """A value nested hundreds of levels deep exhausted Python's stack while the body
    was checked for control characters: a 500."""
    body = decision_body(new_id)
    target = {"top": body, "customer": body["customer"], "features": body}
    target[where]["x" if where != "features" else "features"] = "NESTED"
    data = orjson.dumps(body).decode().replace('"NESTED"', nested(DEPTH))
    response = client.post("/v1/decisions", data=data, headers=json_headers(keys["desktop"]))
    assert response.status_code == 422, response.json
    assert set(response.json["error"]) == {"code", "message", "fields"}


@pytest.mark.parametrize("path", ["outcome", "survey", "events"])
def test_deeply_nested_bodies_after_the_decision_are_422(client, keys, new_id, path):
    decision = make_decision(client, keys["desktop"], new_id)
    url = {
        "outcome": f"/v1/decisions/{decision['decision_id']}/outcome",
        "survey": f"/v1/decisions/{decision['decision_id']}/survey",
        "events": f"/v1/customers/{new_id('c-')}/events",
    }[path]
    fields = '"offered": true, "type": "renewed", "ves_confidence": 6'
    data = f'{{{fields}, "x": {nested(DEPTH)}}}'
    response = client.post(url, data=data, headers=json_headers(keys["desktop"]))
    assert response.status_code == 422, response.json


def test_an_unknown_query_parameter_is_422_and_nothing_is_stored(client, keys, new_id):
    """`POST /v1/decisions?dry_run=1` stored the decision: a parameter no endpoint takes
    was ignored in silence (the reports and the audit log already refused them)."""
    body = decision_body(new_id)
    refused = client.post("/v1/decisions?dry_run=1", json=body, headers=keys["desktop"])
    assert refused.status_code == 422, refused.json
    assert refused.json["error"]["fields"] == {"dry_run": ["Unknown field."]}
    assert client.post("/v1/decisions", json=body, headers=keys["desktop"]).status_code == 201


def test_every_endpoint_without_query_parameters_refuses_them(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id)
    url = f"/v1/decisions/{decision['decision_id']}"
    calls = [
        (client.get, url, keys["desktop"]),
        (client.post, url + "/outcome", keys["desktop"]),
        (client.post, url + "/survey", keys["desktop"]),
        (client.post, f"/v1/customers/{new_id('c-')}/events", keys["desktop"]),
        (client.get, f"/v1/customers/{new_id('c-')}", keys["admin"]),
        (client.delete, f"/v1/customers/{new_id('c-')}", keys["admin"]),
        (client.get, "/v1/models", keys["admin"]),
        (client.post, "/v1/models/rollback", keys["admin"]),
        (client.delete, "/v1/models/shadow", keys["admin"]),
    ]
    for call, path, headers in calls:
        response = call(path + "?page=2", json={}, headers=headers)
        assert response.status_code == 422, (path, response.json)
        assert response.json["error"]["fields"] == {"page": ["Unknown field."]}, path
    stored = client.get(url, headers=keys["desktop"]).json
    assert stored["outcome"] is None and stored["survey"] is None


def test_the_documented_answers_are_the_real_ones(client, keys, new_id):
    """Every operation lists 400 (a body or path that does not read), and 415 only where
    a body is read: it listed 415 for reads that never parse a body, and no 400."""
    document = client.get("/openapi.json").json
    decision = make_decision(client, keys["desktop"], new_id)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters" or "401" not in operation["responses"]:
                continue  # /healthz, /readyz, /metrics: no key, no body
            takes_body = "requestBody" in operation
            assert "400" in operation["responses"], (method, path)
            assert ("415" in operation["responses"]) == takes_body, (method, path)
            url = (
                path.replace("{decision_id}", decision["decision_id"])
                .replace("{customer_id}", new_id("c-"))
                .replace("{version}", "no-such-version")
                .replace("{pool}", "general")
            )
            call = getattr(client, method)
            malformed = call(url, data="{", headers=json_headers(keys["admin"]))
            if takes_body:
                assert malformed.status_code == 400, (method, path, malformed.json)
                as_text = {**keys["admin"], "Content-Type": "text/plain"}
                assert call(url, data="{}", headers=as_text).status_code == 415, (method, path)
            else:
                assert malformed.status_code != 415, (method, path)


def _dumped(part: dict) -> str:
    return orjson.dumps(part).decode()[1:-1]  # the members, without the braces


@pytest.mark.parametrize("where", ["top", "customer", "contact"])
def test_a_key_twice_in_one_object_is_400_and_nothing_is_stored(client, keys, new_id, where):
    """orjson keeps a repeated key's last value: the decision was stored for the last
    interaction_id while the caller's own parser (or a gateway's) may have read the
    first."""
    body = decision_body(new_id)
    customer, contact = _dumped(body["customer"]), _dumped(body["contact"])
    first = f'"interaction_id": "{new_id("i-")}", ' if where == "top" else ""
    if where == "customer":
        customer = f'"customer_id": "{new_id("c-")}", {customer}'
    if where == "contact":  # a colon in a time's text, spaces before the member's colon
        contact = f'"occurred_at": "2026-01-01T09:00:00Z", "channel" : "voice" , {contact}'
    data = (
        f'{{{first}"interaction_id": "{body["interaction_id"]}", '
        f'"customer": {{{customer}}}, "contact": {{{contact}}}}}'
    )
    response = client.post("/v1/decisions", data=data, headers=json_headers(keys["desktop"]))
    assert response.status_code == 400, response.json
    assert "twice" in response.json["error"]["message"], response.json
    assert client.post("/v1/decisions", json=body, headers=keys["desktop"]).status_code == 201


def test_colons_in_strings_are_no_duplicate_keys(client, keys, new_id):
    body = decision_body(new_id, occurred_at="2026-01-01T09:00:00+09:00")
    body["features"] = {"note": "a: b: c", "url": "https://example.com:8443/x"}
    assert client.post("/v1/decisions", json=body, headers=keys["desktop"]).status_code == 201


def test_a_deep_body_with_colons_in_its_strings_is_4xx(client, keys, new_id):
    # Such a body also goes through the exact duplicate-key check, which recurses.
    data = f'{{"interaction_id": "a:b", "x": {nested(DEPTH)}}}'
    response = client.post("/v1/decisions", data=data, headers=json_headers(keys["desktop"]))
    assert response.status_code in (400, 422), response.json


@pytest.mark.parametrize(
    "customer_id, problem",
    [
        ("c-\u200b{tag}", "invisible"),  # zero-width space
        ("c-\u202e{tag}", "invisible"),  # right-to-left override
        ("\ufeffc-{tag}", "invisible"),  # byte order mark
        ("c-\u0085{tag}", "invisible"),  # next line (C1 control)
        ("c-\u2028{tag}", "invisible"),  # line separator
        ("c-{tag} ", "whitespace"),
        ("\u00a0c-{tag}", "whitespace"),  # no-break space
        ("cliente-Jose\u0301-{tag}", "NFC"),  # e + combining acute accent
    ],
)
def test_ids_that_only_look_alike_are_refused(client, keys, new_id, customer_id, problem):
    """`José` in NFD, a zero-width space or a padding space made another customer in
    silence: the second contact saw none of the first one's history."""
    body = decision_body(new_id, customer_id=customer_id.format(tag=new_id()))
    response = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert response.status_code == 422, response.json
    (message,) = response.json["error"]["fields"]["customer"]["customer_id"]
    assert problem in message
    events = f"/v1/customers/{body['customer']['customer_id']}/events"
    event = client.post(events, json={"type": "renewed"}, headers=keys["desktop"])
    assert event.status_code == 422, event.json


def test_ids_in_nfc_in_any_script_are_taken(client, keys, new_id):
    decision = make_decision(
        client, keys["desktop"], new_id, customer_id=f"José-山田-👍-{new_id()}"
    )
    body = {"offered": False, "agent_id": "agent-ÅSA"}
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    assert client.post(url, json=body, headers=keys["desktop"]).status_code == 201
    refused = client.post(
        url, json={**body, "agent_id": "agent-A\u030asa"}, headers=keys["desktop"]
    )
    assert refused.status_code == 422 and "NFC" in str(refused.json["error"]["fields"])


def test_a_customer_stored_with_an_invisible_character_can_still_be_read_and_erased(
    app, client, keys, new_id
):
    """Ids stored before the rule are still reachable for the customer's rights."""
    from service.db import customer_events

    customer = f"c-\u200b{new_id()}"
    with app.extensions["vea"].engine.begin() as conn:
        conn.execute(
            customer_events.insert().values(
                customer_id=customer,
                type="renewed",
                occurred_at=datetime(2026, 1, 1),
                recorded_at=datetime(2026, 1, 1),
                payload={},
            )
        )
    path = f"/v1/customers/{customer}"
    assert len(client.get(path, headers=keys["admin"]).json["events"]) == 1
    erased = client.delete(path, headers=keys["admin"])
    assert erased.status_code == 200 and erased.json["deleted"]["events"] == 1


def _at_once(count: int, call) -> list:
    """``call(i)`` from ``count`` threads released together; the answers in order."""
    start = threading.Barrier(count)
    answers: list = [None] * count

    def run(index: int) -> None:
        start.wait()
        answers[index] = call(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_one_interaction_sent_ten_times_at_once_is_one_decision(app, keys, new_id):
    body = decision_body(new_id)
    answers = _at_once(
        10,
        lambda _: app.test_client().post("/v1/decisions", json=body, headers=keys["desktop"]),
    )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201]
    assert len({orjson.dumps(a.json, option=orjson.OPT_SORT_KEYS) for a in answers}) == 1
    assert all(
        a.headers.get("Idempotent-Replayed") == "true" for a in answers if a.status_code == 200
    )
    with app.extensions["vea"].engine.connect() as conn:
        stored = conn.execute(
            sa.select(sa.func.count())
            .select_from(decisions)
            .where(decisions.c.interaction_id == body["interaction_id"])
        ).scalar_one()
    assert stored == 1


def test_one_outcome_sent_twice_at_once_is_stored_once(app, client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id)
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    outcome = {"offered": True, "accepted": True, "agent_id": "a-1", "handle_time_s": 90}
    answers = _at_once(
        2, lambda _: app.test_client().post(url, json=outcome, headers=keys["desktop"])
    )
    assert sorted(a.status_code for a in answers) == [200, 201]
    assert answers[0].json == answers[1].json
    with app.extensions["vea"].engine.connect() as conn:
        stored = conn.execute(
            sa.select(sa.func.count())
            .select_from(outcomes)
            .where(outcomes.c.decision_id == decision["decision_id"])
        ).scalar_one()
    assert stored == 1


def test_a_trailing_slash_or_a_wrong_method_is_answered_with_what_to_use(client, keys, new_id):
    """Both answered Werkzeug's prose ("The requested URL was not found on the server.
    If you entered the URL manually please check your spelling..."), naming neither
    the path asked for nor the one meant."""
    body = decision_body(new_id)
    slashed = client.post("/v1/decisions/", json=body, headers=keys["desktop"])
    assert slashed.status_code == 404
    assert slashed.json["error"]["message"] == (
        "no endpoint at /v1/decisions/: without the trailing slash, /v1/decisions"
    )
    assert client.get("/v1/nothing").json["error"]["message"] == "no endpoint at /v1/nothing"
    wrong = client.get("/v1/decisions", headers=keys["desktop"])
    assert wrong.status_code == 405 and wrong.headers["Allow"]
    assert wrong.json["error"]["message"] == "GET is not allowed on /v1/decisions: use POST"
    assert client.post("/v1/decisions", json=body, headers=keys["desktop"]).status_code == 201


def test_a_time_sent_back_as_it_was_answered_is_the_same_time(client, keys, new_id):
    """A time with microseconds was stored so and shown to the millisecond; sending the
    shown time back (a survey system reconciling what it read) was a 409 saying that
    very time "is already recorded"."""
    decision = make_decision(client, keys["desktop"], new_id, occurred_at=CONTACT_TIME)
    url = f"/v1/decisions/{decision['decision_id']}"
    survey = {"csat": 5, "answered_at": "2025-03-01T08:00:00.123456Z"}
    answered = client.post(url + "/survey", json=survey, headers=keys["desktop"])
    assert (
        answered.status_code == 201 and answered.json["answered_at"] == "2025-03-01T08:00:00.123Z"
    )
    again = client.post(
        url + "/survey",
        json={**survey, "answered_at": answered.json["answered_at"]},
        headers=keys["desktop"],
    )
    assert again.status_code == 200, again.json
    outcome = {"offered": False, "occurred_at": "2025-03-01T10:05:00.987654+09:00"}
    recorded = client.post(url + "/outcome", json=outcome, headers=keys["desktop"])
    assert recorded.status_code == 201
    shown = {**outcome, "occurred_at": recorded.json["occurred_at"]}
    assert client.post(url + "/outcome", json=shown, headers=keys["desktop"]).status_code == 200
    events = f"/v1/customers/{new_id('c-')}/events"
    event = {"type": "renewed", "event_id": "e-1", "occurred_at": "2026-11-27T08:00:00.000999Z"}
    stored = client.post(events, json=event, headers=keys["desktop"])
    assert stored.status_code == 201
    shown = {**event, "occurred_at": stored.json["occurred_at"]}
    assert client.post(events, json=shown, headers=keys["desktop"]).status_code == 200


def test_the_document_names_the_headers_an_integrator_acts_on(client, keys, new_id):
    """Retry-After (on every 429 and 503) and Idempotent-Replayed were only in prose;
    two views' own 503 also hid the shared one's description."""
    document = client.get("/openapi.json").json
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters" or not (path.startswith("/v1/") or path == "/readyz"):
                continue
            for status in ("429", "503"):
                if status in operation["responses"]:
                    assert "Retry-After" in operation["responses"][status]["headers"], (
                        method,
                        path,
                        status,
                    )
    writes = {
        "/v1/decisions": "post",
        "/v1/decisions/{decision_id}/outcome": "post",
        "/v1/decisions/{decision_id}/survey": "post",
        "/v1/customers/{customer_id}/events": "post",
    }
    for path, method in writes.items():
        replay = document["paths"][path][method]["responses"]["200"]
        assert "Idempotent-Replayed" in replay["headers"], path
    decision = make_decision(client, keys["desktop"], new_id, occurred_at=CONTACT_TIME)
    url = f"/v1/decisions/{decision['decision_id']}/survey"
    for status in (201, 200):
        answer = client.post(url, json={"csat": 4}, headers=keys["desktop"])
        assert answer.status_code == status
    assert answer.headers["Idempotent-Replayed"] == "true"
