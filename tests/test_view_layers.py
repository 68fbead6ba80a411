"""flask-smorest's documenting decorators (alt_response, doc) put no call layer around
a view: the documentation is the same, a request passes through fewer functions."""

from __future__ import annotations

import pytest

from service.api.common import COMMON_ERRORS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _layers(view) -> int:
    count = 0
    while view is not None:
        count += 1
        view = getattr(view, "__wrapped__", None)
    return count


def test_a_decision_passes_only_through_working_layers(app):
    # require, the query refusal, webargs' arguments, the response and the view itself:
    # each does something for the request. Twelve documenting wrappers did nothing.
    assert _layers(app.view_functions["decisions.create_decision"]) == 5


def test_the_documentation_of_every_error_is_kept(client):
    operation = client.get("/openapi.json").get_json()["paths"]["/v1/decisions"]["post"]
    documented = set(operation["responses"])
    assert {str(status) for status in COMMON_ERRORS} <= documented
    assert {"201", "200", "409", "422"} <= documented
    assert operation["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    metrics = client.get("/openapi.json").get_json()["paths"]["/metrics"]["get"]
    assert metrics["responses"]["200"]["description"] == "Prometheus text format"
