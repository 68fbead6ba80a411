"""The loader reads dates one way only, year first, and numbers a CSV's malformed rows as
every other message does (data rows, 1-based, the header not counted)."""

from __future__ import annotations

import pandas as pd
import pytest
from core_fixtures import simulated

from training.loading import DataError, load_log, read_table


def log(rows: int = 20) -> pd.DataFrame:
    return simulated(3000, 5)[0].head(rows).reset_index(drop=True)


# ------------------------------------------------------------ dates
def test_a_date_with_the_day_or_month_first_is_refused_naming_the_row(tmp_path):
    frame = log().astype({"occurred_at": object})
    # pandas' "mixed" parsing read these as 2026-01-02, 2026-02-13 and 2026-02-13.
    frame.loc[3, "occurred_at"] = "01/02/2026"
    frame.loc[5, "occurred_at"] = "13/02/2026"
    frame.loc[7, "occurred_at"] = "02/13/2026"
    frame.to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(DataError) as caught:
        load_log(tmp_path / "log.csv")
    message = str(caught.value)
    for row, value in ((4, "01/02/2026"), (6, "13/02/2026"), (8, "02/13/2026")):
        assert f"row {row}, field occurred_at: not a timestamp: write the year first" in message
        assert f"(got '{value}')" in message
    assert "01/02/2026 is 1 February in some countries, 2 January in others" in message


@pytest.mark.parametrize("value", ["09:05", "Nov 27 2026", "27.11.2026"])
def test_other_date_forms_are_refused_too(tmp_path, value):
    frame = log().astype({"occurred_at": object})
    frame.loc[2, "occurred_at"] = value  # "09:05" was read as today
    frame.to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(DataError, match="row 3, field occurred_at: not a timestamp: write the"):
        load_log(tmp_path / "log.csv")


@pytest.mark.parametrize(
    "value, instant",
    [
        ("2026/11/27 9:05", "2026-11-27 09:05:00+00:00"),  # the README's example
        ("2026/1/2", "2026-01-02 00:00:00+00:00"),  # January, year first
        ("2026-11-27T09:05:00+09:00", "2026-11-27 00:05:00+00:00"),
        ("2026-11-27 09:05:00Z", "2026-11-27 09:05:00+00:00"),
    ],
)
def test_year_first_dates_are_read(tmp_path, value, instant):
    frame = log().astype({"occurred_at": object})
    frame.loc[2, "occurred_at"] = value
    frame.to_csv(tmp_path / "log.csv", index=False)
    assert load_log(tmp_path / "log.csv")["occurred_at"][2] == pd.Timestamp(instant)


# ------------------------------------------------------------ row numbers of a malformed CSV
def lines_with(tmp_path, row: int, change) -> str:
    path = tmp_path / "log.csv"
    log().to_csv(path, index=False)
    lines = path.read_text().split("\n")
    lines[row] = change(lines[row])  # lines[0] is the header: lines[8] is data row 8
    path.write_text("\n".join(lines))
    return path


def test_a_long_row_is_numbered_as_a_short_one(tmp_path):
    columns = len(log().columns)
    short = lines_with(tmp_path, 8, lambda line: ",".join(line.split(",")[:5]))
    with pytest.raises(DataError, match=f"malformed CSV: row 8: 5 fields, expected {columns}"):
        read_table(short)
    long = lines_with(tmp_path, 8, lambda line: line + ",extra")
    # It said pandas' "Expected 24 fields in line 9, saw 25".
    with pytest.raises(DataError, match=f"malformed CSV: row 8: {columns + 1} fields, expected"):
        read_table(long)


def test_a_long_first_row_is_refused_not_shifted(tmp_path):
    # pandas reads a longer first data row without an error: its first fields become the
    # index and every value moves one column left.
    first = lines_with(tmp_path, 1, lambda line: line + ",extra")
    with pytest.raises(DataError, match="malformed CSV: row 1: "):
        read_table(first)
