"""API keys, roles and the per-key rate limit: 401, 403, 429."""

from __future__ import annotations

import pytest

from service.auth import create_key, revoke_key

DECISION = {
    "interaction_id": "auth-test",
    "customer": {"customer_id": "c-auth"},
    "contact": {"channel": "voice"},
}


def test_missing_key_is_401_before_the_body_is_read(client):
    response = client.post("/v1/decisions", json={"not": "valid"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer vea_nope_nope"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "not-a-key"},
        {"Authorization": "Bearer "},
    ],
)
def test_invalid_keys_are_401(client, headers):
    assert client.post("/v1/decisions", json=DECISION, headers=headers).status_code == 401


def test_x_api_key_header_works(client, keys):
    key = keys["engineer"]["Authorization"].split(" ", 1)[1]
    assert client.get("/v1/models", headers={"X-API-Key": key}).status_code == 200


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        ("desktop", "get", "/v1/models", False),
        ("desktop", "post", "/v1/models/rollback", False),
        ("engineer", "post", "/v1/decisions", False),
        ("engineer", "post", "/v1/customers/c1/events", False),
        ("engineer", "get", "/v1/models", True),
        ("admin", "get", "/v1/models", True),
        ("admin", "post", "/v1/decisions", True),
    ],
)
def test_roles(client, keys, new_id, role, method, path, allowed):
    body = {**DECISION, "interaction_id": new_id()} if path == "/v1/decisions" else {}
    response = getattr(client, method)(path, json=body, headers=keys[role])
    if allowed:
        assert response.status_code in (200, 201), response.json
    else:
        assert response.status_code == 403
        assert response.json["error"]["code"] == "forbidden"


def test_revoked_key_stops_working(make_app, new_id):
    app = make_app(key_cache_s=0)
    engine = app.extensions["vea"].engine
    key_id, key = create_key(engine, "desktop")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    body = {**DECISION, "interaction_id": new_id()}
    assert client.post("/v1/decisions", json=body, headers=headers).status_code == 201
    assert revoke_key(engine, key_id)
    assert not revoke_key(engine, key_id)  # already revoked
    refused = client.post("/v1/decisions", json=body, headers=headers)
    assert refused.status_code == 401
    # Said as revoked (it is a real key): the integration asks for the new one.
    assert refused.json["error"]["message"] == (
        "the API key was revoked: ask an administrator for the new one"
    )
    assert (
        'error_description="the API key has been revoked"' in (refused.headers["WWW-Authenticate"])
    )
    unknown = client.post("/v1/decisions", json=body, headers={"Authorization": "Bearer x"})
    assert unknown.json["error"]["message"] == "invalid API key"


def test_keys_are_stored_hashed(app):
    import sqlalchemy as sa

    from service.db import api_keys

    key_id, key = create_key(app.extensions["vea"].engine, "admin")
    with app.extensions["vea"].engine.connect() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).one()
    assert key not in row.key_hash and len(row.key_hash) == 64
    with pytest.raises(ValueError):
        create_key(app.extensions["vea"].engine, "superuser")


def test_rate_limit_is_429_with_retry_after(make_app, new_id):
    app = make_app(rate_limit_per_s=0.5, rate_limit_burst=3)
    engine = app.extensions["vea"].engine
    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    other = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    statuses = [
        client.post(
            "/v1/decisions", json={**DECISION, "interaction_id": new_id()}, headers=headers
        ).status_code
        for _ in range(5)
    ]
    assert statuses[:3] == [201, 201, 201] and statuses[3:] == [429, 429]
    limited = client.post("/v1/decisions", json=DECISION, headers=headers)
    assert limited.json["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    # the limit is per key
    body = {**DECISION, "interaction_id": new_id()}
    assert client.post("/v1/decisions", json=body, headers=other).status_code == 201
