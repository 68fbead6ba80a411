"""GET /v1/decisions/{decision_id}: the stored answer and its outcome."""

from __future__ import annotations

from test_api_outcomes_events import FULL_OUTCOME, make_decision


def test_a_stored_decision_reads_back_with_its_outcome(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id)
    path = f"/v1/decisions/{decision['decision_id']}"

    before = client.get(path, headers=keys["desktop"])
    assert before.status_code == 200, before.json
    assert before.json == {"decision": decision, "outcome": None, "survey": None}

    outcome = {**FULL_OUTCOME, "occurred_at": None}
    recorded = client.post(f"{path}/outcome", json=outcome, headers=keys["desktop"])
    assert recorded.status_code == 201, recorded.json
    after = client.get(path, headers=keys["admin"])
    assert after.status_code == 200
    assert after.json["decision"] == decision
    assert after.json["outcome"] == recorded.json


def test_reading_a_decision_needs_a_desktop_key_and_a_known_id(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id)
    path = f"/v1/decisions/{decision['decision_id']}"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=keys["manager"]).status_code == 403
    missing = client.get("/v1/decisions/0123456789abcdef", headers=keys["desktop"])
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    too_long = client.get("/v1/decisions/" + "x" * 33, headers=keys["desktop"])
    assert too_long.status_code == 422 and "decision_id" in too_long.json["error"]["fields"]


def test_reading_a_decision_while_the_database_is_down_is_503(app, keys, new_id, tmp_path):
    from test_api_decisions import unreachable_url

    from service.db import make_engine

    client = app.test_client()
    decision = make_decision(client, keys["desktop"], new_id)  # the key is now cached
    state = app.extensions["vea"]
    state.engine = make_engine(unreachable_url(str(state.engine.url), tmp_path))
    down = client.get(f"/v1/decisions/{decision['decision_id']}", headers=keys["desktop"])
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.json["error"]["code"] == "unavailable"


def test_api_answers_are_never_cached(client, keys, new_id):
    decision = make_decision(client, keys["desktop"], new_id)
    answer = client.get(f"/v1/decisions/{decision['decision_id']}", headers=keys["desktop"])
    assert answer.headers["Cache-Control"] == "no-store"
    error = client.get("/v1/decisions/unknown", headers=keys["desktop"])
    assert error.status_code == 404 and error.headers["Cache-Control"] == "no-store"
    for sent in (answer, error):  # an answer quoting input is never sniffed into a page
        assert sent.headers["X-Content-Type-Options"] == "nosniff"
