"""/v1/models: list, promote, rollback, and the hot swap in a running app."""

from __future__ import annotations

from models.registry import Registry


def decide(client, headers, new_id):
    body = {
        "interaction_id": new_id("i-"),
        "customer": {"customer_id": new_id("c-"), "tenure_months": 12},
        "contact": {"channel": "voice", "issue_type": "inquiry"},
    }
    return client.post("/v1/decisions", json=body, headers=headers).json


def test_list_models(client, keys, registry_dir):
    registry = Registry(registry_dir)
    answer = client.get("/v1/models", headers=keys["engineer"]).json
    assert answer["champion"] == registry.champion()
    assert answer["serving"] == {
        "version": registry.champion(),
        "degraded": False,
        "reason": None,
        "warning": None,
    }
    assert [v["version"] for v in answer["versions"]] == registry.version_ids()
    assert sum(v["is_champion"] for v in answer["versions"]) == 1


def test_promote_and_rollback_swap_the_serving_model(client, keys, registry_dir, new_id):
    registry = Registry(registry_dir)
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    assert decide(client, keys["desktop"], new_id)["model_version"] == first

    promoted = client.post(
        f"/v1/models/{other}/promote", json={"reason": "better DR value"}, headers=keys["engineer"]
    )
    assert promoted.status_code == 200, promoted.json
    assert promoted.json["champion"] == other and promoted.json["previous"] == first
    assert promoted.json["serving"]["version"] == other
    assert promoted.json["extra_features"] == []  # the canonical context: nothing to send
    assert registry.champion() == other
    assert decide(client, keys["desktop"], new_id)["model_version"] == other
    history = registry.history()[-1]
    assert history["event"] == "promote" and history["reason"] == "better DR value"
    assert history["actor"]  # the key id, never the key

    retried = client.post(
        f"/v1/models/{other}/promote", json={"reason": "better DR value"}, headers=keys["engineer"]
    )
    assert retried.status_code == 200 and retried.json["previous"] == first
    assert registry.history()[-1] == history  # nothing recorded for the retry

    rolled = client.post("/v1/models/rollback", json={}, headers=keys["admin"])
    assert rolled.status_code == 200, rolled.json
    assert rolled.json["champion"] == first
    assert decide(client, keys["desktop"], new_id)["model_version"] == first


def test_other_workers_pick_up_a_promotion_by_polling(make_app, keys, registry_dir, new_id):
    from service.auth import create_key

    # Two apps on one registry stand for two gunicorn workers.
    worker_a = make_app(champion_poll_s=0.0)
    worker_b = make_app(champion_poll_s=0.0)
    headers = {
        "Authorization": f"Bearer {create_key(worker_a.extensions['vea'].engine, 'admin')[1]}"
    }
    registry = Registry(registry_dir)
    other = next(v for v in registry.version_ids() if v != registry.champion())
    client_b = worker_b.test_client()
    before = decide(client_b, headers, new_id)["model_version"]
    assert before != other
    worker_a.test_client().post(f"/v1/models/{other}/promote", json={}, headers=headers)
    assert decide(client_b, headers, new_id)["model_version"] == other


def test_promote_unknown_version_is_404(client, keys):
    for version in ("20990101T000000Z-nope", "..", "a" * 129):
        response = client.post(f"/v1/models/{version}/promote", json={}, headers=keys["engineer"])
        assert response.status_code in (404, 422), version
    assert (
        client.post("/v1/models/nope/promote", json={}, headers=keys["engineer"]).status_code == 404
    )


def test_tampered_bundle_is_never_promoted(client, keys, registry_dir):
    registry = Registry(registry_dir)
    champion = registry.champion()
    other = next(v for v in registry.version_ids() if v != champion)
    manifest = registry_dir / "versions" / other / "manifest.json"
    victim = next(p for p in manifest.parent.iterdir() if p.name != "manifest.json")
    victim.write_bytes(victim.read_bytes()[:-10])
    response = client.post(f"/v1/models/{other}/promote", json={}, headers=keys["engineer"])
    assert response.status_code == 422
    assert registry.champion() == champion
    # Named by version, never by the server's directories.
    error = response.json["error"]
    assert error["code"] == "model_refused" and f"bundle {other}" in error["message"]
    assert str(registry_dir) not in error["message"]
    listed = client.get("/v1/models", headers=keys["engineer"]).json
    broken = next(v for v in listed["versions"] if v["version"] == other)["broken"]
    assert f"bundle {other}" in broken and str(registry_dir) not in broken


def test_rollback_without_history_is_409(client, keys):
    response = client.post("/v1/models/rollback", json={}, headers=keys["engineer"])
    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
