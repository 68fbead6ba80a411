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


def _compare_type(context, inspected, metadata_column, inspected_type, metadata_type):
    """Alembic's type comparison, except a VARCHAR's length on SQLite: SQLite does not
    enforce it, and migration 0011 leaves it there (altering a column copies the table)."""
    if (
        context.dialect.name == "sqlite"
        and isinstance(inspected_type, sa.String)
        and isinstance(metadata_type, sa.String)
    ):
        return False
    return None  # the default comparison


def schema_differences(conn: sa.Connection) -> list:
    """What the database's schema lacks or has beyond ``service.db.metadata``."""
    context = MigrationContext.configure(conn, opts={"compare_type": _compare_type})
    return compare_metadata(context, metadata)


def _differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return schema_differences(conn)
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
    # exports and reports select periods by the contact's time; the dashboard's data
    # version reads the latest created_at (0015: 0005 dropped it when nothing read it)
    assert "ix_decisions_occurred_at" in _indexes(fresh_url)
    assert "ix_decisions_created_at" in _indexes(fresh_url)

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


def test_upgrade_from_0007_keeps_keys_that_never_expire(fresh_url, registry_dir, compile_cache):
    """Migration 0008 on a database with keys: they survive, never expire and still
    authenticate; the audit log starts empty."""
    from datetime import datetime

    from service.app import create_app
    from service.auth import hash_key

    key = "vea_0123456789ab_a-key-made-before-expiry-existed-000000000000000"
    upgrade(fresh_url, "0007")
    engine = make_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO api_keys (key_id, key_hash, role, label, created_at) "
                "VALUES ('0123456789ab', :hash, 'desktop', 'before 0008', :at)"
            ),
            {"hash": hash_key(key), "at": datetime(2026, 1, 2, 3, 4, 5)},
        )
    engine.dispose()

    upgrade(fresh_url)
    assert _differences(fresh_url) == []
    engine = make_engine(fresh_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM api_keys")).mappings().one()
        assert conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar() == 0
    engine.dispose()
    assert row["label"] == "before 0008" and row["expires_at"] is None

    app = create_app(
        {
            "database_url": fresh_url,
            "registry": str(registry_dir),
            "compile_cache": str(compile_cache),
            "access_log": False,
        }
    )
    try:
        answer = app.test_client().get("/v1/pools", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.get_json()
    finally:
        app.extensions["vea"].close()

    downgrade(fresh_url, "0007")  # and back: the key is still there
    engine = make_engine(fresh_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT key_id FROM api_keys")).scalar() == "0123456789ab"
        assert "audit_events" not in sa.inspect(conn).get_table_names()
    engine.dispose()


def test_upgrade_from_0008_adds_surveys_beside_stored_outcomes(fresh_url):
    """Migration 0009 on a database with a decision and its outcome: both stay, the
    surveys table starts empty and takes answers for the decision; undone, it is gone
    and the outcome is untouched."""
    from datetime import datetime

    upgrade(fresh_url, "0008")
    engine = make_engine(fresh_url)
    at = datetime(2026, 1, 2, 3, 4, 5)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO decisions (decision_id, interaction_id, customer_id, occurred_at, "
                "created_at, features, suggested_activity, propensity, model_version, "
                "openness, response) VALUES ('d1', 'i1', 'c1', :at, :at, '{}', "
                "'educate_usage', 1.0, 'm1', 0.5, '{}')"
            ),
            {"at": at},
        )
        conn.execute(
            sa.text(
                "INSERT INTO outcomes (decision_id, activity, offered, csat, occurred_at, "
                "recorded_at, payload) VALUES ('d1', 'educate_usage', true, 4, :at, :at, '{}')"
            ),
            {"at": at},
        )
    engine.dispose()

    upgrade(fresh_url)
    assert _differences(fresh_url) == []
    engine = make_engine(fresh_url)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM surveys")).scalar() == 0
        conn.execute(
            sa.text(
                "INSERT INTO surveys (decision_id, ves_confidence, recorded_at, updated_at) "
                "VALUES ('d1', 7, :at, :at)"
            ),
            {"at": at},
        )
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT csat FROM outcomes")).scalar() == 4
    engine.dispose()

    downgrade(fresh_url, "0008")
    engine = make_engine(fresh_url)
    with engine.connect() as conn:
        assert "surveys" not in sa.inspect(conn).get_table_names()
        assert conn.execute(sa.text("SELECT csat FROM outcomes")).scalar() == 4
    engine.dispose()


@pytest.mark.postgres
def test_an_invalid_index_left_by_a_failed_concurrent_build_is_built_again(postgres, tmp_path):
    """The operator builds 0015's index CONCURRENTLY first, as its docstring says, and the
    build fails (here: a unique index over equal times), leaving an INVALID index of that
    name. The upgrade must not keep it: the planner ignores it, and every dashboard view
    would read the decisions whole again."""
    from datetime import datetime

    url = postgres.create_database(f"vea_invalid_ix_{tmp_path.name[-12:].lower()}")
    upgrade(url, "0014")
    engine = make_engine(url)
    at = datetime(2026, 1, 2, 3, 4, 5)
    with engine.begin() as conn:
        for n in (1, 2):
            conn.execute(
                sa.text(
                    "INSERT INTO decisions (decision_id, interaction_id, customer_id, "
                    "occurred_at, created_at, features, suggested_activity, propensity, "
                    "model_version, openness, response) VALUES (:id, :id, 'c1', :at, :at, "
                    "'{}', 'educate_usage', 1.0, 'm1', 0.5, '{}')"
                ),
                {"id": f"d{n}", "at": at},
            )
    with (
        engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        pytest.raises(sa.exc.IntegrityError),
    ):
        conn.exec_driver_sql(
            "CREATE UNIQUE INDEX CONCURRENTLY ix_decisions_created_at ON decisions (created_at)"
        )

    def valid() -> bool:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c "
                    "ON c.oid = i.indexrelid WHERE c.relname = 'ix_decisions_created_at'"
                )
            ).scalar_one()

    try:
        assert not valid()
        upgrade(url)
        assert valid()
        assert _differences(url) == []  # the declared index: not unique
    finally:
        engine.dispose()
