"""Distributed training (``vea train --engine dask``) on a 2-worker LocalCluster.

A dask-trained bundle must be as good as a local one on the same data (openness AUC on
held-out simulated contacts within 0.005, ranker predictions strongly correlated), load
and score through the normal paths, and bad data on one partition must fail with the
row named in the whole data set and nothing registered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from models.activities import ACTIONS, VALUE_ACTIVITIES
from models.decision import Decider
from models.registry import Registry
from training.cli import cli
from training.distributed import (
    LogSummary,
    _DaskTraining,
    _renumber,
    dask_client,
    data_fingerprint,
    read_parquet_log,
    train_bundle_dask,
)
from training.fit import openness_weights, train_bundle
from training.loading import DataError, action_codes, attempted, validate_log
from training.metrics import classification_metrics
from training.score import score_arrays, score_frame
from training.simulate import simulate

TRAIN_ROWS = 40_000
TEST_ROWS = 50_000
PARTITIONS = 4


def write_partitions(log: pd.DataFrame, directory: Path, parts: int = PARTITIONS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(len(log)), parts)):
        log.iloc[rows].to_parquet(directory / f"part-{i:03d}.parquet", index=False)
    return directory


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("dask-data")
    log, _truth = simulate(rows=TRAIN_ROWS, seed=1)
    test, _truth = simulate(rows=TEST_ROWS, seed=2)
    return {
        "log": log,
        "dir": write_partitions(log, root / "train"),
        "test": validate_log(test),
        "root": root,
    }


@pytest.fixture(scope="module")
def bundles(client, data) -> dict:
    local = train_bundle(
        validate_log(data["log"]), learner="s", seed=0, num_threads=2, progress=False
    )
    dask = train_bundle_dask(data["dir"], learner="s", seed=0, client=client, progress=False)
    return {"local": local, "dask": dask}


def openness_auc(bundle, frame: pd.DataFrame) -> float:
    """As `vea evaluate`: on value attempts, weighted to a uniform mix of activities."""
    openness, _success = score_arrays(bundle, frame)
    rows = attempted(frame)
    actions = action_codes(frame)
    weights = openness_weights(actions[rows], frame["propensity"].to_numpy()[rows], 5)
    y = frame["ve_success"].to_numpy(dtype=float)[rows]
    return classification_metrics(y, openness[rows], weights=weights)["auc"]


def test_openness_auc_matches_local_training(bundles, data, record_property):
    local = openness_auc(bundles["local"], data["test"])
    dask = openness_auc(bundles["dask"], data["test"])
    record_property("openness_auc_local", round(local, 4))
    record_property("openness_auc_dask", round(dask, 4))
    print(f"openness AUC on {TEST_ROWS} held-out rows: local {local:.4f}, dask {dask:.4f}")
    assert dask > 0.75
    assert abs(dask - local) <= 0.005


def test_ranker_predictions_correlate_with_local_training(bundles, data):
    _o, local = score_arrays(bundles["local"], data["test"])
    _o, dask = score_arrays(bundles["dask"], data["test"])
    value = [ACTIONS.index(a) for a in VALUE_ACTIVITIES]
    corr = np.corrcoef(local[:, value].ravel(), dask[:, value].ravel())[0, 1]
    print(f"ranker: correlation of success probabilities, local vs dask: {corr:.4f}")
    assert corr > 0.97
    assert np.abs(local[:, value] - dask[:, value]).mean() < 0.02


def test_manifest_says_how_it_was_trained(bundles):
    manifest = bundles["dask"].manifest
    assert manifest["training_rows"] == TRAIN_ROWS
    assert manifest["engine"]["name"] == "dask"
    assert manifest["engine"]["partitions"] == PARTITIONS
    assert manifest["engine"]["boosting_rounds"]["openness"]["rounds"] > 10
    assert bundles["dask"].encoder.to_dict() == bundles["local"].encoder.to_dict()


def test_cli_trains_on_the_cluster_and_the_bundle_serves(client, data, tmp_path):
    """`vea train --engine dask --scheduler ADDRESS` registers a normal bundle: it loads,
    scores in batch and decides online exactly like a locally trained one. (On the log's
    first fifth, in four parts: the comparisons with local training above use all of it.)"""
    parts = write_partitions(data["log"].head(TRAIN_ROWS // 5), tmp_path / "parts")
    reg = tmp_path / "reg"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data", str(parts),
            "--engine", "dask",
            "--scheduler", client.scheduler.address,
            "--learner", "s",
            "--quiet",
            "--registry", str(reg),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    version = result.stdout.strip().split()[0]
    assert result.stdout.strip() == f"{version} (champion)"
    bundle = Registry(reg).load(version)
    assert bundle.ranker is not None and bundle.ranker.learner == "s"
    sample = data["test"].head(200)
    scored = score_frame(bundle, sample)
    assert scored["openness"].between(0, 1).all()
    assert scored["suggested_activity"].isin(ACTIONS).all()
    decider = Decider(bundle)
    for i in (0, 57, 199):
        out = decider.decide(sample.iloc[i].to_dict(), language="en")
        assert out["openness"]["score"] == pytest.approx(scored["openness"].iloc[i], abs=1e-6)
        assert out["suggested_activity"] == scored["suggested_activity"].iloc[i]
        assert all(a["reasons"] for a in out["activities"])


def test_bad_partition_fails_naming_the_row_and_writes_nothing(client, data, tmp_path):
    log = data["log"].head(4000).copy()
    # Third partition (rows 2001-3000 of the data set): its 5th and 8th rows are bad.
    log.iloc[2004, log.columns.get_loc("propensity")] = 0.0
    log.iloc[2007, log.columns.get_loc("activity")] = "sing_a_song"
    bad = write_partitions(log, tmp_path / "bad")
    reg = tmp_path / "reg"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data", str(bad),
            "--engine", "dask",
            "--scheduler", client.scheduler.address,
            "--quiet",
            "--registry", str(reg),
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "row 2005, field propensity: must be > 0" in result.output
    assert "row 2008, field activity: unknown activity" in result.output
    assert "Traceback" not in result.output
    assert not reg.exists() or not any(reg.rglob("manifest.json"))
    with pytest.raises(DataError, match="row 2005"):
        train_bundle_dask(bad, client=client, progress=False)


@pytest.mark.parametrize("learner", ["t", "auto"])
def test_other_learners_train_on_the_cluster(client, data, tmp_path, learner):
    """`t` fits one model per action on the cluster; `auto` chooses among the learners
    the cluster trains, on the client sample, and records the selection."""
    small = write_partitions(data["log"].head(8000), tmp_path / "small", parts=2)
    bundle = train_bundle_dask(small, learner=learner, seed=0, client=client, progress=False)
    assert bundle.ranker is not None
    probs = bundle.ranker.predict_proba(bundle.encoder.transform(data["test"].head(100)))
    assert np.isfinite(probs[:, 1:]).all()
    if learner == "t":
        assert bundle.ranker.learner == "t"
        assert sum(b is not None for b in bundle.ranker.boosters_) >= 5
    else:
        selection = bundle.manifest["metrics"]["learner_selection"]
        assert selection["on"] == "client sample"
        assert selection["chosen"] == bundle.ranker.learner in ("s", "s_ipw", "t")


def test_local_only_learner_falls_back_to_s_with_a_note(client):
    notes: list[str] = []
    run = _DaskTraining(client, "unused", None, None, "dr", 0, 1000, 1000, 1, False, notes.append)
    assert run.choose_learner(pd.DataFrame(), LogSummary(), {}) == "s"
    assert notes and "local-only" in notes[0] and "'dr'" in notes[0]


def test_partition_rows_are_renumbered_in_the_whole_data_set():
    assert _renumber("row 5, field propensity: must be > 0", 2000).startswith("row 2005,")
    assert _renumber("missing column 've_success'", 2000) == "missing column 've_success'"


def test_reads_parquet_only_and_fingerprints_directories(data, tmp_path):
    csv = tmp_path / "log.csv"
    csv.write_text("a\n1\n")
    with pytest.raises(DataError, match="Parquet"):
        read_parquet_log(csv)
    with pytest.raises(DataError, match="not found"):
        read_parquet_log(tmp_path / "missing")
    first = data_fingerprint(data["dir"])
    assert len(first) == 64 and first == data_fingerprint(data["dir"])


def test_rows_without_a_known_outcome_are_left_out_and_counted(client, data, tmp_path):
    """`vea export` leaves ``ve_success`` empty for an outcome without VES answers: the
    cluster trains on the other rows, as local training does, and says how many it left
    out (it used to refuse the whole log)."""
    log = data["log"].head(6000).copy()
    unknown = np.arange(3, 6000, 7)
    log["ve_success"] = log["ve_success"].astype("float64")
    log.iloc[unknown, log.columns.get_loc("ve_success")] = np.nan
    directory = write_partitions(log, tmp_path / "export", parts=3)
    reg = tmp_path / "reg"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data", str(directory),
            "--engine", "dask",
            "--scheduler", client.scheduler.address,
            "--learner", "s",
            "--quiet",
            "--registry", str(reg),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{len(unknown)} rows left out" in result.stderr
    bundle = Registry(reg).load(result.stdout.strip().split()[0])
    known = 6000 - len(unknown)
    assert bundle.manifest["training_rows"] == known
    assert bundle.manifest["reward"]["left_out"] == len(unknown)
    assert bundle.manifest["reward"]["rows"] == known
    assert bundle.manifest["metrics"]["reward"] == "ve_success"  # vea models list shows it
    assert bundle.manifest["metrics"]["action_counts"] == {
        a: int(n) for a, n in log.drop(index=unknown)["activity"].value_counts().items()
    } | {a: 0 for a in ACTIONS if a not in set(log.drop(index=unknown)["activity"])}

    log.iloc[:, log.columns.get_loc("ve_success")] = np.nan
    empty = write_partitions(log, tmp_path / "empty", parts=2)
    with pytest.raises(DataError, match="no rows with a known ve_success"):
        train_bundle_dask(empty, client=client, progress=False)


def test_the_same_rows_in_two_files_are_refused_as_locally(client, data, tmp_path):
    """Local training refuses a repeated interaction_id; the cluster saw repeats only
    within a partition and trained on the whole log twice."""
    rows = data["log"].head(1000)
    directory = tmp_path / "twice"
    directory.mkdir()
    rows.to_parquet(directory / "part-000.parquet", index=False)
    rows.to_parquet(directory / "part-001.parquet", index=False)
    with pytest.raises(DataError, match="1000 interaction_id value.*overlapping exports"):
        train_bundle_dask(directory, client=client, progress=False)


def test_a_spec_lets_canonical_columns_through_on_the_cluster_as_locally(client, data, tmp_path):
    """A spec with economics only: the cluster learns from the file's canonical columns
    (it took only the spec's own columns and had no feature at all)."""
    from training.spec import Spec

    directory = write_partitions(data["log"].head(4000), tmp_path / "econ", parts=2)
    spec = Spec.from_dict({"economics": {"value_of_success": 5.0, "cost_per_second": 0.05}})
    bundle = train_bundle_dask(directory, spec, learner="s", client=client, progress=False)
    local = train_bundle(
        validate_log(data["log"].head(4000)), spec=spec, learner="s", num_threads=1, progress=False
    )
    assert bundle.encoder.feature_names == local.encoder.feature_names
    assert len(bundle.encoder.feature_names) >= 9
    assert bundle.economics.value_of_success == 5.0


def _sampled(client, directory: Path, fraction: float, seed: int = 0) -> np.ndarray:
    """Which rows of the log (in partition order) fall in the client sample: the same
    encoding pass training runs, so the draws are the ones it makes."""
    from training.distributed import SAMPLE_COL, encode_log, encoder_from_summary, summarize_log

    raw = read_parquet_log(directory)
    summary = summarize_log(client, raw, None, [], str(directory))
    encoder = encoder_from_summary(summary, raw, None, [])
    design = client.compute(encode_log(raw, None, encoder, seed), sync=True)
    return design[SAMPLE_COL].to_numpy() < fraction


def test_t_on_the_cluster_ranks_one_class_activities_as_locally(client, data, tmp_path):
    """An activity whose logged outcomes are all one class gets its smoothed rate from the
    whole log's counts, as local ``t`` gives it (it got no model and was never suggested);
    one that is one class only in the client sample is trained on the cluster for the
    median rounds of the real models, not for its 1-tree constant's single round."""
    from models.ranker import MIN_ACTION_SUPPORT

    always, never, mixed = "validate_purchase", "advise_new_uses", "achieve_goals"
    log = data["log"].head(4000).copy().reset_index(drop=True)
    log["ve_success"] = log["ve_success"].astype("int64")
    directory = write_partitions(log, tmp_path / "one-class", parts=2)
    sample_rows = 1600
    in_sample = _sampled(client, directory, sample_rows / len(log))
    log.loc[log["activity"] == always, "ve_success"] = 1
    log.loc[log["activity"] == never, "ve_success"] = 0
    # Both classes in the log, successes only in the sample (the lengths, hence the
    # draws, are unchanged).
    is_mixed = (log["activity"] == mixed).to_numpy()
    log.loc[is_mixed & in_sample, "ve_success"] = 1
    assert log.loc[is_mixed & ~in_sample, "ve_success"].nunique() == 2
    assert (is_mixed & in_sample).sum() >= MIN_ACTION_SUPPORT
    write_partitions(log, directory, parts=2)

    bundle = train_bundle_dask(
        directory, learner="t", seed=0, client=client, sample_rows=sample_rows, progress=False
    )
    local = train_bundle(validate_log(log), learner="t", seed=0, num_threads=1, progress=False)
    ranker = bundle.ranker
    assert all(b is not None for b in ranker.boosters_)
    _o, success = score_arrays(bundle, data["test"].head(300))
    _o, local_success = score_arrays(local, data["test"].head(300))
    assert np.isfinite(success).all()
    for action in (always, never):
        rows = log["activity"] == action
        rate = (log.loc[rows, "ve_success"].sum() + 1) / (rows.sum() + 2)
        code = ACTIONS.index(action)
        np.testing.assert_allclose(success[:, code], rate, rtol=1e-6)
        np.testing.assert_allclose(success[:, code], local_success[:, code], rtol=1e-6)
    decider = Decider(bundle)
    suggested = {
        decider.decide(row)["suggested_activity"] for row in log.head(50).to_dict("records")
    }
    assert always in suggested

    rounds = bundle.manifest["engine"]["boosting_rounds"]["ranker"]
    assert set(rounds["constant"]) == {always, never}
    assert rounds["median_of_others"] == [mixed]
    real = [r for a, r in rounds["rounds"].items() if a != mixed]
    assert rounds["rounds"][mixed] > 1
    assert min(real) <= rounds["rounds"][mixed] <= max(real)
    # The cluster's model for it learned from both classes: not a constant.
    assert np.ptp(success[:, ACTIONS.index(mixed)]) > 0


def test_probe_rounds_skip_constant_and_missing_models():
    """A constant (one class in the sample) or absent probe model takes the median of the
    real early-stopped tree counts; it is not one of them."""
    from models.ranker import ActivityRanker
    from training.distributed import t_probe_trees

    class Trees:
        def __init__(self, n: int) -> None:
            self.n = n

        def num_trees(self) -> int:
            return self.n

    probe = ActivityRanker.from_parts(
        "t", [Trees(40), Trees(1), None, Trees(60), Trees(80), Trees(1)], [True] * 6, ["f"], []
    )
    probe.constant_actions_ = np.array([False, True, False, False, False, False])
    trees, guessed = t_probe_trees(probe)
    assert trees == [40, 50, 50, 60, 80, 1]  # the median of 40, 60, 80 and a real 1
    assert guessed == [False, True, True, False, False, False]


def test_cluster_bundles_keep_drift_histograms_and_training_ids_as_local_ones(
    client, data, tmp_path
):
    """Without them a cluster-trained champion had no drift check in `vea retrain` and no
    way to tell a later log's overlap with its training rows."""
    from training.overlap import seen_share

    log = data["log"].head(4000)
    directory = write_partitions(log, tmp_path / "reference", parts=2)
    bundle = train_bundle_dask(directory, learner="s", client=client, progress=False)
    local = train_bundle(validate_log(log), learner="s", num_threads=1, progress=False)
    assert bundle.manifest["training_ids"] == local.manifest["training_ids"]
    assert seen_share(bundle.manifest["training_ids"], log["interaction_id"]) == 1.0
    ours, theirs = bundle.manifest["drift_reference"], local.manifest["drift_reference"]
    assert set(ours) == set(theirs) == set(bundle.encoder.feature_names)
    for name, reference in theirs.items():
        assert ours[name]["kind"] == reference["kind"]
        assert ours[name]["missing"] == pytest.approx(reference["missing"])
        if reference["kind"] == "numeric":
            assert ours[name]["edges"] == pytest.approx(reference["edges"])
            assert ours[name]["shares"] == pytest.approx(reference["shares"])
        else:
            assert ours[name]["shares"] == pytest.approx(reference["shares"])
