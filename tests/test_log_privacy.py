"""No raw customer id, interaction id, agent id, event id or API key reaches the logs.

A decision, its outcome, a customer event, rejected input, a failing model and a dead
database go through the app with the JSON access log on at DEBUG level; every line the
``vea`` logger (and anything propagating to the root logger) writes is captured with the
service's own formatter and searched for the identifying values that were sent.
"""

from __future__ import annotations

import json
import uuid


def test_logs_hold_no_customer_identifiers(make_app, captured_logs, tmp_path):
    from service.auth import create_key
    from service.db import make_engine
    from tests.test_api_decisions import unreachable_url

    app = make_app(access_log=True, log_level="DEBUG")
    key = create_key(app.extensions["vea"].engine, "admin")[1]
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()
    marker = uuid.uuid4().hex[:10]
    secrets = {
        "customer_id": f"cust-{marker}",
        "interaction_id": f"int-{marker}",
        "agent_id": f"agent-{marker}",
        "event_id": f"evt-{marker}",
        "key": key,
    }

    def decide(suffix: str = "") -> dict:
        return {
            "interaction_id": secrets["interaction_id"] + suffix,
            "customer": {"customer_id": secrets["customer_id"], "tenure_months": 5},
            "contact": {"channel": "chat", "issue_type": "inquiry"},
        }

    decision = client.post("/v1/decisions", json=decide(), headers=headers)
    assert decision.status_code == 201, decision.json
    decision_id = decision.json["decision_id"]
    outcome = client.post(
        f"/v1/decisions/{decision_id}/outcome",
        json={"offered": True, "accepted": True, "agent_id": secrets["agent_id"]},
        headers=headers,
    )
    assert outcome.status_code == 201, outcome.json
    event = client.post(
        f"/v1/customers/{secrets['customer_id']}/events",
        json={"type": "upgraded", "event_id": secrets["event_id"], "value": 10.0},
        headers=headers,
    )
    assert event.status_code == 201, event.json
    # Rejected input: the bad value is echoed to the caller, never to the log.
    bad = decide("-bad")
    bad["customer"]["tenure_months"] = -1
    assert client.post("/v1/decisions", json=bad, headers=headers).status_code == 422
    missing = client.post(
        f"/v1/decisions/{secrets['interaction_id']}/outcome", json={}, headers=headers
    )
    assert missing.status_code in (404, 422)

    # A model that fails at predict time is logged (as an error), without the contact,
    # even when the error's own message quotes it.
    class Broken:
        version = "broken"

        def decide(self, *args, **kwargs):
            raise RuntimeError(f"model exploded on {secrets['customer_id']}")

    manager = app.extensions["vea"].models
    healthy, manager._decider = manager._decider, Broken()
    checked_at, manager._checked_at = manager._checked_at, float("inf")
    degraded = client.post("/v1/decisions", json=decide("-broken"), headers=headers)
    assert degraded.status_code == 201 and degraded.json["degraded"] is True
    manager._decider, manager._checked_at = healthy, checked_at

    # The database goes away: decisions degrade, writes answer 503, errors are logged.
    state = app.extensions["vea"]
    state.engine = make_engine(unreachable_url(str(state.engine.url), tmp_path))
    down = client.post("/v1/decisions", json=decide("-down"), headers=headers)
    assert down.status_code == 200 and down.json["degraded"] is True
    lost = client.post(
        f"/v1/decisions/{decision_id}/outcome",
        json={"offered": False, "agent_id": secrets["agent_id"]},
        headers=headers,
    )
    assert lost.status_code == 503

    text = captured_logs.getvalue()
    lines = text.splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    routes = {r.get("route") for r in records if r.get("msg") == "request"}
    assert "/v1/customers/<customer_id>/events" in routes  # the access log did run
    (error,) = [r for r in records if r.get("msg") == "model error"]
    assert error["error"].startswith("RuntimeError at test_log_privacy.py:")
    assert any("database unavailable" in r["msg"] for r in records)
    leaked = {name: value for name, value in secrets.items() if value in text}
    assert not leaked, f"identifying values in the logs: {leaked}\n{text}"
