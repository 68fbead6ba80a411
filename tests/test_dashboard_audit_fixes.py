"""Defects an audit of the value dashboard found, each shown as the page shows it."""

from __future__ import annotations

from service.web.dashboard import shown


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
