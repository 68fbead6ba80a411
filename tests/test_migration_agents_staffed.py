"""Migration 0012 adds ``agents_staffed`` to the stored availability reports, on SQLite and
PostgreSQL, without losing a report stored before it (read as "not sent"), and undoes."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from service.db import downgrade, make_engine, upgrade

REPORT = {
    "pool_id": "general",
    "agents_free": 0,
    "queue_length": 3,
    "expected_wait_s": None,
    "reported_at": datetime(2026, 11, 27, 9, 30),
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'staffed.db'}"
    cluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"vea_staffed_{tmp_path.name[-12:].lower()}")


def _reports(url: str) -> list[dict]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            # typed, so SQLite's stored text reads back as the datetime written
            query = sa.text("SELECT * FROM pool_availability").columns(reported_at=sa.DateTime())
            rows = conn.execute(query)
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def test_a_report_stored_before_0012_is_kept_and_reads_as_no_staffed_count(fresh_url):
    upgrade(fresh_url, "0011")
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO pool_availability (pool_id, agents_free, queue_length, "
                    "expected_wait_s, reported_at) VALUES (:pool_id, :agents_free, "
                    ":queue_length, :expected_wait_s, :reported_at)"
                ),
                REPORT,
            )
    finally:
        engine.dispose()
    upgrade(fresh_url, "0012")
    assert _reports(fresh_url) == [{**REPORT, "agents_staffed": None}]
    downgrade(fresh_url, "0011")
    assert _reports(fresh_url) == [REPORT]
