"""The `vea` CLI end to end: the newcomer's workflow and every bad-input path."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner
from core_fixtures import HILLSTROM, ROOT

from training.cli import cli


@pytest.fixture(autouse=True)
def compile_cache(tmp_path_factory, monkeypatch):
    """Compiled forests go to a test directory, never into the working tree."""
    monkeypatch.setenv("VEA_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "compiled"))


def vea(*args: str, registry=None):
    argv = [str(a) for a in args]
    env = {"VEA_REGISTRY": str(registry)} if registry else {}
    return CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Simulated train/test logs and a registry with one trained model."""
    root = tmp_path_factory.mktemp("cli")
    assert (
        vea("simulate", "--rows", 6000, "--seed", 5, "--out", root / "train.parquet").exit_code == 0
    )
    assert vea("simulate", "--rows", 3000, "--seed", 6, "--out", root / "test.csv").exit_code == 0
    result = vea(
        "train",
        "--data",
        root / "train.parquet",
        "--learner",
        "s",
        "--quiet",
        registry=root / "reg",
    )
    assert result.exit_code == 0, result.output
    return root, result.output.split()[0]


def test_simulate_writes_log_and_truth(workspace):
    root, _ = workspace
    log = pd.read_parquet(root / "train.parquet")
    truth = pd.read_parquet(root / "train.truth.parquet")
    assert len(log) == len(truth) == 6000
    assert (root / "test.truth.csv").exists()


def test_train_makes_first_model_champion(workspace):
    root, version = workspace
    listing = vea("models", "list", registry=root / "reg").output
    assert f"* {version}" in listing


def test_evaluate_writes_json_and_html(workspace):
    root, version = workspace
    result = vea(
        "evaluate",
        "--model",
        "champion",
        "--data",
        root / "test.csv",
        "--json",
        root / "eval.json",
        "--report",
        root / "report.html",
        "--bootstrap",
        100,
        registry=root / "reg",
    )
    assert result.exit_code == 0, result.output
    evaluation = json.loads((root / "eval.json").read_text())
    assert evaluation["model"]["version"] == version
    for name in ("model", "logging", "best_single", "random", "oracle"):
        assert name in evaluation["policy_value"]
    assert 0.5 < evaluation["oracle_fraction"] <= 1.0
    html = (root / "report.html").read_text()
    assert "data:image/png;base64," in html and "https://" not in html
    assert "policy value / oracle value" in result.output


def test_score_one_row_per_input_row(workspace):
    root, _ = workspace
    out = root / "scored.csv"
    result = vea("score", "--data", root / "test.csv", "--out", out, registry=root / "reg")
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    test = pd.read_csv(root / "test.csv")
    assert len(scored) == len(test)
    assert scored["interaction_id"].tolist() == test["interaction_id"].tolist()
    expected = {"openness", "suggested_activity"} | {
        f"p_{a}"
        for a in (
            "validate_purchase",
            "anticipate_needs",
            "achieve_goals",
            "educate_usage",
            "advise_new_uses",
        )
    }
    assert expected <= set(scored.columns)


def test_promote_and_rollback(workspace):
    root, v1 = workspace
    reg = root / "reg2"
    # The workspace's registry: its one model (the champion) is what `vea train` of this
    # log with learner s makes, so it is copied rather than trained again.
    shutil.copytree(root / "reg", reg, ignore=shutil.ignore_patterns(".lock"))
    v2 = vea(
        "train",
        "--data",
        root / "train.parquet",
        "--learner",
        "s",
        "--seed",
        1,
        "--quiet",
        registry=reg,
    ).output.split()[0]
    assert vea("models", "promote", v2, registry=reg).exit_code == 0
    assert f"* {v2}" in vea("models", "list", registry=reg).output
    result = vea("models", "rollback", registry=reg)
    assert result.exit_code == 0 and v1 in result.output
    bad = vea("models", "rollback", registry=reg)
    assert bad.exit_code != 0 and "no earlier champion" in bad.output


def _bad_input(root, name: str, text: str):
    path = root / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.csv", "", "the file is empty"),
        ("malformed.csv", 'channel,ve_success\nvoice,1\n"chat,0\nx,y,z\n', "malformed CSV"),
        (
            "types.csv",
            "channel,tenure_months,ve_success\nvoice,abc,1\nchat,2,0\n",
            "row 1, field tenure_months: not a number",
        ),
        (
            "activity.csv",
            "channel,activity,propensity,ve_success\nvoice,none,0.5,1\nchat,upsell,0.5,0\n",
            "row 2, field activity: unknown activity",
        ),
        ("negative.csv", "tenure_months,ve_success\n-2,1\n", "field tenure_months: must be >= 0"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(workspace, name, text, message):
    root, version = workspace
    data = _bad_input(root, name, text)
    before = sorted(p.name for p in (root / "reg" / "versions").iterdir())
    result = vea("train", "--data", data, "--quiet", registry=root / "reg")
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (root / "reg" / "versions").iterdir()) == before
    out = root / f"{name}.scored.csv"
    result = vea("score", "--data", data, "--out", out, registry=root / "reg")
    assert result.exit_code != 0 and not out.exists()


def test_tampered_bundle_refused_by_every_command(workspace, tmp_path):
    root, version = workspace
    reg = tmp_path / "reg"
    # A copy of the workspace's registry (what `vea train --learner s` made), to tamper with.
    shutil.copytree(root / "reg", reg, ignore=shutil.ignore_patterns(".lock"))
    model = reg / "versions" / version / "openness.txt"
    model.write_text(model.read_text() + "\n")
    for args in (
        ("score", "--data", root / "test.csv", "--out", tmp_path / "s.csv"),
        ("evaluate", "--data", root / "test.csv", "--json", tmp_path / "e.json"),
    ):
        result = vea(*args, registry=reg)
        assert result.exit_code != 0
        assert "checksum mismatch for openness.txt" in result.output
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "e.json").exists()


@pytest.mark.parametrize(
    ("truth", "message"),
    [
        ("train.truth.parquet", "3000 of the data's 3000 interaction ids are not in the truth"),
        ("train.parquet", "not a truth file: it has no p_<activity> columns"),
        ("lacking.truth.csv", "truth file lacks p_none"),
        # The same seed, another size: other contacts (their ids matched before).
        ("larger.truth.csv", "3000 of the data's 3000 interaction ids are not in the truth"),
    ],
)
def test_evaluate_refuses_a_truth_file_of_other_data(workspace, tmp_path, truth, message):
    root, _ = workspace
    if truth == "larger.truth.csv":
        made = vea("simulate", "--rows", 3500, "--seed", 6, "--out", root / "larger.csv")
        assert made.exit_code == 0, made.output
    pd.read_csv(root / "test.truth.csv").drop(columns=["p_none"]).to_csv(
        root / "lacking.truth.csv", index=False
    )
    out = tmp_path / "e.json"
    result = vea(
        "evaluate",
        "--data",
        root / "test.csv",
        "--truth",
        root / truth,
        "--json",
        out,
        "--bootstrap",
        50,
        registry=root / "reg",
    )
    assert result.exit_code != 0
    assert message in result.output and str(root / truth) in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_unknown_model_version(workspace):
    root, _ = workspace
    result = vea(
        "score",
        "--model",
        "v999",
        "--data",
        root / "test.csv",
        "--out",
        root / "x.csv",
        registry=root / "reg",
    )
    assert result.exit_code != 0 and "unknown model version 'v999'" in result.output


def test_hillstrom_trains_and_evaluates(tmp_path):
    """The real public data set through a spec: the e-mail arms beat no e-mail."""
    reg = tmp_path / "reg"
    result = vea(
        "train",
        "--data",
        HILLSTROM,
        "--spec",
        ROOT / "examples" / "hillstrom.yaml",
        "--quiet",
        registry=reg,
    )
    assert result.exit_code == 0, result.output
    result = vea(
        "evaluate",
        "--data",
        HILLSTROM,
        "--json",
        tmp_path / "h.json",
        "--bootstrap",
        100,
        registry=reg,
    )
    assert result.exit_code == 0, result.output
    ev = json.loads((tmp_path / "h.json").read_text())
    values = ev["policy_value"]
    # Visits: ~10.6% without e-mail, ~18% with the men's e-mail (the published result).
    assert values["always:none"]["dr"]["value"] == pytest.approx(0.106, abs=0.01)
    assert values["model"]["dr"]["ci_low"] > values["always:none"]["dr"]["ci_high"]
    assert values["model"]["dr"]["value"] >= values["random"]["dr"]["value"]
    assert ev["openness"]["auc"] > 0.6
    # The reward is the spec's visit, not a VES answer.
    assert ev["reward"]["reward_description"].startswith("visit (the spec's success column")
    scored = tmp_path / "h.csv"
    assert vea("score", "--data", HILLSTROM, "--out", scored, registry=reg).exit_code == 0
    frame = pd.read_csv(scored)
    assert len(frame) == 64000
    assert frame["p_validate_purchase"].isna().all(), "never-tried activities are not guessed"
    assert set(frame["suggested_activity"]) <= {"advise_new_uses", "anticipate_needs", "none"}


def test_a_spec_mapped_success_is_described_in_the_users_words(tmp_path):
    """Hillstrom's success is a site visit: the bundle and the evaluation described it as
    'value-enhancement success (VES top-2-box ...)', the canonical column it fills."""
    data = tmp_path / "h.csv"
    pd.read_csv(HILLSTROM).head(3000).to_csv(data, index=False)
    spec = tmp_path / "spec.yaml"
    example = (ROOT / "examples" / "hillstrom.yaml").read_text()
    spec.write_text(example.replace("success: visit", "success: {column: visit, positive: 1}"))
    reg = tmp_path / "reg"
    result = vea(
        "train", "--data", data, "--spec", spec, "--learner", "s", "--quiet", "--no-compile",
        registry=reg,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    from models.registry import Registry

    words = "visit = 1 (the spec's success column, learned as ve_success)"
    bundle = Registry(reg).load_champion()
    assert bundle.manifest["reward"]["description"] == words
    assert bundle.manifest["reward"]["name"] == "ve_success"
    out = tmp_path / "e.json"
    args = ["evaluate", "--data", data, "--json", out, "--bootstrap", 50]
    assert vea(*args, registry=reg).exit_code == 0
    assert json.loads(out.read_text())["reward"]["reward_description"] == words


def test_openness_only_model_without_activity(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("columns: {tenure_months: recency}\nsuccess: conversion\nfeatures: [history]\n")
    reg = tmp_path / "reg"
    result = vea("train", "--data", HILLSTROM, "--spec", spec, "--quiet", registry=reg)
    assert result.exit_code == 0, result.output
    out = tmp_path / "s.parquet"
    assert vea("score", "--data", HILLSTROM, "--out", out, registry=reg).exit_code == 0
    frame = pd.read_parquet(out)
    assert frame["openness"].between(0, 1).all() and frame["suggested_activity"].isna().all()


def test_every_command_and_option_says_what_it_does():
    import click

    missing = []

    def walk(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
            return
        if not (command.help or "").strip():
            missing.append(path)
        missing.extend(
            f"{path} {param.opts[0]}"
            for param in command.params
            if isinstance(param, click.Option) and not param.hidden and not param.help
        )

    walk(cli, "vea")
    assert missing == []
