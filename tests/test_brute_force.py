"""Guessing API keys is rate limited per client address: after ``auth_failures_burst``
failed checks the address gets 429 (with Retry-After) for any key it has not used
successfully just before, on the API and on the login page."""

from __future__ import annotations

from service.auth import create_key

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
