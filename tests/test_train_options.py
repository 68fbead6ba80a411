"""`vea train` options that would do nothing are refused: --workers sizes only the
LocalCluster that --engine dask starts without --scheduler."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from models.registry import Registry
from training.cli import cli
from training.simulate import simulate


@pytest.mark.parametrize(
    "engine", [["--engine", "local"], ["--engine", "dask", "--scheduler", "tcp://127.0.0.1:9"]]
)
def test_workers_without_a_local_cluster_are_refused(tmp_path, engine):
    path = tmp_path / "log.parquet"
    simulate(rows=300, seed=4)[0].to_parquet(path)
    registry = tmp_path / "reg"
    result = CliRunner().invoke(
        cli,
        ["train", "--data", str(path), "--registry", str(registry), "--workers", "3"]
        + ["--learner", "s", "--threads", "1", "--quiet", "--no-compile", *engine],
    )
    assert result.exit_code == 2, result.output
    assert "--workers sizes the LocalCluster of --engine dask without --scheduler" in result.output
    assert Registry(registry).version_ids() == []
