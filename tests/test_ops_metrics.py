"""/metrics for an operator: every series an alert needs exists at 0 before its first
event, labels come from small fixed sets (route templates, never raw paths), every metric
has a HELP text, and the model gauge follows a promotion and a rollback."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from models.activities import ACTIONS


def _families(client) -> dict:
    text = client.get("/metrics").get_data(as_text=True)
    return {f.name: f for f in text_string_to_metric_families(text)}, text


def test_alertable_series_exist_at_zero_before_their_first_event(make_app):
    families, text = _families(make_app().test_client())
    for reason in ("no_model", "model_error", "database"):
        assert f'vea_degraded_decisions_total{{reason="{reason}"}} 0.0' in text, reason
    for verdict in ("error", "slow"):
        assert f'vea_shadow_decisions_total{{verdict="{verdict}"}} 0.0' in text
    for outcome in ("recorded", "pending"):
        assert f'vea_surveys_total{{outcome="{outcome}"}} 0.0' in text
    for activity in ACTIONS:
        assert f'vea_decisions_total{{activity="{activity}"}} 0.0' in text
        assert f'vea_outcomes_total{{activity="{activity}",offered="false"}} 0.0' in text
    for family in families.values():
        if family.name.startswith("vea_"):
            assert family.documentation, family.name  # HELP text


def test_path_labels_are_route_templates_and_unknown_paths_collapse(client, keys, new_id):
    customer = f"cust-{new_id()}"
    client.post(
        f"/v1/customers/{customer}/events",
        json={"type": "upgrade", "occurred_at": "2026-01-01T00:00:00Z"},
        headers=keys["desktop"],
    )
    for n in range(20):
        client.get(f"/nowhere/{new_id()}/{n}")
        client.get(f"/v1/decisions/{new_id()}", headers=keys["desktop"])
    families, text = _families(client)
    assert customer not in text
    endpoints = {
        s.labels["endpoint"]
        for s in families["vea_http_requests"].samples
        if "endpoint" in s.labels
    }
    assert "/v1/customers/<customer_id>/events" in endpoints
    assert all(e == "unmatched" or not re.search(r"[0-9a-f]{16}", e) for e in endpoints)
    assert len(endpoints) < 10, endpoints


def _serving(client) -> dict[str, float]:
    families, _ = _families(client)
    return {s.labels["version"]: s.value for s in families["vea_model_info"].samples}


def test_the_model_gauge_follows_a_promotion_and_a_rollback(client, keys, registry_dir):
    from models.registry import Registry

    registry = Registry(registry_dir)
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    assert _serving(client) == {first: 1.0}
    promoted = client.post(
        f"/v1/models/{other}/promote", json={"reason": "test"}, headers=keys["engineer"]
    )
    assert promoted.status_code == 200, promoted.json
    assert _serving(client) == {first: 0.0, other: 1.0}
    assert client.post("/v1/models/rollback", headers=keys["engineer"]).status_code == 200
    assert _serving(client) == {first: 1.0, other: 0.0}
