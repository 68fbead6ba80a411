"""Defects an audit of the value dashboard found, each shown as the page shows it."""

from __future__ import annotations

import csv
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


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-11-01&to=20261130", "to"),  # read as midnight: the 30th itself left out
        ("from=2026-W44", "from"),  # read as the Monday of week 44
        ("to=2026-11-30T10", "to"),  # an hour without minutes
    ],
)
def test_only_the_documented_date_forms_are_taken(manager_client, query, field):  # noqa: F811
    from service.web.dashboard import DATE_FORMS_MESSAGE

    download = manager_client.get(f"/dashboard/uplift.csv?{query}")
    assert download.status_code == 422
    assert download.get_json()["error"]["fields"] == {field: [DATE_FORMS_MESSAGE]}
    page = manager_client.get(f"/dashboard?{query}&lang=en").get_data(as_text=True)
    assert 'role="alert"' in page


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
