"""The Alembic migrations build exactly the schema the code declares (service/db.py), on
SQLite and on PostgreSQL, and every one of them can be undone and redone."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.db import downgrade, make_engine, metadata, upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    cluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"vea_migrations_{tmp_path.name[-12:].lower()}")


def _differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def _indexes(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {ix["name"] for ix in sa.inspect(engine).get_indexes("decisions")}
    finally:
        engine.dispose()


def test_migrations_build_the_declared_schema_and_undo_cleanly(fresh_url):
    upgrade(fresh_url)
    assert _differences(fresh_url) == []
    # exports and reports select periods by the contact's time; nothing reads created_at
    assert "ix_decisions_occurred_at" in _indexes(fresh_url)
    assert "ix_decisions_created_at" not in _indexes(fresh_url)

    downgrade(fresh_url, "0004")
    assert "ix_decisions_created_at" in _indexes(fresh_url)
    # An operator may build the new index beforehand (CONCURRENTLY on a large table).
    engine = make_engine(fresh_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_decisions_occurred_at ON decisions (occurred_at)")
    engine.dispose()
    upgrade(fresh_url)
    assert _differences(fresh_url) == []
    downgrade(fresh_url, "base")
    upgrade(fresh_url)
    assert _differences(fresh_url) == []


def test_a_period_export_uses_the_time_index(tmp_path):
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT decision_id FROM decisions "
                "WHERE occurred_at >= '2026-01-01' AND occurred_at < '2026-02-01'"
            ).fetchall()
    finally:
        engine.dispose()
    assert any("ix_decisions_occurred_at" in str(row) for row in plan), plan
