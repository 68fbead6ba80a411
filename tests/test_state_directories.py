"""The gunicorn master empties VEA_SHARED_STATE_DIR and PROMETHEUS_MULTIPROC_DIR at
start (service/gunicorn_conf.py). It deletes only what vea's workers write there: a
setting pointed at a directory holding anything else (a home directory, a data volume)
stops the start with one line naming the setting, and every file is left in place."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import requests
from click.testing import CliRunner

from tests.conftest import free_port
from tests.test_e2e_gunicorn import ROOT, decision_body, start_gunicorn, stop


@pytest.fixture
def env(registry_dir, tmp_path) -> dict[str, str]:
    (tmp_path / "prom").mkdir()
    (tmp_path / "shared").mkdir()
    variables = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}",
        "VEA_REGISTRY": str(registry_dir),
        "VEA_ACCESS_LOG": "0",
        "VEA_THREADS": "1",
        "VEA_RATE_LIMIT_PER_S": "50",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "VEA_SHARED_STATE_DIR": str(tmp_path / "shared"),
    }
    variables.pop("VEA_AUTO_MIGRATE", None)  # the master migrates
    return variables


def start_refused(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"],
        cwd=ROOT,
        env={**env, "VEA_BIND": f"127.0.0.1:{free_port()}", "VEA_WORKERS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("variable", ["VEA_SHARED_STATE_DIR", "PROMETHEUS_MULTIPROC_DIR"])
def test_a_directory_holding_other_files_is_refused_and_kept(env, variable, tmp_path):
    directory = tmp_path / ("shared" if variable == "VEA_SHARED_STATE_DIR" else "prom")
    (directory / "notes.txt").write_text("an operator's file")
    (directory / "reports").mkdir()
    (directory / "reports" / "q3.csv").write_text("a,b\n")
    (directory / "counter_12.db").write_bytes(b"left by an earlier run")

    done = start_refused(env)

    assert done.returncode != 0
    message = done.stdout + done.stderr
    assert variable in message
    assert "notes.txt" in message and "reports" in message
    assert "counter_12.db" not in message  # vea's own file is not named as foreign
    assert (directory / "notes.txt").read_text() == "an operator's file"
    assert (directory / "reports" / "q3.csv").read_text() == "a,b\n"
    assert (directory / "counter_12.db").exists()  # nothing at all is deleted
    assert "Traceback" not in message


def test_what_a_run_leaves_is_emptied_by_the_next_start(env, tmp_path):
    from service.cli import keys as keys_group

    port = free_port()
    proc = start_gunicorn(env, port, 2, tmp_path / "first.log")
    try:
        created = CliRunner().invoke(keys_group, ["create", "--role", "admin"], env=env)
        assert created.exit_code == 0, created.output
        key = created.stdout.strip().splitlines()[-1]
        base, admin = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
        for _ in range(4):  # both workers: metrics, rate-limit buckets, verified keys
            made = requests.post(
                f"{base}/v1/decisions", json=decision_body(), headers=admin, timeout=10
            )
            assert made.status_code == 201, made.text
        wrong = {"Authorization": f"Bearer vea_{uuid.uuid4().hex}"}
        assert requests.get(f"{base}/v1/models", headers=wrong, timeout=10).status_code == 401
        report = requests.get(f"{base}/v1/reports/value", headers=admin, timeout=60)
        assert report.status_code == 200, report.text  # takes a heavy slot
        for _ in range(4):  # the drift gauges' computation: its lock and values file
            assert requests.get(f"{base}/metrics", timeout=30).status_code == 200
    finally:
        stop(proc)
    left = {name: sorted(os.listdir(tmp_path / name)) for name in ("prom", "shared")}
    assert left["prom"] and any(name.endswith(".buckets") for name in left["shared"])
    assert any(name.startswith("heavy-") for name in left["shared"]), left
    assert "drift-gauges.lock" in left["shared"], left

    proc = start_gunicorn(env, free_port(), 1, tmp_path / "second.log")
    try:
        # Emptied at start: the first run's per-process samples (other pids) and heavy
        # slots are gone; the new worker writes its own.
        assert not set(os.listdir(tmp_path / "prom")) & set(left["prom"])
        assert not [n for n in os.listdir(tmp_path / "shared") if n.startswith("heavy-")]
    finally:
        stop(proc)
