"""Defects an audit of the value dashboard found, each shown as the page shows it."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest

from service.web.dashboard import shown
from tests.test_pages import _cells, log_in, manager_client, raw_key  # noqa: F401 - fixture

# A period without any contact (the test database is shared): every feature has no data.
EMPTY = "from=1990-01-01&to=1990-01-02"


def test_proficiency_counts_read_as_counts_and_calibration_rates_as_percent():
    # The proficiency's observed is a count of successes (the API answers 1.0 for one):
    # it read "200.0%" for two, as if it were the calibration's observed success rate.
    row = {"agent_id": "a-1", "activity": "educate", "observed": 2.0, "expected": 1.374}
    assert shown("proficiency", "observed", 2.0, "en", row) == "2"
    assert shown("proficiency", "expected", 1.374, "en", row) == "1.37"
    assert shown("proficiency", "observed", 12.0, "ja", row) == "12"
    band = {"band": "low", "n": 526, "predicted": 0.1194, "observed": 0.2167}
    assert shown("calibration", "observed", 0.2167, "en", band) == "21.7%"
    assert shown("calibration", "predicted", 0.1194, "ja", band) == "11.9%"


def test_every_drift_level_is_named_in_both_languages():
    from models.drift import level
    from service.web.content import DRIFT_LEVELS, LANGUAGES

    levels = {level(None), level(0.0), level(0.15), level(1.0)}
    assert levels == {"no_data", "stable", "watch", "act"}
    for language in LANGUAGES:
        assert set(DRIFT_LEVELS[language]) == levels, language
    assert shown("drift", "level", "no_data", "en") == "no data"
    assert shown("drift", "level", "no_data", "ja") == "データなし"
    assert shown("drift", "level", "act", "ja") == "要対応"


def test_a_feature_without_data_is_named_on_the_page(manager_client):  # noqa: F811
    english = manager_client.get(f"/dashboard?{EMPTY}&lang=en").get_data(as_text=True)
    assert set(_cells(english, "drift", "level")) == {"no data"}
    japanese = manager_client.get(f"/dashboard?{EMPTY}&lang=ja").get_data(as_text=True)
    assert set(_cells(japanese, "drift", "level")) == {"データなし"}
    # The CSV keeps the id.
    assert ",no_data," in manager_client.get(f"/dashboard/drift.csv?{EMPTY}").text


def test_the_net_value_tables_prices_read_as_money(manager_client):  # noqa: F811
    # The note under the table said 200.00 and 0.02 while its cells read 200.0 and 0.020.
    page = manager_client.get("/dashboard?period=all&lang=en").get_data(as_text=True)
    assert set(_cells(page, "roi", "value_of_retention")) == {"200.00"}
    assert set(_cells(page, "roi", "cost_per_second")) == {"0.02"}
    assert "200.00 per customer retained" in page and "minus 0.02 per second" in page
    # A fraction of a cent is not rounded away (nor to 0.01), in the cells as in the note.
    assert shown("roi", "cost_per_second", 0.004, "en") == "0.004"
    assert shown("roi", "value_of_retention", 1250, "ja") == "1,250.00"
    # The CSV keeps the values as the value config has them.
    csv_text = manager_client.get("/dashboard/roi.csv?period=all").text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert {(r["value_of_retention"], r["cost_per_second"]) for r in rows} == {("200.0", "0.02")}


def test_a_period_with_only_control_group_contacts_says_the_treated_are_missing(
    make_app, keys, new_id
):
    # Every arm is drawn from the customer's hash: at this share most are holdout. A day
    # of its own, so the other tests' contacts stay out of the period.
    app = make_app(holdout_share=0.99)
    client = app.test_client()
    holdout = 0
    while holdout < 2:
        body = {
            "interaction_id": new_id("i-"),
            "customer": {"customer_id": new_id("c-"), "tenure_months": 2},
            "contact": {"channel": "chat", "occurred_at": "1994-06-01T10:00:00+00:00"},
        }
        decision = client.post("/v1/decisions", json=body, headers=keys["desktop"])
        assert decision.status_code == 201, decision.json
        if decision.json["experiment_arm"] != "holdout":
            continue  # a treated contact without an outcome is not in the uplift
        holdout += 1
        answer = client.post(
            f"/v1/decisions/{decision.json['decision_id']}/outcome",
            json={"offered": False, "ves_confidence": 5, "ves_ability": 5},
            headers=keys["desktop"],
        )
        assert answer.status_code == 201, answer.json
    log_in(client, raw_key(keys["manager"]))
    period = "from=1994-06-01&to=1994-06-01"
    english = client.get(f"/dashboard?{period}&lang=en").get_data(as_text=True)
    assert 'id="no-holdout"' not in english
    message = re.search(r'id="no-treated">(.*?)</p>', english, re.S).group(1)
    assert message.startswith("No treated contacts with an outcome")
    assert _cells(english, "uplift", "n_holdout")[0] == "2"
    japanese = client.get(f"/dashboard?{period}&lang=ja").get_data(as_text=True)
    message = re.search(r'id="no-treated">(.*?)</p>', japanese, re.S).group(1)
    assert "結果のある介入群のお問い合わせがまだない" in message
    # Neither arm (a period without contacts): the holdout is said to be missing, as before.
    empty = client.get(f"/dashboard?{EMPTY}&lang=en").get_data(as_text=True)
    assert 'id="no-holdout"' in empty and 'id="no-treated"' not in empty


def _field(page: str, name: str) -> str:
    """The tag of the period form's control ``name``."""
    return re.search(rf'<(?:input|select)[^>]*\bname="{name}"[^>]*>', page).group(0)


def _selected(page: str) -> str:
    select = re.search(r'<select id="period".*?</select>', page, re.S).group(0)
    return re.findall(r'<option value="([^"]+)"\s*selected', select)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_custom_dates_are_shown_as_such_and_a_chosen_preset_replaces_them(
    manager_client,  # noqa: F811
    lang,
):
    from datetime import datetime

    from service.web.dashboard import read_period

    # Dates shown with the list at a preset ("Last 7 days" in the browser), and sent back
    # along with any preset chosen, which they silently overrode.
    page = manager_client.get(
        f"/dashboard?period=custom&from=2026-10-01&to=2026-10-31&lang={lang}"
    ).get_data(as_text=True)
    assert _selected(page) == ["custom"]
    assert {"en": ">Custom dates<", "ja": ">日付を指定<"}[lang] in page
    assert 'value="2026-10-01"' in _field(page, "from")
    assert 'value="custom"' in _field(page, "shown")
    now = datetime(2026, 11, 27, 12)
    # That page's form with a preset chosen: the preset, not the dates.
    sent = {"period": "90", "shown": "custom", "from": "2026-10-01", "to": "2026-10-31"}
    period, problem = read_period(sent, now)
    assert problem is None and period["key"] == "90"
    assert (period["start"], period["end"]) == (datetime(2026, 8, 29, 12), None)
    page = manager_client.get("/dashboard", query_string={**sent, "lang": lang}).text
    assert _selected(page) == ["90"] and 'value=""' in _field(page, "from")
    # A link with a preset and dates (no ``shown``: not this form): the dates, shown as
    # "Custom dates". Links saved before that option existed read period=7 and the dates
    # (the browser sent the first option); they asked for October.
    for preset in ("7", "90"):
        link = {"period": preset, "from": "2026-10-01", "to": "2026-10-31"}
        period, problem = read_period(link, now)
        assert problem is None and period["key"] == "custom"
        assert (period["start"], period["end"]) == (datetime(2026, 10, 1), datetime(2026, 11, 1))
    page = manager_client.get(f"/dashboard?period=7&from=2026-10-01&to=2026-10-31&lang={lang}")
    assert _selected(page.text) == ["custom"]
    # Dates typed on a page showing a preset, the list left alone: the dates.
    typed = {"period": "30", "shown": "30", "from": "2026-10-01", "to": "2026-10-31"}
    period, problem = read_period(typed, now)
    assert problem is None and period["key"] == "custom"
    assert (period["start"], period["end"]) == (datetime(2026, 10, 1), datetime(2026, 11, 1))
    # Links with only the dates still work, and say they are custom.
    period, problem = read_period({"from": "2026-10-01", "to": "2026-10-31"}, now)
    assert problem is None and period["key"] == "custom"
    page = manager_client.get(f"/dashboard?from=2026-10-01&to=2026-10-31&lang={lang}").text
    assert _selected(page) == ["custom"]
    # "Custom dates" without any date: the default period, nothing to complain about.
    assert read_period({"period": "custom"}, now) == read_period({}, now)
    # The CSV links carry the custom period.
    assert "period=custom" in page and "/dashboard/uplift.csv?" in page


@pytest.mark.parametrize(
    ("query", "invalid", "english", "japanese"),
    [
        (
            "from=2026-11-10&to=2026-11-01",
            ("from", "to"),
            "Period: the “From” date must be before the “To” date",
            "期間: 開始日は終了日より前にしてください",
        ),
        (
            "to=3000-01-01",
            ("to",),
            "Period: “To (incl.)” must be a date between 1970 and 2199",
            "期間: 「終了（当日を含む）」は1970年から2199年までの日付にしてください",
        ),
        (
            "from=2026-13-01",
            ("from",),
            "Period: “From” must be a date written YYYY-MM-DD",
            "期間: 「開始」の日付は YYYY-MM-DD の形式で指定してください",
        ),
    ],
    ids=["order", "range", "format"],
)
def test_a_period_not_taken_keeps_the_typed_dates_marked_and_says_the_same_in_both_languages(
    manager_client,  # noqa: F811
    query,
    invalid,
    english,
    japanese,
):
    # Both fields were cleared, and the English said "period: 'from' must be before 'to'"
    # without the "(showing the default period)" of the Japanese.
    for lang, text in (("en", english), ("ja", japanese)):
        page = manager_client.get(f"/dashboard?{query}&lang={lang}").get_data(as_text=True)
        alert = re.search(r'<p class="alert" role="alert" id="period-error">(.*?)</p>', page)
        assert alert and alert.group(1).startswith(html.escape(text, quote=False)), alert
        default = {"en": "(showing the default period).", "ja": "（既定の期間を表示しています）。"}
        assert alert.group(1).endswith(default[lang])
        for name, value in re.findall(r"(from|to)=([^&]+)", query):
            field = _field(page, name)
            assert f'value="{value}"' in field
            marked = 'aria-invalid="true" aria-describedby="period-error"' in field
            assert marked == (name in invalid), (name, field)
        # The typed dates are under "Custom dates", so Apply after a correction takes them;
        # the figures and the CSV links are the default period's.
        assert _selected(page) == ["custom"]
        assert "period=30" in page and "period=custom" not in page


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-11-01&to=20261130", "to"),  # read as midnight: the 30th itself left out
        ("from=2026-W44", "from"),  # read as the Monday of week 44
        ("to=2026-11-30T10", "to"),  # an hour without minutes
    ],
)
def test_only_the_documented_date_forms_are_taken(manager_client, query, field):  # noqa: F811
    from service.schemas import DATE_FORMS_MESSAGE

    download = manager_client.get(f"/dashboard/uplift.csv?{query}")
    assert download.status_code == 422
    assert download.get_json()["error"]["fields"] == {field: [DATE_FORMS_MESSAGE]}
    page = manager_client.get(f"/dashboard?{query}&lang=en").get_data(as_text=True)
    assert "must be a date written YYYY-MM-DD (showing the default period)." in page
    assert 'aria-invalid="true"' in _field(page, field)


def test_the_documented_forms_still_read():
    from datetime import datetime

    from service.web.dashboard import read_period

    def bounds(**args):
        period, problem = read_period(args)
        assert problem is None, problem
        return period["start"], period["end"]

    assert bounds(to="2026-11-30") == (None, datetime(2026, 12, 1))  # the whole day
    assert bounds(to="2026-11-30T10:00") == (None, datetime(2026, 11, 30, 10))
    assert bounds(to="2026-11-30T10:00:30.5Z")[1] == datetime(2026, 11, 30, 10, 0, 30, 500000)
    assert bounds(**{"from": "2026-11-30T10:00+09:00"})[0] == datetime(2026, 11, 30, 1)


def test_a_price_under_a_millionth_is_not_shown_as_zero():
    from service.web.dashboard import price

    assert price(1e-7) == "1e-07" and price(4e-7) == "4e-07"  # six decimals read "0."
    assert price(0.004) == "0.004" and price(200.0) == "200.00"
