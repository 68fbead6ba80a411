"""The desk's outcome buttons get the API's error format: code, message, fields."""

from __future__ import annotations

from tests.test_pages import _decision_id, desk_client, desk_url  # noqa: F401 - a fixture

ERROR_KEYS = {"code", "message", "fields"}


def test_desk_outcome_errors_are_in_the_designs_format(desk_client):  # noqa: F811
    decision_id = _decision_id(desk_client.get(desk_url()).get_data(as_text=True))
    headers = {"X-CSRF-Token": desk_client.csrf}

    def post(**kwargs):
        answer = desk_client.post("/desk/outcome", headers=headers, **kwargs)
        assert set(answer.get_json()["error"]) == ERROR_KEYS, answer.get_json()
        return answer.status_code, answer.get_json()["error"]

    status, error = post(json={"decision_id": decision_id, "status": "maybe"})
    assert (status, error["code"]) == (422, "validation_error") and "status" in error["fields"]
    status, error = post(json={"decision_id": decision_id, "status": "accepted", "ves_ability": 9})
    assert status == 422 and "ves_ability" in error["fields"]
    assert error["message"].startswith("ves_ability: ")  # the page shows it as it is
    status, error = post(data=b'{"status": "\\ud800"}', content_type="application/json")
    assert (status, error["code"]) == (400, "bad_request")
    status, error = post(data=b"status=offered", content_type="text/plain")
    assert status == 400
    status, error = post(json={"decision_id": "f" * 32, "status": "offered"})
    assert (status, error["code"]) == (404, "not_found")
    good = desk_client.post(
        "/desk/outcome", headers=headers, json={"decision_id": decision_id, "status": "offered"}
    )
    assert good.status_code == 201, good.get_json()


def test_switching_the_desks_language_reopens_the_decision(app, desk_client):  # noqa: F811
    import sqlalchemy as sa

    from service.db import decisions

    url = desk_url()
    english = desk_client.get(url + "&lang=en").get_data(as_text=True)
    decision_id = _decision_id(english)
    with app.extensions["vea"].engine.connect() as conn:
        before = conn.execute(
            sa.select(decisions.c.request_hash, decisions.c.response).where(
                decisions.c.decision_id == decision_id
            )
        ).one()
    japanese = desk_client.get(url + "&lang=ja").get_data(as_text=True)
    assert _decision_id(japanese) == decision_id and 'lang="ja"' in japanese
    with app.extensions["vea"].engine.connect() as conn:
        after = conn.execute(
            sa.select(decisions.c.request_hash, decisions.c.response).where(
                decisions.c.decision_id == decision_id
            )
        ).one()
    assert after == before  # re-opened, not decided again
    # Changed contact details do decide again, in the language first used.
    changed = desk_client.get(url.replace("issue_type=inquiry", "issue_type=billing") + "&lang=ja")
    assert _decision_id(changed.get_data(as_text=True)) == decision_id
    with app.extensions["vea"].engine.connect() as conn:
        row = conn.execute(
            sa.select(decisions.c.issue_type, decisions.c.language).where(
                decisions.c.decision_id == decision_id
            )
        ).one()
    assert (row.issue_type, row.language) == ("billing", "en")


def test_the_desk_refuses_an_outcome_for_a_suggestion_that_changed(app, desk_client, keys):  # noqa: F811
    import re

    url = desk_url(issue_type="how_to", sentiment="0.5")
    page = desk_client.get(url + "&lang=en").get_data(as_text=True)
    decision_id = _decision_id(page)
    shown = re.search(r'data-shown-activity="([a-z_]+)"', page).group(1)
    assert shown != "none", "the first suggestion must be an activity"
    params = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
    # The desktop calls again: a complaint with strong negative sentiment now.
    again = desk_client.post(
        "/v1/decisions",
        json={
            "interaction_id": params["interaction_id"],
            "customer": {"customer_id": params["customer_id"], "segment": "premium",
                         "tenure_months": 2.0},
            "contact": {"channel": "chat", "issue_type": "complaint", "sentiment": -0.9,
                        "language": "en"},
        },
        headers=keys["desktop"],
    )  # fmt: skip
    assert again.status_code == 200 and again.json["suggested_activity"] == "none"
    headers = {"X-CSRF-Token": desk_client.csrf}
    stale = desk_client.post(
        "/desk/outcome",
        headers=headers,
        json={"decision_id": decision_id, "status": "accepted", "shown_activity": shown},
    )
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "decision_changed"
    fresh = desk_client.post(
        "/desk/outcome",
        headers=headers,
        json={"decision_id": decision_id, "status": "skipped", "shown_activity": "none"},
    )
    assert fresh.status_code == 201, fresh.get_json()
