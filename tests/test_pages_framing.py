"""The pages in the contact-center desktop's side panel: ``VEA_FRAME_ANCESTORS`` names
the origins that may frame them; without it only the service's own pages may. A value
that is not an origin stops start-up naming the setting. (In a real browser:
``test_pages_browser.py::test_desk_in_a_side_panel_of_an_allowed_origin``.)"""

from __future__ import annotations

import pytest

from service.config import Settings

DESKTOP = "https://desktop.example.com"


def frame_ancestors(answer) -> str:
    policy = answer.headers["Content-Security-Policy"]
    (directive,) = [d.strip() for d in policy.split(";") if "frame-ancestors" in d]
    return directive


def test_pages_frame_only_in_their_own_origin_by_default(client):
    answer = client.get("/login")
    assert frame_ancestors(answer) == "frame-ancestors 'self'"
    assert answer.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_named_origins_may_frame_every_page(make_app):
    app = make_app(frame_ancestors=f"{DESKTOP} https://*.crm.example.com:8443/")
    client = app.test_client()
    for path in ("/login", "/desk", "/dashboard"):
        answer = client.get(path, follow_redirects=True)
        assert frame_ancestors(answer) == (
            f"frame-ancestors 'self' {DESKTOP} https://*.crm.example.com:8443"
        ), path
        # X-Frame-Options has no way to name another origin (ALLOW-FROM is gone from
        # browsers): sent with the CSP, SAMEORIGIN would block the desktop in the older ones
        # that still read it first.
        assert "X-Frame-Options" not in answer.headers, path


def test_the_api_is_not_given_page_headers(make_app):
    client = make_app(frame_ancestors=DESKTOP).test_client()
    assert "Content-Security-Policy" not in client.get("/healthz").headers


@pytest.mark.parametrize(
    "value",
    [
        "*",  # any site: the clickjacking the policy exists to stop
        "desktop.example.com",  # no scheme
        "https://desktop.example.com/panel",  # a path: browsers match origins
        "'none'",
        "javascript:alert(1)",
        f"{DESKTOP} https://exa mple.com",
        "https://*",
        "https://desk.*.example.com",
    ],
)
def test_a_value_that_is_not_an_origin_stops_start_up(value):
    with pytest.raises(ValueError, match="^VEA_FRAME_ANCESTORS: .* is not an origin"):
        Settings(frame_ancestors=value)


def test_the_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("VEA_FRAME_ANCESTORS", f"{DESKTOP}  http://127.0.0.1:9000")
    settings = Settings.from_env()
    assert settings.frame_ancestor_sources() == f"'self' {DESKTOP} http://127.0.0.1:9000"
