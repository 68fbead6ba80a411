"""Guessing API keys is rate limited per client address: after ``auth_failures_burst``
failed checks the address gets 429 (with Retry-After) for any key it has not used
successfully just before, on the API and on the login page; a revoked or expired key is
still told so."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from service.auth import KeyRevoked, KeyStore, TooManyFailures, create_key, revoke_key
from service.db import make_engine, utcnow
from service.ratelimit import RateLimiter

DECISION = {
    "interaction_id": "bf-1",
    "customer": {"customer_id": "bf-c1"},
    "contact": {"channel": "chat"},
}


def test_failed_key_checks_are_limited_per_address(make_app):
    app = make_app(auth_failures_per_s=0.01, auth_failures_burst=3)
    client = app.test_client()
    engine = app.extensions["vea"].engine
    known = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    unused = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    assert client.post("/v1/decisions", json=DECISION, headers=known).status_code == 201

    for i in range(3):
        guess = {"Authorization": f"Bearer vea_000000000000_guess{i}"}
        assert client.post("/v1/decisions", json=DECISION, headers=guess).status_code == 401
    blocked = client.post("/v1/decisions", json=DECISION, headers=unused)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json["error"]["code"]
    # A key verified just before is no guess: callers sharing the address keep working.
    assert client.post("/v1/decisions", json=DECISION, headers=known).status_code == 200
    # Another address is not affected.
    other = client.post(
        "/v1/decisions", json=DECISION, headers=unused, environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert other.status_code == 200


def test_login_page_guesses_are_limited_too(make_app):
    app = make_app(auth_failures_per_s=0.01, auth_failures_burst=2)
    client = app.test_client()
    page = client.get("/login")
    token = page.get_data(as_text=True).split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answers = [
        client.post("/login", data={"key": f"vea_0_guess{i}", "csrf_token": token})
        for i in range(3)
    ]
    assert [a.status_code for a in answers] == [401, 401, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1  # as the API's 429 says


def _guesses(client, forwarded_for: str, n: int) -> list[int]:
    return [
        client.get(
            "/v1/models",
            headers={
                "Authorization": f"Bearer vea_000000000000_guess{i}",
                "X-Forwarded-For": forwarded_for,
            },
        ).status_code
        for i in range(n)
    ]


def test_behind_a_trusted_proxy_the_budget_is_per_client_address(make_app):
    """Behind a load balancer every request comes from its address: one guesser used up
    every client's budget. With VEA_TRUSTED_PROXIES the address the proxy saw counts."""
    client = make_app(
        auth_failures_per_s=0.01, auth_failures_burst=2, trusted_proxies=1
    ).test_client()
    assert _guesses(client, "203.0.113.7", 3) == [401, 401, 429]
    assert _guesses(client, "198.51.100.8", 2) == [401, 401]  # another client behind it


def test_without_trusted_proxies_a_forwarded_address_is_not_believed(make_app):
    """Any client can send X-Forwarded-For: believed by default, a guesser would get a
    fresh budget with every made-up address."""
    client = make_app(auth_failures_per_s=0.01, auth_failures_burst=2).test_client()
    assert _guesses(client, "203.0.113.7", 2) == [401, 401]
    assert _guesses(client, "198.51.100.8", 1) == [429]


def _spend_the_budget(client, n: int) -> None:
    for i in range(n):
        guess = {"Authorization": f"Bearer vea_000000000000_guess{i}"}
        assert client.get("/v1/pools", headers=guess).status_code == 401


@pytest.mark.parametrize("used_before", [True, False], ids=["used-before", "never-seen"])
def test_a_blocked_address_still_hears_its_key_was_revoked(make_app, used_before):
    """A desktop sharing its address with a guesser, still sending the key an administrator
    revoked: it is told the key was revoked (and asks for the new one), not 429 (and
    retries for ever). Whether or not this worker saw the key before."""
    app = make_app(auth_failures_per_s=0.01, auth_failures_burst=2, key_cache_s=0)
    client = app.test_client()
    engine = app.extensions["vea"].engine
    key_id, key = create_key(engine, "desktop")
    if used_before:
        assert client.get("/v1/pools", headers=_bearer(key)).status_code == 200
    assert revoke_key(engine, key_id)
    _spend_the_budget(client, 2)

    answer = client.get("/v1/pools", headers=_bearer(key))
    assert answer.status_code == 401, answer.json
    assert answer.json["error"]["message"] == (
        "the API key was revoked: ask an administrator for the new one"
    )
    # The login page says it too.
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    login = client.post("/login", data={"key": key, "csrf_token": token})
    assert login.status_code == 401 and "revoked" in login.get_data(as_text=True)
    # The address is still blocked for everything else: an unknown key, and a live key
    # it never used (a blocked guesser learns nothing about the keys that work).
    assert client.get("/v1/pools", headers=_bearer("vea_000000000000_x")).status_code == 429
    live = create_key(engine, "desktop")[1]
    assert client.get("/v1/pools", headers=_bearer(live)).status_code == 429


def test_a_blocked_address_still_hears_its_key_expired(make_app):
    app = make_app(auth_failures_per_s=0.01, auth_failures_burst=2)
    client = app.test_client()
    engine = app.extensions["vea"].engine
    _, key = create_key(engine, "desktop", expires_at=utcnow() - timedelta(minutes=1))
    _spend_the_budget(client, 2)
    answer = client.get("/v1/pools", headers=_bearer(key))
    assert answer.status_code == 401 and "expired" in answer.json["error"]["message"]


@pytest.mark.parametrize(("cache_s", "read_again_after_s"), [(5.0, 5.0), (0.0, 1.0)])
def test_blocked_guesses_cost_the_database_one_query_per_cache_time(
    database_url, cache_s, read_again_after_s
):
    """Telling a blocked address its key is revoked must not give it a lookup per guess:
    the revoked keys are read once per ``key_cache_s``, however many guesses arrive, and
    at most once a second with the key cache off (``VEA_KEY_CACHE_S=0``)."""
    engine = make_engine(database_url)
    queries: list[str] = []
    try:
        key_id, key = create_key(engine, "desktop")
        assert revoke_key(engine, key_id)
        clock = [0.0]
        store = KeyStore(
            lambda: engine,
            cache_s=cache_s,
            clock=lambda: clock[0],
            failures=RateLimiter(0.001, 1, clock=lambda: clock[0]),
        )
        assert store.verify("vea_000000000000_first", client="10.0.0.1") is None
        sa.event.listen(engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
        for i in range(50):
            with pytest.raises(TooManyFailures):
                store.verify(f"vea_000000000000_guess{i}", client="10.0.0.1")
        with pytest.raises(KeyRevoked):
            store.verify(key, client="10.0.0.1")
        assert len(queries) == 1
        clock[0] += read_again_after_s
        with pytest.raises(KeyRevoked):
            store.verify(key, client="10.0.0.1")
        assert len(queries) == 2  # read again once the cache time has passed
    finally:
        engine.dispose()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
