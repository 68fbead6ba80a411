"""`vea evaluate` on logs at the edges the audit found: outcomes of one class, a log
without a value attempt, estimates beyond what a contact can be worth, propensities so
small their weights overflow. Each is evaluated or refused with a message, never a
traceback, numpy's warnings or a bare "no rows"."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from core_fixtures import simulated, trained_bundle

from models.registry import Registry
from training.cli import cli
from training.evaluate import evaluate_bundle


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    Registry(root).add(trained_bundle())
    return root


@pytest.fixture(autouse=True)
def compile_cache(tmp_path_factory, monkeypatch):
    """Compiled forests go to a test directory, never into the working tree."""
    monkeypatch.setenv("VEA_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "compiled"))


def log(rows: int = 600) -> pd.DataFrame:
    return simulated(3000, 5)[0].head(rows).reset_index(drop=True)


def evaluate(registry, path, tmp_path, *extra):
    args = ["evaluate", "--data", path, "--json", tmp_path / "e.json"]
    args += ["--report", tmp_path / "e.html", "--bootstrap", "50", *extra]
    return CliRunner().invoke(
        cli, [str(a) for a in args], env={"VEA_REGISTRY": str(registry)}, catch_exceptions=False
    )


# ------------------------------------------------------------ outcomes of one class
@pytest.mark.parametrize(
    "make, says",
    [
        (lambda: log().assign(ve_success=0.0), "value attempts here failed"),
        (
            lambda: log().loc[log()["activity"] != "none"].head(1),
            "the one value attempt here failed",
        ),
    ],
    ids=["all-failures", "one-row"],
)
def test_outcomes_of_one_class_give_the_summary_with_auc_na(registry, tmp_path, make, says):
    path = tmp_path / "log.csv"
    make().to_csv(path, index=False)
    result = evaluate(registry, path, tmp_path)
    assert result.exit_code == 0, result.output
    # The summary is printed, AUC as n/a with the reason (it crashed with a TypeError).
    assert "openness: AUC n/a" in result.output
    assert "ranking needs successes and failures" in result.output
    openness = json.loads((tmp_path / "e.json").read_text())["openness"]
    assert openness["auc"] is None and says in openness["note"]
    assert "ranking needs successes and failures" in (tmp_path / "e.html").read_text()


# ------------------------------------------------------------ no value attempt
def holdout_only() -> pd.DataFrame:
    return log().assign(activity="none", propensity=1.0)


def test_a_log_without_value_attempts_values_the_policies(registry, tmp_path):
    path = tmp_path / "holdout.csv"
    holdout_only().to_csv(path, index=False)
    result = evaluate(registry, path, tmp_path)
    # It said "Error: no rows" of a 600-row file.
    assert result.exit_code == 0, result.output
    assert "openness: n/a: the log has no value attempt" in result.output
    evaluation = json.loads((tmp_path / "e.json").read_text())
    assert evaluation["openness"]["n"] == 0
    assert evaluation["policy_value"]["logging"]["dr"]["n"] == 600
    assert "model" in evaluation["policy_value"]


def test_a_log_without_value_attempts_gives_no_numpy_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "Mean of empty slice" before
        result = evaluate_bundle(trained_bundle(), holdout_only(), n_boot=20)
    assert result["openness"]["scope"].startswith("value attempts")
    assert np.isfinite(result["policy_value"]["model"]["dr"]["value"])
