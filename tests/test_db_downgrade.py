"""Going back to an older schema revision, on SQLite and PostgreSQL.

`vea db upgrade --revision 0010` on a database at 0015 said "(up to date)" and exited 0,
changing nothing: it now refuses, naming both revisions and `vea db downgrade`, which
undoes the later migrations only with --yes (without it, it says what would be dropped),
and keeps the rows of the tables the older revision has."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from service.auth import create_key
from service.db import decisions, make_engine, migration_revisions, schema_revision, upgrade
from training.cli import cli

HEAD = migration_revisions()[-1]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path) -> str:
    """A database of this test's own, migrated to the newest revision."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'vea.db'}"
    else:
        postgres = request.getfixturevalue("postgres")
        url = postgres.create_database(f"vea_down_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    return url


def vea(url: str, *argv: str):
    return CliRunner().invoke(cli, list(argv), env={"VEA_DATABASE_URL": url})


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_to_an_older_revision_refuses_and_changes_nothing(fresh_url):
    done = vea(fresh_url, "db", "upgrade", "--revision", "0010")
    assert done.exit_code == 1, done.output  # was 0, "(up to date)"
    assert "up to date" not in done.output
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1
    assert f"at revision {HEAD}, newer than the asked 0010" in done.stderr
    assert "vea db downgrade --revision 0010" in done.stderr
    assert schema_revision(fresh_url) == HEAD


def test_downgrade_without_yes_says_what_would_be_dropped_and_changes_nothing(fresh_url):
    done = vea(fresh_url, "db", "downgrade", "--revision", "0010")
    assert done.exit_code == 2, done.output
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"from {HEAD} to 0010 undoes {HEAD} (" in done.stderr
    assert "0013 (Page sessions are stored)" in done.stderr
    assert "dropped with their data" in done.stderr and "--yes" in done.stderr
    assert schema_revision(fresh_url) == HEAD
    assert "page_sessions" in tables(fresh_url)


def test_downgrade_keeps_the_rows_of_the_tables_the_older_revision_has(fresh_url):
    engine = make_engine(fresh_url)
    try:
        key_id, _ = create_key(engine, "admin", "night shift")
        now = datetime(2030, 1, 2, 3, 4, 5)
        with engine.begin() as conn:
            conn.execute(
                decisions.insert().values(
                    decision_id="d-kept",
                    interaction_id="i-kept",
                    customer_id="c-kept",
                    occurred_at=now,
                    created_at=now,
                    features={"tenure_months": 2.0},
                    suggested_activity="none",
                    propensity=1.0,
                    model_version="m1",
                    openness=0.5,
                    response={"decision_id": "d-kept"},
                )
            )
    finally:
        engine.dispose()

    done = vea(fresh_url, "db", "downgrade", "--revision", "0010", "--yes")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith(f"database at revision 0010 (from {HEAD})")
    assert schema_revision(fresh_url) == "0010"
    present = tables(fresh_url)
    assert "page_sessions" not in present  # 0013's
    assert {"api_keys", "decisions", "rate_limit_buckets", "surveys"} <= present

    engine = make_engine(fresh_url)
    try:
        with engine.connect() as conn:
            keys = conn.execute(sa.text("SELECT key_id, label FROM api_keys")).all()
            kept = conn.execute(sa.text("SELECT customer_id, model_version FROM decisions")).all()
    finally:
        engine.dispose()
    assert [tuple(k) for k in keys] == [(key_id, "night shift")]
    assert [tuple(d) for d in kept] == [("c-kept", "m1")]

    again = vea(fresh_url, "db", "downgrade", "--revision", "0010", "--yes")
    assert again.exit_code == 0 and "(already)" in again.stdout, again.output
    up = vea(fresh_url, "db", "upgrade")
    assert up.exit_code == 0 and f"database at revision {HEAD} (from 0010)" in up.stdout


def test_downgrade_refuses_an_unknown_or_higher_revision(tmp_path):
    url = f"sqlite:///{tmp_path / 'vea.db'}"
    upgrade(url, "0008")
    unknown = vea(url, "db", "downgrade", "--revision", "9999", "--yes")
    assert unknown.exit_code == 2 and "no migration '9999'" in unknown.stderr
    higher = vea(url, "db", "downgrade", "--revision", "0010", "--yes")
    assert higher.exit_code == 1, higher.output
    assert "at revision 0008, older than 0010" in higher.stderr
    assert schema_revision(url) == "0008"
