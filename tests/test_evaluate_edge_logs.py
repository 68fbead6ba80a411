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
from training import report_html
from training.cli import cli
from training.evaluate import evaluate_bundle
from training.report_html import derived_warnings
from training.retrain import MIN_ESS


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


# ------------------------------------------------------------ impossible values, few rows
def entry(value, low, high, *, ess=500.0, rows=4000.0, value_range=(-3.0, 20.0)):
    estimate = {"value": value, "ci_low": low, "ci_high": high, "n": int(rows)}
    return {
        "dr": estimate,
        "ips": estimate,
        "snips": {"value": 5.0, "ci_low": 4.0, "ci_high": 6.0, "n": int(rows)},
        "diagnostics": {"n": rows, "ess": ess, "ess_fraction": ess / rows},
        "value_range": list(value_range),
    }


def test_an_estimate_beyond_what_a_contact_can_be_worth_is_warned_of():
    # The audit's 60-row subset: model DR 31.05 and IPS 41.25 where a contact is worth
    # at most value_of_success (20), and no warning at all.
    found = derived_warnings({"policy_value": {"model": entry(31.05, 18.0, 44.0)}})
    (line,) = [w for w in found if "can be worth" in w]
    assert line.startswith("Policy model: DR 31.05, IPS 31.05 lie outside what a contact")
    assert "(-3.00 to 20.00, by the economics)" in line
    # An interval reaching past a bound is said too, a value and interval inside are not.
    found = derived_warnings({"policy_value": {"p": entry(9.0, -4.0, 12.0)}})
    assert any("DR's 95% interval [-4.00, 12.00]" in w for w in found)
    assert derived_warnings({"policy_value": {"p": entry(9.0, 7.0, 12.0)}}) == []


def test_an_estimate_on_few_effective_rows_is_warned_of():
    # 60 rows, a fifth of them effective: 12 rows' worth, above the old 1% share.
    few = {"policy_value": {"model": entry(9.0, 7.0, 12.0, ess=12.0, rows=60.0)}}
    (line,) = derived_warnings(few)
    assert "effective sample size below 100" in line and "model 12.0 of 60 rows" in line
    assert report_html._LOW_ESS == MIN_ESS  # the retrain gate's floor


def test_each_policy_carries_the_range_of_a_contacts_value():
    economics = trained_bundle().economics
    result = evaluate_bundle(trained_bundle(), log(200), n_boot=50)
    costs = economics.action_costs()
    values = result["policy_value"]
    assert values["model"]["value_range"][1] == pytest.approx(economics.value_of_success)
    assert values["always:none"]["value_range"] == [0.0, economics.value_of_success]
    assert values["random"]["value_range"][0] == pytest.approx(-max(costs))


def test_a_normal_evaluation_is_warning_free():
    # A simulated log of 4,000 rows the model never saw: nothing to warn of.
    result = evaluate_bundle(trained_bundle(), simulated(4000, 11)[0], n_boot=200)
    assert result["warnings"] == []


# ------------------------------------------------------------ weights that overflow
def test_a_propensity_whose_weight_overflows_is_refused_naming_the_row(registry, tmp_path):
    frame = log().astype({"propensity": object})
    frame.loc[7, "propensity"] = "1e-300"  # valid in (0, 1], a weight of 1e300
    frame.to_csv(tmp_path / "log.csv", index=False)
    result = evaluate(registry, tmp_path / "log.csv", tmp_path)
    # It printed overflow warnings and "Out of range float values are not JSON compliant".
    assert result.exit_code == 1
    assert "row 8, field propensity: too small to value a policy with" in result.output
    assert "(got 1e-300)" in result.output and "overflows" in result.output
    assert not (tmp_path / "e.json").exists()


def test_a_small_propensity_the_estimators_can_take_gives_finite_output():
    frame = log().assign(propensity=lambda f: f["propensity"].where(f.index != 7, 1e-40))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = evaluate_bundle(trained_bundle(), frame, n_boot=50)
    json.dumps(result, allow_nan=False, default=str)  # writable
