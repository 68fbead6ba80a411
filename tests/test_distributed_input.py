"""Bad input on the Dask engine (``vea train --engine dask``, a 2-worker LocalCluster) is
met as the local loader meets it (tests/test_loading_rows.py): a Parquet directory is read
and fingerprinted by its parts only, one without parts is refused naming it, a column
nothing uses is noted, and a CSV (whose rows and header the local loader checks) is
refused naming the file, with a non-zero exit and nothing registered."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from click.testing import CliRunner
from core_fixtures import simulated

from models.registry import Registry
from training.cli import cli
from training.distributed import dask_client, data_fingerprint, read_parquet_log
from training.loading import DataError, load_log, read_table


@pytest.fixture(autouse=True)
def compile_cache(tmp_path_factory, monkeypatch):
    """Compiled forests go to a test directory, never into the working tree."""
    monkeypatch.setenv("VEA_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "compiled"))


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as client:
        yield client


def _frame(rows: int = 400, seed: int = 12) -> pd.DataFrame:
    return simulated(rows=rows, seed=seed)[0]


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
    """What a directory picks up beside the parts: a cache with lock files, a hidden copy
    of a part, a copy kept as .pq, a writer's _SUCCESS marker and a README. The local
    loader reads none of them; the cluster read the hidden copy and the .pq one."""
    first = sorted(directory.rglob("*.parquet"))[0]
    (directory / "cache").mkdir()
    (directory / "cache" / "0a1b2c.lock").write_text("")
    hidden = directory / ".snapshot"
    hidden.mkdir()
    shutil.copy(first, hidden / "part-0.parquet")
    shutil.copy(first, directory / "old-part-0.pq")
    (directory / "_SUCCESS").write_text("")
    (directory / "README.txt").write_text("exported logs")


def _train(client, data, registry, *extra: str):
    return CliRunner().invoke(
        cli,
        [
            "train",
            "--data", str(data),
            "--engine", "dask",
            "--scheduler", client.scheduler.address,
            "--learner", "s",
            "--quiet",
            "--registry", str(registry),
            *extra,
        ],
    )  # fmt: skip


def _nothing_registered(registry) -> bool:
    return not registry.exists() or not any(registry.rglob("manifest.json"))


@pytest.mark.parametrize("hive", [False, True])
def test_the_cluster_reads_and_fingerprints_the_parts_the_local_loader_reads(
    client, tmp_path, hive
):
    """The local loader reads a directory's *.parquet parts only (hidden ones and those
    starting with _ left out) and hive partitions from below it only; the cluster read
    hidden and .pq copies too (the same rows twice) and a ``batch=7`` directory above
    as a column, and its fingerprint changed with any file beside the parts."""
    directory = tmp_path / "batch=7" / "logs"
    _parquet_dataset(directory, _frame(), hive=hive)
    clean = data_fingerprint(directory)
    _clutter(directory)
    assert data_fingerprint(directory) == clean
    local = read_table(directory)
    assert len(local) == 400 and "batch" not in local.columns
    read = client.compute(read_parquet_log(directory), sync=True)
    # The same rows, columns and values (Dask keeps its own string dtype, as it did).
    pd.testing.assert_frame_equal(read.reset_index(drop=True), local, check_dtype=False)
    # Through a URL the same parts are read and fingerprinted.
    url = f"file://{directory.resolve()}"
    assert data_fingerprint(url) == clean
    via_url = client.compute(read_parquet_log(url), sync=True)
    pd.testing.assert_frame_equal(via_url.reset_index(drop=True), local, check_dtype=False)


def test_vea_train_on_the_cluster_reads_a_directory_with_a_cache_in_it(client, tmp_path):
    directory = tmp_path / "logs"
    _parquet_dataset(directory, _frame())
    clean = data_fingerprint(directory)
    _clutter(directory)
    registry = tmp_path / "reg"
    result = _train(client, directory, registry)
    assert result.exit_code == 0, result.output
    assert "(champion)" in result.stdout
    manifest = Registry(registry).load(result.stdout.split()[0]).manifest
    assert manifest["training_rows"] == 400
    assert manifest["data_fingerprint"] == clean


def test_a_directory_without_parquet_parts_is_named_as_locally(client, tmp_path):
    directory = tmp_path / "logs"
    directory.mkdir()
    (directory / "cache").mkdir()
    (directory / "cache" / "x.lock").write_text("")
    (directory / ".part.parquet").write_bytes(b"")
    _frame(rows=40).to_csv(directory / "log.csv", index=False)
    with pytest.raises(DataError) as local:
        read_table(directory)
    with pytest.raises(DataError) as cluster:
        read_parquet_log(directory)
    assert str(cluster.value) == str(local.value)
    assert str(local.value).startswith(f"{directory}: a directory without .parquet files")
    registry = tmp_path / "reg"
    result = _train(client, directory, registry)
    assert result.exit_code == 1
    assert str(local.value) in result.output
    assert "Traceback" not in result.output
    assert _nothing_registered(registry)


def test_an_unused_column_is_noted_on_the_cluster_as_locally(client, tmp_path):
    """tenure for tenure_months: the cluster trained without the feature, saying nothing."""
    directory = tmp_path / "renamed"
    _parquet_dataset(directory, _frame().rename(columns={"tenure_months": "tenure"}))
    said: list[str] = []
    load_log(directory, note=said.append)
    assert len(said) == 1 and "nothing uses column tenure" in said[0]
    result = _train(client, directory, tmp_path / "reg")
    assert result.exit_code == 0, result.output  # extra columns are allowed: it trains
    assert f"note: {said[0]}\n" in result.stderr
    assert result.stderr.count("nothing uses") == 1  # said once
    assert "(champion)" in result.stdout


def test_a_cut_csv_row_or_a_doubled_header_is_refused_naming_the_file(client, tmp_path):
    """The dask engine reads Parquet only: a CSV, whose short rows and doubled header
    names the local loader refuses, is refused by name before anything is read."""
    lines = _frame(rows=60).to_csv(index=False).splitlines()
    cut = tmp_path / "cut.csv"
    cut.write_text("\n".join([*lines[:13], lines[13][:20], *lines[14:]]) + "\n")
    doubled = tmp_path / "doubled.csv"
    doubled.write_text(
        "\n".join([f"{lines[0]},tenure_months", *(f"{line},7" for line in lines[1:])]) + "\n"
    )
    for path, local in ((cut, "row 13: "), (doubled, "'tenure_months' twice")):
        with pytest.raises(DataError, match=local):
            load_log(path)
        registry = tmp_path / f"reg-{path.stem}"
        result = _train(client, path, registry)
        assert result.exit_code == 1
        assert f"{path}: the dask engine reads Parquet" in result.output
        assert "Traceback" not in result.output
        assert _nothing_registered(registry)


def test_a_bad_row_is_named_alike_on_both_engines_whatever_the_part_names(client, tmp_path):
    """Parts named part.0 ... part.10 (as Dask and pyarrow write them): the local loader
    read part.10 before part.2, the cluster after it, so one bad row had two numbers."""
    frame = _frame(rows=400)
    directory = tmp_path / "logs"
    directory.mkdir()
    for number, start in zip((0, 1, 2, 10), range(0, 400, 100), strict=True):
        frame.iloc[start : start + 100].to_parquet(directory / f"part.{number}.parquet")
    bad = frame.iloc[200:300].copy()
    bad.iloc[6, bad.columns.get_loc("propensity")] = 0.0
    bad.to_parquet(directory / "part.2.parquet")
    expected = "row 207, field propensity: must be > 0"
    with pytest.raises(DataError, match=expected):
        load_log(directory)
    registry = tmp_path / "reg"
    result = _train(client, directory, registry)
    assert result.exit_code == 1
    assert expected in result.output
    assert _nothing_registered(registry)
