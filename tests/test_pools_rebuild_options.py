"""`vea pools rebuild`'s options that only mean something together: --prob-column and
--model without --log were silently ignored (the rebuild read the stored outcomes), and
--model with a registry folder that does not exist said "invalid version None"."""

from __future__ import annotations

from click.testing import CliRunner
from test_pools_cli import offline_log

from training.cli import cli


def _env(tmp_path) -> dict[str, str]:
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db"}
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    return env


def test_probabilities_or_a_model_without_a_log_are_a_usage_error(tmp_path):
    env = _env(tmp_path)
    for option in (["--prob-column", "pp"], ["--model", "champion"]):
        result = CliRunner().invoke(cli, ["pools", "rebuild", *option, "--dry-run"], env=env)
        assert result.exit_code == 2, result.output
        assert "--prob-column and --model need --log" in result.output


def test_a_missing_registry_or_champion_is_named(tmp_path):
    env = _env(tmp_path)
    log = offline_log(tmp_path, rows=2_000)
    missing = tmp_path / "nope"
    result = CliRunner().invoke(
        cli,
        ["pools", "rebuild", "--log", str(log), "--model", "champion", "--registry", str(missing)],
        env=env,
    )
    assert result.exit_code == 1, result.output
    assert f"--registry {missing}: the model registry folder does not exist" in result.output
    empty = tmp_path / "empty-registry"
    empty.mkdir()
    result = CliRunner().invoke(
        cli,
        ["pools", "rebuild", "--log", str(log), "--model", "champion", "--registry", str(empty)],
        env=env,
    )
    assert result.exit_code == 1, result.output
    assert "has no champion" in result.output
    assert "invalid version" not in result.output and "Traceback" not in result.output
