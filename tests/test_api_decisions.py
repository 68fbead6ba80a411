"""POST /v1/decisions on SQLite and PostgreSQL: the answer, idempotency, history and
continuity, contact policies, validation, and degraded modes."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from models.activities import VALUE_ACTIVITIES
from models.reasons import activity_name
from models.schema import MAX_LANGUAGE_TAG
from service.auth import create_key
from service.db import decisions


def decision_body(new_id, customer_id=None, **contact):
    return {
        "interaction_id": new_id("i-"),
        "customer": {
            "customer_id": customer_id or new_id("c-"),
            "segment": "consumer",
            "tenure_months": 2.0,
            "switching_effort": "high",
        },
        "contact": {"channel": "chat", "issue_type": "inquiry", "language": "en", **contact},
    }


def test_decision_answer_has_everything_the_design_lists(client, keys, new_id):
    response = client.post("/v1/decisions", json=decision_body(new_id), headers=keys["desktop"])
    assert response.status_code == 201, response.json
    answer = response.json
    for field in (
        "decision_id", "interaction_id", "model_version", "openness", "activities",
        "suggested_activity", "route", "propensity", "experiment_arm", "degraded", "reasons",
    ):  # fmt: skip
        assert field in answer
    assert set(answer["openness"]) == {"score", "band", "attempt"}
    assert 0.0 <= answer["openness"]["score"] <= 1.0
    assert sorted(a["activity"] for a in answer["activities"]) == sorted(VALUE_ACTIVITIES)
    values = [a["expected_value"] for a in answer["activities"]]
    assert values == sorted(values, reverse=True)
    for item in answer["activities"]:
        assert item["hint"] and isinstance(item["reasons"], list)
        assert 0.0 < item["success_probability"] < 1.0
    assert answer["suggested_activity"] in (*VALUE_ACTIVITIES, "none")
    assert {"pool", "reason", "fallbacks", "ranked", "activity"} <= set(answer["route"])
    assert answer["route"]["fallbacks"][-1:] == ["general"] or answer["route"]["pool"] == "general"
    assert answer["propensity"] == 1.0 and answer["experiment_arm"] == "treatment"
    assert answer["degraded"] is False and answer["stored"] is True
    assert not answer["model_version"].startswith("fallback")
    assert response.headers["X-Request-ID"]


def test_japanese_hints_and_reasons(client, keys, new_id):
    body = decision_body(new_id, language="ja")
    answer = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    assert any(ord(ch) > 0x3000 for ch in answer["activities"][0]["hint"])


def test_the_longest_language_tag_the_api_takes_is_stored(client, keys, new_id):
    """35 characters (MAX_LANGUAGE_TAG): the column held 16, a 500 on PostgreSQL."""
    tag = "de-CH-1996-x-abcdefgh-abcdefgh-abcd"
    assert len(tag) == MAX_LANGUAGE_TAG
    body = decision_body(new_id, language=tag)
    stored = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert stored.status_code == 201, stored.json
    read = client.get(f"/v1/decisions/{stored.json['decision_id']}", headers=keys["desktop"])
    assert read.status_code == 200


def _japanese(text: str) -> bool:
    return any(ord(ch) > 0x3000 for ch in text)


def test_one_language_for_every_agent_facing_text(app, client, keys, new_id):
    """Hints, reasons and the route's reason all follow the agent-facing language (the
    contact's), whatever the customer's, in any spelling of the tag."""
    for tag in ("JA", "ja-jp", "ja_JP"):
        body = decision_body(new_id, language=tag)
        answer = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
        assert _japanese(answer["activities"][0]["hint"]), (tag, answer)
        assert _japanese(answer["route"]["reason"]), (tag, answer["route"])
    complaint = decision_body(new_id, language="ja-JP", issue_type="complaint", sentiment=-0.9)
    answer = client.post("/v1/decisions", json=complaint, headers=keys["desktop"]).json
    assert answer["contact_policy"]["reasons"], answer  # the complaint rule fired
    assert all(_japanese(reason) for reason in answer["contact_policy"]["reasons"])
    body = decision_body(new_id, language="en")
    body["customer"]["language"] = "ja"
    answer = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    assert not _japanese(answer["activities"][0]["hint"])
    assert not _japanese(answer["route"]["reason"]), answer["route"]
    # The model sees the customer's language in its one spelling.
    body = decision_body(new_id, language="en")
    body["customer"]["language"] = "JA"
    decided = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    with app.extensions["vea"].engine.connect() as conn:
        features = conn.execute(
            sa.select(decisions.c.features).where(decisions.c.decision_id == decided["decision_id"])
        ).scalar_one()
    assert features["language"] == "ja"
    bad = decision_body(new_id, language="日本語")
    refused = client.post("/v1/decisions", json=bad, headers=keys["desktop"])
    assert refused.status_code == 422 and "language" in refused.json["error"]["fields"]["contact"]


def test_same_interaction_id_returns_the_stored_decision(app, client, keys, new_id):
    body = decision_body(new_id)
    first = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    again = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    with app.extensions["vea"].engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(decisions)
            .where(decisions.c.interaction_id == body["interaction_id"])
        ).scalar_one()
    assert count == 1


def test_a_retry_with_the_same_body_in_another_order_is_a_replay(client, keys, new_id):
    body = decision_body(new_id)
    first = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    reordered = {"contact": body["contact"], **dict(reversed(list(body.items())))}
    text = json.dumps(reordered, indent=2)  # other key order and spacing, same values
    again = client.post(
        "/v1/decisions",
        data=text,
        headers={**keys["desktop"], "Content-Type": "application/json"},
    )
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json


def test_changed_details_decide_the_interaction_again(app, client, keys, new_id):
    """The desktop calls again once the issue type is known: same interaction, same
    decision id, a new decision replacing the stored one; its own first decision is not
    an earlier contact."""
    body = decision_body(new_id)
    del body["contact"]["issue_type"]
    first_body = copy.deepcopy(body)
    first = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert first.status_code == 201
    body["contact"].update(issue_type="complaint", sentiment=-0.9)
    again = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert again.status_code == 200, again.json
    assert again.headers["Decision-Updated"] == "true"
    assert "Idempotent-Replayed" not in again.headers
    answer = again.json
    assert answer["decision_id"] == first.json["decision_id"]
    assert answer["suggested_activity"] == "none"  # a negative complaint: no attempt
    assert answer["continuation"] is None
    assert answer["context"]["prior_contacts_30d"] == 0
    assert any("changed" in reason for reason in answer["reasons"])
    with app.extensions["vea"].engine.connect() as conn:
        rows = conn.execute(
            sa.select(decisions.c.issue_type, decisions.c.response).where(
                decisions.c.interaction_id == body["interaction_id"]
            )
        ).all()
    assert len(rows) == 1 and rows[0].issue_type == "complaint"
    assert rows[0].response == answer
    # The updated decision is now what a retry of the new body replays.
    retry = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json == answer
    # A late retry of the first body (delayed in the network) must not revert it.
    late = client.post("/v1/decisions", json=first_body, headers=keys["desktop"])
    assert late.status_code == 200 and late.headers["Idempotent-Replayed"] == "true"
    assert late.json == answer


def test_deciding_again_keeps_the_contact_in_its_place_in_time(app, client, keys, new_id):
    """Chat A, then call B continuing it, then A decided again with its issue type: A
    keeps its time, so B is not A's history (A would continue B while B continues A, and
    B would count as A's prior contact); A's stored time is not moved."""
    customer = new_id("c-")
    chat = decision_body(new_id, customer, channel="chat")
    del chat["contact"]["issue_type"]
    first = client.post("/v1/decisions", json=chat, headers=keys["desktop"]).json
    call = client.post(
        "/v1/decisions",
        json=decision_body(new_id, customer, channel="voice"),
        headers=keys["desktop"],
    ).json
    assert call["continuation"]["decision_id"] == first["decision_id"]
    engine = app.extensions["vea"].engine
    stored_time = sa.select(decisions.c.occurred_at).where(
        decisions.c.interaction_id == chat["interaction_id"]
    )
    with engine.connect() as conn:
        before = conn.execute(stored_time).scalar_one()
    chat["contact"]["issue_type"] = "inquiry"
    again = client.post("/v1/decisions", json=chat, headers=keys["desktop"])
    assert again.status_code == 200 and again.headers["Decision-Updated"] == "true"
    assert again.json["continuation"] is None
    assert again.json["context"]["prior_contacts_30d"] == 0
    with engine.connect() as conn:
        assert conn.execute(stored_time).scalar_one() == before


def test_changed_details_after_the_outcome_are_a_conflict(client, keys, new_id):
    body = decision_body(new_id)
    first = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    outcome = client.post(
        f"/v1/decisions/{first['decision_id']}/outcome",
        json={"offered": False},
        headers=keys["desktop"],
    )
    assert outcome.status_code == 201
    body["contact"]["issue_type"] = "billing"
    response = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert response.status_code == 409
    assert response.json["error"]["code"] == "decision_has_outcome"
    # The same body as first sent is still a plain retry.
    body["contact"]["issue_type"] = "inquiry"
    again = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert again.status_code == 200 and again.json == first


def test_decisions_stored_before_the_body_hash_are_replayed(app, client, keys, new_id):
    body = decision_body(new_id)
    first = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    with app.extensions["vea"].engine.begin() as conn:
        conn.execute(
            decisions.update()
            .where(decisions.c.decision_id == first["decision_id"])
            .values(request_hash=None)
        )
    body["contact"]["issue_type"] = "billing"
    again = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first


def test_interaction_id_of_another_customer_is_a_conflict(client, keys, new_id):
    body = decision_body(new_id)
    assert client.post("/v1/decisions", json=body, headers=keys["desktop"]).status_code == 201
    body["customer"]["customer_id"] = new_id("other-")
    response = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"


def test_prior_contacts_come_from_history_unless_sent(client, keys, new_id):
    customer = new_id("c-")
    for _ in range(3):
        client.post("/v1/decisions", json=decision_body(new_id, customer), headers=keys["desktop"])
    answer = client.post(
        "/v1/decisions", json=decision_body(new_id, customer), headers=keys["desktop"]
    ).json
    assert answer["context"]["prior_contacts_30d"] == 3
    assert answer["context"]["prior_contacts_source"] == "history"
    body = decision_body(new_id, customer)
    body["customer"]["prior_contacts_30d"] = 7
    sent = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    assert sent["context"] == {
        "prior_contacts_30d": 7,
        "prior_contacts_source": "request",
        "issue_type_source": "request",
        "occurred_at": sent["created_at"],  # none sent: the time of the request
    }


def test_chat_then_call_carries_the_earlier_contact(client, keys, new_id):
    customer = new_id("c-")
    chat = client.post(
        "/v1/decisions",
        json=decision_body(new_id, customer, channel="chat", issue_type="how_to"),
        headers=keys["desktop"],
    ).json
    client.post(
        f"/v1/decisions/{chat['decision_id']}/outcome",
        json={"offered": True, "accepted": True, "resolved": False},
        headers=keys["desktop"],
    )
    body = decision_body(new_id, customer, channel="voice")
    del body["contact"]["issue_type"]  # not known yet when the call starts
    call = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    continuation = call["continuation"]
    assert continuation["decision_id"] == chat["decision_id"]
    assert continuation["channel"] == "chat" and continuation["issue_type"] == "how_to"
    # Milliseconds and Z, as every other time in the answers (it had microseconds).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", continuation["occurred_at"])
    assert continuation["activity"] == chat["suggested_activity"]
    assert continuation["outcome"] == {
        "offered": True, "accepted": True, "ve_success": None, "resolved": False,
    }  # fmt: skip
    assert call["context"]["issue_type_source"] == "continuation"
    assert any("continues a chat contact" in r for r in call["reasons"])


def test_no_continuation_outside_the_window(make_app, new_id):
    from service.auth import create_key

    app = make_app(continuation_window_min=30)
    client = app.test_client()
    headers = {"Authorization": "Bearer " + create_key(app.extensions["vea"].engine, "desktop")[1]}
    customer = new_id("c-")
    earlier = datetime.now(UTC) - timedelta(hours=2)
    client.post(
        "/v1/decisions",
        json=decision_body(new_id, customer, occurred_at=earlier.isoformat()),
        headers=headers,
    )
    later = client.post("/v1/decisions", json=decision_body(new_id, customer), headers=headers)
    assert later.json["continuation"] is None
    assert later.json["context"]["prior_contacts_30d"] == 1


def record(client, keys, decision_id, **outcome):
    response = client.post(
        f"/v1/decisions/{decision_id}/outcome", json=outcome, headers=keys["desktop"]
    )
    assert response.status_code == 201, response.json
    return response.json


def test_recently_declined_activity_is_not_suggested_again(client, keys, new_id):
    customer = new_id("c-")
    first = client.post(
        "/v1/decisions", json=decision_body(new_id, customer), headers=keys["desktop"]
    ).json
    declined = first["suggested_activity"]
    assert declined != "none"
    record(client, keys, first["decision_id"], offered=True, accepted=False)
    second = client.post(
        "/v1/decisions", json=decision_body(new_id, customer), headers=keys["desktop"]
    ).json
    assert second["suggested_activity"] != declined
    assert second["contact_policy"]["blocked_activities"] == [declined]
    named = f"“{activity_name(declined, 'en')}” was declined"
    assert any(named in r for r in second["reasons"]), second["reasons"]


def test_weekly_attempt_cap(make_app, new_id):
    from service.auth import create_key

    app = make_app(max_attempts_per_week=1, decline_days=0)
    client = app.test_client()
    headers = {"Authorization": "Bearer " + create_key(app.extensions["vea"].engine, "desktop")[1]}
    customer = new_id("c-")
    first = client.post("/v1/decisions", json=decision_body(new_id, customer), headers=headers)
    assert first.json["suggested_activity"] != "none"
    second = client.post(
        "/v1/decisions", json=decision_body(new_id, customer), headers=headers
    ).json
    assert second["suggested_activity"] == "none"
    assert second["contact_policy"]["allow_attempt"] is False
    assert any("limit 1 per week" in r for r in second["reasons"])


@pytest.mark.parametrize("allow", [False, True])
def test_negative_complaint_rule_is_configurable(make_app, new_id, allow):
    from service.auth import create_key

    app = make_app(allow_negative_complaints=allow)
    client = app.test_client()
    headers = {"Authorization": "Bearer " + create_key(app.extensions["vea"].engine, "desktop")[1]}
    body = decision_body(new_id, issue_type="complaint", sentiment=-0.8)
    answer = client.post("/v1/decisions", json=body, headers=headers).json
    fired = any("complaint with negative sentiment" in r for r in answer["reasons"])
    assert fired is (not allow)
    assert answer["contact_policy"]["allow_attempt"] is allow
    if not allow:
        assert answer["suggested_activity"] == "none"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("interaction_id"), "interaction_id"),
        (lambda b: b["customer"].pop("customer_id"), "customer"),
        (lambda b: b["contact"].update(channel="fax"), "contact"),
        (lambda b: b["contact"].update(sentiment=3), "contact"),
        (lambda b: b["customer"].update(tenure_months=-1), "customer"),
        (lambda b: b["customer"].update(prior_contacts_30d=1.5), "customer"),
        (lambda b: b["customer"].update(switching_effort="medium"), "customer"),
        (lambda b: b.update(surprise=1), "surprise"),
        (lambda b: b.update(interaction_id=""), "interaction_id"),
        (lambda b: b.update(interaction_id="x" * 129), "interaction_id"),
        (lambda b: b.update(features={"nested": {"a": 1}}), "features"),
        (lambda b: b["contact"].update(occurred_at="yesterday"), "contact"),
        (lambda b: b.update(customer="c-1"), "customer"),
    ],
)
def test_invalid_bodies_are_422_with_fields(client, keys, new_id, mutate, field):
    body = decision_body(new_id)
    mutate(body)
    response = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "validation_error" and field in error["fields"]


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 422),
        ('"text"', "application/json", 422),
        ("", "application/json", 422),
        # A lone UTF-16 surrogate is no character: nothing could store or answer it.
        (
            '{"interaction_id": "\\ud800", "customer": {"customer_id": "c"}}',
            "application/json",
            400,
        ),
        ('{"interaction_id": "x\\udc00"}', "application/json", 400),
        # Bytes that are not UTF-8 (orjson reports them with an empty document, which
        # read as no body at all: "missing" for every field).
        (
            b'{"interaction_id": "i", "customer": {"customer_id": "c-\xed\xa0\x80"}}',
            "application/json",
            400,
        ),
        (b'{"interaction_id": "\xff"}', "application/json; charset=iso-8859-1", 400),
        ("interaction_id=1", "application/x-www-form-urlencoded", 415),
        ('{"interaction_id": "i-1"}', "text/plain", 415),  # a cross-site form could send it
        ('{"interaction_id": "i-1"}', None, 415),
    ],
)
def test_malformed_bodies_are_4xx_never_5xx(client, keys, data, content_type, status):
    headers = {**keys["desktop"], **({"Content-Type": content_type} if content_type else {})}
    response = client.post("/v1/decisions", data=data, headers=headers)
    assert response.status_code == status, response.json
    assert set(response.json["error"]) == {"code", "message", "fields"}


def test_body_over_the_limit_is_413(make_app, new_id):
    from service.auth import create_key

    app = make_app(max_body_bytes=2048)
    headers = {"Authorization": "Bearer " + create_key(app.extensions["vea"].engine, "desktop")[1]}
    body = decision_body(new_id)
    body["features"] = {f"f{i}": "x" * 200 for i in range(20)}
    response = app.test_client().post("/v1/decisions", json=body, headers=headers)
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_extra_features_are_accepted_and_stored(app, client, keys, new_id):
    body = decision_body(new_id)
    body["features"] = {"zip_code": "100-0001", "history": 3.5, "vip": True}
    answer = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    import sqlalchemy as sa

    from service.db import decisions

    with app.extensions["vea"].engine.connect() as conn:
        stored = conn.execute(
            sa.select(decisions.c.features, decisions.c.model_version).where(
                decisions.c.decision_id == answer["decision_id"]
            )
        ).one()
    assert stored.features["zip_code"] == "100-0001"
    assert stored.features["prior_contacts_30d"] == 0  # what the model saw, after history
    assert stored.model_version == answer["model_version"]


def test_self_service_is_routed_to_digital_content(client, keys, new_id):
    body = decision_body(new_id, channel="self_service")
    answer = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    assert answer["route"]["pool"] == "digital_content"
    assert answer["route"]["content"]["id"].startswith("ss-")


# --------------------------------------------------------------- degraded
def test_no_champion_answers_from_the_fallback(make_app, tmp_path, new_id):
    from service.auth import create_key

    app = make_app(registry=str(tmp_path / "empty-registry"))
    headers = {"Authorization": "Bearer " + create_key(app.extensions["vea"].engine, "desktop")[1]}
    client = app.test_client()
    response = client.post("/v1/decisions", json=decision_body(new_id), headers=headers)
    assert response.status_code == 201
    answer = response.json
    assert answer["degraded"] is True and answer["model_version"].startswith("fallback")
    assert len(answer["activities"]) == 5
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert any("no champion" in r for r in ready.json["reasons"])


def test_tampered_champion_is_refused_and_fallback_serves(make_app, registry_dir, new_id):
    from models.registry import Registry
    from service.auth import create_key

    champion = Registry(registry_dir).champion()
    model_file = next(
        p for p in (registry_dir / "versions" / champion).iterdir() if p.name != "manifest.json"
    )
    model_file.write_bytes(model_file.read_bytes() + b"\n# tampered")
    app = make_app()
    headers = {"Authorization": "Bearer " + create_key(app.extensions["vea"].engine, "desktop")[1]}
    client = app.test_client()
    answer = client.post("/v1/decisions", json=decision_body(new_id), headers=headers).json
    assert answer["degraded"] is True
    ready = client.get("/readyz").json
    assert not ready["ready"] and champion in ready["checks"]["model"]["detail"]


def test_model_error_falls_back_per_request(app, client, keys, new_id):
    manager = app.extensions["vea"].models

    class Broken:
        version = "broken"

        def decide(self, *args, **kwargs):
            raise RuntimeError("model exploded")

    # A decider that raises stands for a real model failure at predict time.
    manager._decider = Broken()
    manager._checked_at = float("inf")
    answer = client.post("/v1/decisions", json=decision_body(new_id), headers=keys["desktop"])
    assert answer.status_code == 201 and answer.json["degraded"] is True


def unreachable_url(backend_url: str, tmp_path) -> str:
    if backend_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/missing/dir/vea.db"
    from conftest import free_port

    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"


def test_database_down_decisions_degrade_and_writes_answer_503(app, keys, new_id, tmp_path):
    from service.db import make_engine

    client = app.test_client()
    # Verify the key while the database is up (the worker trusts it for a while).
    ok = client.post("/v1/decisions", json=decision_body(new_id), headers=keys["desktop"])
    assert ok.status_code == 201
    state = app.extensions["vea"]
    state.engine = make_engine(unreachable_url(str(state.engine.url), tmp_path))
    state.keys._cache_s = 0  # force a key lookup against the dead database

    response = client.post("/v1/decisions", json=decision_body(new_id), headers=keys["desktop"])
    assert response.status_code == 200
    assert response.json["degraded"] is True and response.json["stored"] is False
    assert any("database unavailable" in r for r in response.json["reasons"])

    outcome = client.post(
        f"/v1/decisions/{ok.json['decision_id']}/outcome",
        json={"offered": False},
        headers=keys["desktop"],
    )
    assert outcome.status_code == 503 and outcome.headers["Retry-After"]
    event = client.post(
        f"/v1/customers/{new_id()}/events", json={"type": "renewed"}, headers=keys["desktop"]
    )
    assert event.status_code == 503 and event.headers["Retry-After"]
    unknown = client.post(
        "/v1/decisions", json=decision_body(new_id), headers={"Authorization": "Bearer vea_x_y"}
    )
    assert unknown.status_code == 503  # cannot tell: never a false 401
    ready = client.get("/readyz")
    assert ready.status_code == 503 and not ready.json["checks"]["database"]["ok"]


def test_future_contact_time_is_clamped_to_now(client, keys, new_id):
    customer = new_id("c-")
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    client.post(
        "/v1/decisions",
        json=decision_body(new_id, customer, occurred_at=future),
        headers=keys["desktop"],
    )
    later = client.post(
        "/v1/decisions", json=decision_body(new_id, customer), headers=keys["desktop"]
    ).json
    assert later["context"]["prior_contacts_30d"] == 1


def test_answers_are_exactly_what_the_schema_dumps(client, keys, new_id):
    # The view serializes the answer directly (no second marshmallow pass): the answer
    # must already be in DecisionSchema's shape, for new, continued and replayed contacts.
    from service.schemas import DecisionSchema

    schema = DecisionSchema()
    customer = new_id("c-")
    first_body = decision_body(new_id, customer_id=customer)
    first = client.post("/v1/decisions", json=first_body, headers=keys["desktop"])
    continued = client.post(
        "/v1/decisions",
        json=decision_body(new_id, customer_id=customer, channel="voice"),
        headers=keys["desktop"],
    )
    replayed = client.post("/v1/decisions", json=first_body, headers=keys["desktop"])
    assert [r.status_code for r in (first, continued, replayed)] == [201, 201, 200]
    assert continued.json["continuation"] is not None
    for response in (first, continued, replayed):
        assert schema.dump(response.json) == response.json
        assert schema.validate(response.json) == {}


def test_an_exhausted_connection_pool_answers_degraded_or_503(make_app, new_id):
    # Every pooled connection busy past the pool's timeout is an overload, not a bug: a
    # decision still answers (degraded, not stored), a write asks for a retry.
    app = make_app(db_pool_timeout_s=0.2)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_key(app.extensions['vea'].engine, 'admin')[1]}"}
    first = client.post("/v1/decisions", json=decision_body(new_id), headers=headers)
    assert first.status_code == 201  # the key is verified (and cached) while the pool is free
    engine = app.extensions["vea"].engine
    held = []
    try:
        while True:
            try:
                held.append(engine.connect())
            except Exception:  # noqa: BLE001 - the pool's own TimeoutError once it is empty
                break
        decision = client.post("/v1/decisions", json=decision_body(new_id), headers=headers)
        assert decision.status_code == 200, decision.json
        assert decision.json["degraded"] is True and decision.json["stored"] is False
        outcome = client.post(
            f"/v1/decisions/{first.json['decision_id']}/outcome",
            json={"activity": "none", "offered": False},
            headers=headers,
        )
        assert outcome.status_code == 503, outcome.json
        assert outcome.headers["Retry-After"]
        assert outcome.json["error"]["message"] == "database busy: retry later"
    finally:
        for conn in held:
            conn.close()
    after = client.post("/v1/decisions", json=decision_body(new_id), headers=headers)
    assert after.status_code == 201


def test_control_characters_are_refused_before_they_reach_a_csv(client, keys, new_id):
    """A carriage return in a stored category split the exported CSV's row."""
    for segment in ("\r=1", "a\x00b", "x\x1b[31m"):
        body = decision_body(new_id)
        body["customer"]["segment"] = segment
        response = client.post("/v1/decisions", json=body, headers=keys["desktop"])
        assert response.status_code == 422, (segment, response.json)
        assert "control characters" in str(response.json["error"]["fields"])
    body = decision_body(new_id)
    body["features"] = {"note": "line one\nline two\tand a tab"}
    assert client.post("/v1/decisions", json=body, headers=keys["desktop"]).status_code == 201
