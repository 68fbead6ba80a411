"""The desk as an agent uses it mid-call, in Debian's Chromium against real gunicorn and
PostgreSQL (the fixtures of ``tests/test_pages_browser.py``): in a short side panel,
with two tabs on one contact, and on a network that does not answer."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.test_pages_browser import (  # noqa: F401 - fixtures used by name
    browser,
    desk_query,
    desktops,
    log_in,
    new_page,
    server,
)

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

IN_VIEW = """(el) => { const r = el.getBoundingClientRect();
  return r.top >= 0 && r.bottom <= window.innerHeight; }"""


def in_view(page, selector: str) -> bool:
    return page.locator(selector).evaluate(IN_VIEW)


def test_the_answer_to_record_is_visible_in_a_short_side_panel(server, browser):  # noqa: F811
    """Keys only in a 400 x 700 panel: the form sits below the hint, so what a key chose
    and whether Record worked were written out of sight."""
    context, page = new_page(browser, 400, 700)
    try:
        log_in(page, server["base"], server["keys"]["desktop"])
        page.goto(server["base"] + desk_query(issue_type="how_to", sentiment="0.5", lang="en"))
        page.locator("#openness").wait_for()
        assert not in_view(page, "#status-line")  # the hint comes first
        page.keyboard.press("a")
        page.keyboard.press("6")
        page.keyboard.press("7")
        assert in_view(page, "input[name=ves_ability][value='7'] + span")
        page.keyboard.press("Enter")
        page.locator("#status-line.ok").wait_for()
        assert in_view(page, "#status-line")
    finally:
        context.close()


def test_two_tabs_on_one_contact_show_what_was_recorded(server, browser):  # noqa: F811
    """The agent opened the contact twice and records in both: the second tab's refused
    entries stayed on show in its disabled form (declined, 3) as if they were the stored
    outcome (accepted, 6 / 6)."""
    base = server["base"]
    context, first = new_page(browser, 400, 900, locale="ja-JP")
    try:
        log_in(first, base, server["keys"]["desktop"])
        url = base + desk_query(issue_type="how_to", sentiment="0.5", lang="ja")
        first.goto(url)
        second = context.new_page()
        second.goto(url)
        for page in (first, second):
            page.locator("#openness").wait_for()
        decision_id = first.locator("#desk").get_attribute("data-decision-id")
        assert second.locator("#desk").get_attribute("data-decision-id") == decision_id

        first.bring_to_front()
        for key in ("a", "6", "6", "Enter"):
            first.keyboard.press(key)
        first.locator("#status-line.ok").wait_for()

        second.bring_to_front()
        for key in ("d", "3", "Enter"):
            second.keyboard.press(key)
        second.locator("#status-line.error", has_text="別の結果").wait_for()
        assert second.locator("button[aria-pressed=true]").count() == 0
        assert second.locator("input:checked").count() == 0
        assert second.locator("#record").is_disabled()
        second.locator("#status-line a", has_text="記録内容を表示").click()
        second.locator("#recorded").wait_for()
        assert "受け入れ、VES 6 / 6" in second.locator("#recorded").inner_text()
        pressed = second.locator("button[aria-pressed=true]")
        assert pressed.get_attribute("data-status") == "accepted"
        second.reload()  # the refused entries are not restored as a draft either
        second.locator("#recorded").wait_for()
        assert second.locator("button[data-status=declined]").get_attribute("aria-pressed") == (
            "false"
        )
    finally:
        context.close()
    with server["engine"].connect() as conn:
        row = conn.execute(
            sa.text("SELECT offered, accepted, ves_ability FROM outcomes WHERE decision_id = :d"),
            {"d": decision_id},
        ).one()
    assert (row.offered, row.accepted, row.ves_ability) == (True, True, 6)


def test_a_server_that_does_not_answer_is_said_and_record_works_again(server, browser):  # noqa: F811
    """The post hung (a stuck worker): "Recording…" and a disabled button stayed for as
    long as the server took. The page's clock is Playwright's, so nothing waits 15 s."""
    base = server["base"]
    context, page = new_page(browser, 400, 900)
    try:
        log_in(page, base, server["keys"]["desktop"])
        page.clock.install()
        page.goto(base + desk_query(issue_type="how_to", sentiment="0.5", lang="en"))
        page.locator("#openness").wait_for()
        page.route("**/desk/outcome", lambda route: None)  # never answered
        for key in ("a", "6", "Enter"):
            page.keyboard.press(key)
        page.locator("#status-line", has_text="Recording").wait_for()
        page.clock.run_for(16_000)
        page.locator("#status-line.error", has_text="did not answer").wait_for()
        assert "may not have been recorded" in page.locator("#status-line").inner_text()
        assert page.locator("#record").is_enabled()
        assert page.locator("button[data-status=accepted]").get_attribute("aria-pressed") == "true"

        # The connection drops mid-post (the server stopped): said the same way, not as
        # "nothing was recorded" (the outcome may have been stored before it dropped).
        page.unroute("**/desk/outcome")
        page.route("**/desk/outcome", lambda route: route.abort("connectionreset"))
        page.keyboard.press("Enter")
        page.locator("#status-line.error", has_text="No connection").wait_for()
        assert "may not have been recorded" in page.locator("#status-line").inner_text()

        page.unroute("**/desk/outcome")
        page.keyboard.press("Enter")
        page.locator("#status-line.ok").wait_for()
    finally:
        context.close()


FIELDS = {
    "search": "Object.assign(document.createElement('input'), {type: 'search'})",
    "number": "Object.assign(document.createElement('input'), {type: 'number'})",
    "select": """(() => { const s = document.createElement('select');
        for (const v of ['a', '1']) s.append(new Option(v, v)); return s; })()""",
    "editable": "Object.assign(document.createElement('div'), {contentEditable: 'true'})",
}


def test_keys_typed_into_a_field_are_not_shortcuts(server, browser):  # noqa: F811
    """Only text inputs and text areas were left alone: typing "a" or "5" in a search
    box, a select or an editable area (a browser extension's, a field added to the page)
    chose Accepted and a VES answer, and Enter recorded."""
    context, page = new_page(browser, 400, 900)
    try:
        log_in(page, server["base"], server["keys"]["desktop"])
        page.goto(server["base"] + desk_query(issue_type="how_to", sentiment="0.5", lang="en"))
        page.locator("#openness").wait_for()
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if "/desk/outcome" in r.url else 0)
        for name, element in FIELDS.items():
            page.evaluate(
                f"() => {{ const el = {element}; el.id = 'typed-{name}';"
                " document.getElementById('desk').prepend(el); el.focus(); }"
            )
            for key in ("a", "5", "Enter"):
                page.keyboard.press(key)
            assert page.locator("button[aria-pressed=true]").count() == 0, name
            assert page.locator("#outcome input:checked").count() == 0, name
        # The desk's own controls still take the keys.
        page.evaluate("() => document.activeElement.blur()")
        page.keyboard.press("a")
        assert page.locator("button[aria-pressed=true]").get_attribute("data-status") == "accepted"
        assert posts == []
    finally:
        context.close()


def test_a_digit_answers_the_ves_item_that_has_the_focus(server, browser):  # noqa: F811
    """Digits always went to the first empty item: with the focus on the first item's
    answer, "5" answered the second, and once both were answered no digit could correct
    either."""
    context, page = new_page(browser, 400, 900)
    try:
        log_in(page, server["base"], server["keys"]["desktop"])
        page.goto(server["base"] + desk_query(issue_type="how_to", sentiment="0.5", lang="en"))
        page.locator("#openness").wait_for()
        for key in ("6", "7"):  # nothing focused: the first empty item, then the second
            page.keyboard.press(key)
        assert page.locator("input[name=ves_confidence][value='6']").is_checked()
        assert page.locator("input[name=ves_ability][value='7']").is_checked()
        page.locator("input[name=ves_confidence][value='6']").focus()
        page.keyboard.press("4")  # a correction of the focused item
        assert page.locator("input[name=ves_confidence][value='4']").is_checked()
        assert page.locator("input[name=ves_ability][value='7']").is_checked()
        assert page.evaluate("() => document.activeElement.value") == "4"
    finally:
        context.close()


def test_a_refusal_without_a_field_is_said_in_the_desks_language(server, browser):  # noqa: F811
    """A 422 naming no field showed the server's English message inside the Japanese
    sentence (「cannot ...」を確認してください)."""
    import json

    base = server["base"]
    context, page = new_page(browser, 400, 900, locale="ja-JP")
    refusal = {"error": {"code": "unprocessable", "message": "answers do not fit", "fields": {}}}
    try:
        log_in(page, base, server["keys"]["desktop"])
        page.goto(base + desk_query(issue_type="how_to", sentiment="0.5", lang="ja"))
        page.locator("#openness").wait_for()
        page.route(
            "**/desk/outcome",
            lambda route: route.fulfill(
                status=422, content_type="application/json", body=json.dumps(refusal)
            ),
        )
        for key in ("a", "6", "Enter"):
            page.keyboard.press(key)
        status = page.locator("#status-line.error")
        status.wait_for()
        said = status.inner_text()
        assert "受け付けられませんでした（エラー 422）" in said and "answers" not in said
        assert page.locator("#record").is_enabled()
    finally:
        context.close()
