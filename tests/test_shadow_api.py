"""Shadow challengers through the API: start/stop, roles, errors, and a failing or slow
shadow that never changes or fails the served answer."""

from __future__ import annotations

import time

import sqlalchemy as sa

from models.registry import Registry
from service.db import decisions
from service.serving import ShadowGuard


def body(new_id) -> dict:
    return {
        "interaction_id": new_id("i-"),
        "customer": {"customer_id": new_id("c-"), "tenure_months": 5, "segment": "consumer"},
        "contact": {"channel": "chat", "issue_type": "inquiry", "language": "en"},
    }


def _other_version(app) -> str:
    registry: Registry = app.extensions["vea"].models.registry
    return next(v for v in registry.version_ids() if v != registry.champion())


def _stored_shadow(app, decision_id: str):
    with app.extensions["vea"].engine.connect() as conn:
        return conn.execute(
            sa.select(decisions.c.shadow_version, decisions.c.shadow_activity,
                      decisions.c.best_activity, decisions.c.shadow)
            .where(decisions.c.decision_id == decision_id)
        ).one()  # fmt: skip


def test_start_and_stop_a_shadow_through_the_api(app, keys, new_id):
    client = app.test_client()
    other = _other_version(app)
    assert client.post(f"/v1/models/{other}/shadow", headers=keys["desktop"]).status_code == 403
    assert client.post("/v1/models/nope/shadow", headers=keys["engineer"]).status_code == 404
    champion = app.extensions["vea"].models.registry.champion()
    refused = client.post(f"/v1/models/{champion}/shadow", headers=keys["engineer"])
    assert refused.status_code == 409 and refused.json["error"]

    started = client.post(f"/v1/models/{other}/shadow", headers=keys["engineer"])
    assert started.status_code == 200 and started.json["shadow"] == other
    listed = client.get("/v1/models", headers=keys["engineer"]).json
    assert listed["shadow"] == other and listed["shadow_serving"]["version"] == other

    answer = client.post("/v1/decisions", json=body(new_id), headers=keys["desktop"]).json
    assert "shadow" not in answer  # never served
    row = _stored_shadow(app, answer["decision_id"])
    assert row.shadow_version == other and row.shadow_activity
    assert row.best_activity and row.shadow["success_probability"]
    assert "champion_expected_value_none" in row.shadow

    stopped = client.delete("/v1/models/shadow", headers=keys["engineer"])
    assert stopped.status_code == 200 and stopped.json == {
        "shadow": None, "previous": other, "champion": champion}  # fmt: skip
    answer = client.post("/v1/decisions", json=body(new_id), headers=keys["desktop"]).json
    assert _stored_shadow(app, answer["decision_id"]).shadow_version is None


class _Broken:
    version = "broken-shadow"
    compiled = True

    def decide(self, *args, **kwargs):
        raise RuntimeError("shadow exploded")


class _Slow:
    version = "slow-shadow"
    compiled = True

    def __init__(self, inner):
        self.inner = inner

    def decide(self, *args, **kwargs):
        time.sleep(0.02)
        return self.inner.decide(*args, **kwargs)


def test_a_failing_shadow_never_fails_or_changes_the_answer(app, keys, new_id):
    client = app.test_client()
    models = app.extensions["vea"].models
    # Fresh customers with the same attributes: the same features, no history.
    plain = client.post("/v1/decisions", json=body(new_id), headers=keys["desktop"]).json
    models._shadow = _Broken()
    for _ in range(3):
        response = client.post("/v1/decisions", json=body(new_id), headers=keys["desktop"])
        assert response.status_code == 201
        assert response.json["suggested_activity"] == plain["suggested_activity"]
        assert response.json["openness"] == plain["openness"]
        assert _stored_shadow(app, response.json["decision_id"]).shadow_version is None
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'vea_shadow_decisions_total{verdict="error"} 3.0' in metrics


def test_a_slow_shadow_is_suspended(app, keys, new_id):
    client = app.test_client()
    models = app.extensions["vea"].models
    models._shadow = _Slow(models._decider)
    models.shadow_guard.budget_s = 0.005
    for _ in range(6):
        response = client.post("/v1/decisions", json=body(new_id), headers=keys["desktop"])
        assert response.status_code == 201
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'vea_shadow_decisions_total{verdict="slow"} 4.0' in metrics
    assert 'vea_shadow_decisions_total{verdict="suspended"} 2.0' in metrics


def test_guard_suspends_after_too_many_bad_calls_then_tries_again():
    now = [0.0]
    guard = ShadowGuard(5.0, lambda: now[0], window=10, max_bad=2, cooldown_s=30)
    assert [guard.record(0.001, False) for _ in range(3)] == ["ok"] * 3
    assert guard.record(0.010, False) == "slow" and guard.record(0.0, True) == "error"
    assert guard.allowed()
    guard.record(0.010, False)  # a third bad call of the last ten: suspended
    assert not guard.allowed()
    now[0] = 31.0
    assert guard.allowed()
