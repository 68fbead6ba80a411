"""Defects an audit of the value dashboard found, each shown as the page shows it."""

from __future__ import annotations

import csv
import io

from service.web.dashboard import shown
from tests.test_pages import _cells, manager_client  # noqa: F401 - fixture

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
