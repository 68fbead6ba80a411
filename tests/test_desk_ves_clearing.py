"""Clearing the desk's VES answers, in Debian's Chromium against real gunicorn and
PostgreSQL (the fixtures of ``tests/test_pages_browser.py``).

The dead end it ends: the customer's survey arrived before the agent recorded, with
other VES answers than the agent's. The page said to record again without them, but a
radio cannot be unchecked (Space, Delete, Backspace, Escape, a click all left it
checked) and a reload brought the answers back from the draft: every Record failed and
the outcome was lost. Each VES item now has a Clear button (and Delete or Backspace on
the item), the draft keeps it cleared, and the conflict's message carries a button that
records without the conflicting answers (the survey's stand).
"""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa

from tests.test_pages_browser import (  # noqa: F401 - fixtures used by name
    browser,
    desk_query,
    desktops,
    log_in,
    new_page,
    no_horizontal_scroll,
    server,
    unlabelled,
)

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

CHECKED = "() => Array.from(document.querySelectorAll('input:checked')).map((e) => e.name + '=' + e.value)"


def _open_with_a_survey(page, site: dict, language: str) -> str:
    """A desk with a suggestion whose customer's survey (VES 2 / 3) is already stored;
    the decision's id."""
    base = site["base"]
    log_in(page, base, site["keys"]["desktop"])
    page.goto(base + desk_query(issue_type="how_to", sentiment="0.5", lang=language))
    page.locator("#openness").wait_for()
    decision_id = page.locator("#desk").get_attribute("data-decision-id")
    survey = requests.post(
        f"{base}/v1/decisions/{decision_id}/survey",
        json={"ves_confidence": 2, "ves_ability": 3},
        headers={"Authorization": f"Bearer {site['keys']['desktop']}"},
        timeout=30,
    )
    assert survey.status_code == 201, survey.text
    return decision_id


def _stored(site: dict, decision_id: str) -> tuple:
    with site["engine"].connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT offered, accepted, ves_confidence, ves_ability FROM outcomes"
                " WHERE decision_id = :d"
            ),
            {"d": decision_id},
        ).one()
    return tuple(row)


def test_cleared_answers_stay_cleared_and_the_outcome_is_recorded(server, browser):  # noqa: F811
    context, page = new_page(browser, 400, 800)
    try:
        decision_id = _open_with_a_survey(page, server, "en")
        assert page.locator("button[data-clear]:visible").count() == 0  # nothing to clear
        for key in ("a", "6", "7", "Enter"):
            page.keyboard.press(key)
        page.locator("#status-line.error", has_text="survey already gave other answers").wait_for()
        page.reload()  # the draft keeps the entries, as after any failure
        page.locator("#openness").wait_for()
        page.wait_for_function("() => document.querySelectorAll('input:checked').length === 2")

        # By keyboard: Delete on the first item's answer; Tab from the second item's
        # answer reaches its Clear button, Enter presses it.
        page.locator("input[name=ves_confidence][value='6']").focus()
        page.keyboard.press("Delete")
        page.locator("input[name=ves_ability][value='7']").focus()
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement.dataset.clear")
        assert focused == "ves_ability"
        assert page.evaluate("() => document.activeElement.textContent.trim()") == "Clear"
        page.keyboard.press("Enter")
        assert page.evaluate(CHECKED) == []
        # The focus stays in the item (its Clear button hides with the answer).
        assert page.evaluate("() => document.activeElement.name") == "ves_ability"
        assert page.locator("button[data-clear]:visible").count() == 0

        page.reload()  # the draft does not bring the cleared answers back
        page.locator("#openness").wait_for()
        page.wait_for_function(
            "() => document.querySelector('button[data-status=accepted]')"
            ".getAttribute('aria-pressed') === 'true'"
        )
        assert page.evaluate(CHECKED) == []
        page.keyboard.press("Enter")
        page.locator("#status-line.ok").wait_for()
    finally:
        context.close()
    # The agent's outcome, the survey's answers.
    assert _stored(server, decision_id) == (True, True, 2, 3)


def test_the_conflict_offers_to_record_without_the_conflicting_answers(server, browser):  # noqa: F811
    context, page = new_page(browser, 400, 800, locale="ja-JP")
    try:
        decision_id = _open_with_a_survey(page, server, "ja")
        # The survey holds ves_confidence 2: the agent's 2 agrees, 7 for ability does not.
        for key in ("d", "2", "7", "Enter"):
            page.keyboard.press(key)
        line = page.locator("#status-line.error", has_text="より多くの価値を得られた")
        line.wait_for()
        assert "購入への確信" not in line.inner_text()  # only the conflicting item is named
        button = page.locator("#status-line button")
        assert button.inner_text() == "その項目を空けて記録"
        assert unlabelled(page) == []
        # Reached by Tab from Record, pressed by Enter.
        assert page.evaluate("() => document.activeElement.id") == "record"
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.closest('#status-line') !== null")
        page.keyboard.press("Enter")
        page.locator("#status-line.ok", has_text="記録しました").wait_for()
        assert page.evaluate("() => document.activeElement.id") == "status-line"
        # Only the conflicting item was cleared.
        assert page.evaluate(CHECKED) == ["ves_confidence=2"]
    finally:
        context.close()
    assert _stored(server, decision_id) == (True, False, 2, 3)


def test_each_item_is_cleared_by_a_labelled_button_in_both_languages(server, browser):  # noqa: F811
    context, page = new_page(browser, 400, 800)
    try:
        log_in(page, server["base"], server["keys"]["desktop"])
        for language, name in (
            ("en", "Clear: Helped get more value"),
            ("ja", "クリア: より多くの価値を得られた"),
        ):
            page.goto(
                server["base"] + desk_query(issue_type="how_to", sentiment="0.5", lang=language)
            )
            page.locator("#outcome").wait_for()
            page.locator(".ves[data-item=ves_ability] .pill").nth(4).click()
            clear = page.get_by_role("button", name=name)
            assert clear.is_visible()
            clear.click()
            assert page.evaluate(CHECKED) == []
            assert not clear.is_visible()
            # Delete on an unanswered item, or with nothing to clear, changes nothing.
            page.locator("input[name=ves_confidence][value='1']").focus()
            page.keyboard.press("Backspace")
            assert page.evaluate(CHECKED) == []
    finally:
        context.close()


@pytest.mark.parametrize("language", ["en", "ja"])
def test_the_new_controls_and_the_caution_pass_axe_in_the_panel(server, browser, language):  # noqa: F811
    """axe on the Clear buttons shown, the conflict's button and a cautioned suggestion
    (a calm complaint), in the 400 px panel and at 200% zoom (200 CSS px)."""
    from tests.test_pages_accessibility import accessibility_problems, misread

    found: dict[str, list[str]] = {}
    context, page = new_page(browser, 400, 800, locale="ja-JP" if language == "ja" else "en-US")
    try:
        _open_with_a_survey(page, server, language)
        for key in ("a", "6", "7", "Enter"):
            page.keyboard.press(key)
        page.locator("#status-line.error button").wait_for()
        assert page.locator("button[data-clear]:visible").count() == 2
        found["conflict"] = accessibility_problems(page)
        misread(page, "conflict", found)
        page.goto(
            server["base"] + desk_query(issue_type="complaint", sentiment="0.5", lang=language)
        )
        page.locator("#caution").wait_for()
        found["caution"] = accessibility_problems(page)
        misread(page, "caution", found)
        for width in (400, 200):
            page.set_viewport_size({"width": width, "height": 800})
            assert no_horizontal_scroll(page), width
    finally:
        context.close()
    assert not any(found.values()), found
