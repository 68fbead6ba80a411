"""`vea evaluate` on a vea export leaves the holdout contacts out of the policy values, as
the gate and the shadow check do: a holdout contact gets `none` whatever the model, so
there DR valued the model's choice by the model's own predictions (its direct-method
term alone), and the model's value drifted toward what it believed of itself."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from core_fixtures import simulated, trained_bundle

from models.exploration import HOLDOUT, holdout_arm
from models.registry import Registry
from training.cli import cli
from training.evaluate import evaluate_bundle


@pytest.fixture(scope="module")
def bundle():
    return trained_bundle()


@pytest.fixture(autouse=True)
def compile_cache(tmp_path_factory, monkeypatch):
    """Compiled forests go to a test directory, never into the working tree."""
    monkeypatch.setenv("VEA_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "compiled"))


def export_like(share: float = 0.3) -> pd.DataFrame:
    log = simulated(3000, 5)[0].head(1500).reset_index(drop=True)
    held = np.array([holdout_arm(c, share, "test") == HOLDOUT for c in log["customer_id"]])
    log["experiment_arm"] = np.where(held, "holdout", "treatment")
    log.loc[held, "activity"] = "none"
    log.loc[held, "propensity"] = 1.0
    return log


def test_the_policies_are_valued_on_the_treated_contacts_only(bundle):
    log = export_like()
    treated = log.loc[log["experiment_arm"] == "treatment"].reset_index(drop=True)
    held = len(log) - len(treated)
    result = evaluate_bundle(bundle, log, n_boot=50)
    alone = evaluate_bundle(bundle, treated, n_boot=50)
    assert result["data"]["rows"] == len(treated)  # was every row, holdout included
    assert result["data"]["holdout_rows_left_out"] == held
    assert alone["data"]["holdout_rows_left_out"] == 0
    for name in ("model", "always:none", "logging"):
        assert result["policy_value"][name]["dr"] == alone["policy_value"][name]["dr"]


def test_simulator_truth_follows_the_rows_left_out(bundle):
    log, truth = simulated(3000, 5)
    log, truth = log.head(1500).copy(), truth.head(1500)
    held = np.array([holdout_arm(c, 0.3, "test") == HOLDOUT for c in log["customer_id"]])
    log["experiment_arm"] = np.where(held, "holdout", "treatment")
    result = evaluate_bundle(bundle, log, truth=truth, n_boot=50)
    alone = evaluate_bundle(
        bundle, log.loc[~held].reset_index(drop=True), truth=truth.loc[~held], n_boot=50
    )
    assert result["policy_value"]["model"]["true"] == alone["policy_value"]["model"]["true"]


def test_a_log_of_holdout_contacts_only_values_no_policy(bundle):
    log = export_like().assign(experiment_arm="holdout", activity="none", propensity=1.0)
    result = evaluate_bundle(bundle, log, n_boot=50)
    assert "policy_value" not in result
    assert any("every row is a holdout contact" in w for w in result["warnings"])


def test_the_console_says_how_many_holdout_contacts_were_left_out(bundle, tmp_path):
    root = tmp_path / "registry"
    Registry(root).add(bundle)
    log = export_like()
    held = int((log["experiment_arm"] == "holdout").sum())
    path = tmp_path / "export.csv"
    log.to_csv(path, index=False)
    args = ["evaluate", "--data", path, "--json", tmp_path / "e.json", "--bootstrap", "50"]
    result = CliRunner().invoke(
        cli, [str(a) for a in args], env={"VEA_REGISTRY": str(root)}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert f"on {len(log) - held} rows ({held} holdout contacts left out" in result.output
    assert json.loads((tmp_path / "e.json").read_text())["data"]["holdout_rows_left_out"] == held
