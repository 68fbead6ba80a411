"""The dashboard's charts read as their tables do: rates' uplift in percentage points
(not as fractions beside VES points on one axis), zero at one height on both axes, the
drift threshold within the drift chart's axis, empty days as gaps, and the charts' words
in the page's language."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from service.web.dashboard import charts, uplift_axes
from tests.test_pages import log_in, raw_key


def _entry(value, low, high) -> dict:
    return {"value": value, "ci_low": low, "ci_high": high}


def _sections() -> dict:
    """What the value and drift reports answered for a realistic history (figures of a
    4,500-decision run through the API)."""
    value = {
        "uplift": {
            "ve_success": _entry(0.3164, 0.2915, 0.3414),
            "retained_60d": _entry(0.0035, -0.0342, 0.0412),
            "ves": _entry(1.047, 0.9318, 1.162),
            "reward": _entry(0.3164, 0.2915, 0.3414),
        },
        "reward": {"name": "ve_success"},
        "by": {"activity": []},
    }
    drift = {
        "threshold": 0.2,
        "features": [
            {"feature": "tenure_months", "psi": 0.013, "level": "stable", "drifted": False},
            {"feature": "segment", "psi": 0.003, "level": "stable", "drifted": False},
        ],
    }
    return {
        "value": {"available": True, "data": value},
        "trend": {"available": True, "data": []},
        "drift": {"available": True, "data": drift},
    }


def test_rates_are_drawn_in_percentage_points_and_ves_on_its_own_axis():
    points = {p["measure"]: p for p in charts(_sections(), "en")["uplift"]}
    success = points["Value success rate"]
    assert success["axis"] == "rate"
    # The table reads "+31.6 pp [+29.1, +34.1]": so does the chart.
    assert success["value"] == pytest.approx(31.64)
    assert (success["ci_low"], success["ci_high"]) == pytest.approx((29.15, 34.14))
    ves = points["VES (1-7)"]
    assert ves["axis"] == "points" and ves["value"] == pytest.approx(1.047)


def test_both_uplift_axes_put_zero_at_the_same_height_and_hold_every_interval():
    data = charts(_sections(), "en")
    axes = data["uplift_axes"]
    assert set(axes) == {"rate", "points"}
    below = {name: -a["min"] / (a["max"] - a["min"]) for name, a in axes.items()}
    assert below["rate"] == pytest.approx(below["points"])
    for point in data["uplift"]:
        axis = axes[point["axis"]]
        assert axis["min"] < point["ci_low"] and point["ci_high"] < axis["max"]


def test_an_axis_all_below_zero_still_shares_the_zero_line():
    axes = uplift_axes(
        [
            {"axis": "rate", "value": -3.0, "ci_low": -5.0, "ci_high": -1.0},
            {"axis": "points", "value": 1.0, "ci_low": 0.9, "ci_high": 1.2},
        ]
    )
    below = {name: -a["min"] / (a["max"] - a["min"]) for name, a in axes.items()}
    assert below["rate"] == pytest.approx(below["points"])
    assert axes["rate"]["min"] < -5.0 and axes["points"]["max"] > 1.2


def test_a_measure_without_a_difference_still_gets_an_axis():
    # No VES answered in the holdout: its point is empty, the rates' is not.
    axes = uplift_axes(
        [
            {"axis": "rate", "value": 3.0, "ci_low": 1.0, "ci_high": 5.0},
            {"axis": "points", "value": None, "ci_low": None, "ci_high": None},
        ]
    )
    assert axes["points"]["min"] < 0 < axes["points"]["max"]


def test_the_drift_axis_reaches_the_threshold():
    drift = charts(_sections(), "en")["drift"]
    # Scaled to the largest PSI (0.013) alone, a stable model's bars filled the chart.
    assert drift["axis_max"] >= drift["threshold"]
    assert drift["threshold_label"] == "drift threshold 0.2"


def test_the_charts_words_follow_the_page_language():
    english, japanese = charts(_sections(), "en"), charts(_sections(), "ja")
    assert set(english["labels"]) == set(japanese["labels"])
    for key, text in japanese["labels"].items():
        assert text != english["labels"][key] or key == "psi", key
    assert japanese["drift"]["threshold_label"] == "ドリフトのしきい値 0.2"
    # The bars are named as the drift table names the features.
    assert [f["label"] for f in english["drift"]["features"]] == [
        "time since purchase",
        "segment",
    ]
    assert japanese["drift"]["features"][0]["label"] == "購入後の月数"
    assert japanese["drift"]["features"][0]["feature"] == "tenure_months"
    assert {p["measure"] for p in japanese["uplift"]} >= {"価値向上の成功率", "VES（1-7）"}


def test_days_without_contacts_are_rows_with_n_zero(client, keys, new_id):
    # Days of their own in the suite's shared database: relative to now, a run crossing
    # midnight UTC found other tests' contacts of the day before on "yesterday" (12, not 0).
    today = datetime(1990, 3, 10, 10, tzinfo=UTC)
    for days_ago in (5, 2):
        body = {
            "interaction_id": new_id("i-"),
            "customer": {"customer_id": new_id("c-"), "tenure_months": 2},
            "contact": {
                "channel": "chat",
                "issue_type": "inquiry",
                "occurred_at": (today - timedelta(days=days_ago)).isoformat(),
            },
        }
        decision = client.post("/v1/decisions", json=body, headers=keys["desktop"])
        assert decision.status_code == 201, decision.json
        answer = client.post(
            f"/v1/decisions/{decision.json['decision_id']}/outcome",
            json={"offered": False, "ves_confidence": 6, "ves_ability": 7},
            headers=keys["desktop"],
        )
        assert answer.status_code == 201, answer.json
    log_in(client, raw_key(keys["manager"]))
    first, last = (today - timedelta(days=6)).date(), (today - timedelta(days=1)).date()
    answer = client.get(f"/dashboard/trend.csv?from={first}&to={last}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(answer.get_data().decode("utf-8-sig"))))
    # From the first day with a contact to the period's last day, every day.
    expected = [(today - timedelta(days=d)).date().isoformat() for d in (5, 4, 3, 2, 1)]
    assert [r["date"] for r in rows] == expected
    assert [int(r["n"]) for r in rows] == [1, 0, 0, 1, 0]
    assert rows[1]["ves"] == "" and rows[1]["success_rate"] == ""


def test_the_calibration_gap_reads_in_percentage_points_as_its_rates_in_percent():
    from service.web.dashboard import shown

    row = {"band": "low", "n": 526, "predicted": 0.1194, "observed": 0.2167, "gap": 0.0972}
    assert shown("calibration", "predicted", row["predicted"], "en", row) == "11.9%"
    assert shown("calibration", "observed", row["observed"], "en", row) == "21.7%"
    assert shown("calibration", "gap", row["gap"], "en", row) == "+9.7 pp"
    assert shown("calibration", "gap", -0.0186, "ja", row) == "-1.9ポイント"
