"""The named reward: parsing, the label it builds, `vea train --reward`, the manifest."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from models.boosting import probability_objective
from models.openness import OpennessModel
from models.ranker import ActivityRanker, K
from models.schema import LABEL, Reward, RewardError, parse_reward
from training.fit import apply_reward
from training.metrics import classification_metrics
from training.spec import Spec, SpecError


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("foo=1", "unknown part 'foo'"),
        ("accepted=x", "'accepted=x': the weight is not a number"),
        ("accepted", "'accepted': write part=weight"),
        ("ve_success=1,ve_success=2", "part 've_success' given twice"),
        ("accepted=-1", "'accepted=-1': the weight must be a number >= 0"),
        ("accepted=0", "at least one weight must be above 0"),
        ("ve_success=1e308,accepted=1e308", "'ve_success=1e308': at most 1e\\+06"),
        ("", "needs weights"),
    ],
)
def test_bad_weights_are_refused_naming_the_bad_part(weights, message):
    with pytest.raises(RewardError, match=message):
        parse_reward("weighted", weights)


def test_rewards_parse_and_round_trip():
    assert parse_reward(None) == Reward() and Reward().is_default
    with pytest.raises(RewardError, match="unknown reward 'retained_45d'"):
        parse_reward("retained_45d")
    with pytest.raises(RewardError, match="only for --reward weighted"):
        parse_reward("accepted", "accepted=1")
    weighted = parse_reward("weighted", "ve_success=1,accepted=0.5,retained_60d=2")
    assert weighted.label == "weighted(ve_success=1,accepted=0.5,retained_60d=2)"
    assert Reward.from_dict(weighted.to_dict()) == weighted
    assert Reward.from_dict({"accepted": 1, "upgraded": 1}).parts == ("accepted", "upgraded")


def _frame():
    return pd.DataFrame(
        {
            "ve_success": [1.0, 0.0, 1.0, 0.0, 1.0],
            "offered": [1.0, 0.0, 1.0, 1.0, 1.0],
            "accepted": [1.0, np.nan, 0.0, np.nan, 1.0],
            "retained_60d": [1.0, 1.0, np.nan, 0.0, 0.0],
        }
    )


def test_apply_reward_builds_the_label_and_leaves_out_unknown_rows():
    frame = _frame()
    same, left_out = apply_reward(frame, Reward())
    assert same is frame and left_out == 0  # the default changes nothing

    accepted, left_out = apply_reward(frame, parse_reward("accepted"))
    # Not offered counts as not accepted; offered with no answer is unknown.
    assert accepted[LABEL].tolist() == [1.0, 0.0, 0.0, 1.0] and left_out == 1

    retained, left_out = apply_reward(frame, parse_reward("retained_60d"))
    assert retained[LABEL].tolist() == [1.0, 1.0, 0.0, 0.0] and left_out == 1  # window open

    weighted, left_out = apply_reward(frame, parse_reward("weighted", "ve_success=1,accepted=1"))
    assert weighted[LABEL].tolist() == [1.0, 0.0, 0.5, 1.0] and left_out == 1
    again, more = apply_reward(weighted, parse_reward("weighted", "ve_success=1,accepted=1"))
    assert more == 0 and again[LABEL].tolist() == weighted[LABEL].tolist()  # applied once

    with pytest.raises(ValueError, match=r"needs the column\(s\) \['upgraded'\]"):
        apply_reward(frame, parse_reward("upgraded"))


def test_probability_objective_keeps_a_weighted_reward_as_it_is():
    assert probability_objective(np.array([0.0, 1.0, 1.0])) == "binary"
    assert probability_objective(np.array([0.0, 0.5, 1.0])) == "cross_entropy"


def _two_groups(n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One feature splits the customers in two; every label is 0.3 in one, 0.7 in the
    other (a weighted reward): the exact answer is 0.3 / 0.7."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n)
    x = np.column_stack([group.astype(float), rng.normal(size=n)])
    return x, group, np.where(group == 1, 0.7, 0.3)


def test_models_learn_a_weighted_reward_exactly():
    x, group, y = _two_groups()
    actions = np.arange(len(y)) % K  # every action logged often enough
    ranker = ActivityRanker(learner="s", seed=1, num_threads=1).fit(
        x, actions, y, np.full(len(y), 1.0 / K)
    )
    success = ranker.predict_proba(x)
    for g, expected in ((0, 0.3), (1, 0.7)):
        assert np.abs(success[group == g] - expected).max() < 0.02
    openness = OpennessModel(seed=1, num_threads=1).fit(x, y).predict_proba(x)
    for g, expected in ((0, 0.3), (1, 0.7)):
        assert abs(openness[group == g].mean() - expected) < 0.02


def test_metrics_of_a_weighted_reward_split_each_row_into_success_and_failure():
    y = np.array([0.0, 0.5, 1.0, 0.25, 0.75])
    p = np.array([0.1, 0.4, 0.8, 0.3, 0.6])
    soft = classification_metrics(y, p)
    split = classification_metrics(
        np.r_[np.ones(5), np.zeros(5)], np.r_[p, p], weights=np.r_[y, 1 - y]
    )
    for name in ("auc", "pr_auc", "log_loss", "base_rate"):
        assert soft[name] == pytest.approx(split[name]), name
    assert soft["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert soft["base_rate"] == pytest.approx(0.5) and soft["n"] == 5


def test_spec_reward_key_and_its_columns(tmp_path):
    spec = Spec.from_dict({"success": "y", "reward": {"ve_success": 1, "retained_30d": 1}})
    assert spec.reward.parts == ("ve_success", "retained_30d")
    assert Spec.from_dict(spec.to_dict()).reward == spec.reward
    raw = pd.DataFrame({"y": [1, 0], "retained_30d": [1, None], "extra": [3, 4]})
    out = spec.apply(raw)
    assert list(out.columns) == [LABEL, "retained_30d"]
    with pytest.raises(SpecError, match="no column 'retained_30d'"):
        spec.apply(raw.drop(columns=["retained_30d"]))
    with pytest.raises(SpecError, match="unknown part 'churn'"):
        Spec.from_dict({"reward": {"churn": 1}})
    assert "reward" not in Spec.from_dict({"success": "y"}).to_dict()


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    from training.simulate import simulate

    log, _truth = simulate(rows=3000, seed=3)
    # A retention window still open for the last tenth of the contacts.
    log.loc[log.index[-300:], "retained_60d"] = np.nan
    path = tmp_path_factory.mktemp("rewards") / "log.parquet"
    log.to_parquet(path)
    return path


def _train(tmp_path, log_path, *args):
    from training.cli import cli

    registry = tmp_path / "registry"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(log_path),
            "--registry",
            str(registry),
            "--learner",
            "s",
            "--threads",
            "1",
            "--quiet",
            "--no-compile",
            *args,
        ],
    )
    return result, registry


def test_train_with_a_retention_reward_records_it_and_counts_rows_left_out(tmp_path, log_path):
    from models.registry import Registry

    result, registry = _train(tmp_path, log_path, "--reward", "retained_60d")
    assert result.exit_code == 0, result.output
    assert "300 rows left out" in result.output
    reg = Registry(registry)
    bundle = reg.load(reg.champion())
    reward = bundle.manifest["reward"]
    assert reward["name"] == "retained_60d" and reward["left_out"] == 300
    assert reward["rows"] == 2700 and bundle.manifest["training_rows"] == 2700
    listed = CliRunner().invoke(
        __import__("training.cli", fromlist=["cli"]).cli,
        ["models", "list", "--json", "--registry", str(registry)],
    )
    assert json.loads(listed.output)[0]["metrics"]["reward"] == "retained_60d"


def test_train_with_weighted_reward_and_the_default(tmp_path, log_path):
    from models.registry import Registry

    result, registry = _train(
        tmp_path, log_path, "--reward", "weighted", "--reward-weights", "ve_success=1,accepted=1"
    )
    assert result.exit_code == 0, result.output
    reg = Registry(registry)
    manifest = reg.load(reg.champion()).manifest
    assert manifest["reward"]["weights"] == {"ve_success": 1.0, "accepted": 1.0}

    default, registry2 = _train(tmp_path / "d", log_path)
    assert default.exit_code == 0, default.output
    reg2 = Registry(registry2)
    manifest2 = reg2.load(reg2.champion()).manifest
    assert manifest2["reward"]["name"] == "ve_success" and manifest2["reward"]["left_out"] == 0
    assert manifest2["training_rows"] == 3000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reward", "weighted", "--reward-weights", "accepted=lots"], "'accepted=lots'"),
        (["--reward", "weighted"], "needs weights"),
        (["--reward-weights", "accepted=1"], "needs --reward weighted"),
        (["--reward", "retained_60d", "--engine", "dask"], "needs --engine local"),
    ],
)
def test_train_refuses_bad_reward_options(tmp_path, log_path, args, message):
    result, _ = _train(tmp_path, log_path, *args)
    assert result.exit_code != 0
    assert message in result.output


def test_evaluate_uses_the_bundle_reward_and_says_what_it_measures(tmp_path, log_path):
    from models.registry import Registry
    from training.evaluate import evaluate_bundle
    from training.loading import load_log

    result, registry = _train(tmp_path, log_path, "--reward", "retained_60d")
    assert result.exit_code == 0, result.output
    reg = Registry(registry)
    bundle = reg.load(reg.champion())
    out = evaluate_bundle(bundle, load_log(log_path), n_boot=50)
    assert out["reward"]["reward"] == "retained_60d"
    assert out["reward"]["rows_left_out"] == 300 and out["data"]["rows"] == 2700
    assert out["reward"]["measures"] == "the suggestion (intent to treat)"
    assert out["policy_value"]["model"]["dr"]["value"] is not None


def test_outcomes_without_a_survey_answer_are_left_out_of_the_default_reward(tmp_path):
    """``vea export`` writes outcomes without VES answers with ve_success empty: training
    on ve_success leaves them out and says how many; it does not refuse the log."""
    from models.registry import Registry
    from training.simulate import simulate

    log, _truth = simulate(rows=3000, seed=4)
    log.loc[log.index[::10], LABEL] = np.nan  # no survey for every tenth contact
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    result, registry = _train(tmp_path, path)
    assert result.exit_code == 0, result.output
    assert "300 rows left out" in result.output
    reg = Registry(registry)
    manifest = reg.load(reg.champion()).manifest
    assert manifest["reward"]["left_out"] == 300 and manifest["training_rows"] == 2700


@pytest.mark.parametrize(
    ("part", "value", "message"),
    [
        ("retained_30d", 2, "row 2, field retained_30d: must be 0 or 1 (got 2)"),
        ("retained_90d", 0.5, "row 2, field retained_90d: must be 0 or 1 (got 0.5)"),
        ("upgraded", "yes", "row 2, field upgraded: not a number (got 'yes')"),
    ],
)
def test_every_reward_part_is_validated_naming_row_and_field(
    tmp_path, log_path, part, value, message
):
    """Each part is a 0/1 column like retained_60d: a 2 reached LightGBM (a traceback), a
    'yes' failed without a row or field."""
    from training.loading import DataError, validate_log

    frame = pd.DataFrame({part: pd.Series([1, value, None, 0], dtype=object)})
    with pytest.raises(DataError, match=re.escape(message)):
        validate_log(frame, require_outcome=False)
    log = pd.read_parquet(log_path).head(200)
    log[part] = pd.Series([1.0, 0.0] * 100, dtype=object, index=log.index)
    log.loc[log.index[1], part] = value
    data = tmp_path / "log.csv"
    log.to_csv(data, index=False)
    for args in (["--reward", part], ["--reward", "weighted", "--reward-weights", f"{part}=1"]):
        result, registry = _train(tmp_path, data, *args)
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert message in result.output
        assert not (registry / "versions").exists()
