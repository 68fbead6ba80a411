"""Contact-policy edges: categories are loaded in one spelling (a "Complaint" is a
complaint, on the compiled fast path and through marshmallow alike), self-service
contacts are no value attempts for the weekly cap, and what a 0 does to each rule."""

from __future__ import annotations

import copy
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

import marshmallow as ma
import pytest
import sqlalchemy as sa

from models.contact_policy import (
    ContactPolicy,
    HistorySummary,
    PastContact,
    evaluate,
    summarize_history,
)
from models.features import FeatureEncoder
from models.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from service import history, schemas
from service.db import decisions
from service.decisions import model_features
from service.fast_load import DEFER, compile_loader
from tests.test_api_decisions import decision_body

NOW = datetime(2026, 3, 1, 12, 0)
COMPLAINT_REASON = "complaint with negative sentiment"


def _body(new_id, customer_id=None, **contact):
    body = decision_body(new_id, customer_id, **contact)
    del body["customer"]["switching_effort"]  # these contacts never said it
    return body


def _marshmallow_only(schema: ma.Schema, data):
    """``load`` with the compiled fast path off everywhere (nested schemas included)."""
    fast = schemas.Schema.load
    schemas.Schema.load = ma.Schema.load
    try:
        return ma.Schema.load(schema, data)
    finally:
        schemas.Schema.load = fast


# ------------------------------------------------------------- one spelling
SPELLINGS = ["Complaint", "COMPLAINT", "complaint ", "\tComplaint\n", "\u3000complaint"]


def _shouted(new_id) -> dict:
    body = _body(new_id, issue_type=" COMPLAINT ", sentiment=-0.9)
    body["customer"].update(segment="Premium ", persona=" Novice")
    return body


def test_categories_load_stripped_and_lower_case_on_the_fast_path(new_id):
    schema = schemas.DecisionRequestSchema()
    body = _shouted(new_id)
    fast = compile_loader(schema)(copy.deepcopy(body))
    assert fast is not DEFER  # a plain body: the compiled loader answers it
    assert fast["contact"]["issue_type"] == "complaint"
    assert (fast["customer"]["segment"], fast["customer"]["persona"]) == ("premium", "novice")
    assert fast == _marshmallow_only(schema, copy.deepcopy(body))  # and marshmallow agrees
    assert schema.load(body) == fast  # the path the API takes


def test_categories_load_the_same_when_marshmallow_loads_the_body(new_id):
    # A mapping that is no plain dict is deferred to marshmallow by the compiled loader.
    body = _shouted(new_id)
    body["contact"] = OrderedDict(body["contact"])
    schema = schemas.DecisionRequestSchema()
    assert compile_loader(schema)(body) is DEFER
    loaded = schema.load(body)
    assert loaded["contact"]["issue_type"] == "complaint"
    assert (loaded["customer"]["segment"], loaded["customer"]["persona"]) == ("premium", "novice")


@pytest.mark.parametrize("blank", ["", "   ", "\t\u3000"])
def test_a_blank_category_is_refused_on_both_paths(new_id, blank):
    body = _body(new_id, issue_type=blank)
    schema = schemas.DecisionRequestSchema()
    assert compile_loader(schema)(body) is DEFER
    for load in (schema.load, lambda b: _marshmallow_only(schema, b)):
        with pytest.raises(ma.ValidationError) as caught:
            load(copy.deepcopy(body))
        assert caught.value.messages == {"contact": {"issue_type": ["must not be blank"]}}


def test_a_blank_category_is_a_422_naming_the_field(client, keys, new_id):
    body = _body(new_id, issue_type="  ")
    response = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert response.status_code == 422, response.json
    assert response.json["error"]["fields"] == {"contact": {"issue_type": ["must not be blank"]}}


def test_the_model_sees_lower_case_input_as_before_and_other_spellings_alike(new_id):
    encoder = FeatureEncoder(CATEGORICAL_FEATURES, NUMERIC_FEATURES)
    encoder.vocabulary_ = {name: [] for name in CATEGORICAL_FEATURES}
    encoder.vocabulary_.update(
        issue_type=["complaint", "inquiry"], segment=["consumer", "premium"], channel=["chat"]
    )
    encoder._build_lookup()
    schema = schemas.DecisionRequestSchema()
    plain = _body(new_id, issue_type="complaint", sentiment=-0.9)
    plain["customer"]["segment"] = "premium"
    features, _ = model_features(schema.load(copy.deepcopy(plain)))
    # Already lower case: the very values sent, so the same codes as before.
    assert (features["issue_type"], features["segment"]) == ("complaint", "premium")
    codes = encoder.encode_values(features)
    shouted, _ = model_features(schema.load(_shouted(new_id)))
    assert encoder.encode_values(shouted)[:3] == codes[:3]  # channel, issue type, segment


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_an_angry_complaint_in_any_spelling_gets_no_value_attempt(
    app, client, keys, new_id, spelling
):
    body = _body(new_id, issue_type=spelling, sentiment=-0.9)
    answer = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    assert answer["contact_policy"]["allow_attempt"] is False
    assert answer["suggested_activity"] == "none"
    assert any(COMPLAINT_REASON in r for r in answer["reasons"]), answer["reasons"]
    with app.extensions["vea"].engine.connect() as conn:
        stored = conn.execute(
            sa.select(decisions.c.issue_type).where(
                decisions.c.decision_id == answer["decision_id"]
            )
        ).scalar_one()
    assert stored == "complaint"  # reports and exports group one spelling


def test_an_issue_stored_in_another_spelling_is_inherited_in_lower_case(app, client, keys, new_id):
    """A decision stored before categories were loaded in lower case ("Complaint"): the
    call continuing it inherits "complaint", and the complaint rule fires."""
    customer = new_id("c-")
    chat = client.post(
        "/v1/decisions",
        json=_body(new_id, customer, issue_type="complaint"),
        headers=keys["desktop"],
    ).json
    with app.extensions["vea"].engine.begin() as conn:
        conn.execute(
            decisions.update()
            .where(decisions.c.decision_id == chat["decision_id"])
            .values(issue_type=" Complaint")
        )
    body = _body(new_id, customer, channel="voice", sentiment=-0.5)
    del body["contact"]["issue_type"]
    call = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    assert call["context"]["issue_type_source"] == "continuation"
    assert call["continuation"]["issue_type"] == "complaint"
    assert call["contact_policy"]["allow_attempt"] is False
    assert any(COMPLAINT_REASON in r for r in call["reasons"]), call["reasons"]


def test_continued_reads_an_old_spelling_in_lower_case():
    row = history.HistoryRow(
        "d1", "i1", NOW - timedelta(minutes=5), "chat", "Complaint ", "none", *[None] * 5
    )
    assert history.continued([row], NOW, 60).issue_type == "complaint"
    plain = history.HistoryRow("d2", "i2", NOW, "chat", "complaint", "none", *[None] * 5)
    assert history.continued([plain], NOW, 60) is plain  # nothing to change: the row itself


# ----------------------------------------------------- self-service and the cap
def test_self_service_contacts_are_no_attempts_but_agent_contacts_are():
    ago = lambda hours: NOW - timedelta(hours=hours)  # noqa: E731
    contacts = [
        PastContact(ago(3), "validate_purchase", channel="self_service"),
        PastContact(ago(2), "validate_purchase", channel="self_service"),
        PastContact(ago(1), "educate_usage", channel="chat"),
        PastContact(ago(1), "educate_usage"),  # channel unknown: counted, as before
    ]
    assert summarize_history(contacts, NOW).attempts_last_7d == 2


def test_two_self_service_visits_leave_the_agents_attempt_allowed(client, keys, new_id):
    customer = new_id("c-")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    for hours in (0, 1):
        at = (start + timedelta(hours=hours)).isoformat()
        visit = client.post(
            "/v1/decisions",
            json=_body(new_id, customer, channel="self_service", occurred_at=at),
            headers=keys["desktop"],
        ).json
        assert visit["suggested_activity"] != "none"  # digital content for a value activity
        assert visit["route"]["pool"] == "digital_content"
    call = client.post(
        "/v1/decisions", json=_body(new_id, customer, channel="voice"), headers=keys["desktop"]
    ).json
    assert call["contact_policy"] == {
        "allow_attempt": True,
        "blocked_activities": [],
        "reasons": [],
    }
    assert call["suggested_activity"] != "none"
    # Still contacts of the customer: history and continuation count them.
    assert call["context"]["prior_contacts_30d"] == 2
    assert call["continuation"]["channel"] == "self_service"


def test_agent_attempts_still_reach_the_cap_beside_self_service(client, keys, new_id):
    customer = new_id("c-")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    for hours, channel in ((0, "self_service"), (1, "chat"), (2, "voice")):
        at = (start + timedelta(hours=hours)).isoformat()
        client.post(
            "/v1/decisions",
            json=_body(new_id, customer, channel=channel, occurred_at=at),
            headers=keys["desktop"],
        )
    call = client.post(
        "/v1/decisions", json=_body(new_id, customer, channel="chat"), headers=keys["desktop"]
    ).json
    assert call["suggested_activity"] == "none"
    assert call["contact_policy"]["reasons"] == [
        "contact policy: 2 value attempts in the last 7 days (limit 2 per week): "
        "no value attempt this time"
    ]


# ------------------------------------------------------ what 0 does per rule
def test_what_zero_and_none_do_to_each_rule_as_the_docstring_says():
    week = HistorySummary(declined_days_ago={"educate_usage": 0.5}, attempts_last_7d=0)
    # decline_days=0: the decline rule is off.
    off = evaluate(ContactPolicy(decline_days=0), week)
    assert off.blocked_activities == frozenset() and off.allow_attempt
    # max_attempts_per_week=0: a cap of none, every attempt blocked; None: no cap.
    assert not evaluate(ContactPolicy(max_attempts_per_week=0), week).allow_attempt
    many = HistorySummary(attempts_last_7d=50)
    assert evaluate(ContactPolicy(max_attempts_per_week=None), many).allow_attempt
    # The complaint rule: off only by allow_negative_complaints; at -1 only -1 fires it.
    angry = {"issue_type": "complaint", "sentiment": -1.0}
    assert evaluate(ContactPolicy(allow_negative_complaints=True), week, **angry).allow_attempt
    floor = ContactPolicy(negative_sentiment_threshold=-1.0)
    assert not evaluate(floor, week, **angry).allow_attempt
    assert evaluate(floor, week, issue_type="complaint", sentiment=-0.99).allow_attempt
    with pytest.raises(ValueError, match="max_attempts_per_week"):
        ContactPolicy(max_attempts_per_week=-1)
    with pytest.raises(ValueError, match="decline_days"):
        ContactPolicy(decline_days=-1)
