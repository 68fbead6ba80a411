"""`vea retrain` options that shape the export (--since, --keep-export) are refused with
--data, which replaces the export: accepted, they silently did nothing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from models.registry import Registry
from training.cli import cli
from training.simulate import simulate


@pytest.mark.parametrize(
    ("option", "value"), [("--since", "2026-01-01"), ("--keep-export", "kept.parquet")]
)
def test_export_options_are_refused_with_a_given_log(tmp_path, option, value):
    path = tmp_path / "log.parquet"
    simulate(rows=300, seed=4)[0].to_parquet(path)
    registry = tmp_path / "reg"
    result = CliRunner().invoke(
        cli,
        ["retrain", "--data", str(path), "--registry", str(registry), option, value],
    )
    assert result.exit_code == 2, result.output
    assert f"{option} applies to the export from the service database, not to --data" in (
        result.output
    )
    assert "Traceback" not in result.output
    # Refused before anything is trained or recorded.
    assert Registry(registry).version_ids() == []
    assert Registry(registry).history() == []
