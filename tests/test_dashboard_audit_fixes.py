"""Defects an audit of the value dashboard found, each shown as the page shows it."""

from __future__ import annotations

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
