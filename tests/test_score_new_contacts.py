"""`vea score` on contacts not yet decided: a log in the layout of the model's spec but
without the logged decision (the spec's activity, propensity and success columns), as a
campaign list of customers is. Scoring needs the features only."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from core_fixtures import HILLSTROM, ROOT

from training.cli import cli

HILLSTROM_SPEC = ROOT / "examples" / "hillstrom.yaml"
DECISION_COLUMNS = ["segment", "visit", "conversion", "spend"]


def vea(*args, registry):
    return CliRunner().invoke(
        cli, [str(a) for a in args], env={"VEA_REGISTRY": str(registry), "VEA_COMPILE_CACHE": ""}
    )


@pytest.fixture(scope="module")
def hillstrom_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("score_new")
    pd.read_csv(HILLSTROM, nrows=3000).to_csv(root / "train.csv", index=False)
    result = vea(
        "train",
        "--data",
        root / "train.csv",
        "--spec",
        HILLSTROM_SPEC,
        "--learner",
        "s",
        "--threads",
        "1",
        "--quiet",
        "--no-compile",
        registry=root / "reg",
    )
    assert result.exit_code == 0, result.output
    return root


def test_score_reads_contacts_without_a_logged_decision(hillstrom_model):
    root = hillstrom_model
    contacts = pd.read_csv(HILLSTROM, skiprows=range(1, 3001), nrows=50)
    contacts.drop(columns=DECISION_COLUMNS).to_csv(root / "contacts.csv", index=False)
    contacts.to_csv(root / "logged.csv", index=False)

    new = vea(
        "score", "--data", root / "contacts.csv", "--out", root / "new.csv", registry=root / "reg"
    )
    assert new.exit_code == 0, new.output
    logged = vea(
        "score",
        "--data",
        root / "logged.csv",
        "--out",
        root / "logged_out.csv",
        registry=root / "reg",
    )
    assert logged.exit_code == 0, logged.output
    # The logged decision plays no part in a score: the same contacts, the same answers.
    pd.testing.assert_frame_equal(
        pd.read_csv(root / "new.csv"), pd.read_csv(root / "logged_out.csv")
    )
    assert len(pd.read_csv(root / "new.csv")) == 50


def test_score_still_refuses_a_log_without_the_models_features(hillstrom_model):
    root = hillstrom_model
    contacts = pd.read_csv(HILLSTROM, nrows=20).drop(columns=DECISION_COLUMNS + ["recency"])
    contacts.to_csv(root / "no_recency.csv", index=False)
    result = vea(
        "score", "--data", root / "no_recency.csv", "--out", root / "x.csv", registry=root / "reg"
    )
    assert result.exit_code == 1
    assert "columns named by the spec are not in the data: ['recency']" in result.output
    assert not (root / "x.csv").exists()


def test_evaluate_still_needs_the_logged_decision(hillstrom_model):
    root = hillstrom_model
    pd.read_csv(HILLSTROM, nrows=200).drop(columns=["segment"]).to_csv(
        root / "noarm.csv", index=False
    )
    result = vea("evaluate", "--data", root / "noarm.csv", registry=root / "reg")
    assert result.exit_code == 1
    assert "columns named by the spec are not in the data: ['segment']" in result.output
