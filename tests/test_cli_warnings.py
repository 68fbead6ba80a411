"""`vea evaluate` shows every warning on the console, whatever its output options, with
the same text the JSON and the HTML report hold (in-sample rows by fingerprint or by
interaction id, choices the log never supports, estimates on few rows); `vea retrain`
records in the registry's history the warnings it prints."""

from __future__ import annotations

import html
import json
from functools import lru_cache

import pandas as pd
import pytest
from click.testing import CliRunner

from models.registry import Registry
from training.fit import train_bundle
from training.retrain import retrain
from training.simulate import simulate


@pytest.fixture(autouse=True)
def compile_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VEA_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "compiled"))


@lru_cache(maxsize=1)
def training_log() -> pd.DataFrame:
    return simulate(rows=1500, seed=31)[0]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = tmp_path_factory.mktemp("warnings") / "registry"
    bundle = train_bundle(training_log(), learner="s", seed=0, num_threads=1, progress=False)
    Registry(reg).add(bundle)
    return reg


def evaluate(registry, *args):
    from training.cli import cli

    argv = ["evaluate", *map(str, args), "--registry", str(registry), "--bootstrap", "50"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    return result


def console_warnings(result) -> list[str]:
    return [
        line.removeprefix("warning: ")
        for line in result.stderr.splitlines()
        if line.startswith("warning: ")
    ]


def test_file_warnings_are_on_the_console_too(registry, tmp_path):
    """Training rows in another file and contacts served with probability 1 (no
    exploration): both warnings were only in the JSON / the HTML report."""
    log = training_log().copy()
    log.loc[log.index % 4 == 0, "propensity"] = 1.0  # served without exploration
    copy = tmp_path / "copy.csv"
    log.to_csv(copy, index=False)
    out, report = tmp_path / "e.json", tmp_path / "r.html"
    result = evaluate(registry, "--data", copy, "--json", out, "--report", report)
    written = json.loads(out.read_text())["warnings"]
    assert any("about 100% of these rows" in w for w in written)
    assert any(
        w.startswith("Policy model: ") and "never taken by the logging policy" in w for w in written
    )
    assert console_warnings(result) == written
    page = report.read_text()
    assert all(html.escape(w) in page for w in written)
    assert result.stdout.startswith("model ")  # the summary stays on stdout

    plain = evaluate(registry, "--data", copy)  # the JSON on stdout, warnings on stderr
    assert json.loads(plain.stdout)["warnings"] == written == console_warnings(plain)


def test_the_very_training_file_is_named_once_in_every_output(registry, tmp_path):
    path = tmp_path / "train.parquet"
    training_log().to_parquet(path)
    from training.distributed import data_fingerprint

    bundle = Registry(registry).load_champion()
    bundle.manifest["data_fingerprint"] = data_fingerprint(path)
    reg = tmp_path / "reg"
    Registry(reg).add(bundle)
    out, report = tmp_path / "e.json", tmp_path / "r.html"
    result = evaluate(reg, "--data", path, "--json", out, "--report", report)
    written = json.loads(out.read_text())["warnings"]
    in_sample = [w for w in written if "in-sample" in w]
    assert len(in_sample) == 1 and "trained on this very data" in in_sample[0]
    assert console_warnings(result) == written
    assert report.read_text().count("trained on this very data") == 1


def test_retrain_records_the_warnings_it_prints(tmp_path):
    reg = Registry(tmp_path / "registry")
    reg.add(train_bundle(training_log(), learner="s", seed=0, num_threads=1, progress=False))
    cumulative = pd.concat([training_log(), simulate(rows=1500, seed=32)[0]], ignore_index=True)
    result = retrain(cumulative, reg, num_threads=1, n_boot=50, min_rows=10**6)
    assert any("champion's own training data" in w for w in result.drift_warnings)
    lines = (tmp_path / "registry" / "history.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["event"] == "gate" and record["decision"] == "skipped"
    assert record["warnings"] == result.drift_warnings
