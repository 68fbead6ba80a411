"""Ids the API could store but never reach again, and keys that looked alike but were
other keys: refused up front (422 naming the field), as the id rules already refuse an
invisible character in a customer or agent id."""

from __future__ import annotations

import pytest

from models.pools import PoolError, parse_pool
from tests.test_api_decisions import decision_body


def _decide(client, keys, new_id, **customer_or_contact):
    body = decision_body(new_id)
    if "customer_id" in customer_or_contact:
        body["customer"]["customer_id"] = customer_or_contact.pop("customer_id")
    body["contact"].update(customer_or_contact)
    return client.post("/v1/decisions", json=body, headers=keys["desktop"])


@pytest.mark.parametrize("customer_id", ["/lead", "trail/", "a//b", "/"])
def test_a_customer_id_the_customer_routes_cannot_reach_is_refused(
    client, keys, new_id, customer_id
):
    answer = _decide(client, keys, new_id, customer_id=customer_id)
    assert answer.status_code == 422, answer.json
    problem = answer.json["error"]["fields"]["customer"]["customer_id"]
    assert "'/'" in problem[0], problem
    path = client.post(
        f"/v1/customers/{customer_id}/events", json={"type": "renewed"}, headers=keys["desktop"]
    )
    assert path.status_code == 404, path.json  # no route: not a 405 naming GET, DELETE


def test_a_customer_id_with_slashes_between_parts_is_taken_and_reachable(client, keys, new_id):
    customer_id = f"jp/{new_id()}/0001"
    assert _decide(client, keys, new_id, customer_id=customer_id).status_code == 201
    found = client.get(f"/v1/customers/{customer_id}", headers=keys["admin"])
    assert found.status_code == 200, found.json


@pytest.mark.parametrize(
    "pool_id", ["gen\u200beral", " general", "general\n", "general\u202e", "e\u0301", ""]
)
def test_an_outcome_names_a_pool_by_an_id(client, keys, new_id, pool_id):
    """A look-alike of `general` had become a pool of its own in the value report. (A
    platform's own pool names, `Tokyo-Sales`, are still taken, as before.)"""
    decision = _decide(client, keys, new_id).json
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    refused = client.post(url, json={"offered": False, "pool_id": pool_id}, headers=keys["desktop"])
    assert refused.status_code == 422, refused.json
    assert "pool_id" in refused.json["error"]["fields"]
    taken = client.post(
        url, json={"offered": False, "pool_id": "Tokyo-Sales"}, headers=keys["desktop"]
    )
    assert taken.status_code == 201, taken.json


def test_a_pools_file_id_with_a_final_newline_is_refused():
    with pytest.raises(PoolError, match="id must be"):
        parse_pool({"id": "general\n", "activities": ["educate_usage"]}, 0)


@pytest.mark.parametrize("key", ["e\u200b7", " e7", "e7 ", "e\u0301"])
def test_event_and_survey_ids_follow_the_id_rules(client, keys, new_id, key):
    """Idempotency keys: `e7` with a zero-width space was stored as a second event."""
    customer = new_id("c-")
    event = client.post(
        f"/v1/customers/{customer}/events",
        json={"type": "renewed", "event_id": key},
        headers=keys["desktop"],
    )
    assert event.status_code == 422 and "event_id" in event.json["error"]["fields"], event.json
    decision = _decide(client, keys, new_id).json
    survey = client.post(
        f"/v1/decisions/{decision['decision_id']}/survey",
        json={"survey_id": key, "csat": 4},
        headers=keys["desktop"],
    )
    assert survey.status_code == 422 and "survey_id" in survey.json["error"]["fields"], survey.json


@pytest.mark.parametrize("written", ["20261130", "2026-W44", "2026-11-30T10", "30/11/2026"])
def test_a_report_period_is_written_in_the_documented_forms(client, keys, written):
    """Python's parser read 20261130 as its midnight and 2026-W44 as that week's Monday."""
    answer = client.get("/v1/reports/value", query_string={"to": written}, headers=keys["admin"])
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["fields"]["to"][0].startswith("must be a date YYYY-MM-DD")
    for taken in ("2026-11-30", "2026-11-30T10:00", "2026-11-30T10:00:00+09:00"):
        ok = client.get("/v1/reports/value", query_string={"to": taken}, headers=keys["admin"])
        assert ok.status_code == 200, (taken, ok.json)


@pytest.mark.parametrize("value", [1.7e308, -1.7e308, 1e13])
def test_an_event_value_stays_within_what_the_report_can_sum(client, keys, new_id, value):
    answer = client.post(
        f"/v1/customers/{new_id('c-')}/events",
        json={"type": "upgraded", "value": value},
        headers=keys["desktop"],
    )
    assert answer.status_code == 422 and "value" in answer.json["error"]["fields"], answer.json
