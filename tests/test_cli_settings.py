"""The `vea` commands read VEA_REGISTRY, VEA_COMPILE_CACHE, VEA_POOLS (and, for a model
change, the service database's settings) with the service's own start-up checks: a bad
value is one line naming the variable and a non-zero exit, before anything changes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from models.registry import Registry
from training.cli import cli


def vea(*args, env: dict[str, str]):
    # catch_exceptions=False: an unexpected exception (a traceback) fails the test.
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def refused(result, line: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [f"Error: {line}"], result.output


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("channel,ve_success\nvoice,1\n")
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ("models", "list"),
        ("models", "rollback"),
        ("train", "--data", "DATA", "--quiet"),
        ("score", "--data", "DATA", "--out", "OUT"),
        ("evaluate", "--data", "DATA"),
    ],
)
def test_an_empty_registry_variable_is_named(argv, data, tmp_path):
    argv = [{"DATA": data, "OUT": tmp_path / "out.csv"}.get(a, a) for a in argv]
    refused(vea(*argv, env={"VEA_REGISTRY": ""}), "VEA_REGISTRY: must not be empty")
    assert not (tmp_path / "out.csv").exists()


def test_a_registry_that_is_a_file_is_named(data, tmp_path):
    registry = tmp_path / "registry"
    registry.write_text("")
    refused(
        vea("models", "list", env={"VEA_REGISTRY": str(registry)}),
        f"VEA_REGISTRY: {registry} is a file, not a directory",
    )


def test_a_compile_cache_that_is_a_file_stops_training_before_it_starts(data, tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("")
    registry = tmp_path / "registry"
    result = vea(
        "train",
        "--data",
        data,
        "--quiet",
        env={"VEA_COMPILE_CACHE": str(cache), "VEA_REGISTRY": str(registry)},
    )
    refused(result, f"VEA_COMPILE_CACHE: {cache} is a file, not a directory")
    assert not registry.exists()


def test_an_empty_compile_cache_turns_compiling_off_as_in_the_service(
    registry_dir, tmp_path, monkeypatch
):
    """It compiled into the working directory (Path("") is ".")."""
    from training.simulate import simulate

    log, _truth = simulate(rows=50, seed=3)
    data = tmp_path / "log.csv"
    log.to_csv(data, index=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = vea(
        "score",
        "--data",
        data,
        "--out",
        tmp_path / "scored.csv",
        env={"VEA_COMPILE_CACHE": "", "VEA_REGISTRY": str(registry_dir)},
    )
    assert result.exit_code == 0, result.output
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("pools", ["missing", "bad"])
def test_a_bad_pools_file_is_named(pools, data, tmp_path):
    path = tmp_path / "pools.yaml"
    if pools == "bad":
        path.write_text("pools: [{id: value, activities: [upsell]}]\n")
    env = {"VEA_POOLS": str(path), "VEA_REGISTRY": str(tmp_path / "registry")}
    for argv in (
        ("score", "--data", data, "--out", tmp_path / "out.csv"),
        ("evaluate", "--data", data, "--routing", "general-only"),
    ):
        result = vea(*argv, env=env)
        assert result.exit_code == 1, result.output
        (line,) = result.output.strip().splitlines()
        assert line.startswith("Error: VEA_POOLS: ") and str(path) in line, line
    assert not (tmp_path / "out.csv").exists()


def test_a_variable_the_command_does_not_read_does_not_stop_it(tmp_path):
    result = vea(
        "models",
        "list",
        env={"VEA_REGISTRY": str(tmp_path / "registry"), "VEA_WORKERS": "lots"},
    )
    assert result.exit_code == 0, result.output
    assert "no models" in result.output


@pytest.mark.parametrize(
    "argv", [("models", "promote", "FIRST"), ("models", "rollback"), ("models", "shadow", "FIRST")]
)
def test_a_bad_database_setting_stops_a_model_change_before_it_is_made(argv, registry_dir):
    registry = Registry(registry_dir)
    first, second = sorted(v["version"] for v in registry.versions())
    registry.promote(second, reason="test")  # each command would change something
    argv = [first if a == "FIRST" else a for a in argv]
    result = vea(
        *argv,
        env={"VEA_REGISTRY": str(registry_dir), "VEA_DATABASE_URL": "mysql://vea@db/vea"},
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: VEA_DATABASE_URL: "), result.output
    assert (registry.champion(), registry.shadow()) == (second, None)


def test_retrain_reads_its_settings_with_the_services_checks(data, tmp_path):
    refused(
        vea("retrain", "--data", data, env={"VEA_REGISTRY": ""}),
        "VEA_REGISTRY: must not be empty",
    )
    result = vea(
        "retrain",
        "--data",
        data,
        env={"VEA_REGISTRY": str(tmp_path / "registry"), "VEA_DRIFT_PSI_THRESHOLD": "-1"},
    )
    assert result.exit_code == 1, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: VEA_DRIFT_PSI_THRESHOLD: "), line
    assert not (tmp_path / "registry").exists()
