"""`vea retrain --keep-export PATH` keeps a copy of the export it trained on: customer
ids, like the export itself, so written as `vea export` writes (``models.tables``):
owner-only whatever the umask (it was 0644), under a temporary name renamed into place
(it was written in place: a reader could see half a file, a failure left one), and a
path that cannot be written is one line naming it (it was a traceback)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

from models.tables import write_table


@pytest.mark.parametrize("name", ["kept.csv", "kept.parquet"])
def test_retrain_keeps_the_export_owner_only_and_whole(tmp_path, monkeypatch, name):
    """The copy holds customer ids like the export: 0600 under a 022 umask (it was
    0644), written under a temporary name and renamed (it was written in place)."""
    from training import retrain as retrain_module
    from training.cli import cli

    log = pd.DataFrame({"customer_id": ["c-1", "c-2"], "activity": ["none", "none"]})

    def export_then_load(_export, directory):
        path = directory / "export.parquet"
        write_table(log, path)
        return log, path

    written = []
    replace = Path.replace

    def watched(self, target):
        written.append((self.name, Path(target).name))
        return replace(self, target)

    monkeypatch.setattr(retrain_module, "export_then_load", export_then_load)
    monkeypatch.setattr(
        retrain_module,
        "retrain",
        lambda *a, **k: SimpleNamespace(drift_warnings=[], status="refused"),
    )
    monkeypatch.setattr(retrain_module, "describe", lambda result: "stub")
    monkeypatch.setattr(Path, "replace", watched)
    keep = tmp_path / "kept" / name
    keep.parent.mkdir()
    old_umask = os.umask(0o022)
    try:
        result = CliRunner().invoke(
            cli, ["retrain", "--keep-export", str(keep), "--registry", str(tmp_path / "r")]
        )
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    assert (keep.stat().st_mode & 0o777) == 0o600
    assert any(target == name and source.endswith(".tmp") for source, target in written)
    assert sorted(p.name for p in keep.parent.iterdir()) == [name]
    kept = pd.read_csv(keep) if name.endswith(".csv") else pd.read_parquet(keep)
    assert kept["customer_id"].tolist() == ["c-1", "c-2"]


def test_retrain_says_why_the_export_could_not_be_kept(tmp_path, monkeypatch):
    from training import retrain as retrain_module
    from training.cli import cli

    log = pd.DataFrame({"customer_id": ["c-1"]})

    def export_then_load(_export, directory):
        return log, write_table(log, directory / "export.parquet")

    monkeypatch.setattr(retrain_module, "export_then_load", export_then_load)
    (tmp_path / "file").write_text("a file, not a folder")
    for name in ("kept.csv", "kept.parquet"):
        keep = tmp_path / "file" / name
        result = CliRunner().invoke(cli, ["retrain", "--keep-export", str(keep)])
        assert result.exit_code == 1, result.output
        assert f"cannot write {keep}" in result.output and "Traceback" not in result.output
