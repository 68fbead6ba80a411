"""Schema validation and column mapping: bad input is named by row and field."""

from __future__ import annotations

import pandas as pd
import pytest
from core_fixtures import HILLSTROM, ROOT, simulated

from training.loading import DataError, load_log, read_table, validate_log, write_table
from training.spec import Spec, SpecError


def _log(row: int, column: str, value) -> pd.DataFrame:
    frame = simulated()[0].head(20).copy()
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[row], column] = value
    return frame


def test_valid_simulated_log_passes_and_is_typed():
    out = validate_log(simulated()[0])
    assert out["tenure_months"].dtype == "float64"
    assert str(out["activity"].dtype) == "string"


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, "tenure_months", -1.0, "row 4, field tenure_months: must be >= 0"),
        (0, "tenure_months", "abc", "row 1, field tenure_months: not a number"),
        (5, "propensity", 0.0, "row 6, field propensity: must be > 0"),
        (5, "propensity", 1.5, "row 6, field propensity: must be <= 1"),
        (2, "activity", "upsell", "row 3, field activity: unknown activity"),
        (7, "ve_success", 2, "row 8, field ve_success: must be 0 or 1"),
        (1, "prior_contacts_30d", 1.5, "row 2, field prior_contacts_30d: not a whole number"),
        (9, "sentiment", -3, "row 10, field sentiment: must be >= -1"),
        (4, "occurred_at", "yesterday-ish", "row 5, field occurred_at: not a timestamp"),
    ],
)
def test_bad_values_are_named_by_row_and_field(row, column, value, message):
    with pytest.raises(DataError) as err:
        validate_log(_log(row, column, value))
    assert message in str(err.value)


def test_duplicate_ids_and_missing_label_are_reported():
    frame = simulated()[0].head(10).copy()
    frame.loc[frame.index[4], "interaction_id"] = frame["interaction_id"].iloc[0]
    with pytest.raises(DataError, match="row 5, field interaction_id: duplicate id"):
        validate_log(frame)
    with pytest.raises(DataError, match="missing column 've_success'"):
        validate_log(frame.drop(columns=["ve_success"]))


def test_missing_optional_columns_are_fine():
    frame = simulated()[0].head(50)[["channel", "tenure_months", "ve_success"]]
    assert len(validate_log(frame)) == 50


def test_empty_and_malformed_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_table(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("channel,ve_success\n")
    with pytest.raises(DataError, match="no data rows"):
        read_table(header_only)
    broken = tmp_path / "broken.csv"
    broken.write_text('a,b\n1,2\n3,"4\n5,6,7,8\n')
    with pytest.raises(DataError, match="malformed CSV|cannot read"):
        read_table(broken)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="unknown format"):
        read_table(tmp_path / "x.json")


def test_write_table_is_atomic_and_checks_extension(tmp_path):
    frame = pd.DataFrame({"a": [1, 2]})
    write_table(frame, tmp_path / "out.parquet")
    assert pd.read_parquet(tmp_path / "out.parquet")["a"].tolist() == [1, 2]
    with pytest.raises(DataError):
        write_table(frame, tmp_path / "out.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_hillstrom_spec_maps_columns():
    spec = Spec.from_file(ROOT / "examples" / "hillstrom.yaml")
    frame = load_log(HILLSTROM, spec)
    assert len(frame) == 64000
    assert set(frame["activity"].unique()) == {"advise_new_uses", "anticipate_needs", "none"}
    assert frame["propensity"].eq(0.3333).all()
    assert {"history", "zip_code", "tenure_months"} <= set(frame.columns)
    assert "segment" not in frame.columns  # the arm is the activity, not a customer segment


def test_spec_errors_are_clear():
    with pytest.raises(SpecError, match="unknown keys"):
        Spec.from_dict({"colums": {}})
    with pytest.raises(SpecError, match="not a canonical column"):
        Spec.from_dict({"columns": {"tenure": "recency"}})
    with pytest.raises(SpecError, match="unknown activities"):
        Spec.from_dict({"activity": {"column": "segment", "values": {"A": "upsell"}}})
    with pytest.raises(SpecError, match="outside"):
        Spec.from_dict({"propensity": 1.5})
    spec = Spec.from_dict(
        {
            "activity": {"column": "segment", "values": {"Mens E-Mail": "none"}},
            "propensity": 0.5,
            "success": "visit",
        }
    )
    raw = pd.DataFrame({"segment": ["Mens E-Mail", "Womens E-Mail"], "visit": [1, 0]})
    with pytest.raises(SpecError, match="row 2, field segment"):
        spec.apply(raw)
    with pytest.raises(SpecError, match="not in the data"):
        Spec.from_dict({"success": "conversion"}).apply(pd.DataFrame({"visit": [1]}))


def test_success_with_positive_value():
    spec = Spec.from_dict({"success": {"column": "y", "positive": "yes"}})
    out = spec.apply(pd.DataFrame({"y": ["yes", "no", "yes"]}))
    assert out["ve_success"].tolist() == [1, 0, 1]


def test_a_problem_on_many_rows_is_counted_not_cut_off():
    frame = simulated()[0].head(300).copy()
    frame["tenure_months"] = -1.0
    with pytest.raises(DataError) as caught:
        validate_log(frame)
    message = str(caught.value)
    assert "row 1, field tenure_months: must be >= 0 (got -1)" in message
    # How many rows share the mistake is said, not lost behind "and 1 more problems".
    assert "field tenure_months: 295 more rows must be >= 0" in message
    assert "more problems" not in message
