"""A period the dashboard cannot read: the page says so in its language and shows the
default period (as for a bad date); a CSV download has no page to say it on, so it
answers 422 in the API's error format, naming the parameter, as the API answers a bad
query parameter (it used to send the default 30 days' figures under the asked name)."""

from __future__ import annotations

import pytest

from tests.test_pages import log_in, raw_key


@pytest.fixture
def manager(client, keys):
    log_in(client, raw_key(keys["manager"]))
    return client


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("period=45", "period"),
        ("period=month", "period"),
        ("from=2026-13-01", "from"),
        ("from=2026-06-01&to=yesterday", "to"),
        ("from=2026-06-10&to=2026-06-01", "from"),
    ],
)
def test_a_download_with_a_bad_period_is_refused_naming_it(manager, query, field):
    answer = manager.get(f"/dashboard/uplift.csv?{query}")
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    error = answer.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == "request parameters failed validation"
    assert list(error["fields"]) == [field] and error["fields"][field][0]


def test_the_refusal_reads_as_the_apis_for_a_bad_query_parameter(manager, keys):
    """The same body shape, code and message as GET /v1/reports/value?from=... ."""
    api = manager.get("/v1/reports/value?from=2026-13-01", headers=keys["manager"])
    page = manager.get("/dashboard/uplift.csv?from=2026-13-01")
    assert api.status_code == page.status_code == 422
    api_error, page_error = api.get_json()["error"], page.get_json()["error"]
    assert (api_error["code"], api_error["message"]) == (page_error["code"], page_error["message"])
    assert set(api_error["fields"]) == set(page_error["fields"]) == {"from"}


def test_good_periods_still_download(manager):
    for query in ("", "period=7", "period=all", "from=2026-06-01&to=2026-06-10"):
        answer = manager.get(f"/dashboard/uplift.csv?{query}")
        assert answer.status_code == 200, (query, answer.get_data(as_text=True))
        assert answer.mimetype == "text/csv"


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "Period: choose 7, 30 or 90 days or all time (showing the default period)."),
        ("ja", "期間: 7日・30日・90日・全期間から選んでください"),
    ],
)
def test_the_page_says_a_bad_preset_and_shows_the_default(manager, lang, text):
    from service.db import utcnow
    from service.web.dashboard import DEFAULT_PERIOD, period_of

    answer = manager.get(f"/dashboard?period=45&lang={lang}")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert text in page and 'role="alert"' in page
    period, error = period_of({"period": "45"}, language=lang)
    assert period["key"] == DEFAULT_PERIOD and error.startswith(text)
    # An empty preset is no preset (a form sent without a choice): the default, no message.
    now = utcnow()
    assert period_of({"period": ""}, now) == period_of({}, now)
