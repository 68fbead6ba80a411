"""Input files as pandas or pyarrow took them without a word: a CSV row cut short, a
column named twice (refused, naming the row or column; nothing is trained), a feature
column under another name (trained on without it: now a note names it), and a Parquet
directory holding other files beside its parts (read: its parts only)."""

from __future__ import annotations

import gzip
import re
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner
from core_fixtures import simulated

from training.cli import cli
from training.loading import DataError, load_log, read_table
from training.spec import Spec


@pytest.fixture(autouse=True)
def compile_cache(tmp_path_factory, monkeypatch):
    """Compiled forests go to a test directory, never into the working tree."""
    monkeypatch.setenv("VEA_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "compiled"))


def _canonical_csv(path, rows: int = 300, *, activity: bool = True) -> list[str]:
    """A simulated log as CSV lines (header first); without the activity columns when
    ``activity`` is false (the openness-only layout)."""
    frame = simulated(rows=rows, seed=11)[0]
    if not activity:
        frame = frame.drop(columns=["activity"])
    frame.to_csv(path, index=False)
    return path.read_text().splitlines()


def _cut(lines: list[str], row: int, fields: int) -> list[str]:
    """The lines with data row ``row`` (1-based) cut to its first ``fields`` fields."""
    out = list(lines)
    out[row] = ",".join(out[row].split(",")[:fields])
    return out


def test_a_row_cut_short_is_refused_by_row(tmp_path):
    path = tmp_path / "trunc.csv"
    lines = _canonical_csv(path, activity=False)
    width = len(lines[0].split(","))
    path.write_text("\n".join(_cut(lines, 13, 4)) + "\n")
    with pytest.raises(DataError, match=rf"malformed CSV: row 13: 4 fields, expected {width}$"):
        read_table(path)


def test_a_short_row_is_malformed_not_a_missing_activity(tmp_path):
    """With an activity column, the cut row was reported as 'field activity: missing'."""
    path = tmp_path / "trunc.csv"
    lines = _canonical_csv(path, activity=True)
    width = len(lines[0].split(","))
    path.write_text("\n".join(_cut(_cut(lines, 13, 5), 40, 1)) + "\n")
    with pytest.raises(DataError) as caught:
        load_log(path)
    message = str(caught.value)
    assert f"row 13: 5 fields, expected {width}" in message
    assert f"row 40: 1 field, expected {width}" in message
    assert "missing" not in message


def test_rows_are_numbered_as_data_rows(tmp_path):
    """Blank lines are skipped (as pandas skips them) and a quoted value's newline is no
    new row: the row named is the one every other message would name."""
    path = tmp_path / "quoted.csv"
    path.write_text('a,b,c\n1,2,3\n\n   \n"x\ny",5,6\n7,8\n9,10,11\n')
    assert len(pd.read_csv(path)) == 4
    with pytest.raises(DataError, match=r"row 3: 2 fields, expected 3$"):
        read_table(path)


def test_many_short_rows_are_counted(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("a,b,c\n" + "1,2\n" * 12)
    with pytest.raises(DataError) as caught:
        read_table(path)
    message = str(caught.value)
    assert "row 1: 2 fields, expected 3; row 2:" in message
    assert "7 more rows with too few fields" in message


@pytest.mark.parametrize("kind", ["gzip", "cp932"])
def test_short_rows_in_compressed_and_non_utf8_files(tmp_path, kind):
    text = "channel,language,ve_success\nvoice,日本語,1\nchat,ja\nvoice,en,0\n"
    if kind == "gzip":
        path = tmp_path / "log.csv.gz"
        path.write_bytes(gzip.compress(text.encode("utf-8")))
        encoding = None
    else:
        path = tmp_path / "log.csv"
        path.write_bytes(text.encode("cp932"))
        encoding = "cp932"
    with pytest.raises(DataError, match=r"row 2: 2 fields, expected 3$"):
        read_table(path, encoding)


def test_complete_rows_with_empty_last_values_read_as_before(tmp_path):
    """Empty trailing values (an outcome not known yet) are no short row, and the frame
    is pandas' own: the same values and types."""
    path = tmp_path / "gaps.csv"
    lines = _canonical_csv(path, rows=200)
    lines = [line.rsplit(",", 1)[0] + "," if i % 7 == 3 else line for i, line in enumerate(lines)]
    path.write_text("\n".join(lines) + "\n")
    frame = read_table(path)
    pd.testing.assert_frame_equal(frame, pd.read_csv(path, low_memory=False))
    assert frame.iloc[:, -1].isna().sum() == sum(1 for i in range(1, len(lines)) if i % 7 == 3)


def test_vea_train_refuses_a_cut_row_and_writes_nothing(tmp_path):
    path = tmp_path / "trunc.csv"
    lines = _canonical_csv(path, rows=400, activity=False)
    width = len(lines[0].split(","))
    path.write_text("\n".join(_cut(lines, 13, 4)) + "\n")
    registry = tmp_path / "reg"
    result = CliRunner().invoke(
        cli,
        ["train", "--data", str(path), "--quiet"],
        env={"VEA_REGISTRY": str(registry)},
        catch_exceptions=False,
    )
    assert result.exit_code != 0
    assert f"row 13: 4 fields, expected {width}" in result.output
    assert "rows left out" not in result.output
    assert not registry.exists() or not any((registry / "versions").glob("*"))


def test_a_column_named_twice_is_refused(tmp_path):
    """pandas read the second tenure_months as 'tenure_months.1' and training used the
    first without a word."""
    path = tmp_path / "dup.csv"
    lines = _canonical_csv(path, rows=50)
    width = len(lines[0].split(","))
    doubled = [f"{lines[0]},tenure_months"] + [f"{line},7" for line in lines[1:]]
    path.write_text("\n".join(doubled) + "\n")
    position = lines[0].split(",").index("tenure_months") + 1
    with pytest.raises(DataError) as caught:
        load_log(path)
    assert (
        f"the header names column 'tenure_months' twice (columns {position} and {width + 1})"
    ) in str(caught.value)
    registry = tmp_path / "reg"
    result = CliRunner().invoke(
        cli,
        ["train", "--data", str(path), "--quiet"],
        env={"VEA_REGISTRY": str(registry)},
        catch_exceptions=False,
    )
    assert result.exit_code != 0 and "'tenure_months' twice" in result.output
    assert not registry.exists() or not any((registry / "versions").glob("*"))


def test_a_name_like_a_renamed_duplicate_is_no_duplicate(tmp_path):
    path = tmp_path / "dotted.csv"
    path.write_text("\ufeffchannel,history,history.1,ve_success\nvoice,1,2,1\nchat,3,4,0\n")
    assert list(read_table(path).columns) == ["channel", "history", "history.1", "ve_success"]


def _parquet_dataset(directory, frame: pd.DataFrame, *, hive: bool = False) -> None:
    """``frame`` as a directory of Parquet parts (four flat parts, or hive partitions by
    channel in subdirectories)."""
    directory.mkdir(parents=True)
    if hive:
        frame.to_parquet(directory, partition_cols=["channel"], index=False)
        return
    for number, start in enumerate(range(0, len(frame), len(frame) // 4)):
        part = frame.iloc[start : start + len(frame) // 4]
        part.to_parquet(directory / f"part-{number}.parquet", index=False)


def _clutter(directory) -> None:
    """What a directory picks up beside the parts: a cache with lock files (the
    auditor's), a hidden copy of a part, a writer's _SUCCESS marker and a README."""
    (directory / "cache").mkdir()
    (directory / "cache" / "0a1b2c.lock").write_text("")
    hidden = directory / ".snapshot"
    hidden.mkdir()
    first = sorted(directory.rglob("*.parquet"))[0]
    shutil.copy(first, hidden / "part-0.parquet")
    (directory / "_SUCCESS").write_text("")
    (directory / "README.txt").write_text("exported logs")


@pytest.mark.parametrize("hive", [False, True])
def test_a_parquet_directory_reads_its_parts_only(tmp_path, hive):
    frame = simulated(rows=400, seed=12)[0]
    clean, cluttered = tmp_path / "clean", tmp_path / "cluttered"
    _parquet_dataset(clean, frame, hive=hive)
    shutil.copytree(clean, cluttered)
    _clutter(cluttered)
    read = read_table(cluttered)
    assert len(read) == len(frame)
    # The frame pandas reads from the clean directory: same rows, order and types.
    pd.testing.assert_frame_equal(read, pd.read_parquet(clean))


def test_a_directory_without_parquet_parts_is_named(tmp_path):
    directory = tmp_path / "logs"
    directory.mkdir()
    (directory / "cache").mkdir()
    (directory / "cache" / "x.lock").write_text("")
    (directory / ".part.parquet").write_bytes(b"")
    expected = f"{directory}: a directory without .parquet files"
    with pytest.raises(DataError, match=f"^{re.escape(expected)}"):
        read_table(directory)


def test_vea_train_reads_a_parquet_directory_with_a_cache_in_it(tmp_path):
    directory = tmp_path / "logs"
    _parquet_dataset(directory, simulated(rows=400, seed=13)[0])
    _clutter(directory)
    result = CliRunner().invoke(
        cli,
        ["train", "--data", str(directory), "--quiet"],
        env={"VEA_REGISTRY": str(tmp_path / "reg")},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "(champion)" in result.output


def _notes(path, spec=None, **kwargs) -> list[str]:
    said: list[str] = []
    load_log(path, spec, note=said.append, **kwargs)
    return said


def test_a_renamed_feature_column_is_noted_with_the_column_it_lacks(tmp_path):
    """tenure for tenure_months: training went on without the feature, saying nothing."""
    path = tmp_path / "renamed.csv"
    _canonical_csv(path, rows=100)
    path.write_text(path.read_text().replace("tenure_months", "tenure", 1))
    assert _notes(path) == [
        f"{path}: nothing uses column tenure (not canonical: an extra feature needs a "
        "spec's features:); the log lacks the known feature column tenure_months. A "
        "column under another name is not learned from: rename it, or map it with a spec "
        "(columns: {tenure_months: tenure})"
    ]


def test_columns_a_spec_maps_are_used_and_the_others_named(tmp_path):
    path = tmp_path / "theirs.csv"
    pd.DataFrame(
        {
            "recency": [3, 5, 8, 1],
            "history": [10.0, 20.0, 5.0, 7.5],
            "visit": [1, 0, 1, 0],
            "spend": [0.0, 3.0, 0.0, 1.0],
            "notes": ["a", "b", "c", "d"],
        }
    ).to_csv(path, index=False)
    spec = Spec.from_dict(
        {"columns": {"tenure_months": "recency"}, "success": "visit", "features": ["history"]}
    )
    [said] = _notes(path, spec)
    assert said.startswith(
        f"{path}: nothing uses columns spend, notes (the spec neither maps them under "
        "columns: nor lists them under features:); the log lacks the known feature columns "
        "channel, issue_type,"
    )
    assert "recency" not in said and "history" not in said and "tenure_months" not in said
    assert said.endswith("map it in the spec (columns: {canonical: yours})")


def test_logs_whose_columns_are_all_used_say_nothing(tmp_path):
    path = tmp_path / "canonical.csv"
    frame = simulated(rows=60, seed=14)[0]
    frame.to_csv(path, index=False)
    assert _notes(path) == []
    # vea's own export columns are no features by design: not named either.
    export = tmp_path / "export.parquet"
    frame.assign(decision_id="d", model_version="v1", routed_pool_id="general").to_parquet(export)
    assert _notes(export) == []


def test_a_log_read_for_a_model_leaves_the_columns_to_the_caller(tmp_path):
    path = tmp_path / "renamed.csv"
    _canonical_csv(path, rows=60)
    path.write_text(path.read_text().replace("tenure_months", "tenure", 1))
    assert _notes(path, numeric_features=["prior_contacts_30d", "sentiment"]) == []


def test_vea_train_notes_a_renamed_feature_column(tmp_path):
    path = tmp_path / "renamed.csv"
    _canonical_csv(path, rows=400)
    path.write_text(path.read_text().replace("tenure_months", "tenure", 1))
    result = CliRunner().invoke(
        cli,
        ["train", "--data", str(path), "--quiet"],
        env={"VEA_REGISTRY": str(tmp_path / "reg")},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output  # extra columns are allowed: it trains
    assert "note: " in result.output
    assert "nothing uses column tenure" in result.output
    assert "lacks the known feature column tenure_months" in result.output
    assert result.output.count("nothing uses") == 1  # said once
