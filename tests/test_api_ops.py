"""Operations surface: health, readiness, metrics, OpenAPI and docs, error format,
request ids and logs."""

from __future__ import annotations

import io
import json
import logging


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["ready"] is True and ready.json["reasons"] == []
    assert ready.json["checks"]["database"]["ok"] and ready.json["checks"]["model"]["ok"]


def test_readyz_explains_an_unmigrated_database(make_app, tmp_path):
    app = make_app(database_url=f"sqlite:///{tmp_path}/fresh.db")
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert any("vea db upgrade" in r for r in ready.json["reasons"])


def test_metrics_count_decisions_latency_and_model(client, keys, new_id):
    body = {
        "interaction_id": new_id(),
        "customer": {"customer_id": new_id()},
        "contact": {"channel": "voice", "issue_type": "inquiry"},
    }
    answer = client.post("/v1/decisions", json=body, headers=keys["desktop"]).json
    client.post(
        f"/v1/decisions/{answer['decision_id']}/outcome",
        json={"offered": False},
        headers=keys["desktop"],
    )
    text = client.get("/metrics").get_data(as_text=True)
    assert 'vea_http_request_duration_seconds_bucket{endpoint="/v1/decisions"' in text
    assert f'vea_decisions_total{{activity="{answer["suggested_activity"]}"}} 1.0' in text
    assert f'vea_model_info{{version="{answer["model_version"]}"}} 1.0' in text
    assert "vea_outcomes_total" in text and "vea_degraded_decisions_total" in text


def test_invented_methods_share_one_metrics_label(client):
    for n in range(5):
        client.open("/v1/decisions", method=f"FOO{n}")
        client.open(f"/nowhere/{n}", method=f"BAR{n}")
    text = client.get("/metrics").get_data(as_text=True)
    assert "FOO" not in text and "BAR" not in text
    assert 'method="other"' in text


def test_openapi_document_and_local_docs_page(client):
    spec = client.get("/openapi.json").json
    for path in (
        "/v1/decisions",
        "/v1/decisions/{decision_id}/outcome",
        "/v1/customers/{customer_id}/events",
        "/v1/models",
        "/v1/models/{version}/promote",
        "/v1/models/rollback",
        "/healthz",
        "/readyz",
    ):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert "DecisionRequest" in schemas and "Decision" in schemas
    assert "error" in schemas["Error"]["properties"]
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/docs/assets/swagger-ui-bundle.js" in html and "//cdn" not in html
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200


def test_unknown_route_and_method_use_the_error_format(client, keys):
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "not_found"
    wrong = client.get("/v1/decisions", headers=keys["desktop"])
    assert wrong.status_code == 405
    assert wrong.json["error"]["code"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]


def test_request_id_is_echoed_or_made(client):
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] != "bad id with spaces"


def test_logs_are_json_and_carry_no_customer_identifiers(make_app, new_id):
    from service.auth import create_key
    from service.logs import JsonFormatter

    app = make_app(access_log=True)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("vea").addHandler(handler)
    headers = {"Authorization": f"Bearer {create_key(app.extensions['vea'].engine, 'desktop')[1]}"}
    customer = new_id("SECRET-CUSTOMER-")
    client = app.test_client()
    body = {
        "interaction_id": new_id("SECRET-INTERACTION-"),
        "customer": {"customer_id": customer},
        "contact": {"channel": "voice"},
        "features": {"note": "FREE TEXT FROM THE CALL"},
    }
    client.post("/v1/decisions", json=body, headers={**headers, "X-Request-ID": "req-42"})
    client.post(f"/v1/customers/{customer}/events", json={"type": "renewed"}, headers=headers)
    logging.getLogger("vea").removeHandler(handler)
    err = stream.getvalue()
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "vea.access"]
    assert any(line["request_id"] == "req-42" and line["status"] == 201 for line in access)
    assert "SECRET" not in err and "FREE TEXT" not in err
    assert any(line["route"] == "/v1/customers/<customer_id>/events" for line in access)
