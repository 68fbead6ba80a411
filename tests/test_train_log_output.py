"""`vea train` writing to a log (make run, cron, CI) printed its progress bar as
hundreds of carriage-return redraws on one line; on a terminal it is drawn as before."""

from __future__ import annotations

import subprocess
import sys

from tests.test_e2e_gunicorn import ROOT


def test_a_log_gets_no_progress_bar_redraws(tmp_path):
    def vea(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "training.cli", *argv],
            cwd=ROOT,
            capture_output=True,  # bytes: text mode would turn each \r into a line break
            timeout=300,
        )

    data = tmp_path / "log.parquet"
    assert vea("simulate", "--rows", "3000", "--seed", "3", "--out", str(data)).returncode == 0
    trained = vea("train", "--data", str(data), "--registry", str(tmp_path / "registry"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert b"\r" not in trained.stderr and b"\r" not in trained.stdout
    assert b"training:" not in trained.stderr  # no bar at all, not a bar per line
    assert b"(champion)" in trained.stdout
