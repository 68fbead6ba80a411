"""A model recognises its training rows in any later log (training.overlap): the share
is estimated from a fixed sample of ids kept in the bundle, whatever file the rows are in."""

from __future__ import annotations

import pandas as pd
import pytest

from models.registry import Registry
from training.fit import train_bundle
from training.overlap import SAMPLE_TARGET, id_sample, seen_share
from training.retrain import retrain
from training.simulate import simulate


def test_the_sample_stays_small_and_estimates_the_share_seen():
    ids = [f"i-{i}" for i in range(100_000)]
    sample = id_sample(ids)
    assert len(sample["hashes"]) <= SAMPLE_TARGET * 1.1
    assert seen_share(sample, ids[:20_000]) == 1.0
    assert seen_share(sample, [f"other-{i}" for i in range(20_000)]) == 0.0
    half = ids[:10_000] + [f"other-{i}" for i in range(10_000)]
    assert seen_share(sample, half) == pytest.approx(0.5, abs=0.1)
    small = id_sample(["a", "b"])
    assert small["modulus"] == 1 and seen_share(small, ["b", "c"]) == 0.5
    assert seen_share(None, ids) is None


def test_retrain_warns_when_the_export_holds_the_champions_training_rows(tmp_path):
    first, _ = simulate(rows=1500, seed=21)
    later, _ = simulate(rows=1500, seed=22)
    reg = Registry(tmp_path / "registry")
    reg.add(train_bundle(first, learner="s", seed=0, num_threads=1, progress=False))
    assert reg.load(reg.champion()).manifest["training_ids"]["modulus"] == 1
    fresh = retrain(later, reg, num_threads=1, n_boot=50, min_rows=10**6)  # warns, skips
    assert not [w for w in fresh.drift_warnings if "training data" in w]
    cumulative = pd.concat([first, later], ignore_index=True)  # an export from the start
    result = retrain(cumulative, reg, num_threads=1, n_boot=50, min_rows=10**6)
    (warning,) = [w for w in result.drift_warnings if "training data" in w]
    assert "about 50%" in warning


def test_evaluate_warns_on_training_rows_in_another_file(tmp_path):
    from click.testing import CliRunner

    from training.cli import cli

    log, _ = simulate(rows=1500, seed=31)
    reg = tmp_path / "registry"
    Registry(reg).add(train_bundle(log, learner="s", seed=0, num_threads=1, progress=False))
    copy = tmp_path / "copy.csv"  # the same rows in another file: another fingerprint
    log.to_csv(copy, index=False)
    result = CliRunner().invoke(
        cli, ["evaluate", "--data", str(copy), "--registry", str(reg), "--bootstrap", "50"]
    )
    assert result.exit_code == 0, result.output
    assert "about 100% of these rows" in result.stderr
