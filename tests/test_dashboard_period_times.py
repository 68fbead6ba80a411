"""The period form and the line stating the period, for periods with times of day.

A link with times (``from=2026-11-27T12:00+09:00``) showed empty date fields and Apply
reset the period to the default; the period now shows in date-and-time fields (UTC) and
is stated to the minute, in UTC, in the page's language. The browser side is in
tests/test_dashboard_browser_period.py.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from service.web.dashboard import period_form, period_line, read_period

NOW = datetime(2026, 11, 28, 6, 30, 15)


def _form(**args):
    period, problem = read_period(args, NOW)
    return period, period_form(args, period, problem)


def test_a_period_with_times_shows_them_in_utc():
    period, form = _form(**{"from": "2026-11-27T12:00+09:00", "to": "2026-11-28T00:00+09:00"})
    assert (period["start"], period["end"]) == (
        datetime(2026, 11, 27, 3),
        datetime(2026, 11, 27, 15),
    )
    assert form["types"] == {"from": "datetime-local", "to": "datetime-local"}
    assert (form["from"], form["to"], form["step"]) == (
        "2026-11-27T03:00",
        "2026-11-27T15:00",
        None,
    )
    # What the form sends back is the same period.
    again, problem = read_period({"period": "custom", "shown": "custom", **form}, NOW)
    assert problem is None and (again["start"], again["end"]) == (period["start"], period["end"])


def test_a_time_with_seconds_keeps_them_and_a_bare_date_beside_it_is_its_day():
    period, form = _form(**{"from": "2026-11-27T12:00:30Z", "to": "2026-11-28"})
    assert (form["from"], form["to"]) == ("2026-11-27T12:00:30", "2026-11-29T00:00")
    assert form["step"] == "1"  # else the browser refuses to submit a time with seconds
    _, form = _form(**{"from": "2026-11-27T12:00:30.250Z"})
    assert (form["from"], form["step"]) == ("2026-11-27T12:00:30.250", "0.001")


def test_dates_stay_date_fields_and_a_wrong_value_is_shown_as_typed():
    _, form = _form(**{"from": "2026-11-01", "to": "2026-11-30"})
    assert form["types"] == {"from": "date", "to": "date"}
    assert (form["from"], form["to"]) == ("2026-11-01", "2026-11-30")
    # A value a date field would drop is kept where it is seen, to be corrected.
    _, form = _form(**{"from": "2026-11-01", "to": "2026-11-30T10"})
    assert form["invalid"] == ["to"] and form["to"] == "2026-11-30T10"
    assert form["types"] == {"from": "date", "to": "text"}


@pytest.mark.parametrize(
    ("args", "english", "japanese"),
    [
        (
            {"from": "2026-11-27T12:00+09:00", "to": "2026-11-28T00:00+09:00"},
            "Figures for 2026-11-27 03:00 to 2026-11-27 15:00 UTC (the end not included).",
            "2026-11-27 03:00 から 2026-11-27 15:00 まで（UTC、終わりの時刻は含みません）の集計です。",
        ),
        (
            {"from": "2026-11-01", "to": "2026-11-30"},
            "Figures for 2026-11-01 00:00 to 2026-12-01 00:00 UTC (the end not included).",
            "2026-11-01 00:00 から 2026-12-01 00:00 まで（UTC、終わりの時刻は含みません）の集計です。",
        ),
        (
            {"period": "7"},
            "Figures since 2026-11-21 06:30 UTC.",
            "2026-11-21 06:30（UTC）以降の集計です。",
        ),
        (
            {"to": "2026-11-30T10:00:05Z"},
            "Figures before 2026-11-30 10:00:05 UTC.",
            "2026-11-30 10:00:05（UTC）より前の集計です。",
        ),
        ({"period": "all"}, "Figures for all time.", "全期間の集計です。"),
    ],
)
def test_the_line_states_the_period_in_utc(args, english, japanese):
    period, problem = read_period(args, NOW)
    assert problem is None
    assert period_line(period, "en") == english
    assert period_line(period, "ja") == japanese
