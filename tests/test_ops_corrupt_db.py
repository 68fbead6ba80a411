"""A SQLite database file that is damaged (truncated, overwritten) or not a database at all.

SQLite reports it as a plain ``DatabaseError`` ("database disk image is malformed", "file
is not a database"): the service treats it as an unavailable database (decisions answer
degraded, writes 503, /readyz says so), never as a bug (500); the commands and the
gunicorn master say it in one line naming the database, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.exc import DatabaseError, DataError, IntegrityError

from service.auth import create_key
from service.db import is_unavailable, upgrade
from tests.conftest import free_port, suite_app
from training.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def damage(path: Path, how: str) -> None:
    """Truncate the database file (a copy cut short) or replace it by text."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_text("this is not sqlite\n")


def migrated(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "vea.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return path, url


@pytest.fixture
def app_on(registry_dir, compile_cache):
    """Factory: the app on a database URL of the test's own (SQLite only)."""
    apps = []

    def build(url: str):
        app = suite_app(url, registry_dir, compile_cache)
        app.testing = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["vea"].close()


def decision_body() -> dict:
    return {
        "interaction_id": f"i-{uuid.uuid4().hex}",
        "customer": {"customer_id": f"c-{uuid.uuid4().hex}", "tenure_months": 2.0},
        "contact": {"channel": "chat", "issue_type": "inquiry", "language": "en"},
    }


def test_only_the_plain_database_error_counts_as_unavailable():
    """IntegrityError and DataError are DatabaseError subclasses the code relies on (a
    duplicate interaction, a value too long): they stay what they are."""
    plain = DatabaseError("SELECT 1", {}, Exception("file is not a database"))
    assert is_unavailable(plain)
    for subclass in (IntegrityError, DataError):
        assert not is_unavailable(subclass("INSERT", {}, Exception("duplicate")))


@pytest.mark.parametrize("how", ["truncated", "not-a-database"])
def test_a_damaged_database_answers_degraded_not_500(how, tmp_path, app_on):
    path, url = migrated(tmp_path)
    app = app_on(url)
    engine = app.extensions["vea"].engine
    headers = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    client = app.test_client()
    first = client.post("/v1/decisions", json=decision_body(), headers=headers)
    assert first.status_code == 201 and not first.json["degraded"], first.json

    engine.dispose()  # the next request opens the damaged file
    damage(path, how)

    answer = client.post("/v1/decisions", json=decision_body(), headers=headers)
    assert answer.status_code == 200, answer.json  # was 500 internal_error
    assert answer.json["degraded"] is True and answer.json["stored"] is False
    ready = client.get("/readyz")
    assert ready.status_code == 503


def test_a_key_never_verified_on_a_damaged_database_is_503_not_500(tmp_path, app_on):
    path, url = migrated(tmp_path)
    damage(path, "not-a-database")
    app = app_on(url)
    answer = app.test_client().post(
        "/v1/decisions",
        json=decision_body(),
        headers={"Authorization": "Bearer vea_0123456789ab_" + "x" * 43},
    )
    assert answer.status_code == 503, answer.json  # was 500
    assert "Retry-After" in answer.headers


@pytest.mark.parametrize("how", ["truncated", "not-a-database"])
@pytest.mark.parametrize(
    "argv",
    [["db", "upgrade"], ["keys", "list"], ["export", "--out", "E"], ["db", "backup", "--out", "B"]],
)
def test_commands_on_a_damaged_database_are_one_error_line(how, argv, tmp_path):
    path, url = migrated(tmp_path)
    damage(path, how)
    names = {"B": str(tmp_path / "copy.db"), "E": str(tmp_path / "export.csv")}
    argv = [names.get(a, a) for a in argv]
    result = CliRunner().invoke(cli, argv, env={"VEA_DATABASE_URL": url})
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "a bug" not in result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: "), result.stderr
    assert str(path) in result.stderr
    assert "corrupt or not a database" in result.stderr
    assert not (tmp_path / "copy.db").exists()
    assert not (tmp_path / "export.csv").exists()


@pytest.mark.parametrize("how", ["truncated", "not-a-database"])
def test_vea_serve_stops_with_one_line_naming_the_setting(how, tmp_path, registry_dir):
    path, url = migrated(tmp_path)
    damage(path, how)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VEA_")},
        "VEA_DATABASE_URL": url,
        "VEA_REGISTRY": str(registry_dir),
        "VEA_COMPILE_CACHE": "",
        "VEA_BIND": f"127.0.0.1:{free_port()}",
        "VEA_WORKERS": "1",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    assert f"VEA_DATABASE_URL: cannot migrate sqlite:///{path}: " in output, output[-2000:]
    assert "corrupt or not a database" in output
    assert "Booting worker" not in output
    assert len(output.strip().splitlines()) <= 3, output
    assert time.monotonic() - started < 60


def test_a_damaged_database_is_no_reason_to_hide_other_driver_errors(tmp_path):
    """A statement's own error (here a duplicate key) still raises as before."""
    _, url = migrated(tmp_path)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert not is_unavailable(caught.value)
    finally:
        engine.dispose()
