"""The OpenAPI document's examples are what the service really takes and answers."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from service.api import examples
from service.schemas import (
    DecisionRequestSchema,
    EventRequestSchema,
    OutcomeRequestSchema,
    SurveyRequestSchema,
)


def shape(value: Any) -> Any:
    """The fields of an answer at every depth (a list by its first item; null as None)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None if value is None else type(value).__name__


def same_fields(example: Any, real: Any, where: str = "") -> list[str]:
    """Where the example's fields differ from a real answer's (a null on either side and
    an empty list match anything: the example shows one case of each)."""
    if example is None or real is None or example == [] or real == []:
        return []
    if isinstance(example, dict) and isinstance(real, dict):
        problems = [f"{where}.{key}: not in the example" for key in real.keys() - example.keys()]
        problems += [f"{where}.{key}: not in the answer" for key in example.keys() - real.keys()]
        for key in example.keys() & real.keys():
            problems += same_fields(example[key], real[key], f"{where}.{key}")
        return problems
    if isinstance(example, list) and isinstance(real, list):
        return same_fields(example[0], real[0], f"{where}[0]")
    if {example, real} == {"int", "float"}:  # JSON numbers
        return []
    return [] if example == real else [f"{where}: {example} in the example, {real} answered"]


@pytest.mark.parametrize(
    ("schema", "example"),
    [
        (DecisionRequestSchema(), examples.DECISION_REQUEST),
        (OutcomeRequestSchema(), examples.OUTCOME_REQUEST),
        (SurveyRequestSchema(), examples.SURVEY_REQUEST),
        (EventRequestSchema(), examples.EVENT_REQUEST),
    ],
)
def test_every_request_example_is_accepted_by_its_schema(schema, example):
    schema.load(copy.deepcopy(example))


def test_the_examples_have_the_fields_of_real_answers(client, keys, new_id):
    desktop = keys["desktop"]
    customer = new_id("c-")
    earlier = copy.deepcopy(examples.DECISION_REQUEST)
    earlier["interaction_id"] = new_id("chat-")
    earlier["customer"]["customer_id"] = customer
    earlier["contact"]["channel"] = "chat"
    first = client.post("/v1/decisions", json=earlier, headers=desktop)
    assert first.status_code == 201
    outcome = client.post(
        f"/v1/decisions/{first.json['decision_id']}/outcome",
        json=examples.OUTCOME_REQUEST,
        headers=desktop,
    )
    assert outcome.status_code == 201
    assert same_fields(shape(examples.OUTCOME), shape(outcome.json)) == []

    body = copy.deepcopy(examples.DECISION_REQUEST)
    body["interaction_id"] = new_id("call-")
    body["customer"]["customer_id"] = customer
    decision = client.post("/v1/decisions", json=body, headers=desktop)
    assert decision.status_code == 201
    assert decision.json["continuation"] is not None  # the example shows one
    assert same_fields(shape(examples.DECISION), shape(decision.json)) == []
    # The survey as the survey system sends it, answered now (the example's time would
    # lie before this test's contact), for a decision whose outcome is still to come.
    survey = client.post(
        f"/v1/decisions/{decision.json['decision_id']}/survey",
        json={**examples.SURVEY_REQUEST, "answered_at": datetime.now(UTC).isoformat()},
        headers=desktop,
    )
    assert survey.status_code == 201, survey.json
    assert same_fields(shape(examples.SURVEY), shape(survey.json)) == []

    event = client.post(
        f"/v1/customers/{customer}/events",
        json={**examples.EVENT_REQUEST, "event_id": new_id("crm-")},
        headers=keys["admin"],
    )
    assert event.status_code == 201
    assert same_fields(shape(examples.EVENT), shape(event.json)) == []

    bad = copy.deepcopy(examples.DECISION_REQUEST)
    bad["contact"]["channel"] = "fax"
    error = client.post("/v1/decisions", json=bad, headers=desktop)
    assert error.status_code == 422
    assert error.json == examples.VALIDATION_ERROR


def test_the_shape_comparison_finds_a_missing_or_extra_field():
    answer = shape(examples.DECISION)
    assert same_fields(answer, answer) == []
    fewer = copy.deepcopy(examples.DECISION)
    del fewer["openness"]["band"]
    assert same_fields(shape(fewer), answer) == [".openness.band: not in the example"]
    more = copy.deepcopy(examples.DECISION)
    more["route"]["ranked"][0]["colour"] = "red"
    assert same_fields(shape(more), answer) == [".route.ranked[0].colour: not in the answer"]


def test_the_document_carries_the_examples(client):
    paths = client.get("/openapi.json").json["paths"]
    decide = paths["/v1/decisions"]["post"]
    assert decide["requestBody"]["content"]["application/json"]["example"] == (
        examples.DECISION_REQUEST
    )
    answers = decide["responses"]
    assert answers["201"]["content"]["application/json"]["example"] == examples.DECISION
    assert answers["422"]["content"]["application/json"]["example"] == examples.VALIDATION_ERROR
    outcome = paths["/v1/decisions/{decision_id}/outcome"]["post"]
    assert outcome["requestBody"]["content"]["application/json"]["example"] == (
        examples.OUTCOME_REQUEST
    )
    survey = paths["/v1/decisions/{decision_id}/survey"]["post"]
    assert survey["requestBody"]["content"]["application/json"]["example"] == (
        examples.SURVEY_REQUEST
    )
    assert survey["responses"]["201"]["content"]["application/json"]["example"] == (examples.SURVEY)
    assert {"200", "404", "409", "422", "503"} <= survey["responses"].keys()
    event = paths["/v1/customers/{customer_id}/events"]["post"]
    assert event["responses"]["201"]["content"]["application/json"]["example"] == examples.EVENT
