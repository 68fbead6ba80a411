"""The desk as an agent uses it mid-call, in Debian's Chromium against real gunicorn and
PostgreSQL (the fixtures of ``tests/test_pages_browser.py``): in a short side panel,
with two tabs on one contact, and on a network that does not answer."""

from __future__ import annotations

import pytest

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
