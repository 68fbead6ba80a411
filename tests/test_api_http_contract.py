"""The API as an integrator's HTTP client meets it, on SQLite and PostgreSQL: bodies
at the edge of what JSON allows, query strings, and twins of one request at once."""

from __future__ import annotations

import orjson
import pytest
from test_api_decisions import decision_body
from test_api_outcomes_events import make_decision

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
