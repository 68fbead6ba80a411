"""`vea db backup` of a SQLite database whose path holds characters a ``file:`` URI
reads ('#', '?', '%', a space), and of a database holding none of vea's tables.

The source was opened as ``file:{path}?mode=ro`` unescaped: SQLite cut the path at '#'
or '?' (dropping ``mode=ro``), or decoded '%41', and created another, empty file
read-write; the backup of that empty file was reported a success."""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from service.auth import create_key
from service.db import make_engine, upgrade
from training.cli import cli


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
