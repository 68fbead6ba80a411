"""Page sessions end on the server: after a sign-out, its session's cookie (a copy of it
taken before) gets the sign-in page, on the desk and on the dashboard, on every worker;
revoking the key ends its sessions; a session ends its hours after the sign-in even while
in use; a second sign-in is independent of the first; a cookie from before stored
sessions asks to sign in again; a database outage is answered as before, never a 500.

Flask's test client on both backends, and Chromium against gunicorn (2 workers) on
PostgreSQL (the fixtures of ``tests/test_pages_browser.py``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from service.db import page_sessions, utcnow
from tests.test_api_decisions import unreachable_url
from tests.test_pages import CSRF, desk_url, log_in, raw_key
from tests.test_pages_browser import browser, desktops, new_page, server  # noqa: F401
from tests.test_pages_browser import log_in as browser_log_in

COOKIE = "vea_session"
PAGES = {"desktop": "/desk?lang=en", "manager": "/dashboard?lang=en"}


def _key_id(key: str) -> str:
    return key.split("_")[1]  # vea_<key_id>_<secret>


def _stored_sessions(app, key: str) -> int:
    with app.extensions["vea"].engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(page_sessions)
            .where(page_sessions.c.key_id == _key_id(key))
        ).scalar_one()


@pytest.fixture
def own_sessions(app, keys):
    """The test's keys; their stored sessions are deleted afterwards (the suite shares one
    database a backend)."""
    yield keys
    ids = [_key_id(raw_key(headers)) for headers in keys.values()]
    with app.extensions["vea"].engine.begin() as conn:
        conn.execute(page_sessions.delete().where(page_sessions.c.key_id.in_(ids)))


def _copy(app, client):
    """Another browser holding a copy of ``client``'s session cookie."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    return thief


def _sign_out(client, token: str):
    answer = client.post("/logout", data={"csrf_token": token})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    return answer


def _signed_out(answer) -> bool:
    return answer.status_code == 302 and answer.headers["Location"].startswith("/login")


@pytest.mark.parametrize("role", ["desktop", "manager"])
def test_a_cookie_copied_before_the_sign_out_gets_the_sign_in_page(app, own_sessions, role):
    """The signed cookie alone kept working after the sign-out until it expired."""
    client = app.test_client()
    token = log_in(client, raw_key(own_sessions[role]))
    page = PAGES[role]
    assert client.get(page).status_code == 200
    copy = _copy(app, client)
    assert copy.get(page).status_code == 200  # while signed in, the cookie is the session

    _sign_out(client, token)
    assert _signed_out(client.get(page))
    assert _signed_out(copy.get(page))
    assert _signed_out(copy.get(PAGES["desktop" if role == "manager" else "manager"]))
    assert _stored_sessions(app, raw_key(own_sessions[role])) == 0
    # Nor can the copy post: the desk's outcome answers 401 in JSON as for a signed-out
    # agent (its CSRF token was the session's).
    outcome = copy.post(
        "/desk/outcome",
        json={"decision_id": "any", "status": "skipped"},
        headers={"X-CSRF-Token": token},
    )
    assert outcome.status_code == 401


def test_a_second_sign_in_is_independent_of_the_first(app, own_sessions):
    key = raw_key(own_sessions["desktop"])
    first, second = app.test_client(), app.test_client()
    first_token = log_in(first, key)
    log_in(second, key)
    copy_of_first = _copy(app, first)
    assert _stored_sessions(app, key) == 2

    _sign_out(first, first_token)
    assert _signed_out(copy_of_first.get(PAGES["desktop"]))
    assert second.get(PAGES["desktop"]).status_code == 200  # the other browser stays in
    assert _stored_sessions(app, key) == 1


def test_signing_in_again_ends_the_session_the_browser_had(app, own_sessions):
    """A sign-in over a session (another key at the same desk) starts a new one; a copy of
    the earlier cookie must not outlive it."""
    client = app.test_client()
    log_in(client, raw_key(own_sessions["manager"]))
    earlier = _copy(app, client)
    log_in(client, raw_key(own_sessions["desktop"]))
    assert client.get(PAGES["desktop"]).status_code == 200
    assert _signed_out(earlier.get(PAGES["manager"]))
    assert _stored_sessions(app, raw_key(own_sessions["manager"])) == 0


def test_revoking_the_key_ends_and_deletes_its_sessions(app, own_sessions):
    from service.auth import revoke_key

    key = raw_key(own_sessions["desktop"])
    agents = [app.test_client() for _ in range(2)]
    for agent in agents:
        log_in(agent, key)
    other = app.test_client()
    log_in(other, raw_key(own_sessions["manager"]))
    assert _stored_sessions(app, key) == 2

    assert revoke_key(app.extensions["vea"].engine, _key_id(key))
    assert _stored_sessions(app, key) == 0  # no row left naming a dead key
    for agent in agents:
        assert _signed_out(agent.get(PAGES["desktop"]))
    assert other.get(PAGES["manager"]).status_code == 200  # another key's session stays


def test_a_session_ends_its_hours_after_the_sign_in_even_while_in_use(
    app, own_sessions, monkeypatch
):
    """The cookie is signed anew on every response, so a session used within every 12 h
    (or a copy of its cookie, refreshed by whoever holds it) never expired."""
    import service.web.session as web_session

    hours = app.extensions["vea"].settings.session_hours
    signed_in_at = utcnow()
    client = app.test_client()
    key = raw_key(own_sessions["desktop"])
    log_in(client, key)

    def at(moment):
        monkeypatch.setattr(web_session, "utcnow", lambda: moment)

    at(signed_in_at + timedelta(hours=hours) - timedelta(minutes=1))
    assert client.get(PAGES["desktop"]).status_code == 200
    at(signed_in_at + timedelta(hours=hours, minutes=1))
    assert _signed_out(client.get(PAGES["desktop"]))
    assert _stored_sessions(app, key) == 1

    # The next sign-in (any key's) deletes expired rows: nothing else needs to run.
    log_in(app.test_client(), raw_key(own_sessions["manager"]))
    assert _stored_sessions(app, key) == 0
    assert _stored_sessions(app, raw_key(own_sessions["manager"])) == 1


def _cookie_from_before_stored_sessions(app, client, key: str, role: str) -> None:
    """The cookie a sign-in wrote before migration 0013: the key id and role, signed."""
    serializer = app.session_interface.get_signing_serializer(app)
    value = serializer.dumps({"_permanent": True, "key_id": _key_id(key), "role": role})
    client.set_cookie(COOKIE, value)


def test_a_cookie_from_before_stored_sessions_signs_in_again(app, own_sessions):
    client = app.test_client()
    _cookie_from_before_stored_sessions(app, client, raw_key(own_sessions["desktop"]), "desktop")
    answer = client.get(PAGES["desktop"])
    assert _signed_out(answer)
    assert client.get_cookie(COOKIE) is None  # the old cookie is cleared, not kept
    log_in(client, raw_key(own_sessions["desktop"]))
    assert client.get(PAGES["desktop"]).status_code == 200


def test_database_down_pages_answer_as_before_never_a_500(app, own_sessions, tmp_path):
    """A stored session goes on as the pages did in an outage (the desk still shows its
    degraded hint), and the sign-out signs the browser out; but a sign-in the server could
    not store is refused with the outage message (a session it could not end), and a
    cookie without a session id still signs in again."""
    from service.db import make_engine

    key = raw_key(own_sessions["desktop"])
    agent = app.test_client()
    token = log_in(agent, key)  # the key is verified and cached by the worker
    newcomer = app.test_client()
    login_token = CSRF.search(newcomer.get("/login").get_data(as_text=True)).group(1)
    old_cookie = app.test_client()
    _cookie_from_before_stored_sessions(app, old_cookie, key, "desktop")
    state = app.extensions["vea"]
    working = state.engine
    state.engine = make_engine(unreachable_url(str(working.url), tmp_path))
    try:
        page = agent.get(desk_url())
        assert page.status_code == 200, page.get_data(as_text=True)[-600:]
        assert 'id="degraded-note"' in page.get_data(as_text=True)

        refused = newcomer.post("/login", data={"key": key, "csrf_token": login_token})
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert "database unavailable" in refused.get_data(as_text=True)
        assert _signed_out(newcomer.get(PAGES["desktop"]))

        assert _signed_out(old_cookie.get(PAGES["desktop"]))

        _sign_out(agent, token)
        assert agent.get_cookie(COOKIE) is None  # the browser is signed out all the same
    finally:
        state.engine.dispose()
        state.engine = working


# ------------------------------------------------------------------ a real browser
@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.parametrize("role", ["desktop", "manager"])
def test_in_a_browser_a_copied_cookie_dies_with_the_sign_out(server, browser, role):  # noqa: F811
    """Chromium against gunicorn's two workers: the sign-out button ends the session for a
    copy of its cookie in another browser, on whichever worker answers; a second sign-in
    with the same key in a third browser stays in."""
    base, page_path = server["base"], PAGES[role]
    contexts = []
    try:
        signed = []
        for _ in range(2):
            context, page = new_page(browser, 1024)
            contexts.append(context)
            browser_log_in(page, base, server["keys"][role], next_path=page_path)
            assert "/login" not in page.url, page.url
            signed.append(page)
        leaving, staying = signed
        copy_context, copy = new_page(browser, 1024)
        contexts.append(copy_context)
        copy_context.add_cookies([c for c in leaving.context.cookies() if c["name"] == COOKIE])
        copy.goto(base + page_path)
        assert "/login" not in copy.url  # the copy is the session while it lasts

        leaving.locator("form.logout button").click()
        leaving.wait_for_url("**/login")
        for _ in range(4):  # both workers, more than once
            copy.goto(base + page_path)
            assert "/login" in copy.url, copy.url
            staying.goto(base + page_path)
            assert "/login" not in staying.url, staying.url
    finally:
        for context in contexts:
            context.close()
