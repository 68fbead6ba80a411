"""The pages in a real browser: Debian's Chromium driven by Playwright against real
gunicorn (2 sync workers) on a fresh PostgreSQL database and a real model registry.

An agent logs in, opens a decision in the desk, switches to Japanese and records an
accepted outcome with VES through the keyboard; a manager sees it counted in the
dashboard, sorts a table and downloads its CSV; a wrong key is refused. Screenshots of
both pages in both languages go to ``var/screenshots`` (git-ignored) or
``$VEA_SCREENSHOTS``.
"""

from __future__ import annotations

import html
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import free_port

pytestmark = [pytest.mark.browser, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("VEA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOLDOUT_SHARE = 0.3
EXPERIMENT = "pages-browser"
SHOTS = Path(os.environ.get("VEA_SCREENSHOTS", ROOT / "var" / "screenshots"))
TIMEOUT_MS = 15_000


# ------------------------------------------------------------------ fixtures
class _DesktopPage(http.server.BaseHTTPRequestHandler):
    """A contact-center desktop on another origin: its page shows the URL in ``?panel=``
    in a side-panel iframe."""

    def do_GET(self) -> None:  # noqa: N802 - the handler's name
        (panel,) = parse_qs(urlsplit(self.path).query)["panel"]
        body = (
            "<!doctype html><title>desktop</title><h1>desktop</h1>"
            f'<iframe id="panel" src="{html.escape(panel)}" width="420" height="800"></iframe>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def desktops() -> Iterator[dict[str, str]]:
    """Two desktop origins beside the service on 127.0.0.1 (the same site: the session
    cookie is SameSite=Lax): one named in VEA_FRAME_ANCESTORS, one not."""
    servers = {
        name: http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DesktopPage)
        for name in ("allowed", "other")
    }
    for httpd in servers.values():
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield {name: f"http://127.0.0.1:{httpd.server_port}" for name, httpd in servers.items()}
    for httpd in servers.values():
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(postgres, trained_registry, tmp_path_factory, desktops) -> Iterator[dict]:
    """gunicorn on a free port with its own database; keys for each role."""
    from service.auth import create_key

    url = postgres.create_database(f"vea_pages_{uuid.uuid4().hex[:8]}")
    root = tmp_path_factory.mktemp("pages")
    registry = root / "registry"
    shutil.copytree(trained_registry, registry, ignore=shutil.ignore_patterns(".lock"))
    port = free_port()
    env = {
        **os.environ,
        "VEA_DATABASE_URL": url,
        "VEA_REGISTRY": str(registry),
        "VEA_BIND": f"127.0.0.1:{port}",
        "VEA_WORKERS": "2",
        "VEA_ACCESS_LOG": "0",
        "VEA_RATE_LIMIT_PER_S": "0",
        "VEA_HOLDOUT_SHARE": str(HOLDOUT_SHARE),
        "VEA_EXPERIMENT": EXPERIMENT,
        "VEA_COMPILE_CACHE": "",  # no background compilation competing for the 2 cores
        "PROMETHEUS_MULTIPROC_DIR": str(root / "prom"),
        "VEA_FRAME_ANCESTORS": desktops["allowed"],
    }
    env.pop("VEA_SECRET_KEY", None)  # the master draws one shared by both workers
    (root / "prom").mkdir()
    log = root / "gunicorn.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log.read_text()[-3000:]}")
            try:
                if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn not ready: {log.read_text()[-3000:]}")
            time.sleep(0.3)
        engine = sa.create_engine(url)
        keys = {role: create_key(engine, role)[1] for role in ("desktop", "manager")}
        seed_outcomes(base, keys["desktop"])
        yield {"base": base, "engine": engine, "keys": keys}
        engine.dispose()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} not found (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_page(browser, width: int, height: int = 900, locale: str = "en-US"):
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale=locale, accept_downloads=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context, context.new_page()


def log_in(page, base: str, key: str, next_path: str = "") -> None:
    page.goto(f"{base}/login" + (f"?{urlencode({'next': next_path})}" if next_path else ""))
    page.locator("#key").fill(key)
    page.locator("form button[type=submit]").click()
    page.wait_for_load_state()


def customer_in(arm: str) -> str:
    """A fresh customer id the server's randomized holdout puts in ``arm``."""
    from models.exploration import holdout_arm

    while True:
        customer = uuid.uuid4().hex
        if holdout_arm(customer, HOLDOUT_SHARE, EXPERIMENT) == arm:
            return customer


def seed_outcomes(base: str, key: str) -> None:
    """Outcomes in both arms through the JSON API, so the dashboard has an uplift to draw."""
    headers = {"Authorization": f"Bearer {key}"}
    for i in range(16):
        arm = "holdout" if i % 2 else "treatment"
        body = {
            "interaction_id": uuid.uuid4().hex,
            "customer": {"customer_id": customer_in(arm), "tenure_months": 3, "segment": "premium"},
            "contact": {"channel": "voice", "issue_type": "how_to"},
        }
        decision = requests.post(f"{base}/v1/decisions", json=body, headers=headers, timeout=30)
        assert decision.status_code == 201, decision.text
        answer = decision.json()
        attempted = answer["suggested_activity"] != "none"
        outcome = {
            "offered": attempted,
            "accepted": (i % 3 != 0) if attempted else None,
            "ves_confidence": 4 + i % 4,
            "ves_ability": 3 + i % 5,
            "agent_id": f"agent-{i % 3}",
        }
        stored = requests.post(
            f"{base}/v1/decisions/{answer['decision_id']}/outcome",
            json=outcome,
            headers=headers,
            timeout=30,
        )
        assert stored.status_code == 201, stored.text


def desk_query(**overrides) -> str:
    params = {
        "interaction_id": uuid.uuid4().hex,
        "customer_id": customer_in("treatment"),
        "channel": "chat",
        "issue_type": "inquiry",
        "segment": "premium",
        "tenure_months": "2",
        "agent_id": "agent-browser",
        **overrides,
    }
    return "/desk?" + urlencode(params)


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


UNLABELLED = """() => Array.from(document.querySelectorAll(
    'input:not([type=hidden]), select, button, canvas, a')).filter((el) => {
  if (el.tagName === 'CANVAS') return !el.getAttribute('aria-label');
  return !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.textContent.trim();
}).map((el) => el.outerHTML.slice(0, 120))"""


def unlabelled(page) -> list[str]:
    """Controls a screen reader could not name (basic accessibility)."""
    return page.evaluate(UNLABELLED)


def no_horizontal_scroll(page) -> bool:
    return page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


# --------------------------------------------------------------------- tests
def test_a_wrong_key_is_refused(server, browser):
    context, page = new_page(browser, 1024)
    try:
        log_in(page, server["base"], "vea_000000000000_wrong", next_path="/dashboard")
        assert "/login" in page.url
        assert page.get_by_role("alert").inner_text().startswith("That key is not valid")
        page.goto(f"{server['base']}/dashboard")
        assert "/login" in page.url
    finally:
        context.close()


def test_agent_records_an_accepted_outcome_in_japanese(server, browser):
    base = server["base"]
    context, page = new_page(browser, 400, 900, locale="en-US")
    try:
        log_in(page, base, server["keys"]["desktop"])
        page.goto(base + desk_query())
        assert page.locator("html").get_attribute("lang") == "en"  # from the browser
        page.locator("#openness").wait_for()
        assert page.locator("#suggestion .activity").inner_text()
        assert page.locator("#route").count() == 1
        assert no_horizontal_scroll(page)
        assert unlabelled(page) == []
        shot(page, "desk-en")

        # By keyboard: Enter on the language link follows it (the desk's Enter shortcut
        # took it for "record").
        page.locator(".langs a[data-lang=ja]").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == "ja"
        assert page.locator("#openness h2").inner_text() == "受容度"
        assert no_horizontal_scroll(page)
        decision_id = page.locator("#desk").get_attribute("data-decision-id")

        # Keyboard only: A (accepted), 6 and 7 (the two VES items), Enter (record).
        page.locator("body").click(position={"x": 5, "y": 200})
        page.keyboard.press("a")
        assert page.locator("button[data-status=accepted]").get_attribute("aria-pressed") == (
            "true"
        )
        page.keyboard.press("6")
        page.keyboard.press("7")
        assert page.locator("input[name=ves_confidence][value='6']").is_checked()
        assert page.locator("input[name=ves_ability][value='7']").is_checked()
        shot(page, "desk-ja")
        page.keyboard.press("Enter")
        page.locator("#status-line.ok").wait_for()
        assert page.locator("#status-line").inner_text() == "記録しました。"
        shot(page, "desk-ja-recorded")
    finally:
        context.close()

    with server["engine"].connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT offered, accepted, ves_confidence, ves_ability, agent_id, ve_success "
                "FROM outcomes WHERE decision_id = :d"
            ),
            {"d": decision_id},
        ).one()
    assert row.offered is True and row.accepted is True
    assert (row.ves_confidence, row.ves_ability) == (6, 7)
    assert row.agent_id == "agent-browser" and row.ve_success is True


def test_outcome_buttons_work_by_mouse(server, browser):
    base = server["base"]
    context, page = new_page(browser, 400)
    try:
        log_in(page, base, server["keys"]["desktop"])
        # A chat contact, then the same customer calls: the desk shows the earlier channel.
        customer = customer_in("treatment")
        page.goto(base + desk_query(customer_id=customer, channel="chat", issue_type="how_to"))
        page.goto(
            base
            + desk_query(
                customer_id=customer, channel="voice", issue_type="how_to", agent_id="agent-mouse"
            )
        )
        if page.locator("#resolve").count() == 0:
            assert "chat contact" in page.locator("#earlier").inner_text()
        shot(page, "desk-en-continued")
        page.locator("button[data-status=declined]").click()
        page.locator(".ves[data-item=ves_confidence] .pill").nth(2).click()
        page.locator("#record").click()
        page.locator("#status-line.ok").wait_for()
    finally:
        context.close()


def test_upset_complaint_shows_only_resolve(server, browser):
    base = server["base"]
    context, page = new_page(browser, 400, locale="ja-JP")
    try:
        log_in(page, base, server["keys"]["desktop"])
        page.goto(f"{base}/language/ja?next=/login")  # undo any earlier switch's cookie
        page.goto(base + desk_query(issue_type="complaint", sentiment="-0.8"))
        page.locator("#resolve").wait_for()
        for hidden in ("#openness", "#suggestion", "#reasons", "#route", "#earlier"):
            assert page.locator(hidden).count() == 0, hidden
        assert "手間なく解決" in page.locator("#resolve").inner_text()
        assert no_horizontal_scroll(page)
        shot(page, "desk-ja-complaint")
        # Enter on the folded form's summary opens it (it used to record at once) ...
        page.locator(".quiet-record summary").focus()
        page.keyboard.press("Enter")
        assert page.locator(".quiet-record").get_attribute("open") is not None
        assert page.locator("#status-line").inner_text() == ""
        # ... and Enter elsewhere records "skipped" (the only status here), visibly.
        page.evaluate("() => document.activeElement.blur()")
        page.keyboard.press("Enter")
        page.locator("#status-line.ok").wait_for()  # visible: the folded form opened
        assert page.locator("#status-line").inner_text() == "記録しました。"
    finally:
        context.close()


def test_desk_link_without_details_says_so(server, browser):
    context, page = new_page(browser, 400)
    try:
        log_in(page, server["base"], server["keys"]["desktop"])
        response = page.goto(f"{server['base']}/desk?channel=fax")
        assert response.status == 400
        text = page.locator("#desk-problem").inner_text()
        assert "interaction_id" in text and "customer_id" in text
    finally:
        context.close()


def test_manager_sees_the_outcome_in_the_dashboard(server, browser, tmp_path):
    # Runs after the agent's test (file order): the accepted outcome is in the database.
    base = server["base"]
    context, page = new_page(browser, 1280, 900)
    try:
        log_in(page, base, server["keys"]["manager"])
        page.goto(f"{base}/dashboard?period=all")
        assert page.locator("html").get_attribute("lang") == "en"
        with_outcome = int(page.locator("#kpi-with-outcome").inner_text().replace(",", ""))
        assert with_outcome >= 1
        agents = page.locator("#table-by_agent_id tbody").inner_text()
        assert "agent-browser" in agents
        # Charts drawn by the vendored Chart.js (no network: nothing else is reachable).
        page.wait_for_function("() => window.Chart !== undefined")
        for chart in ("chart-trend", "chart-activity", "chart-drift"):
            assert page.evaluate(f"() => !!document.getElementById('{chart}').chart"), chart
        # Both arms were seeded: uplift over the holdout with its interval is drawn.
        assert page.evaluate("() => !!document.getElementById('chart-uplift').chart")
        assert page.locator("#table-uplift tbody tr").count() >= 3
        # Sortable: by n, descending then ascending.
        header = page.locator("#table-by_channel th[data-column=n]")
        header.locator("button").click()
        assert header.get_attribute("aria-sort") == "ascending"
        header.locator("button").click()
        assert header.get_attribute("aria-sort") == "descending"
        assert unlabelled(page) == []
        shot(page, "dashboard-en")

        with page.expect_download() as download_info:
            page.locator("#table-by_agent_id a.csv").click()
        download = download_info.value
        target = tmp_path / "agents.csv"
        download.save_as(target)
        text = target.read_text(encoding="utf-8-sig")
        assert text.splitlines()[0].startswith("group,n,ves")
        assert "agent-browser" in text

        page.locator(".langs a[data-lang=ja]").click()
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == "ja"
        assert "価値ダッシュボード" in page.locator(".topbar").inner_text()
        page.wait_for_function("() => !!document.getElementById('chart-trend').chart")
        shot(page, "dashboard-ja")
    finally:
        context.close()


def test_agent_cannot_open_the_dashboard(server, browser):
    context, page = new_page(browser, 1024)
    try:
        log_in(page, server["base"], server["keys"]["desktop"])
        response = page.goto(f"{server['base']}/dashboard")
        assert response.status == 403
    finally:
        context.close()


def _answer_with(status: int, code: str, fields: dict | None = None, headers: dict | None = None):
    """A route handler answering /desk/outcome as the server does when it fails."""
    body = {"error": {"code": code, "message": f"server says {code}", "fields": fields or {}}}

    def handle(route) -> None:
        route.fulfill(
            status=status,
            content_type="application/json",
            body=json.dumps(body),
            headers=headers or {},
        )

    return handle


ENTRIES_KEPT = """() => document.querySelector('button[data-status=accepted]')
  .getAttribute('aria-pressed') === 'true'
  && document.querySelector('input[name=ves_confidence][value="6"]').checked"""


def _entries_kept(page) -> bool:
    """Accepted and VES 6 still chosen (waits for the page's script to restore them)."""
    page.wait_for_function(ENTRIES_KEPT, timeout=5_000)
    return True


def test_desk_errors_speak_the_page_language_and_keep_the_entries(server, browser):
    base = server["base"]
    context, page = new_page(browser, 400, locale="ja-JP")
    try:
        log_in(page, base, server["keys"]["desktop"])
        page.goto(base + desk_query(lang="ja"))
        page.locator("#openness").wait_for()
        decision_id = page.locator("#desk").get_attribute("data-decision-id")
        page.locator("button[data-status=accepted]").click()
        page.locator(".ves[data-item=ves_confidence] .pill").nth(5).click()
        failures = [
            (_answer_with(503, "unavailable", headers={"Retry-After": "30"}), "データベース"),
            (_answer_with(401, "unauthorized"), "セッションの有効期限"),
            (_answer_with(422, "validation_error", {"ves_ability": ["bad"]}), "より多くの価値"),
            (_answer_with(429, "rate_limited", headers={"Retry-After": "7"}), "7秒後"),
            (_answer_with(409, "decision_changed"), "提案が変わった"),
            (
                _answer_with(409, "survey_conflict", {"ves_confidence": ["7 is already recorded"]}),
                "アンケートで「購入への確信が高まった」に別の回答",
            ),
        ]
        for handler, words in failures:
            page.route("**/desk/outcome", handler)
            page.locator("#record").click()
            page.locator("#status-line.error", has_text=words).wait_for()
            text = page.locator("#status-line").inner_text()
            assert "server says" not in text, text  # the page's words, not the API's
            assert page.locator("#status-line").get_attribute("role") == "alert"
            assert page.locator("#status-line").get_attribute("aria-live") == "assertive"
            assert page.locator("#record").is_enabled() and _entries_kept(page), words
            page.unroute("**/desk/outcome")
            if words == "セッションの有効期限":
                link = page.locator("#status-line a")
                assert link.get_attribute("href").startswith("/login?next=%2Fdesk")
        shot(page, "desk-ja-error")

        # Nothing entered is lost by a reload ...
        page.reload()
        page.locator("#openness").wait_for()
        assert _entries_kept(page)
        # ... nor by a real session expiry: signing in again comes back to this page.
        context.clear_cookies()
        page.locator("#record").click()
        page.locator("#status-line.error", has_text="セッションの有効期限").wait_for()
        page.locator("#status-line a").click()
        page.locator("#key").fill(server["keys"]["desktop"])
        page.locator("form button[type=submit]").click()
        page.locator("#openness").wait_for()
        assert page.locator("#desk").get_attribute("data-decision-id") == decision_id
        assert _entries_kept(page)

        # Enter twice and a click before the answer: one post, one outcome.
        posts: list[str] = []
        page.on(
            "request",
            lambda r: posts.append(r.url) if r.method == "POST" and "/desk/outcome" in r.url else 0,
        )
        page.evaluate(
            """() => {
              for (let i = 0; i < 2; i++) {
                document.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
              }
              document.getElementById("record").click();
            }"""
        )
        page.locator("#status-line.ok").wait_for()
        page.wait_for_timeout(300)  # a second post would have been sent by now
        assert len(posts) == 1, posts
        page.reload()
        page.locator("#recorded").wait_for()  # reopened: the outcome, not fresh buttons
        page.wait_for_function("() => document.getElementById('record').disabled")
        assert "受け入れ" in page.locator("#recorded").inner_text()
    finally:
        context.close()
    with server["engine"].connect() as conn:
        count = conn.execute(
            sa.text("SELECT count(*) FROM outcomes WHERE decision_id = :d"), {"d": decision_id}
        ).scalar()
    assert count == 1


def test_long_ids_and_japanese_text_keep_the_panel_width(server, browser):
    base = server["base"]
    context, page = new_page(browser, 400)
    try:
        log_in(page, base, server["keys"]["desktop"])
        customer = customer_in("treatment")
        long_issue = "warranty_claim_for_the_replacement_part_ordered_through_a_reseller"[:64]
        page.goto(base + desk_query(customer_id=customer, issue_type=long_issue, lang="en"))
        page.goto(base + desk_query(customer_id=customer, channel="voice", lang="en"))
        page.locator("#earlier, #resolve").first.wait_for()
        for language in ("en", "ja"):
            page.goto(page.url.split("&lang=")[0] + f"&lang={language}")
            page.locator("main").wait_for()
            if page.locator("#earlier").count():
                assert long_issue in page.locator("#earlier").inner_text()
            assert no_horizontal_scroll(page), language
            assert unlabelled(page) == []
            shot(page, f"desk-{language}-long-issue")
    finally:
        context.close()


def test_entries_about_a_replaced_suggestion_do_not_come_back(server, browser):
    base = server["base"]
    context, page = new_page(browser, 400)
    try:
        log_in(page, base, server["keys"]["desktop"])
        query = desk_query(issue_type="how_to", sentiment="0.5", lang="en")
        page.goto(base + query)
        page.locator("#openness").wait_for()
        page.locator("button[data-status=accepted]").click()
        page.locator(".ves[data-item=ves_confidence] .pill").nth(5).click()
        # The desktop decides the contact again: an upset complaint now.
        params = dict(parse_qsl(query.split("?", 1)[1]))
        again = requests.post(
            f"{base}/v1/decisions",
            json={
                "interaction_id": params["interaction_id"],
                "customer": {"customer_id": params["customer_id"]},
                "contact": {"channel": "chat", "issue_type": "complaint", "sentiment": -0.9},
            },
            headers={"Authorization": f"Bearer {server['keys']['desktop']}"},
            timeout=30,
        )
        assert again.status_code == 200 and again.json()["suggested_activity"] == "none"
        page.reload()
        page.locator("#resolve").wait_for()
        page.locator(".quiet-record summary").click()
        page.wait_for_timeout(200)  # the page's script has run (deferred)
        assert not page.locator("input[name=ves_confidence][value='6']").is_checked()
        assert page.locator("button[data-status]").count() == 0  # quiet: no statuses
    finally:
        context.close()


def test_pages_run_under_their_content_security_policy(server, browser):
    """The pages load only their own scripts: nothing the policy refuses is needed (a
    refused script or style would show as a console error), and the page says so."""
    base = server["base"]
    refused: list[str] = []

    def watch(page) -> None:
        page.on("console", lambda m: refused.append(m.text) if "Security" in m.text else None)

    context, page = new_page(browser, 1280)
    watch(page)
    try:
        log_in(page, base, server["keys"]["desktop"])
        response = page.goto(base + desk_query(customer_id=customer_in("treatment")))
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
        meter = page.locator(".meter span")
        if meter.count():  # the meter's inline width applies
            assert meter.evaluate("e => getComputedStyle(e).width") not in ("0px", "auto")
    finally:
        context.close()
    context, page = new_page(browser, 1280)
    watch(page)
    try:
        log_in(page, base, server["keys"]["manager"])
        page.goto(f"{base}/dashboard?period=all")
        page.wait_for_function("() => !!document.getElementById('chart-trend').chart")
    finally:
        context.close()
    assert refused == []


def test_no_page_logs_a_missing_favicon(server, browser):
    """Chromium asked every page for /favicon.ico and logged its 404 in the console: the
    pages name their icon, which loads under their content security policy."""
    base = server["base"]
    errors: list[str] = []
    icons: list[int] = []
    context, page = new_page(browser, 1280)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: icons.append(r.status) if "favicon" in r.url else None)
    try:
        page.goto(f"{base}/login")
        log_in(page, base, server["keys"]["desktop"])
        page.goto(base + desk_query())
        page.wait_for_load_state("networkidle")
        assert page.evaluate("() => document.querySelector('link[rel=icon]').href").endswith(
            "/static/favicon.svg"
        )
    finally:
        context.close()
    assert not [e for e in errors if "favicon" in e or "404" in e], errors
    assert icons and all(status in (200, 204, 304) for status in icons), icons


def test_desk_in_a_side_panel_of_an_allowed_origin(server, browser, desktops):
    """An agent signs in inside the desktop's iframe and the desk opens there; a desktop
    whose origin VEA_FRAME_ANCESTORS does not name gets nothing of it."""
    panel = server["base"] + "/login?" + urlencode({"next": desk_query()})
    context, page = new_page(browser, 1280)
    try:
        page.goto(f"{desktops['allowed']}/?" + urlencode({"panel": panel}))
        frame = page.frame_locator("#panel")
        frame.locator("#key").fill(server["keys"]["desktop"])
        frame.locator("form button[type=submit]").click()
        frame.locator("#openness").wait_for()
        assert frame.locator("#suggestion .activity").inner_text()
        shot(page, "desk-in-side-panel")
    finally:
        context.close()
    context, page = new_page(browser, 1280)
    try:
        page.goto(f"{desktops['other']}/?" + urlencode({"panel": panel}))
        page.locator("#panel").wait_for()
        page.wait_for_timeout(1000)  # the frame's load, refused by the browser
        (child,) = [f for f in page.frames if f != page.main_frame]
        assert child.locator("#key").count() == 0
    finally:
        context.close()
