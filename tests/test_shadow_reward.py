"""`vea evaluate --shadow` on a named reward: the one the promotion gate would use.

A small log stands in for an export of a shadow period: the simulator's contacts with,
for each, the champion's greedy choice (``best_activity``) and the shadow's
(``shadow_activity``) from real bundles in a real registry. The champion is trained on
``accepted``, so the comparison must default to it, report it, and refuse rewards the
log cannot provide. The full serving path is covered by tests/test_shadow_e2e.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from models.activities import ACTIONS
from models.registry import Registry
from models.schema import parse_reward
from training.fit import train_bundle
from training.loading import DataError, load_log
from training.retrain import greedy_actions
from training.shadow import compare_shadow
from training.simulate import simulate

ROWS = 1200
UNKNOWN_ACCEPTED = 40  # offered, answer not recorded: left out under `accepted`


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("shadow-reward")
    registry = Registry(root / "registry")
    fit = dict(learner="s", seed=0, num_threads=1, progress=False)
    champion = registry.add(
        train_bundle(simulate(rows=1500, seed=61)[0], reward=parse_reward("accepted"), **fit)
    )
    shadow = registry.add(train_bundle(simulate(rows=1500, seed=62)[0], **fit))
    assert registry.champion() == champion

    log, _truth = simulate(rows=ROWS, seed=63)
    names = np.array(ACTIONS, dtype=object)
    for column, version in (("best_activity", champion), ("shadow_activity", shadow)):
        bundle = registry.load(version)
        log[column] = names[greedy_actions(bundle, log, bundle.economics)]
    log["model_version"] = champion
    log["shadow_version"] = shadow
    log["accepted"] = log["accepted"].astype(float)
    offered = np.flatnonzero(log["offered"].to_numpy() == 1)
    log.loc[log.index[offered[:UNKNOWN_ACCEPTED]], "accepted"] = np.nan
    path = root / "live.parquet"
    log.to_parquet(path)
    return path, registry, champion, shadow


def _evaluate(world, *args):
    from training.cli import cli

    path, registry, _, shadow = world
    return CliRunner().invoke(
        cli,
        ["evaluate", "--data", str(path), "--registry", str(registry.root),
         "--bootstrap", "50", *args],
    )  # fmt: skip


def test_comparison_on_accepted_differs_from_the_default_and_says_so(world):
    path, _, _, shadow = world
    frame = load_log(path)
    common = dict(version=shadow, n_boot=50, num_threads=1)
    default = compare_shadow(frame, **common)
    accepted = compare_shadow(frame, reward=parse_reward("accepted"), **common)
    assert default["reward"] == "ve_success" and default["left_out"] == 0
    assert default["rows"] == ROWS
    assert accepted["reward"] == "accepted" and accepted["left_out"] == UNKNOWN_ACCEPTED
    assert accepted["rows"] == ROWS - UNKNOWN_ACCEPTED
    assert accepted["champion_value"]["value"] != default["champion_value"]["value"]
    assert accepted["improvement"]["value"] != default["improvement"]["value"]
    for key in ("shadow_version", "verdict", "would_pass_gate", "diagnostics", "agreement"):
        assert key in accepted


def test_a_reward_the_log_cannot_provide_is_refused_naming_it(world):
    path, _, _, shadow = world
    frame = load_log(path)
    with pytest.raises(DataError, match="reward upgraded needs the column"):
        compare_shadow(frame, version=shadow, reward=parse_reward("upgraded"), n_boot=50)
    with pytest.raises(DataError, match=f"reward retained_60d: .*{ROWS} rows left out"):
        compare_shadow(
            frame.assign(retained_60d=np.nan),
            version=shadow,
            reward=parse_reward("retained_60d"),
            n_boot=50,
        )
    result = _evaluate(world, "--shadow", shadow, "--reward", "upgraded")
    assert result.exit_code == 1
    assert "reward upgraded needs the column" in result.output


def test_cli_defaults_to_the_champions_reward_and_takes_another(world, tmp_path):
    _, _, _, shadow = world
    out = tmp_path / "default.json"
    result = _evaluate(world, "--shadow", shadow, "--json", str(out))
    assert result.exit_code == 0, result.output
    assert f"on reward accepted, {UNKNOWN_ACCEPTED} rows left out" in result.output
    assert json.loads(out.read_text())["reward"] == "accepted"

    weighted = _evaluate(
        world, "--shadow", shadow, "--reward", "weighted",
        "--reward-weights", "ve_success=1,accepted=1", "--json", str(out),
    )  # fmt: skip
    assert weighted.exit_code == 0, weighted.output
    assert "on reward weighted(ve_success=1,accepted=1)" in weighted.output
    assert json.loads(out.read_text())["left_out"] == UNKNOWN_ACCEPTED


@pytest.mark.parametrize(
    "args",
    [["--reward", "accepted"], ["--reward-weights", "accepted=1"]],
    ids=["reward", "weights"],
)
def test_reward_without_shadow_is_a_usage_error(world, args):
    result = _evaluate(world, *args)
    assert result.exit_code == 2
    assert "need --shadow" in result.output
