"""The pages' sign-out from an older tab and their error pages in the page's language.

A tab opened before a sign-out and sign-in in another tab of the same browser posts an
older CSRF token with its Sign out button: it got a 403 titled as a role problem and the
session stayed signed in (a shared workstation). The pages' errors (a key's request
limit, a refused role, a stale form) showed English developer text on Japanese pages,
with a sign-in link for an agent who was signed in.

Flask's test client on both backends; one Chromium test against gunicorn (the fixtures
of ``tests/test_pages_browser.py``) for the header the browser sends with the button.
"""

from __future__ import annotations

import re

import pytest

from service.auth import create_key
from tests.test_pages import CSRF, desk_url, log_in
from tests.test_pages_browser import browser, desktops, new_page, server  # noqa: F401
from tests.test_pages_browser import log_in as browser_log_in

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def _key(app, role: str) -> str:
    return create_key(app.extensions["vea"].engine, role)[1]


def _signed_in(client) -> bool:
    return client.get(desk_url()).status_code == 200


def _text(answer) -> str:
    return answer.get_data(as_text=True)


def _links(page: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', page)


def _older_tab(app) -> tuple:
    """A browser signed in, whose first tab kept the token of the session it had before
    another tab signed out and in again."""
    client, key = app.test_client(), _key(app, "desktop")
    older_token = log_in(client, key)
    assert client.post("/logout", data={"csrf_token": older_token}).status_code == 302
    log_in(client, key)
    assert _signed_in(client)
    return client, older_token


# ------------------------------------------------------------------- sign-out
def test_sign_out_from_an_older_tab_signs_out(app):
    client, older_token = _older_tab(app)
    answer = client.post("/logout", data={"csrf_token": older_token}, headers=SAME_ORIGIN)
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert not _signed_in(client)


@pytest.mark.parametrize(
    ("language", "words"),
    [("ja", "サインアウトしますか"), ("en", "Sign out of the session open now?")],
)
def test_without_sec_fetch_site_an_older_tab_asks_once_never_a_role(app, language, words):
    """An older browser sends no Sec-Fetch-Site: one click on the page signs out."""
    client, older_token = _older_tab(app)
    client.set_cookie("vea_lang", language)
    asked = client.post("/logout", data={"csrf_token": older_token})
    page = _text(asked)
    assert asked.status_code == 200 and words in page and f'<html lang="{language}">' in page
    assert "role" not in page.lower() and "ロール" not in page and "CSRF" not in page
    assert _signed_in(client)  # nothing happened yet
    token = CSRF.search(page).group(1)
    assert token != older_token
    answer = client.post("/logout", data={"csrf_token": token})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert not _signed_in(client)


def test_another_site_cannot_sign_the_agent_out(app):
    client = app.test_client()
    log_in(client, _key(app, "desktop"))
    # Another site's post (the test client sends the cookie a browser would not): asked.
    asked = client.post("/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert asked.status_code == 200 and 'action="/logout"' in _text(asked)
    assert _signed_in(client)
    # As a browser sends it, without the SameSite=Lax cookie: nothing to end, and no new
    # cookie to replace the agent's (the error page's new session did).
    stranger = app.test_client()
    answer = stranger.post("/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert "Set-Cookie" not in answer.headers


# ---------------------------------------------------------------- error pages
@pytest.mark.parametrize(
    ("language", "words", "english"),
    [
        ("ja", ["秒待ってから", "再読み込み"], "Too many requests"),
        ("en", ["wait", "reload the page"], None),
    ],
)
def test_the_keys_request_limit_says_wait_and_reload_in_the_page_language(
    make_app, language, words, english
):
    app = make_app(rate_limit_per_s=0.01, rate_limit_burst=1)
    client = app.test_client()
    log_in(client, _key(app, "desktop"))
    url = desk_url(lang=language)
    assert client.get(url).status_code == 200
    limited = client.get(url)
    page = _text(limited)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert f'<html lang="{language}">' in page
    assert all(w in page for w in words), page
    if english:
        assert english not in page and "エラーが発生しました" not in page
    # Signed in: a link to reload this page, none to the sign-in page.
    assert all("/login" not in link for link in _links(page)), _links(page)
    assert any(link.startswith("/desk?") for link in _links(page))


@pytest.mark.parametrize(
    ("language", "sentence", "link"),
    [
        (
            "ja",
            "サインイン中のキーのロールは desktop です",
            "別のキーでサインイン",
        ),
        ("en", "You are signed in with a key of the role desktop", "Sign in with another key"),
    ],
)
def test_a_refused_role_is_a_sentence_in_the_page_language(app, language, sentence, link):
    client = app.test_client()
    log_in(client, _key(app, "desktop"))
    refused = client.get(f"/dashboard?lang={language}")
    page = _text(refused)
    assert refused.status_code == 403 and f'<html lang="{language}">' in page
    assert sentence in page and "manager" in page
    assert "role &#39;desktop&#39;" not in page and "role 'desktop'" not in page  # developer text
    assert link in page and "/login?next=/dashboard" in page


def test_a_stale_sign_in_form_is_not_called_a_role_problem(client):
    client.get("/login")
    client.set_cookie("vea_lang", "ja")
    refused = client.post("/login", data={"key": "vea_x_y", "csrf_token": "from-another-session"})
    page = _text(refused)
    assert refused.status_code == 403
    assert "このページは古くなっています" in page and "再読み込み" in page
    assert "ロール" not in page and "CSRF" not in page
    assert _links(page) == ["/login"]  # the sign-in page again, once


def test_other_errors_say_so_in_japanese_and_mark_the_original(app):
    client = app.test_client()
    log_in(client, _key(app, "manager"))
    missing = client.get("/dashboard/nothing.csv?lang=ja")
    page = _text(missing)
    assert missing.status_code == 404
    assert "ページを表示できませんでした（HTTP 404）。" in page
    assert '（原文）<span lang="en">no table' in page


# ------------------------------------------------------------- a real browser
@pytest.mark.browser
@pytest.mark.postgres
def test_in_a_browser_the_older_tabs_sign_out_signs_out(server, browser):  # noqa: F811
    """The audit's two tabs: sign out and in again in tab B, then Sign out in tab A."""
    base, key = server["base"], server["keys"]["desktop"]
    context, first = new_page(browser, 1024, locale="ja-JP")
    try:
        browser_log_in(first, base, key, next_path="/desk?lang=ja")
        second = context.new_page()
        second.goto(base + "/desk?lang=ja")
        second.locator("form.logout button").click()
        second.wait_for_url("**/login")
        browser_log_in(second, base, key, next_path="/desk?lang=ja")
        assert "/login" not in second.url

        first.locator("form.logout button").click()
        first.wait_for_url("**/login")
        second.goto(base + "/desk?lang=ja")
        assert "/login" in second.url, second.url  # the session ended
    finally:
        context.close()
