"""The dashboard's period and CSV links in Debian's Chromium (Playwright).

- A link whose period has times of day (``from=2026-11-27T12:00+09:00``) showed
  "Custom dates" with both date fields empty (a date field drops a time), and Apply
  then sent ``from=&to=``: the default 30 days, unsaid. The times are now shown, in UTC,
  in date-and-time fields, with a line stating the exact period, and Apply keeps it.
- The page never said its days are UTC days: it does, in both languages.
- A CSV link had a ``download`` attribute: once the session had expired, the browser
  saved the sign-in page it was redirected to as login.html, silently. Without it the
  sign-in page opens; a signed-in click still downloads (Content-Disposition), and the
  file starts with UTF-8's byte order mark, for Excel.

The app runs in this process (werkzeug, threaded, on its own SQLite database), as in
tests/test_pages_accessibility.py.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, timedelta, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from tests.test_pages_browser import (  # noqa: F401 - browser is a fixture used by name
    browser,
    log_in,
    new_page,
)

pytestmark = [pytest.mark.browser]
TOKYO = timezone(timedelta(hours=9))


@pytest.fixture(scope="module")
def site(trained_registry, compile_cache, tmp_path_factory) -> Iterator[dict]:
    """The app with three contacts around a 12-hour window three days ago: one inside it,
    one earlier the same (Tokyo) day, one after it."""
    from werkzeug.serving import make_server

    from service.app import create_app
    from service.auth import create_key
    from service.db import upgrade, utcnow
    from tests.conftest import free_port

    root = tmp_path_factory.mktemp("dashboard-period")
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
        }
    )
    engine = app.extensions["vea"].engine
    keys = {role: create_key(engine, role)[1] for role in ("desktop", "manager")}
    httpd = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.port}"
    start = (utcnow() - timedelta(days=3)).replace(hour=3, minute=0, second=0, microsecond=0)
    try:
        headers = {"Authorization": f"Bearer {keys['desktop']}"}
        for hours in (-1, 1, 13):
            at = (start + timedelta(hours=hours)).replace(tzinfo=UTC)
            body = {
                "interaction_id": uuid.uuid4().hex,
                "customer": {"customer_id": uuid.uuid4().hex},
                "contact": {"channel": "chat", "occurred_at": at.isoformat()},
            }
            answer = requests.post(f"{base}/v1/decisions", json=body, headers=headers, timeout=30)
            assert answer.status_code == 201, answer.text
            outcome = {"offered": False, "agent_id": "agent-period", "ves_confidence": 5}
            stored = requests.post(
                f"{base}/v1/decisions/{answer.json()['decision_id']}/outcome",
                json=outcome,
                headers=headers,
                timeout=30,
            )
            assert stored.status_code == 201, stored.text
        yield {"base": base, "keys": keys, "start": start}
    finally:
        httpd.shutdown()
        app.extensions["vea"].close()


def _tokyo(moment) -> str:
    """A UTC instant written as a Tokyo manager's link writes it."""
    return moment.replace(tzinfo=UTC).astimezone(TOKYO).isoformat(timespec="minutes")


def _decisions(page) -> int:
    return int(page.locator("#kpi-decisions").inner_text().replace(",", ""))


@pytest.mark.parametrize("language", ["en", "ja"])
def test_a_period_with_times_is_shown_and_apply_keeps_it(site, browser, language):  # noqa: F811
    from service.web.dashboard import read_period

    start, end = site["start"], site["start"] + timedelta(hours=12)
    link = {"from": _tokyo(start), "to": _tokyo(end), "lang": language}
    context, page = new_page(browser, 1280)
    try:
        log_in(page, site["base"], site["keys"]["manager"])
        page.goto(f"{site['base']}/dashboard?{urlencode(link)}")
        assert _decisions(page) == 1  # the contact inside the 12 hours only
        assert page.locator("#period").input_value() == "custom"
        for field, moment in (("from", start), ("to", end)):
            box = page.locator(f"#{field}")
            assert box.get_attribute("type") == "datetime-local"
            assert box.input_value() == moment.isoformat(timespec="minutes")  # UTC
        line = page.locator("#period-shown").inner_text()
        for moment in (start, end):
            assert moment.isoformat(sep=" ", timespec="minutes") in line, line
        assert "UTC" in line

        page.locator("form.period button[type=submit]").click()
        page.wait_for_load_state()
        # The same period, said the same way: not the default 30 days (3 contacts).
        assert _decisions(page) == 1
        assert page.locator("#period-shown").inner_text() == line
        sent = dict(parse_qsl(urlsplit(page.url).query))
        period, problem = read_period(sent)
        assert problem is None and (period["start"], period["end"]) == (start, end)
    finally:
        context.close()


def test_whole_days_stay_date_fields(site, browser):  # noqa: F811
    day = site["start"].date()
    context, page = new_page(browser, 1280)
    try:
        log_in(page, site["base"], site["keys"]["manager"])
        page.goto(f"{site['base']}/dashboard?from={day}&to={day}&lang=en")
        assert page.locator("#from").get_attribute("type") == "date"
        assert page.locator("#from").input_value() == day.isoformat()
        assert _decisions(page) == 3  # the whole UTC day
        after = (day + timedelta(days=1)).isoformat()
        line = page.locator("#period-shown").inner_text()
        assert f"{day} 00:00 to {after} 00:00 UTC" in line, line
        page.locator("form.period button[type=submit]").click()
        page.wait_for_load_state()
        assert _decisions(page) == 3
        assert page.locator("#to").input_value() == day.isoformat()
    finally:
        context.close()


@pytest.mark.parametrize(
    ("language", "words"),
    [("en", "Dates and days on this page are UTC"), ("ja", "UTC（協定世界時）")],
)
def test_the_page_says_its_days_are_utc(site, browser, language, words):  # noqa: F811
    context, page = new_page(browser, 1280)
    try:
        log_in(page, site["base"], site["keys"]["manager"])
        page.goto(f"{site['base']}/dashboard?period=all&lang={language}")
        zone = page.locator("#period-zone")
        assert words in zone.inner_text()
        # The date fields are described by it: a screen reader says it with them.
        assert page.locator("#from").get_attribute("aria-describedby") == "period-zone"
        assert "UTC" in page.locator("#table-trend .table-note").first.inner_text()
    finally:
        context.close()


def test_a_signed_in_csv_link_downloads_with_the_byte_order_mark(site, browser, tmp_path):  # noqa: F811
    context, page = new_page(browser, 1280)
    try:
        log_in(page, site["base"], site["keys"]["manager"])
        page.goto(f"{site['base']}/dashboard?period=all&lang=ja")
        # The answer's Content-Disposition makes it a download (no `download` attribute).
        with page.expect_download() as info:
            page.locator("#table-by_agent_id a.csv").click()
        target = tmp_path / "agents.csv"
        info.value.save_as(target)
        data = target.read_bytes()
        assert data.startswith(b"\xef\xbb\xbfgroup,n,"), data[:40]
        assert b"agent-period" in data
    finally:
        context.close()


def test_a_csv_link_after_the_session_expired_opens_the_sign_in_page(site, browser):  # noqa: F811
    context, page = new_page(browser, 1280)
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    try:
        log_in(page, site["base"], site["keys"]["manager"])
        page.goto(f"{site['base']}/dashboard?period=all&lang=en")
        context.clear_cookies()  # the session expired
        page.locator("#table-by_agent_id a.csv").click()
        # Not a login.html saved unsaid: the sign-in page, as a page.
        page.wait_for_url("**/login?**", timeout=5_000)
        assert page.locator("#key").is_visible()
        assert downloads == []
    finally:
        context.close()
