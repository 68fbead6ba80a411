"""Accessibility of the pages (WCAG 2.1 AA, as public-sector and large contact centers
require), in Debian's Chromium: axe-core on every state an agent or a manager meets, in
English and Japanese, then what axe cannot see: the keyboard alone, 200% zoom in the
desk's 400 px panel, colour as the only carrier of meaning, motion.

axe runs its WCAG 2.0/2.1 A and AA rules and its best practices (one h1, headings in
order, landmarks). What it cannot decide ("incomplete") fails too, except a colour
contrast it could not measure (text in a scrolled table, a lone symbol): that is
measured here from the computed colours. axe is injected through the DevTools protocol
(Playwright's evaluate), which the pages' content security policy does not govern: the
policy stays as served (tests/test_pages_browser.py checks it is sent).

The app runs in this process (werkzeug, threaded, on its own SQLite databases) so a test
can put the model out of order for a degraded answer.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator

import pytest

from tests.test_pages_browser import (  # noqa: F401 - browser is a fixture used by name
    EXPERIMENT,
    HOLDOUT_SHARE,
    browser,
    customer_in,
    desk_query,
    log_in,
    new_page,
    no_horizontal_scroll,
    seed_outcomes,
)

pytestmark = [pytest.mark.browser]

LANGUAGES = ("en", "ja")
DESK_WIDTH = 400  # the desktop's side panel
ZOOMED_DESK_WIDTH = DESK_WIDTH // 2  # the same panel at 200% zoom, in CSS pixels
DASHBOARD_WIDTH = 1280
REFLOW_WIDTH = 320  # WCAG 1.4.10: no scrolling in two directions at 320 CSS px
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
TEXT_CONTRAST, LARGE_TEXT_CONTRAST, NON_TEXT_CONTRAST = 4.5, 3.0, 3.0


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def sites(trained_registry, compile_cache, tmp_path_factory) -> Iterator[dict]:
    """Two running apps: ``full`` (outcomes in both arms) and ``empty`` (nothing yet)."""
    from werkzeug.serving import make_server

    from service.app import create_app
    from service.auth import create_key
    from service.db import upgrade
    from tests.conftest import free_port

    running: dict[str, dict] = {}
    try:
        for name in ("full", "empty"):
            root = tmp_path_factory.mktemp(f"a11y-{name}")
            url = f"sqlite:///{root / 'vea.db'}"
            upgrade(url)
            registry = root / "registry"
            shutil.copytree(trained_registry, registry, ignore=shutil.ignore_patterns(".lock"))
            app = create_app(
                {
                    "database_url": url,
                    "registry": str(registry),
                    "compile_cache": str(compile_cache),
                    "access_log": False,
                    "rate_limit_per_s": 0.0,
                    "holdout_share": HOLDOUT_SHARE,
                    "experiment": EXPERIMENT,
                }
            )
            engine = app.extensions["vea"].engine
            keys = {role: create_key(engine, role)[1] for role in ("desktop", "manager")}
            httpd = make_server("127.0.0.1", free_port(), app, threaded=True)
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
            base = f"http://127.0.0.1:{httpd.port}"
            running[name] = {"app": app, "base": base, "keys": keys, "httpd": httpd}
        seed_outcomes(running["full"]["base"], running["full"]["keys"]["desktop"])
        yield running
    finally:
        for site in running.values():
            site["httpd"].shutdown()
            site["app"].extensions["vea"].close()


# -------------------------------------------------------------------- colours
# Colours as the eye gets them: an element's colour over every background behind it
# (from the white canvas up), faded by its and its ancestors' opacity.
COLOURS_JS = r"""
const rgba = (text) => { const n = text.match(/[\d.]+/g).map(Number);
  return [n[0], n[1], n[2], n.length > 3 ? n[3] : 1]; };
const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3]))
  .concat([1]);
const background = (el) => { const chain = []; for (let e = el; e; e = e.parentElement) chain.unshift(e);
  let bg = [255, 255, 255, 1]; for (const e of chain) bg = over(rgba(getComputedStyle(e).backgroundColor), bg);
  return bg; };
const opacity = (el) => { let o = 1; for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
  return o; };
const luminance = (c) => { const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255;
  return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
const contrast = (a, b) => { const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return Math.round(((x + 0.05) / (y + 0.05)) * 100) / 100; };
const seen = (el, colour) => { const c = rgba(colour); c[3] *= opacity(el); return over(c, background(el)); };
"""

TEXT_CONTRASTS = (
    "(selectors) => {"
    + COLOURS_JS
    + """
  return selectors.map((selector) => {
    const el = document.querySelector(selector);
    if (!el || el.closest(':disabled')) return null;  // disabled controls are exempt
    const style = getComputedStyle(el);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    return [selector, contrast(seen(el, style.color), background(el)), large];
  }).filter(Boolean);
}"""
)

# The focused control's ring (the radio pills draw it on their label's span): its width
# and its contrast with what is around it. None when the focus is inside a control's own
# parts (a date field's calendar button), which the browser rings itself.
FOCUS_RING = (
    "() => {"
    + COLOURS_JS
    + """
  const focused = document.activeElement;
  if (!focused.matches(':focus')) return null;
  const ring = focused.matches('.pill input') ? focused.nextElementSibling : focused;
  const style = getComputedStyle(ring);
  if (style.outlineStyle === 'none') return [0, 0];
  return [parseFloat(style.outlineWidth), contrast(seen(ring, style.outlineColor), background(ring.parentElement))];
}"""
)


# ------------------------------------------------------------------------ axe
def accessibility_problems(page) -> list[str]:
    """What axe finds on the page as it is now, one line per rule and element (rule id,
    impact, target, axe's summary): its violations, what it could not decide, and the
    text contrasts it could not measure that are below WCAG's 4.5:1 (3:1 large)."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": AXE_TAGS}}
    results = Axe().run(page, options=options).response
    problems = [
        f"{rule['id']} ({rule['impact']}) {node['target']}: {node['failureSummary']}"
        for rule in results["violations"]
        for node in rule["nodes"]
    ]
    unmeasured: list[str] = []
    for rule in results["incomplete"]:
        for node in rule["nodes"]:
            if rule["id"] == "color-contrast" and len(node["target"]) == 1:
                unmeasured.append(node["target"][0])
            else:
                problems.append(f"{rule['id']} (undecided) {node['target']}: {rule['help']}")
    for selector, ratio, large in page.evaluate(TEXT_CONTRASTS, unmeasured):
        if ratio < (LARGE_TEXT_CONTRAST if large else TEXT_CONTRAST):
            problems.append(f"color-contrast (measured) {selector}: {ratio}:1")
    return problems


def check(page, state: str, found: dict[str, list[str]]) -> None:
    problems = accessibility_problems(page)
    if problems:
        found[state] = problems


def report(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{state}:\n  " + "\n  ".join(lines) for state, lines in found.items())


class _BrokenModel:
    """A model failing at predict time: the desk answers by the rules (degraded)."""

    version = "broken"

    def decide(self, *args, **kwargs):
        raise RuntimeError("model unavailable")


def open_degraded(page, site: dict, url: str) -> None:
    manager = site["app"].extensions["vea"].models
    kept = manager._decider, manager._checked_at
    manager._decider, manager._checked_at = _BrokenModel(), float("inf")
    try:
        page.goto(url)
        page.locator("#degraded-note").wait_for()
    finally:
        manager._decider, manager._checked_at = kept


LANGUAGE_LINKS = """() => Array.from(document.querySelectorAll('.langs a'))
  .map((a) => [a.dataset.lang, a.lang])"""


def language_links_say_their_language(page) -> bool:
    """ "English" on a Japanese page is read by an English voice (WCAG 3.1.2)."""
    return all(code == lang for code, lang in page.evaluate(LANGUAGE_LINKS))


# Text read in the wrong voice (WCAG 3.1.2, language of parts), by the language the
# browser gives each text node (its nearest lang): English (a lowercase Latin letter, no
# kana or kanji) read as Japanese, or Japanese (no lowercase Latin letter) as English.
# Acronyms alone (VES, CSV) are read as letters either way. tests/test_pages.py
# (misread_fragments) holds the same rule on the served HTML.
MISREAD = r"""() => {
  const japanese = /[\u3040-\u30ff\u3400-\u9fff]/, lowercase = /[a-z]/, wrong = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim(), parent = node.parentElement;
    if (!text || parent.closest("script, style")) continue;
    const lang = parent.closest("[lang]").lang;
    if ((lang === "ja" && lowercase.test(text) && !japanese.test(text))
        || (lang === "en" && japanese.test(text) && !lowercase.test(text))) wrong.push(text);
  }
  return wrong; }"""


def misread(page, state: str, found: dict[str, list[str]]) -> None:
    wrong = page.evaluate(MISREAD)
    if wrong:
        found.setdefault(state, []).extend(f"read in the wrong language: {t!r}" for t in wrong)


# ---------------------------------------------------------------- axe, by page
@pytest.mark.parametrize("language", LANGUAGES)
def test_sign_in_and_error_pages(sites, browser, language):  # noqa: F811
    site = sites["full"]
    found: dict[str, list[str]] = {}
    context, page = new_page(browser, DESK_WIDTH)
    try:
        response = page.goto(f"{site['base']}/login?lang={language}")
        # axe comes in through DevTools: the page keeps its policy against inline scripts.
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert page.locator("html").get_attribute("lang") == language
        assert language_links_say_their_language(page)
        check(page, "sign-in", found)
        misread(page, "sign-in", found)
        page.locator("#key").fill("vea_000000000000_wrong")
        page.locator("form button[type=submit]").click()
        page.get_by_role("alert").wait_for()
        check(page, "sign-in with an error", found)
        # The refused key's field (focused again) carries the error, not only the page.
        key = page.locator("#key")
        assert key.get_attribute("aria-invalid") == "true"
        described = key.get_attribute("aria-describedby").split()
        assert (
            page.locator(f"#{described[0]}").inner_text() == page.get_by_role("alert").inner_text()
        )

        log_in(page, site["base"], site["keys"]["desktop"])
        response = page.goto(f"{site['base']}/dashboard?lang={language}")
        assert response.status == 403
        check(page, "error page (403)", found)
        misread(page, "error page (403)", found)
        response = page.goto(f"{site['base']}/desk?channel=fax&lang={language}")
        assert response.status == 400
        assert language_links_say_their_language(page)
        check(page, "desk link without details", found)
        misread(page, "desk link without details", found)
    finally:
        context.close()
    assert not found, report(found)


@pytest.mark.parametrize("language", LANGUAGES)
def test_desk_states(sites, browser, language):  # noqa: F811
    site = sites["full"]
    base = site["base"]
    found: dict[str, list[str]] = {}
    context, page = new_page(browser, DESK_WIDTH)
    try:
        log_in(page, base, site["keys"]["desktop"])
        page.goto(f"{base}/desk?lang={language}")
        assert page.locator("html").get_attribute("lang") == language
        check(page, "idle", found)
        states = {
            "decision": desk_query(issue_type="how_to", sentiment="0.5"),
            "self-service": desk_query(channel="self_service", issue_type="how_to"),
            "holdout": desk_query(customer_id=customer_in("holdout")),
            "upset complaint": desk_query(issue_type="complaint", sentiment="-0.8"),
        }
        for state, query in states.items():
            page.goto(f"{base}{query}&lang={language}")
            page.locator("#desk").wait_for()
            check(page, state, found)
            misread(page, state, found)
        open_degraded(page, site, f"{base}{desk_query()}&lang={language}")
        check(page, "degraded", found)

        page.goto(f"{base}{desk_query(issue_type='how_to', sentiment='0.5')}&lang={language}")
        assert language_links_say_their_language(page)
        if page.locator(".talk-track").count():
            assert page.get_by_role("figure").get_attribute("aria-label")  # "Talk track"
        page.locator("#record").click()  # nothing chosen yet
        page.locator("#status-line.error").wait_for()
        assert page.locator("#status-line").get_attribute("role") == "alert"
        check(page, "validation error", found)
        page.locator("button[data-status=accepted]").click()
        page.locator(".ves[data-item=ves_confidence] .pill").nth(5).click()
        page.locator("#record").click()
        page.locator("#status-line.ok").wait_for()
        # Announced politely by a screen reader ("Recorded.").
        assert page.locator("#status-line").get_attribute("role") == "status"
        assert page.locator("#status-line").get_attribute("aria-live") == "polite"
        check(page, "recorded", found)
        page.reload()
        page.locator("#recorded").wait_for()
        check(page, "reopened after recording", found)
    finally:
        context.close()
    assert not found, report(found)


@pytest.mark.parametrize("language", LANGUAGES)
def test_dashboard(sites, browser, language):  # noqa: F811
    found: dict[str, list[str]] = {}
    for name in ("full", "empty"):
        site = sites[name]
        context, page = new_page(browser, DASHBOARD_WIDTH)
        try:
            log_in(page, site["base"], site["keys"]["manager"])
            response = page.goto(f"{site['base']}/dashboard?period=all&lang={language}")
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert page.locator("html").get_attribute("lang") == language
            if name == "full":
                page.wait_for_function("() => !!document.getElementById('chart-trend').chart")
            check(page, f"dashboard ({name})", found)
            misread(page, f"dashboard ({name})", found)
            # Every row is named by its first cell (a row header) and every column by its
            # header: a screen reader says which row and column a figure is in.
            for table in page.locator("table").all():
                rows = table.locator("tbody tr").count()
                assert table.get_by_role("rowheader").count() == rows
                assert table.locator("tbody tr > th[scope=row]:first-child").count() == rows
                columns = table.locator("thead th[scope=col]").count()
                assert columns and table.get_by_role("columnheader").count() == columns
            # Every table is named by its heading, so a screen reader's table list says
            # which is which.
            for section in page.locator("section.table-card").all():
                if section.locator("table").count():
                    title = section.locator("h2").text_content().strip()
                    assert section.get_by_role("table", name=title, exact=True).count() == 1
            # Every chart says where its figures are as text: the table that holds them.
            titles = [
                h2.text_content().strip() for h2 in page.locator(".table-card:has(table) h2").all()
            ]
            for canvas in page.locator("canvas").all():
                described = page.locator(f"#{canvas.get_attribute('aria-describedby')}")
                text = described.inner_text()
                assert any(f"“{t}”" in text or f"「{t}」" in text for t in titles), text
        finally:
            context.close()
    assert not found, report(found)


# ------------------------------------------------------------- beyond axe
CONTROLS = """() => {
  // Every control a keyboard must reach, in document order (no positive tabindex is
  // used): a radio group is one stop, what a closed <details> folds away is none.
  const all = Array.from(document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]'));
  const groups = new Set(), stops = [];
  all.forEach((el, i) => {
    el.dataset.a11yStop = el.type === 'radio' ? 'radio:' + el.name : String(i);
    if (el.disabled || el.getAttribute('tabindex') === '-1' || !el.getClientRects().length) return;
    if (el.tagName !== 'SUMMARY' && el.closest('details:not([open])')) return;
    if (el.type === 'radio') { if (groups.has(el.name)) return; groups.add(el.name); }
    stops.push(el.dataset.a11yStop);
  });
  return stops;
}"""
FOCUSED = """() => { const el = document.activeElement;
  return el && el !== document.body ? (el.dataset.a11yStop || el.outerHTML.slice(0, 80)) : null; }"""


def tab_through(page) -> tuple[list[str], list[str], list[tuple]]:
    """Tab from the top until the focus leaves the page: (the controls expected, those
    reached in order, each one's focus ring as (width, contrast))."""
    expected = page.evaluate(CONTROLS)
    # From the top: a blur alone leaves Tab's starting point where the focus was.
    page.evaluate(
        "() => { document.body.tabIndex = -1; document.body.focus();"
        " document.body.removeAttribute('tabindex'); }"
    )
    reached, rings = [], []
    for _ in range(3 * len(expected) + 3):
        page.keyboard.press("Tab")
        stop = page.evaluate(FOCUSED)
        if stop is None:  # past the last control: out of the page, no trap
            break
        if not reached or reached[-1] != stop:  # a date field's parts are one control
            reached.append(stop)
        ring = page.evaluate(FOCUS_RING)
        if ring is not None:
            rings.append((stop, *ring))
    return expected, reached, rings


def weak_rings(rings: list[tuple]) -> list[tuple]:
    """Focus rings narrower than 2 px or fainter than 3:1 against what surrounds them."""
    return [r for r in rings if r[1] < 2 or r[2] < NON_TEXT_CONTRAST]


def test_the_desk_by_keyboard_alone(sites, browser):  # noqa: F811
    """Tab reaches every control in reading order and then leaves the page (no trap),
    each with a visible ring; Space and Enter work the controls; after Record the focus
    goes to the answer, after a failure back to Record."""
    site = sites["full"]
    base = site["base"]
    context, page = new_page(browser, DESK_WIDTH)
    try:
        log_in(page, base, site["keys"]["desktop"])
        page.goto(f"{base}{desk_query(issue_type='how_to', sentiment='0.5')}&lang=en")
        expected, reached, rings = tab_through(page)
        assert reached == expected
        assert page.evaluate(FOCUSED) is None  # Tab went on out of the last control
        assert weak_rings(rings) == []
        names = page.evaluate(
            "(stops) => stops.map((s) => { const el = document.querySelector("
            "`[data-a11y-stop='${s}']`); return el.dataset.status || el.name || el.id"
            " || el.textContent.trim(); })",
            reached,
        )
        assert names == [
            "EN", "日本語", "Sign out",
            "offered", "accepted", "declined", "skipped",
            "ves_confidence", "ves_ability", "record", "keys-off",
        ]  # fmt: skip

        # Space and Enter on the outcome buttons, Space and the arrows in a VES scale.
        declined = page.locator("button[data-status=declined]")
        declined.focus()
        page.keyboard.press("Space")
        assert declined.get_attribute("aria-pressed") == "true"
        accepted = page.locator("button[data-status=accepted]")
        accepted.focus()
        page.keyboard.press("Enter")
        assert accepted.get_attribute("aria-pressed") == "true"
        assert declined.get_attribute("aria-pressed") == "false"
        assert page.locator("#status-line").inner_text() == ""  # Enter chose, not recorded
        page.locator("input[name=ves_confidence][value='1']").focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        assert page.locator("input[name=ves_confidence][value='3']").is_checked()
        page.locator("input[name=ves_ability][value='1']").focus()
        page.keyboard.press("Space")
        assert page.locator("input[name=ves_ability][value='1']").is_checked()

        # A failed post gives the focus back to Record, to try again ...
        page.route(
            "**/desk/outcome",
            lambda route: route.fulfill(status=503, json={"error": {"code": "unavailable"}}),
        )
        page.locator("#record").focus()
        page.keyboard.press("Space")
        page.locator("#status-line.error").wait_for()
        assert page.evaluate("() => document.activeElement.id") == "record"
        page.unroute("**/desk/outcome")
        # ... a recorded one to the answer, read out as it is focused.
        page.keyboard.press("Enter")
        page.locator("#status-line.ok").wait_for()
        assert page.evaluate("() => document.activeElement.id") == "status-line"
        page.keyboard.press("Tab")  # and on from there (no trap in the disabled form)
        assert page.evaluate("() => document.activeElement.id") != "status-line"

        # A quiet contact: the folded form opens with Enter or Space, then every control
        # is reached.
        page.goto(f"{base}{desk_query(issue_type='complaint', sentiment='-0.8')}&lang=ja")
        summary = page.locator(".quiet-record summary")
        summary.focus()
        page.keyboard.press("Space")
        assert page.locator(".quiet-record").get_attribute("open") is not None
        expected, reached, rings = tab_through(page)
        assert reached == expected and weak_rings(rings) == []
        assert len(expected) == 8  # EN, 日本語, sign out, summary, two scales, Record, keys

    finally:
        context.close()


def test_the_letter_and_digit_keys_can_be_turned_off(sites, browser):  # noqa: F811
    """WCAG 2.1.4: a speech-input user's words arrive as keystrokes, so single-character
    shortcuts must be possible to turn off. Off, O/A/D/S and 1–7 do nothing, their hints
    go, and the browser remembers it; Enter still records."""
    site = sites["full"]
    base = site["base"]
    context, page = new_page(browser, DESK_WIDTH)
    try:
        log_in(page, base, site["keys"]["desktop"])
        page.goto(f"{base}{desk_query(issue_type='how_to', sentiment='0.5')}&lang=ja")
        switch = page.get_by_label("英字・数字キーでの操作をオフにする")
        assert not switch.is_checked()  # on by default, as before
        switch.focus()
        page.keyboard.press("Space")
        assert switch.is_checked()
        page.reload()
        page.locator("#openness").wait_for()
        assert page.locator("#keys-off").is_checked()  # remembered
        assert page.locator(".shortcuts").is_hidden()
        assert (
            page.locator("button[data-status=accepted]").get_attribute("aria-keyshortcuts") is None
        )
        page.locator("body").click(position={"x": 5, "y": 200})
        for key in ("a", "6", "o"):
            page.keyboard.press(key)
        assert page.locator("button[aria-pressed=true]").count() == 0
        assert page.locator("#outcome input:checked").count() == 0
        page.locator("button[data-status=accepted]").click()
        page.locator("body").click(position={"x": 5, "y": 200})
        page.keyboard.press("Enter")
        page.locator("#status-line.ok").wait_for()

        page.goto(f"{base}{desk_query(issue_type='how_to', sentiment='0.5')}&lang=en")
        page.locator("#keys-off").uncheck()
        page.locator("body").click(position={"x": 5, "y": 200})
        page.keyboard.press("a")
        assert page.locator("button[data-status=accepted]").get_attribute("aria-pressed") == "true"
        assert (
            page.locator("button[data-status=accepted]").get_attribute("aria-keyshortcuts") == "A"
        )
    finally:
        context.close()


# Each row of the by-channel table as (its row header, its contacts n).
CHANNEL_ROWS = """() => Array.from(document.querySelectorAll('#table-by_channel tbody tr'))
  .map((r) => [r.querySelector('th[scope=row]').textContent,
    Number(r.cells[Array.from(r.closest('table').tHead.rows[0].cells)
      .findIndex((c) => c.dataset.column === 'n')].dataset.value)])"""


def test_the_dashboard_by_keyboard_alone(sites, browser):  # noqa: F811
    site = sites["full"]
    context, page = new_page(browser, DASHBOARD_WIDTH)
    try:
        log_in(page, site["base"], site["keys"]["manager"])
        page.goto(f"{site['base']}/dashboard?period=all&lang=ja")
        expected, reached, rings = tab_through(page)
        assert reached == expected
        assert weak_rings(rings) == []
        header = page.locator("#table-by_channel th[data-column=n]")
        rows = page.evaluate(CHANNEL_ROWS)
        header.locator("button").focus()
        page.keyboard.press("Enter")
        assert header.get_attribute("aria-sort") == "ascending"
        page.keyboard.press("Space")
        assert header.get_attribute("aria-sort") == "descending"
        # Rows move whole, each with its row header (the channel): by n, largest first.
        after = page.evaluate(CHANNEL_ROWS)
        assert sorted(after) == sorted(rows)
        assert [n for _, n in after] == sorted((n for _, n in rows), reverse=True)
    finally:
        context.close()


TITLE_SHOWN = """() => { const t = document.querySelector('.topbar .title');
  return t.clientWidth > 0 && t.scrollWidth <= t.clientWidth; }"""
WIDER_THAN_THE_PAGE = """() => Array.from(document.querySelectorAll('body *'))
  .filter((e) => !e.closest('.scroll, .visually-hidden')
    && e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
  .map((e) => e.outerHTML.slice(0, 80))"""


def test_zoomed_to_200_percent_nothing_is_cut_or_scrolls_sideways(sites, browser):  # noqa: F811
    """The desk's 400 px panel at 200% zoom is 200 CSS px: every state, both languages,
    no horizontal scroll and the page's title still shown (it was cut to nothing). The
    dashboard reflows at 320 px (its wide tables scroll in their own box)."""
    site = sites["full"]
    base = site["base"]
    context, page = new_page(browser, ZOOMED_DESK_WIDTH)
    try:
        log_in(page, base, site["keys"]["desktop"])
        for language in LANGUAGES:
            page.goto(f"{base}/desk?lang={language}")
            assert no_horizontal_scroll(page) and page.evaluate(TITLE_SHOWN), language
            for query in (
                desk_query(issue_type="how_to", sentiment="0.5"),
                desk_query(issue_type="complaint", sentiment="-0.8"),
                desk_query(customer_id=customer_in("holdout")),
                desk_query(channel="self_service", issue_type="how_to"),
            ):
                page.goto(f"{base}{query}&lang={language}")
                page.locator("#desk").wait_for()
                assert page.evaluate(WIDER_THAN_THE_PAGE) == [], (language, query)
                assert no_horizontal_scroll(page) and page.evaluate(TITLE_SHOWN)
    finally:
        context.close()
    context, page = new_page(browser, REFLOW_WIDTH)
    try:
        log_in(page, base, site["keys"]["manager"])
        for language in LANGUAGES:
            page.goto(f"{base}/dashboard?period=all&lang={language}")
            page.wait_for_function("() => !!document.getElementById('chart-trend').chart")
            assert page.evaluate(WIDER_THAN_THE_PAGE) == [], language
            assert no_horizontal_scroll(page) and page.evaluate(TITLE_SHOWN)
    finally:
        context.close()


PRESSED_CONTRAST = (
    "() => {"
    + COLOURS_JS
    + """
  const [on, off] = ['true', 'false'].map((p) => document.querySelector(`button[aria-pressed="${p}"]`));
  return contrast(background(on), background(off));
}"""
)
TREND_LINES = """() => document.getElementById('chart-trend').chart.data.datasets
  .map((d) => JSON.stringify([d.borderDash || [], d.pointStyle || 'circle']))"""


def test_colour_is_never_the_only_carrier_of_meaning_and_nothing_moves(sites, browser):  # noqa: F811
    site = sites["full"]
    base = site["base"]
    context, page = new_page(browser, DESK_WIDTH)
    page.emulate_media(reduced_motion="reduce")
    try:
        log_in(page, site["base"], site["keys"]["desktop"])
        for language in LANGUAGES:
            # The openness band is written beside its colour, in the page's language.
            from service.web.content import band_names

            page.goto(f"{base}{desk_query(issue_type='how_to', sentiment='0.5')}&lang={language}")
            badge = page.locator("#openness .badge")
            band = badge.get_attribute("class").split("band-")[1]
            assert badge.inner_text() == band_names(language)[band]
            assert (
                page.locator("#openness .score")
                .inner_text()
                .startswith(page.locator(".meter").get_attribute("aria-valuenow"))
            )
        # A chosen outcome stands out from the others by lightness (3:1), not hue alone.
        page.locator("button[data-status=offered]").click()
        assert page.evaluate(PRESSED_CONTRAST) >= NON_TEXT_CONTRAST
        assert page.evaluate("() => document.getAnimations().length") == 0
    finally:
        context.close()
    context, page = new_page(browser, DASHBOARD_WIDTH)
    page.emulate_media(reduced_motion="reduce")
    try:
        log_in(page, site["base"], site["keys"]["manager"])
        page.goto(f"{base}/dashboard?period=all&lang=en")
        page.wait_for_function("() => !!document.getElementById('chart-trend').chart")
        # The trend's two lines (VES, success) differ by dash and marker, not colour only.
        lines = page.evaluate(TREND_LINES)
        assert len(set(lines)) == len(lines) == 2, lines
        # Charts are drawn at once (no animation), and nothing else moves.
        assert page.evaluate("() => Chart.defaults.animation") is False
        assert page.evaluate("() => document.getAnimations().length") == 0
    finally:
        context.close()
