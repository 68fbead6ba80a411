"""A decision id with a control character (NUL) from a desk link, the desk's form or its
outcome button: PostgreSQL cannot compare text holding NUL, and the desk answered 500
there (SQLite: 404). Now no such id reaches the database: the desk answers "not found",
on both backends, as the API answers 422."""

from __future__ import annotations

import pytest
from test_pages import desk_client  # noqa: F401 - the signed-in desk

BAD_IDS = ("a\x00b", "\x00", "a\rb")


@pytest.mark.parametrize("decision_id", BAD_IDS)
def test_the_desk_answers_not_found_for_an_id_with_a_control_character(
    desk_client,  # noqa: F811
    decision_id,
):
    opened = desk_client.get("/desk", query_string={"decision_id": decision_id})
    assert opened.status_code == 404, opened.get_data(as_text=True)[:300]
    assert "text/html" in opened.content_type

    posted = desk_client.post(
        "/desk", data={"decision_id": decision_id, "csrf_token": desk_client.csrf}
    )
    assert posted.status_code == 404, posted.get_data(as_text=True)[:300]

    button = desk_client.post(
        "/desk/outcome",
        json={"decision_id": decision_id, "status": "skipped"},
        headers={"X-CSRF-Token": desk_client.csrf},
    )
    assert button.status_code == 404, button.json
    assert button.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("decision_id", ["a%00b", "a%0Db"])
def test_the_api_refuses_a_decision_id_with_a_control_character(client, keys, decision_id):
    for method, path, body in (
        ("get", f"/v1/decisions/{decision_id}", None),
        ("post", f"/v1/decisions/{decision_id}/outcome", {"offered": False}),
        ("post", f"/v1/decisions/{decision_id}/survey", {"csat": 4}),
    ):
        answer = getattr(client, method)(path, json=body, headers=keys["admin"])
        assert answer.status_code == 422, (path, answer.json)
        assert answer.json["error"]["code"] == "validation_error"
