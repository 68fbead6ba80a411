"""The champion/challenger gate: cross-fitted DR, refusals, --force, skips, drift, CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from models.registry import Registry
from training.fit import train_bundle
from training.retrain import GATE_FOLDS, drift_against, gate, retrain
from training.simulate import simulate


def _fit(rows):
    return train_bundle(rows, learner="s", seed=0, num_threads=1, progress=False)


def _inverted_fit(rows):
    """A deliberately worse challenger: it learns the opposite of what works."""
    rows = rows.copy()
    rows["ve_success"] = 1 - rows["ve_success"]
    return _fit(rows)


@pytest.fixture(scope="module")
def logs():
    first, _ = simulate(rows=1200, seed=11)
    later, _ = simulate(rows=2500, seed=12)
    return first, later


@pytest.fixture(scope="module")
def first_champion(tmp_path_factory, logs) -> Path:
    """A registry whose champion learned the first log: trained once (seeded, one thread:
    the same model every time), copied for each test."""
    root = tmp_path_factory.mktemp("first-champion") / "registry"
    Registry(root).add(_fit(logs[0]))
    return root


@pytest.fixture
def registry(tmp_path, first_champion):
    shutil.copytree(first_champion, tmp_path / "registry", ignore=shutil.ignore_patterns(".lock"))
    return Registry(tmp_path / "registry")


def test_a_worse_challenger_is_refused_and_the_decision_recorded(registry, logs):
    champion = registry.champion()
    result = retrain(logs[1], registry, fit=_inverted_fit, num_threads=1, n_boot=200)
    assert result.status == "refused"
    assert registry.champion() == champion
    imp = result.gate.improvement
    assert imp["ci_high"] < 0  # clearly worse, not just unproven
    event = registry.history()[-1]
    assert event["event"] == "gate" and event["decision"] == "refuse"
    assert event["challenger"] == result.challenger and event["champion"] == champion
    assert event["improvement"]["ci_low"] == pytest.approx(imp["ci_low"])
    assert event["estimator"] == "dr" and event["folds"] == GATE_FOLDS


def test_force_promotes_past_the_gate_and_says_so(registry, logs):
    result = retrain(logs[1], registry, fit=_inverted_fit, force=True, num_threads=1, n_boot=100)
    assert result.status == "promoted"
    assert registry.champion() == result.challenger
    gate_event, promote_event = registry.history()[-2:]
    assert gate_event["forced"] is True and gate_event["promote"] is False
    assert promote_event["event"] == "promote" and promote_event["forced"] is True


def test_the_challenger_keeps_the_champions_economics_and_spec(tmp_path, logs):
    """A champion trained with a spec's economics and an extra feature: its challenger is
    fitted with the same money values (the gate valued it with them; it was given the
    defaults) and the same spec, and is told about an extra feature the log lacks."""
    from training.spec import Spec

    first, later = (frame.copy() for frame in logs)
    first["queue_minutes"] = np.arange(len(first)) % 7
    spec = Spec.from_dict(
        {
            "features": {"queue_minutes": "number", "loyalty_tier": "category"},
            "economics": {"value_of_success": 5.0, "cost_per_second": 0.05},
        }
    )
    first["loyalty_tier"] = "gold"
    reg = Registry(tmp_path / "registry")
    reg.add(train_bundle(first, spec=spec, learner="s", seed=0, num_threads=1, progress=False))
    champion = reg.load(reg.champion())
    later["queue_minutes"] = np.arange(len(later)) % 5  # loyalty_tier: not in the export
    result = retrain(later, reg, force=True, num_threads=1, n_boot=50)
    assert result.status == "promoted"
    challenger = reg.load(result.challenger)
    assert challenger.economics.to_dict() == champion.economics.to_dict()
    assert challenger.economics.value_of_success == 5.0
    assert challenger.extra_features == ["queue_minutes"]
    assert challenger.spec["features"] == {"queue_minutes": "number"}
    assert any("loyalty_tier" in w and "lacks" in w for w in result.drift_warnings)


def test_the_gate_will_not_judge_on_guesses_and_leaves_out_the_holdout(registry, logs):
    """A log served without exploration (propensity 1 everywhere): where the challenger
    chooses otherwise, only the reward model speaks, so the gate refuses and says to
    explore. Holdout contacts (always `none`, whatever the model) are not compared."""
    log = logs[1].copy()
    log["propensity"] = 1.0
    bad_champion = _inverted_fit(logs[0])  # the challenger is better, truly
    result = gate(log, bad_champion, _fit, num_threads=1, n_boot=50)
    assert result.improvement["ci_low"] > 0
    assert result.diagnostics["unsupported_mass"] > 0.05
    assert not result.promote and "exploration" in result.reason
    holdout = log.copy()
    holdout["experiment_arm"] = ["holdout" if i % 4 == 0 else "treatment" for i in range(len(log))]
    compared = gate(holdout, registry.load(registry.champion()), _fit, num_threads=1, n_boot=50)
    assert compared.rows == len(log) - len(range(0, len(log), 4))


def test_too_few_rows_skip_training(registry, logs):
    before = registry.version_ids()
    result = retrain(logs[1].head(50), registry, min_rows=100)
    assert result.status == "skipped"
    assert registry.version_ids() == before
    assert registry.history()[-1]["decision"] == "skipped"


def test_gate_without_champion_promotes_the_first_model(logs):
    result = gate(logs[0], None, _fit)
    assert result.promote and "first model" in result.reason


def test_drift_is_measured_against_the_training_histograms(registry, logs):
    champion = registry.load_champion()
    assert "tenure_months" in champion.manifest["drift_reference"]
    same = drift_against(champion, logs[1])
    assert max(same.values()) < 0.1
    shifted = logs[1].copy()
    shifted["tenure_months"] = shifted["tenure_months"] * 8 + 24
    shifted["channel"] = "chat"
    psi = drift_against(champion, shifted)
    assert psi["tenure_months"] > 0.25 and psi["channel"] > 0.25
    result = retrain(shifted, registry, min_rows=10**6)  # skipped, but still warns
    assert any("tenure_months" in w for w in result.drift_warnings)


def test_cli_retrain_on_a_given_log(registry, logs, tmp_path):
    from training.cli import cli

    path = tmp_path / "log.parquet"
    logs[1].to_parquet(path)
    result = CliRunner().invoke(
        cli,
        [
            "retrain",
            "--data",
            str(path),
            "--registry",
            str(registry.root),
            "--threads",
            "1",
            "--bootstrap",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "gate on 2500 rows" in result.output
    assert ("promoted" in result.output) or ("refused" in result.output)
    assert np.isfinite(registry.history()[-2 if "promoted" in result.output else -1]["rows"])


def test_gate_refuses_when_the_logs_barely_cover_the_challenger(registry, logs):
    result = gate(logs[1], registry.load_champion(), _fit, n_boot=100, min_ess=10**9)
    assert result.promote is False
    assert "effective sample size" in result.reason or "does not lie above zero" in result.reason
    assert result.diagnostics["ess"] > 0


def test_retrain_on_a_named_reward_leaves_out_open_windows(registry, logs, tmp_path):
    from models.schema import parse_reward
    from training.retrain import describe

    later = logs[1].copy()
    later.loc[later.index[-200:], "retained_60d"] = np.nan  # windows still open
    result = retrain(
        later,
        registry,
        reward=parse_reward("retained_60d"),
        num_threads=1,
        n_boot=100,
        force=True,
    )
    assert result.reward == "retained_60d" and result.left_out == 200
    assert result.rows == len(later) - 200 and result.gate.rows == len(later) - 200
    event = registry.history()[-2]
    assert event["reward"] == "retained_60d" and event["reward_left_out"] == 200
    assert event["measures"] == "the suggestion (intent to treat)"
    manifest = registry.load(result.challenger).manifest
    assert manifest["reward"]["name"] == "retained_60d" and manifest["reward"]["left_out"] == 200
    text = describe(result)
    assert "reward retained_60d" in text and "200 rows left out" in text


def test_retrain_command_refuses_bad_reward_weights(tmp_path, logs):
    from training.cli import cli

    path = tmp_path / "log.csv"
    logs[1].to_csv(path, index=False)
    result = CliRunner().invoke(
        cli,
        [
            "retrain",
            "--data",
            str(path),
            "--registry",
            str(tmp_path / "reg"),
            "--reward",
            "weighted",
            "--reward-weights",
            "ve_success=1,retained_45d=1",
        ],
    )
    assert result.exit_code != 0
    assert "unknown part 'retained_45d'" in result.output
