"""`vea retrain`'s options and its gate rule: the options that shape the export
(--since, --keep-export) are refused with --data, which replaces the export (accepted,
they silently did nothing); one rule decides the gate and the shadow check's verdict."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from models.registry import Registry
from training.cli import cli
from training.ope import Estimate
from training.retrain import MIN_ESS, gate_refusal
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


@pytest.mark.parametrize(
    ("ci_low", "unsupported", "ess", "refusal"),
    [
        (0.1, 0.0, 500.0, None),
        (0.0, 0.0, 500.0, "interval"),
        (-0.2, 0.5, 10.0, "interval"),
        (0.1, 0.06, 500.0, "unsupported"),
        (0.1, 0.05, 99.0, "ess"),
    ],
)
def test_one_gate_rule_for_the_gate_and_the_shadow_check(ci_low, unsupported, ess, refusal):
    improvement = Estimate(ci_low + 0.1, ci_low, ci_low + 0.2, 1000)
    health = {"unsupported_mass": unsupported, "ess": ess}
    assert gate_refusal(improvement, health, MIN_ESS) == refusal
