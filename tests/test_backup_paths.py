"""`vea db backup` of a SQLite database whose path holds characters a ``file:`` URI
reads ('#', '?', '%', a space), and of a database holding none of vea's tables; the
live database's own mode (0600, as its backups').

The source was opened as ``file:{path}?mode=ro`` unescaped: SQLite cut the path at '#'
or '?' (dropping ``mode=ro``), or decoded '%41', and created another, empty file
read-write; the backup of that empty file was reported a success."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from service.auth import create_key
from service.db import make_engine, upgrade
from tests.conftest import free_port
from training.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def url_of(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file (its '?', '%' escaped as a URL needs)."""
    return sa.URL.create("sqlite", database=str(path)).render_as_string()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("folder", ["we#ird dir", "q?x", "p%41", "sp ace", "a#b?c%25d"])
def test_a_path_with_uri_characters_is_backed_up_whole_and_nothing_else_created(folder, tmp_path):
    live = tmp_path / folder / "vea.db"
    live.parent.mkdir()
    url = url_of(live)
    upgrade(url)
    engine = make_engine(url)
    try:
        create_key(engine, "admin", "night shift")
        create_key(engine, "desktop")
    finally:
        engine.dispose()
    out = tmp_path / "backups" / f"{uuid.uuid4().hex}.db"
    out.parent.mkdir()
    before = files_under(tmp_path)

    done = CliRunner().invoke(
        cli, ["db", "backup", "--out", str(out)], env={"VEA_DATABASE_URL": url}
    )

    assert done.exit_code == 0, done.output
    assert "2 api_keys" in done.output, done.output  # was "backup written ...: " and nothing
    # Nothing but the backup appeared (was: an empty stray file where SQLite cut the
    # path), besides the live database's own -wal and -shm (a reader of a WAL database
    # makes them; the service has them anyway).
    wal = {Path(f"{live}-wal"), Path(f"{live}-shm")}
    assert files_under(tmp_path) - before - wal == {out}
    with sqlite3.connect(out) as copy:
        assert copy.execute("SELECT count(*) FROM api_keys").fetchone() == (2,)
    assert os.stat(out).st_mode & 0o777 == 0o600


def test_a_database_without_vea_tables_is_refused_and_nothing_written(tmp_path):
    """A SQLite file that is a database but not vea's (or never migrated): a backup of
    it would restore nothing, so it is refused instead of reported a success."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    out = tmp_path / "copy.db"
    done = CliRunner().invoke(
        cli, ["db", "backup", "--out", str(out)], env={"VEA_DATABASE_URL": url_of(other)}
    )
    assert done.exit_code == 1, done.output
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "none of vea's tables" in done.stderr and str(other) in done.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".copy.db*"))


@pytest.mark.postgres
def test_a_postgresql_database_without_vea_tables_is_refused(postgres, tmp_path):
    url = postgres.create_database(f"vea_empty_{uuid.uuid4().hex[:8]}")
    out = tmp_path / "vea.dump"
    done = CliRunner().invoke(
        cli, ["db", "backup", "--out", str(out)], env={"VEA_DATABASE_URL": url}
    )
    assert done.exit_code == 1, done.output
    assert "none of vea's tables" in done.stderr, done.output
    assert not out.exists()
    assert not list(tmp_path.glob(".vea.dump*"))


# ------------------------------------------------------- the live database's mode
def mode(path) -> int:
    return os.stat(path).st_mode & 0o777


@pytest.fixture
def usual_umask():
    """The umask most systems give (0022): SQLite alone made the database 0644."""
    before = os.umask(0o022)
    yield
    os.umask(before)


@pytest.mark.usefixtures("usual_umask")
def test_a_new_database_and_its_wal_and_shm_are_private_like_its_backups(tmp_path):
    live = tmp_path / "var" / "vea.db"
    url = url_of(live)
    done = CliRunner().invoke(cli, ["db", "upgrade"], env={"VEA_DATABASE_URL": url})
    assert done.exit_code == 0, done.output
    assert done.stderr == ""
    assert mode(live) == 0o600  # was 0644
    # The service's engine, writing: SQLite gives -wal and -shm the database's mode.
    engine = make_engine(url, background_checkpoints=True, timeout_s=5.0)
    try:
        create_key(engine, "admin")
        with engine.connect():
            for suffix in ("", "-wal", "-shm"):
                assert mode(f"{live}{suffix}") == 0o600, suffix
    finally:
        engine.dispose()


@pytest.mark.usefixtures("usual_umask")
def test_the_service_creates_its_database_private_too(tmp_path):
    """A database the service itself creates (no `vea db upgrade` first)."""
    live = tmp_path / "fresh.db"
    engine = make_engine(url_of(live), background_checkpoints=True, timeout_s=5.0)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        assert mode(live) == 0o600
    finally:
        engine.dispose()


@pytest.mark.usefixtures("usual_umask")
def test_an_existing_database_open_to_others_is_left_as_it_is_and_said(tmp_path):
    live = tmp_path / "vea.db"
    upgrade(url_of(live))
    os.chmod(live, 0o644)  # made by an older vea, or by hand
    done = CliRunner().invoke(cli, ["db", "upgrade"], env={"VEA_DATABASE_URL": url_of(live)})
    assert done.exit_code == 0, done.output
    assert mode(live) == 0o644  # not changed behind the operator's back
    assert done.stderr.startswith("note: the SQLite database "), done.stderr
    assert f"{live} is open to other users (mode 0644)" in done.stderr
    assert "chmod 600" in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.usefixtures("usual_umask")
def test_vea_serve_warns_of_a_database_open_to_others(tmp_path, registry_dir):
    live = tmp_path / "vea.db"
    upgrade(url_of(live))
    os.chmod(live, 0o640)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VEA_")},
        "VEA_DATABASE_URL": url_of(live),
        "VEA_REGISTRY": str(registry_dir),
        "VEA_COMPILE_CACHE": "",
        "VEA_BIND": f"127.0.0.1:{free_port()}",
        "VEA_WORKERS": "1",
    }
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "Booting worker" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    said = log.read_text()
    assert f"{live} is open to other users (mode 0640)" in said, said[-3000:]
    assert mode(live) == 0o640
