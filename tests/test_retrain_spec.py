"""`vea retrain --data` reads a log in the layout of the champion's spec, as `vea evaluate`
and `vea score` do (it was refused with 'map it with a spec', an option retrain lacks)."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner
from core_fixtures import HILLSTROM, ROOT

from models.registry import Registry
from training.cli import cli
from training.fit import train_bundle
from training.loading import load_log
from training.spec import Spec


def test_retrain_reads_the_champions_layout(tmp_path):
    data = tmp_path / "h.csv"
    pd.read_csv(HILLSTROM).head(2000).to_csv(data, index=False)
    spec = Spec.from_file(ROOT / "examples" / "hillstrom.yaml")
    reg = tmp_path / "reg"
    bundle = train_bundle(
        load_log(data, spec), spec=spec, learner="s", num_threads=1, progress=False
    )
    Registry(reg).add(bundle)
    args = ["retrain", "--data", str(data), "--registry", str(reg), "--min-rows", "1000000"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "skipped: 2000 rows < --min-rows 1000000" in result.stdout

    plain = tmp_path / "plain"
    Registry(plain).add(
        train_bundle(load_log(data, spec), learner="s", num_threads=1, progress=False)
    )
    args[args.index(str(reg))] = str(plain)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "missing column 've_success'" in result.output
    assert "reads the canonical layout `vea export` writes" in result.output
    assert "Traceback" not in result.output


def test_retrain_on_the_champions_own_file_warns_without_interaction_ids(tmp_path):
    """Hillstrom has no interaction ids: the champion's training file is told by its
    fingerprint, as `vea evaluate` tells it."""
    from training.retrain import retrain

    data = tmp_path / "h.csv"
    pd.read_csv(HILLSTROM).head(2000).to_csv(data, index=False)
    spec = Spec.from_file(ROOT / "examples" / "hillstrom.yaml")
    frame = load_log(data, spec)
    assert "interaction_id" not in frame
    reg = Registry(tmp_path / "reg")
    bundle = train_bundle(
        frame, spec=spec, learner="s", num_threads=1, progress=False, data_fingerprint="f" * 64
    )
    reg.add(bundle)
    result = retrain(frame, reg, source="f" * 64, min_rows=10**6)
    assert any("very file the champion was trained on" in w for w in result.drift_warnings)
    other = retrain(frame, reg, source="e" * 64, min_rows=10**6)
    assert not any("champion was trained on" in w for w in other.drift_warnings)
