"""`vea retrain`'s options and its gate rule: the options that shape the export
(--since, --keep-export) are refused with --data, which replaces the export (accepted,
they silently did nothing); one rule decides the gate and the shadow check's verdict;
--seed reaches every bootstrap of the comparison."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from models.activities import ACTIONS
from models.economics import Economics
from models.registry import Registry
from training.cli import cli
from training.fit import net_rewards
from training.loading import action_codes
from training.ope import Estimate, deterministic_probs, evaluate_policy
from training.retrain import (
    GATE_FOLDS,
    MIN_ESS,
    compare_greedy,
    cross_fitted_values,
    customer_folds,
    customers_of,
    gate_refusal,
)
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


def test_the_seed_reaches_the_policy_values_intervals():
    """`vea retrain --seed` drew the improvement's resamples from the seed but always
    seed 0's for the two policies' values: their intervals must come from the same seed."""
    frame = simulate(rows=600, seed=4)[0]
    economics = Economics()
    fold_of = customer_folds(frame, GATE_FOLDS, 7)
    codes = action_codes(frame)
    policies = {"first": codes, "second": np.zeros(len(frame), dtype=np.int64)}
    result = compare_greedy(
        frame, fold_of, GATE_FOLDS, policies, economics, seed=7, num_threads=1, n_boot=100
    )
    rewards = net_rewards(frame, codes, economics)
    q_hat = cross_fitted_values(frame, fold_of, GATE_FOLDS, economics, 7, 1)
    expected = evaluate_policy(
        rewards,
        codes,
        frame["propensity"].to_numpy(),
        deterministic_probs(codes, len(ACTIONS)),
        q_hat=q_hat,
        n_boot=100,
        seed=7,
        clusters=customers_of(frame),
    )["dr"]
    assert result.values["first"] == expected
