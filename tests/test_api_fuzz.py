"""Property: whatever JSON a caller sends, the API answers 2xx or 4xx in the error
format, never 5xx."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries(
    {
        "interaction_id": st.one_of(st.text(min_size=0, max_size=140), st.integers()),
        "customer": st.fixed_dictionaries(
            {"customer_id": st.text(min_size=0, max_size=140)},
            optional={
                "tenure_months": st.one_of(st.floats(allow_nan=False), st.text(max_size=5)),
                "prior_contacts_30d": st.one_of(st.integers(), st.floats(allow_nan=False)),
                "switching_effort": st.sampled_from(["low", "high", "medium", ""]),
                "segment": json_values,
            },
        ),
        "contact": st.fixed_dictionaries(
            {"channel": st.sampled_from(["voice", "chat", "self_service", "fax", ""])},
            optional={
                "issue_type": st.one_of(st.text(max_size=70), st.none()),
                "sentiment": st.one_of(st.floats(allow_nan=False), st.none()),
                "language": st.text(max_size=20),
                "occurred_at": st.one_of(
                    st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
                        lambda d: d.isoformat()
                    ),
                    st.text(max_size=30),
                ),
            },
        ),
    },
    optional={"features": json_values},
)

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert set(response.json["error"]) == {"code", "message", "fields"}


@FUZZ
@given(body=st.one_of(json_values, near_valid))
def test_decisions_never_5xx(client, keys, body):
    check(client.post("/v1/decisions", json=body, headers=keys["desktop"]))


@FUZZ
@given(body=json_values, decision_id=st.text(min_size=1, max_size=40))
def test_outcomes_and_events_never_5xx(client, keys, body, decision_id):
    safe_id = decision_id.replace("/", "_").replace("?", "_").replace("#", "_")
    check(client.post(f"/v1/decisions/{safe_id}/outcome", json=body, headers=keys["desktop"]))
    check(client.post(f"/v1/customers/{safe_id}/events", json=body, headers=keys["desktop"]))


near_valid_survey = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(st.integers(min_value=-(2**40), max_value=2**40), json_values)
        for name in ("ves_confidence", "ves_ability", "csat", "nps", "ces")
    }
    | {
        "survey_id": st.one_of(st.text(max_size=140), json_values),
        "answered_at": st.one_of(
            st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
                lambda d: d.isoformat()
            ),
            st.text(max_size=30),
        ),
    },
)


@pytest.fixture
def survey_decision(client, keys, new_id) -> str:
    decision = {
        "interaction_id": new_id("fuzz-survey-"),
        "customer": {"customer_id": new_id("c-")},
        "contact": {"channel": "chat"},
    }
    answer = client.post("/v1/decisions", json=decision, headers=keys["desktop"])
    assert answer.status_code == 201
    return answer.json["decision_id"]


@FUZZ
@given(body=st.one_of(json_values, near_valid_survey))
def test_surveys_never_5xx(client, keys, survey_decision, body):
    """Against one real decision, so that valid answers reach the database (stored, then
    replayed or refused as conflicting with an earlier example's)."""
    url = f"/v1/decisions/{survey_decision}/survey"
    check(client.post(url, json=body, headers=keys["desktop"]))


def test_nul_characters_are_422_on_every_backend(client, keys, new_id):
    body = {
        "interaction_id": new_id(),
        "customer": {"customer_id": "c\x00"},
        "contact": {"channel": "voice"},
    }
    response = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert response.status_code == 422
    event = client.post(
        "/v1/customers/c1/events",
        json={"type": "renewed", "event_id": "e\x00"},
        headers=keys["desktop"],
    )
    assert event.status_code == 422
