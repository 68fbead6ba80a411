"""A service command on a database that answers but holds no schema yet (a new database
before `vea db upgrade`) says so and what to run: it said "cannot reach" the database
on SQLite and printed a traceback on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner

from training.cli import cli


def _unmigrated(kind: str, tmp_path, postgres_factory) -> str:
    if kind == "sqlite":
        import sqlite3

        path = tmp_path / "empty.db"
        sqlite3.connect(path).close()
        return f"sqlite:///{path}"
    return postgres_factory().create_database(f"vea_bare_{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_database_without_the_schema_says_to_upgrade(kind, tmp_path, request):
    url = _unmigrated(kind, tmp_path, lambda: request.getfixturevalue("postgres"))
    for argv in (["export", "--out", str(tmp_path / "e.csv")], ["keys", "list"]):
        result = CliRunner().invoke(cli, argv, env={"VEA_DATABASE_URL": url})
        assert result.exit_code == 1, result.output
        assert "is not migrated" in result.output, result.output
        assert "run `vea db upgrade`" in result.output
        assert "Traceback" not in result.output and "cannot reach" not in result.output
    assert not (tmp_path / "e.csv").exists()
