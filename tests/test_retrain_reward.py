"""`vea retrain`'s reward: command line, else the champion's own (its manifest), else
``ve_success``; printed with where it came from and recorded in the gate history and the
challenger's manifest.

Real bundles in a real registry on small simulated logs; the CLI through click's
CliRunner, as tests/test_retrain.py does.
"""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from models.registry import Registry
from models.schema import Reward, parse_reward
from training.fit import train_bundle
from training.retrain import GATE_FOLDS, champion_reward
from training.simulate import simulate

FIT = dict(learner="s", seed=0, num_threads=1, progress=False)


@pytest.fixture(scope="module")
def accepted_champion():
    """A champion trained on ``accepted`` (a different objective from the default)."""
    return train_bundle(simulate(rows=1200, seed=71)[0], reward=parse_reward("accepted"), **FIT)


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("retrain-reward") / "later.parquet"
    simulate(rows=1500, seed=72)[0].to_parquet(path)
    return path


def _retrain(registry: Registry, log_path, *args):
    from training.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "retrain",
            "--data",
            str(log_path),
            "--registry",
            str(registry.root),
            "--threads",
            "1",
            "--bootstrap",
            "50",
            "--min-rows",
            "100",
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    return result.output


def _gate_event(registry: Registry) -> dict:
    return next(e for e in reversed(registry.history()) if e.get("event") == "gate")


def test_plain_retrain_keeps_the_champions_reward(tmp_path, accepted_champion, log_path):
    registry = Registry(tmp_path / "registry")
    champion = registry.add(accepted_champion)

    output = _retrain(registry, log_path)

    assert "reward accepted (the champion's)" in output
    assert "gate on 1500 rows" in output  # the gate ran against the champion
    event = _gate_event(registry)
    assert event["champion"] == champion and event["folds"] == GATE_FOLDS
    assert event["reward"] == "accepted" and event["reward_source"] == "the champion's"
    challenger = registry.load(event["challenger"]).manifest["reward"]
    assert challenger["name"] == "accepted" and challenger["source"] == "the champion's"


def test_the_command_line_reward_overrides_the_champions(tmp_path, accepted_champion, log_path):
    registry = Registry(tmp_path / "registry")
    registry.add(accepted_champion)

    output = _retrain(registry, log_path, "--reward", "ve_success")

    assert "reward ve_success (command line)" in output
    event = _gate_event(registry)
    assert event["reward"] == "ve_success" and event["reward_source"] == "command line"
    challenger = registry.load(event["challenger"]).manifest["reward"]
    assert challenger["name"] == "ve_success" and challenger["source"] == "command line"


def test_without_a_champion_the_reward_is_ve_success(tmp_path, log_path):
    registry = Registry(tmp_path / "registry")

    output = _retrain(registry, log_path)

    assert "reward ve_success (default: no champion)" in output
    assert "promoted" in output
    event = _gate_event(registry)
    assert event["reward"] == "ve_success" and event["champion"] is None
    assert event["reward_source"] == "default: no champion"
    manifest = registry.load(registry.champion()).manifest
    assert manifest["reward"]["name"] == "ve_success"


def test_champion_reward_falls_back_when_the_manifest_names_none(accepted_champion):
    assert champion_reward(None) == (Reward(), "default: no champion")
    assert champion_reward(accepted_champion) == (parse_reward("accepted"), "the champion's")
    manifest = {k: v for k, v in accepted_champion.manifest.items() if k != "reward"}
    older = dataclasses.replace(accepted_champion, manifest=manifest)  # a pre-reward bundle
    assert champion_reward(older) == (Reward(), "default: the champion's manifest names none")
