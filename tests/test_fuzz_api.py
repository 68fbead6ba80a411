"""Schemathesis against the live OpenAPI document: every operation of ``/openapi.json``
gets generated inputs, valid (positive) and invalid (negative), sent through the WSGI
app with a key of a role allowed to use it. Checks: never a 5xx, and every answer
(status code and body) matches what the document says.

Bounded for ``make test`` (``VEA_FUZZ_EXAMPLES`` per operation and mode, default 20,
derandomized so CI is repeatable); ``make fuzz`` raises the count and draws fresh
inputs each run.
"""

from __future__ import annotations

import os
import re
from collections import Counter

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from service.auth import PERMISSIONS

EXAMPLES = int(os.environ.get("VEA_FUZZ_EXAMPLES", "20"))
RANDOM = os.environ.get("VEA_FUZZ_RANDOM", "") == "1"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Least privileged first: an operation is fuzzed with the weakest role that may use it,
# so role checks are exercised the way real callers hit them.
ROLE_ORDER = ("desktop", "manager", "engineer", "admin")


def role_for(app: Flask, method: str, path: str) -> str | None:
    """The weakest role allowed to call ``method path`` (None: no key needed)."""
    concrete = re.sub(r"\{[^}]+\}", "x", path)
    endpoint, _args = app.url_map.bind("localhost").match(concrete, method=method)
    permission = getattr(app.view_functions[endpoint], "vea_permission", None)
    if permission is None:
        return None
    return next(role for role in ROLE_ORDER if role in PERMISSIONS[permission])


def fuzz_operation(
    operation, mode: GenerationMode, headers: dict[str, str], statuses: Counter[int]
) -> int:
    """Run one operation in one generation mode; return how many cases were sent."""
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not RANDOM,
        database=None,  # no .hypothesis/ state between runs: the count is what it says
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        nonlocal sent
        sent += 1
        response = case.call(headers=headers)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()
    return sent


def test_every_operation_survives_generated_input(app, keys, capsys):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    counts: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # an operation schemathesis cannot read is itself a failure
        operations += 1
        role = role_for(app, operation.method.upper(), operation.path)
        headers = keys[role] if role else {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.label} [{mode.value}]"
            try:
                counts[label] = fuzz_operation(operation, mode, headers, statuses)
            except Unsatisfiable:
                # /healthz, /readyz, /metrics take no input at all: nothing to negate.
                assert mode is GenerationMode.NEGATIVE, label
            except Exception as exc:  # collect every operation's failure, then fail once
                failures.append(f"{label}: {exc}")
    with capsys.disabled():
        print(
            f"\nfuzz: {sum(counts.values())} cases over {operations} operations, "
            f"statuses {dict(sorted(statuses.items()))}"
        )
    assert operations >= 15, "the OpenAPI document lost operations"
    assert not failures, "\n\n".join(failures)


def test_far_past_and_future_times_are_422_not_500(client, keys):
    """Found by this fuzzer: year-1 times overflowed the history look-back into a 500."""
    for when in ("0001-01-02T00:01:00Z", "9999-12-31T23:59:00Z"):
        body = {
            "interaction_id": "fuzz-found-1",
            "customer": {"customer_id": "fuzz-found-1"},
            "contact": {"channel": "chat", "occurred_at": when},
        }
        answer = client.post("/v1/decisions", json=body, headers=keys["desktop"])
        assert answer.status_code == 422, answer.json
        assert "occurred_at" in answer.json["error"]["fields"]["contact"]
        report = client.get(f"/v1/reports/value?from={when}", headers=keys["manager"])
        assert report.status_code == 422, report.json
