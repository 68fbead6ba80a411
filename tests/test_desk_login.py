"""The login page says why a sign-in failed when the key itself may be fine: a lockout
after too many guesses or the database down is not "that key is not valid"."""

from __future__ import annotations

from tests.test_api_decisions import unreachable_url
from tests.test_pages import CSRF, raw_key


def _post_key(client, key: str, lang: str):
    token = CSRF.search(client.get(f"/login?lang={lang}").get_data(as_text=True)).group(1)
    return client.post(f"/login?lang={lang}", data={"key": key, "csrf_token": token})


def test_a_locked_out_address_is_told_to_wait_not_that_its_key_is_bad(make_app, keys):
    app = make_app(auth_failures_per_s=0.01, auth_failures_burst=2)
    client = app.test_client()
    for i in range(2):
        assert _post_key(client, f"vea_0_guess{i}", "ja").status_code == 401
    locked = _post_key(client, raw_key(keys["desktop"]), "ja")  # the right key, locked out
    assert locked.status_code == 429
    text = locked.get_data(as_text=True)
    assert "キーが無効" not in text, "a lockout read as a revoked key"
    assert f"{locked.headers['Retry-After']}秒後" in text
    english = _post_key(client, raw_key(keys["desktop"]), "en").get_data(as_text=True)
    assert "Too many failed sign-ins" in english and "not valid" not in english


def test_database_down_the_login_page_says_so(app, keys, tmp_path):
    from service.db import make_engine

    client = app.test_client()
    state = app.extensions["vea"]
    state.engine = make_engine(unreachable_url(str(state.engine.url), tmp_path))
    state.keys._cache_s = 0
    answer = _post_key(client, raw_key(keys["desktop"]), "ja")
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    text = answer.get_data(as_text=True)
    assert "データベースに接続できない" in text and "エラーが発生しました" not in text


def test_a_desk_posted_while_signed_out_comes_back_with_its_details(client, keys):
    """The desktop may post the interaction to the desk; with the session expired, the
    agent signs in and must land on that contact, not on "missing: interaction_id". The
    posted details stay out of every URL on the way (they were written into the login's
    ``next`` and the desk's address, so into the browser's history): the session keeps
    them until the sign-in, once."""
    import html
    import re
    import uuid

    form = {
        "interaction_id": uuid.uuid4().hex,
        "customer_id": uuid.uuid4().hex,
        "channel": "voice",
        "issue_type": "how_to",
        "agent_id": "agent-posted",
    }
    answer = client.post("/desk?lang=ja", data=form)
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login?next=")
    login = client.get(answer.headers["Location"]).get_data(as_text=True)
    back = html.unescape(re.search(r'name="next" value="([^"]*)"', login).group(1))
    signed_in = client.post(
        "/login",
        data={
            "key": raw_key(keys["desktop"]),
            "csrf_token": CSRF.search(login).group(1),
            "next": back,
        },
    )
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == back
    opened = client.get(back)
    assert opened.status_code == 302  # to the decision, as a signed-in post is
    desk = client.get(opened.headers["Location"])
    text = desk.get_data(as_text=True)
    assert desk.status_code == 200, text
    assert 'data-agent-id="agent-posted"' in text and 'lang="ja"' in text
    for url in (answer.headers["Location"], back, opened.headers["Location"]):
        for name in ("interaction_id", "customer_id", "issue_type"):
            assert form[name] not in url and name not in url, url
    with client.application.app_context():
        from service.web.desk import decided_language

        assert decided_language(form["interaction_id"]) == "ja"
    again = client.get(back)  # the kept details are used once
    assert again.status_code == 404
    assert "デスクトップからお問い合わせを開き直して" in again.get_data(as_text=True)


def _switch(client, page: str, code: str):
    """Follow the login page's language link: the switch, then the page it returns to."""
    import html
    import re

    link = html.unescape(re.search(rf'<a href="([^"]+)"[^>]*data-lang="{code}"', page).group(1))
    back = client.get(link)
    assert back.status_code == 302
    return back.headers["Location"], client.get(back.headers["Location"])


def test_the_login_pages_switch_wins_over_a_link_that_names_a_language(client, keys):
    """As the top bar (d067436): the login page's own lang= and the next page's went back
    with the switch and won over its cookie, so the switch changed nothing."""
    from urllib.parse import parse_qs, quote, urlsplit

    target = "/desk?interaction_id=i-1&lang=en&customer_id=c-1&channel=chat"
    page = client.get(f"/login?lang=en&next={quote(target)}").get_data(as_text=True)
    assert '<html lang="en"' in page
    where, switched = _switch(client, page, "ja")
    assert "lang=" not in urlsplit(where).query.replace("next=", "")
    text = switched.get_data(as_text=True)
    assert '<html lang="ja"' in text
    kept = parse_qs(urlsplit(where).query)["next"][0]
    assert kept == "/desk?interaction_id=i-1&customer_id=c-1&channel=chat"  # the rest kept
    assert f'name="next" value="{kept}"' in text.replace("&amp;", "&")
    # Signing in there lands on the desk in the chosen language, not the link's.
    token = CSRF.search(text).group(1)
    answer = client.post(
        "/login", data={"key": raw_key(keys["desktop"]), "csrf_token": token, "next": kept}
    )
    assert answer.status_code == 302 and answer.headers["Location"] == kept
    # ... and back again, also after a refused key (the page then has no query string).
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)  # a new session
    refused = client.post(
        "/login?lang=ja", data={"key": "vea_0_nope", "csrf_token": token, "next": target}
    )
    assert refused.status_code == 401
    _, english = _switch(client, refused.get_data(as_text=True), "en")
    assert '<html lang="en"' in english.get_data(as_text=True)
    assert "interaction_id=i-1" in english.get_data(as_text=True)  # the contact kept


def test_posted_forms_kept_for_the_sign_in_keep_the_session_cookie_small(client):
    """Kept forms ride in the signed session cookie: a form no contact can be is not kept,
    and many forms keep only the newest, so the cookie stays under the browsers' 4 kB
    (over it the browser drops the cookie, and the session with it)."""
    import secrets

    huge = client.post("/desk", data={"interaction_id": "x" * 5000, "channel": "voice"})
    assert huge.status_code == 302 and huge.headers["Location"] == "/login?next=/desk"
    for _ in range(6):
        form = {  # the longest values the desk takes, as random as ids are
            "interaction_id": secrets.token_hex(64),
            "customer_id": secrets.token_hex(64),
            "channel": "voice",
            "segment": secrets.token_hex(32),
            "persona": secrets.token_hex(32),
            "agent_id": secrets.token_hex(64),
        }
        answer = client.post("/desk", data=form)
        assert "form%3D" in answer.headers["Location"]
    cookie = client.get_cookie("vea_session")
    assert cookie is not None and len(cookie.value) < 4000


def test_a_revoked_key_is_told_as_revoked(make_app):
    from service.auth import create_key, revoke_key

    app = make_app(key_cache_s=0)
    engine = app.extensions["vea"].engine
    key_id, key = create_key(engine, "desktop")
    revoke_key(engine, key_id)
    client = app.test_client()
    answer = _post_key(client, key, "ja")
    assert answer.status_code == 401
    assert "このキーは無効化されています" in answer.get_data(as_text=True)
    english = _post_key(client, key, "en").get_data(as_text=True)
    assert "This key was revoked: ask your administrator for the new one." in english
