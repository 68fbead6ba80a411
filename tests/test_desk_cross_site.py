"""A desk link from another site decides nothing until the agent confirms it.

The session cookie is SameSite=Lax, which browsers send with another site's top-level
link: any page a signed-in agent visited could open ``/desk?interaction_id=...`` links
(``window.open``) and store forged decisions under the agent's key (three of them for a
customer made the API answer ``allow_attempt: false`` for a week). A link that would
decide, followed from another site (``Sec-Fetch-Site`` cross-site or same-site) whose
origin is neither in ``VEA_FRAME_ANCESTORS`` nor in ``VEA_DESK_LINK_ORIGINS``, now shows
the contact and a button whose post carries the session's CSRF token; nothing is stored
before it. The desktop's own links, same-origin and header-less requests and reopening a
``decision_id`` are as before. The last test drives Chromium: a page on another origin
navigates a signed-in agent to a desk link.
"""

from __future__ import annotations

import html
import http.server
import re
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote, urlencode, urljoin, urlsplit

import pytest
import sqlalchemy as sa

from service.config import Settings
from service.db import decisions
from tests.test_pages import CSRF, log_in, raw_key
from tests.test_pages_accessibility import check, misread

# The browser test's gunicorn, Chromium and desktop pages (module-scoped fixtures).
from tests.test_pages_browser import browser, desktops, new_page, server  # noqa: F401
from tests.test_pages_browser import log_in as browser_log_in

EVIL = "https://evil.example"
DESKTOP = "https://desktop.example.com"
CROSS = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "document", "Referer": f"{EVIL}/"}
ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}


def _link(**overrides: str) -> tuple[str, str]:
    """A desk link that would decide, and its interaction id."""
    params = {
        "interaction_id": f"xs-{uuid.uuid4().hex}",
        "customer_id": "victim-42",
        "channel": "chat",
        "issue_type": "inquiry",
        "tenure_months": "2",
        "agent_id": "agent-forged",
        **overrides,
    }
    return "/desk?" + urlencode(params), params["interaction_id"]


def _stored(app, interaction_id: str) -> int:
    engine = app.extensions["vea"].engine
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(decisions.c.interaction_id == interaction_id)
        return conn.execute(query).scalar_one()


def _signed_in(app):
    from service.auth import create_key

    client = app.test_client()
    log_in(client, create_key(app.extensions["vea"].engine, "desktop")[1])
    return client


def _confirmation_form(page: str) -> tuple[str, dict[str, str]]:
    """The confirmation page's form: its action and its fields, as a browser posts it."""
    form = re.search(
        r'<form method="post" action="([^"]*)" id="desk-confirm-form">(.*?)</form>', page, re.S
    )
    assert form is not None, page
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2))
    }
    return html.unescape(form.group(1)), fields


@pytest.fixture
def agent(app):
    return _signed_in(app)


# ------------------------------------------------------ another site's link
def test_a_link_from_another_site_stores_nothing_and_asks_in_english(app, agent):
    url, interaction_id = _link()
    answer = agent.get(url, headers={**CROSS, **ENGLISH})
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert '<html lang="en">' in page and 'id="desk-confirm"' in page
    assert "A link from another site asks to open this contact" in page
    assert "Open this contact</button>" in page
    assert EVIL in page  # where the link came from
    for shown in (interaction_id, "victim-42", "agent-forged", "inquiry"):
        assert f">{shown}</dd>" in page, shown
    assert 'id="openness"' not in page
    assert _stored(app, interaction_id) == 0
    # The page's usual headers: framed only by the desk's origins, never cached.
    assert "frame-ancestors 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"


def test_the_question_in_japanese(app, agent):
    url, interaction_id = _link()
    answer = agent.get(url + "&lang=ja", headers={**CROSS, "Sec-Fetch-Site": "same-site"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and '<html lang="ja">' in page
    assert "別のサイトのリンクが、このお問い合わせをデスクで開こうとしています" in page
    assert "このお問い合わせを開く</button>" in page
    assert "顧客ID（customer_id）" in page
    assert '<dd lang="en">victim-42</dd>' in page  # an id on the Japanese page
    assert _stored(app, interaction_id) == 0
    action, _fields = _confirmation_form(page)
    assert action == "/desk?lang=ja"  # the link's language stays after the post


def test_opening_the_contact_stores_it_and_redirects_as_a_desktop_post(app, agent):
    url, interaction_id = _link()
    page = agent.get(url, headers=CROSS).get_data(as_text=True)
    action, fields = _confirmation_form(page)
    assert fields["csrf_token"]
    answer = agent.post(action, data=fields)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    location = answer.headers["Location"]
    assert location.startswith("/desk?decision_id=") and "agent_id=agent-forged" in location
    assert _stored(app, interaction_id) == 1
    shown = agent.get(location).get_data(as_text=True)
    assert 'id="openness"' in shown or 'id="resolve"' in shown
    # Confirmed once: the same link is the agent's contact now (a reload stores nothing new).
    again = agent.get(url).get_data(as_text=True)
    assert 'id="desk-confirm"' not in again and _stored(app, interaction_id) == 1


def test_a_post_without_the_sessions_token_does_not_open_it(app, agent):
    url, interaction_id = _link()
    action, fields = _confirmation_form(agent.get(url, headers=CROSS).get_data(as_text=True))
    stale = agent.post(action, data={**fields, "csrf_token": "from-another-session"})
    assert stale.status_code == 200 and 'id="desk-confirm"' in stale.get_data(as_text=True)
    # Another site's post (same site: the SameSite=Lax cookie comes with it) without it.
    del fields["csrf_token"]
    headers = {**CROSS, "Sec-Fetch-Site": "same-site", "Origin": "https://other.example.com"}
    posted = agent.post(action, data=fields, headers=headers)
    assert posted.status_code == 200 and 'id="desk-confirm"' in posted.get_data(as_text=True)
    assert _stored(app, interaction_id) == 0


def test_the_language_switch_on_the_question_asks_again(app, agent):
    """The switch leads back to the same link, same-origin: it must not open it."""
    url, interaction_id = _link()
    page = agent.get(url, headers=CROSS).get_data(as_text=True)
    switch = html.unescape(re.search(r'href="(/language/ja\?[^"]+)"', page).group(1))
    back = agent.get(switch, headers={"Sec-Fetch-Site": "same-origin"})
    assert back.status_code == 302
    again = agent.get(back.headers["Location"], headers={"Sec-Fetch-Site": "same-origin"})
    text = again.get_data(as_text=True)
    assert '<html lang="ja">' in text and 'id="desk-confirm"' in text
    assert _stored(app, interaction_id) == 0


def test_a_link_without_a_referer_is_asked_too(app, agent):
    url, interaction_id = _link()
    headers = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "document"}
    assert 'id="desk-confirm"' in agent.get(url, headers=headers).get_data(as_text=True)
    null = {**headers, "Origin": "null", "Referer": f"{DESKTOP}/"}
    assert 'id="desk-confirm"' in agent.get(url, headers=null).get_data(as_text=True)
    assert _stored(app, interaction_id) == 0


# ----------------------------------------------------------- as before
@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Sec-Fetch-Site: older browsers and programs
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed or bookmarked
    ],
    ids=["no-header", "same-origin", "none"],
)
def test_own_and_header_less_links_decide_as_before(app, agent, headers):
    url, interaction_id = _link()
    answer = agent.get(url, headers=headers)
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert 'id="desk-confirm"' not in page and ('id="openness"' in page or 'id="resolve"' in page)
    assert _stored(app, interaction_id) == 1


def test_the_desktops_origins_decide_as_before(make_app):
    app = make_app(
        frame_ancestors=f"{DESKTOP} https://*.crm.example.com",
        desk_link_origins="https://links.example.com:8443, http://intranet.example.org",
    )
    agent = _signed_in(app)
    for site, referer in (
        ("same-site", f"{DESKTOP}/contacts/17?tab=2"),  # the framed side panel
        ("cross-site", "https://eu.crm.example.com/"),
        ("cross-site", "https://links.example.com:8443/queue"),
        ("cross-site", "https://intranet.example.org/"),  # an http source admits https
    ):
        url, interaction_id = _link()
        headers = {"Sec-Fetch-Site": site, "Sec-Fetch-Dest": "iframe", "Referer": referer}
        page = agent.get(url, headers=headers).get_data(as_text=True)
        assert 'id="desk-confirm"' not in page, referer
        assert _stored(app, interaction_id) == 1, referer
    # A desktop's form post names its origin in Origin.
    url, interaction_id = _link()
    query = parse_qs(urlsplit(url).query)
    form = {name: values[0] for name, values in query.items()}
    posted = agent.post(
        "/desk", data=form, headers={"Sec-Fetch-Site": "same-site", "Origin": DESKTOP}
    )
    assert posted.status_code == 302 and _stored(app, interaction_id) == 1
    # Not their look-alikes.
    for referer in (
        "https://desktop.example.com.evil.example/",
        "https://crm.example.com/",
        "https://links.example.com/",  # another port
        "http://desktop.example.com/",  # an https source does not admit http
    ):
        url, interaction_id = _link()
        headers = {"Sec-Fetch-Site": "cross-site", "Referer": referer}
        page = agent.get(url, headers=headers).get_data(as_text=True)
        assert 'id="desk-confirm"' in page, referer
        assert _stored(app, interaction_id) == 0, referer


def test_reopening_a_decision_from_another_site_is_unaffected(app, agent):
    url, interaction_id = _link()
    assert _stored(app, interaction_id) == 0
    agent.get(url)  # the agent's own link
    (decision_id,) = _decision_ids(app, interaction_id)
    answer = agent.get(f"/desk?decision_id={decision_id}", headers=CROSS)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and 'id="desk-confirm"' not in page
    assert f'data-decision-id="{decision_id}"' in page


def _decision_ids(app, interaction_id: str) -> list[str]:
    engine = app.extensions["vea"].engine
    with engine.connect() as conn:
        query = sa.select(decisions.c.decision_id).where(
            decisions.c.interaction_id == interaction_id
        )
        return list(conn.execute(query).scalars())


# ------------------------------------------------------------ via the sign-in
def test_a_sign_in_another_site_led_to_does_not_open_its_contact(app, keys):
    """``/login?next=/desk?...``: after the sign-in (a same-origin post) the redirect to
    the desk is same-origin; the sign-in page remembers where its link came from."""
    client = app.test_client()
    url, interaction_id = _link()
    login = client.get("/login?" + urlencode({"next": url}), headers=CROSS)
    token = CSRF.search(login.get_data(as_text=True)).group(1)
    answer = client.post(
        "/login",
        data={"key": raw_key(keys["desktop"]), "csrf_token": token, "next": url},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    )
    assert answer.status_code == 302 and answer.headers["Location"] == url
    page = client.get(url, headers={"Sec-Fetch-Site": "same-origin"}).get_data(as_text=True)
    assert 'id="desk-confirm"' in page
    assert _stored(app, interaction_id) == 0
    action, fields = _confirmation_form(page)
    assert client.post(action, data=fields).status_code == 302
    assert _stored(app, interaction_id) == 1


@pytest.mark.parametrize("spelt", ["/%64esk", "/./desk", "/x/../desk"])
def test_the_sign_in_marks_a_desk_link_however_its_path_is_spelt(app, keys, spelt):
    """The mark went by the path's text: these reach the desk all the same (the server
    decodes %64, the browser resolves the dot segments) and decided unconfirmed."""
    client = app.test_client()
    url, interaction_id = _link()
    variant = spelt + url[len("/desk") :]
    login = client.get("/login?" + urlencode({"next": variant}), headers=CROSS)
    token = CSRF.search(login.get_data(as_text=True)).group(1)
    answer = client.post(
        "/login",
        data={"key": raw_key(keys["desktop"]), "csrf_token": token, "next": variant},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    resolved = urlsplit(urljoin("http://localhost/", answer.headers["Location"]))
    page = client.get(
        unquote(resolved.path) + "?" + resolved.query, headers={"Sec-Fetch-Site": "same-origin"}
    ).get_data(as_text=True)
    assert 'id="desk-confirm"' in page
    assert _stored(app, interaction_id) == 0


def test_a_signed_out_agent_sent_by_another_site_is_asked_after_the_sign_in(app, keys):
    client = app.test_client()
    url, interaction_id = _link()
    first = client.get(url, headers=CROSS)
    assert first.status_code == 302 and first.headers["Location"].startswith("/login?next=")
    log_in(client, raw_key(keys["desktop"]), next_path=url)
    page = client.get(url, headers={"Sec-Fetch-Site": "same-origin"}).get_data(as_text=True)
    assert 'id="desk-confirm"' in page and _stored(app, interaction_id) == 0


def test_a_same_site_post_kept_for_the_sign_in_is_asked_after_it(app, keys):
    """A post from another origin of the site (the cookie comes with it) while signed out
    is kept for the sign-in (``_return_path``): it comes back same-origin, still asked."""
    client = app.test_client()
    url, interaction_id = _link()
    form = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    headers = {**CROSS, "Sec-Fetch-Site": "same-site", "Origin": "http://wiki.localhost"}
    first = client.post("/desk", data=form, headers=headers)
    assert first.status_code == 302 and "form%3D" in first.headers["Location"]
    back = parse_qs(urlsplit(first.headers["Location"]).query)["next"][0]
    log_in(client, raw_key(keys["desktop"]), next_path=back)
    page = client.get(back, headers={"Sec-Fetch-Site": "same-origin"}).get_data(as_text=True)
    assert 'id="desk-confirm"' in page and _stored(app, interaction_id) == 0
    action, fields = _confirmation_form(page)
    assert client.post(action, data=fields).status_code == 302
    assert _stored(app, interaction_id) == 1


def test_the_desktops_own_sign_in_link_is_not_asked(make_app):
    app = make_app(frame_ancestors=DESKTOP)
    from service.auth import create_key

    key = create_key(app.extensions["vea"].engine, "desktop")[1]
    client = app.test_client()
    url, interaction_id = _link()
    framed = {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": "iframe", "Referer": f"{DESKTOP}/"}
    client.get("/login?" + urlencode({"next": url}), headers=framed)
    log_in(client, key, next_path=url)
    page = client.get(url, headers={"Sec-Fetch-Site": "same-origin"}).get_data(as_text=True)
    assert 'id="desk-confirm"' not in page and _stored(app, interaction_id) == 1


# ------------------------------------------------------------------ setting
def test_desk_link_origins_are_checked_at_start_up():
    settings = Settings(
        frame_ancestors=DESKTOP, desk_link_origins=" https://a.example.com/,http://b.example:81 "
    )
    assert settings.desk_link_sources() == (DESKTOP, "https://a.example.com", "http://b.example:81")
    for value in ("*", "a.example.com", "https://a.example.com/panel", "https://*"):
        with pytest.raises(ValueError, match="^VEA_DESK_LINK_ORIGINS: .* is not an origin"):
            Settings(desk_link_origins=value)


@pytest.mark.parametrize(
    ("origin", "source", "matches"),
    [
        ("https://desk.example.com", "https://desk.example.com", True),
        ("https://DESK.example.com:443", "https://desk.example.com/", True),
        ("https://a.b.example.com", "https://*.example.com", True),
        ("https://example.com", "https://*.example.com", False),
        ("https://badexample.com", "https://*.example.com", False),
        ("https://desk.example.com:8443", "https://desk.example.com", False),
        ("https://desk.example.com", "http://desk.example.com", True),
        ("http://desk.example.com", "https://desk.example.com", False),
        ("http://127.0.0.1:8001", "http://127.0.0.1:8000", False),
        ("http://127.0.0.1:x", "http://127.0.0.1:8000", False),
    ],
)
def test_origins_match_as_frame_ancestors_sources(origin, source, matches):
    from service.web.session import origin_matches

    assert origin_matches(origin, source) is matches


# --------------------------------------------------------------- in Chromium
class _OtherSite(http.server.BaseHTTPRequestHandler):
    """Another site's page: ``/?to=URL`` sends its window there, as a script would."""

    def do_GET(self) -> None:  # noqa: N802 - the handler's name
        (target,) = parse_qs(urlsplit(self.path).query)["to"]
        script = f"window.location = {target!r};"
        body = f"<!doctype html><title>elsewhere</title><script>{script}</script>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def other_site() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    # localhost, not 127.0.0.1 (the service's host): another site, not only another origin.
    yield f"http://localhost:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.browser
@pytest.mark.postgres
def test_in_chromium_another_sites_page_cannot_store_a_decision(server, browser, other_site):  # noqa: F811
    base = server["base"]
    url, interaction_id = _link()

    def stored() -> int:
        with server["engine"].connect() as conn:
            query = sa.select(sa.func.count()).where(decisions.c.interaction_id == interaction_id)
            return conn.execute(query).scalar_one()

    seen: list = []
    context, page = new_page(browser, 420)
    try:
        browser_log_in(page, base, server["keys"]["desktop"])
        page.on(
            "request",
            lambda r: seen.append(r) if r.url.startswith(f"{base}/desk?") else None,
        )
        page.goto(f"{other_site}/?" + urlencode({"to": base + url}))
        page.locator("#desk-confirm").wait_for()
        assert page.url == base + url
        assert seen and seen[0].all_headers().get("sec-fetch-site") == "cross-site"
        assert "victim-42" in page.locator("#desk-confirm-details").inner_text()
        assert other_site in page.locator("#desk-confirm-origin").inner_text()
        assert stored() == 0
        found: dict[str, list[str]] = {}
        check(page, "confirm en", found)
        misread(page, "confirm en", found)
        # Typed again in Japanese (Sec-Fetch-Site: none): still asked, nothing stored.
        page.goto(base + url + "&lang=ja")
        page.locator("#desk-confirm").wait_for()
        assert page.locator("html").get_attribute("lang") == "ja"
        check(page, "confirm ja", found)
        misread(page, "confirm ja", found)
        assert not found, found
        assert stored() == 0
        page.locator("#desk-confirm-open").click()
        page.locator("#openness, #resolve").first.wait_for()
        assert "decision_id=" in page.url
        assert stored() == 1
    finally:
        context.close()
