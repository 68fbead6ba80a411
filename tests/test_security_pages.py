"""Security of the pages' sessions: a key's request limit and what a post from another
site can do to an agent's session."""

from __future__ import annotations

from service.auth import create_key
from tests.test_pages import CSRF, desk_url, log_in


def test_the_keys_request_limit_holds_for_its_page_sessions(make_app):
    """A desktop key signed in to the desk opened decisions and recorded outcomes with no
    limit at all: the per-key limit was only checked for API calls."""
    app = make_app(rate_limit_per_s=0.01, rate_limit_burst=2)
    client = app.test_client()
    log_in(client, create_key(app.extensions["vea"].engine, "desktop")[1])
    statuses = [client.get(desk_url()).status_code for _ in range(2)]
    assert statuses == [200, 200]
    limited = client.get(desk_url())
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    outcome = client.post(
        "/desk/outcome",
        json={"decision_id": "any", "status": "skipped"},
        headers={"X-CSRF-Token": token},
    )
    assert outcome.status_code == 429 and outcome.json["error"]["code"] == "rate_limited"


def test_a_post_from_another_site_to_the_desk_leaves_the_session_alone(client):
    """The browser sends no SameSite=Lax cookie with another site's post, so a signed-in
    agent looked signed out and the posted form was kept in a new session: its cookie
    replaced the agent's (signed out by any page on the web) and the other site's contact
    opened in the desk after the next sign-in."""
    form = {"interaction_id": "x-site", "customer_id": "planted", "channel": "voice"}
    answer = client.post("/desk", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login?next=/desk"
    assert "Set-Cookie" not in answer.headers
    # The desktop's own post (same site, e.g. in its side panel) is still kept.
    own = client.post("/desk", data=form, headers={"Sec-Fetch-Site": "same-site"})
    assert "form%3D" in own.headers["Location"] and "vea_session=" in own.headers["Set-Cookie"]


def _signed_in_cookies(app, **request_options) -> list[str]:
    """The Set-Cookie lines of a sign-in and a language switch."""
    client = app.test_client()
    key = create_key(app.extensions["vea"].engine, "desktop")[1]
    page = client.get("/login", **request_options).get_data(as_text=True)
    token = CSRF.search(page).group(1)
    login = client.post("/login", data={"key": key, "csrf_token": token}, **request_options)
    assert login.status_code == 302
    switch = client.get("/language/ja", **request_options)
    return login.headers.getlist("Set-Cookie") + switch.headers.getlist("Set-Cookie")


def test_cookies_set_over_https_are_secure_without_a_setting(make_app):
    """The session cookie lacked Secure unless VEA_SECURE_COOKIES was set, so a service
    reached over HTTPS let the browser send the agent's session over plain HTTP too."""
    app = make_app()
    over_https = _signed_in_cookies(app, base_url="https://vea.example")
    assert {c.split("=")[0] for c in over_https} >= {"vea_session", "vea_lang"}
    assert all("; Secure" in c for c in over_https), over_https
    over_http = _signed_in_cookies(app, base_url="http://vea.example")
    assert not any("; Secure" in c for c in over_http), over_http


def test_https_behind_a_trusted_proxy_counts_and_an_untrusted_claim_does_not(make_app):
    forwarded = {"headers": {"X-Forwarded-Proto": "https"}}
    behind = _signed_in_cookies(make_app(trusted_proxies=1), **forwarded)
    assert all("; Secure" in c for c in behind), behind
    claimed = _signed_in_cookies(make_app(), **forwarded)
    assert not any("; Secure" in c for c in claimed), claimed
    forced = _signed_in_cookies(make_app(secure_cookies=True))
    assert all("; Secure" in c for c in forced), forced


def test_strict_transport_security_is_sent_over_https_when_configured(make_app):
    quiet = make_app().test_client()
    assert "Strict-Transport-Security" not in quiet.get("/login", base_url="https://v").headers
    client = make_app(hsts_seconds=31536000).test_client()
    for path in ("/login", "/healthz"):
        answer = client.get(path, base_url="https://vea.example")
        assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    # Over plain HTTP a browser ignores it (RFC 6797), and it says nothing true there.
    assert "Strict-Transport-Security" not in client.get("/login").headers
