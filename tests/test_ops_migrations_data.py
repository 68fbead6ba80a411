"""`vea db upgrade` on a database built by the oldest migration and filled with rows, up
to head, on SQLite and PostgreSQL: every row survives as written, the columns added
later are empty, and the service reads the old rows (an old key authenticates, an old
decision is replayed and takes its outcome)."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from service.auth import hash_key
from service.db import make_engine, upgrade
from tests.test_migrations import schema_differences

OLDEST = "0001"
KEY = "vea_0123456789ab_old-key-from-the-first-release-000000000000000000"
WHEN = datetime(2025, 3, 1, 12, 30)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    cluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"vea_old_{tmp_path.name[-12:].lower()}")


def _decision_response(decision_id: str, interaction_id: str, version: str) -> dict:
    return {
        "decision_id": decision_id,
        "interaction_id": interaction_id,
        "model_version": version,
        "suggested_activity": "validate_purchase",
        "degraded": False,
    }


def _fill_oldest_schema(url: str) -> None:
    """Rows as the first release wrote them (only the columns migration 0001 made)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (key_id, key_hash, role, label, created_at) "
                    "VALUES ('0123456789ab', :hash, 'admin', 'first release', :at)"
                ),
                {"hash": hash_key(KEY), "at": WHEN},
            )
            decisions = sa.table(
                "decisions",
                *(
                    sa.column(name)
                    for name in [
                        "decision_id",
                        "interaction_id",
                        "customer_id",
                        "occurred_at",
                        "created_at",
                        "channel",
                        "issue_type",
                        "language",
                        "features",
                        "suggested_activity",
                        "propensity",
                        "pool_id",
                        "model_version",
                        "experiment_arm",
                        "degraded",
                        "openness",
                        "response",
                    ]
                ),
            )
            json_type = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
            decisions.c.features.type = json_type
            decisions.c.response.type = json_type
            for n in range(3):
                conn.execute(
                    decisions.insert().values(
                        decision_id=f"d{n:031d}",
                        interaction_id=f"old-interaction-{n}",
                        customer_id=f"old-customer-{n % 2}",
                        occurred_at=WHEN,
                        created_at=WHEN,
                        channel="voice",
                        issue_type="inquiry",
                        language="ja",
                        features={"tenure_months": 2 + n, "channel": "voice"},
                        suggested_activity="validate_purchase",
                        propensity=1.0,
                        pool_id="general",
                        model_version="old-model",
                        experiment_arm="treatment",
                        degraded=False,
                        openness=0.5 + n / 10,
                        response=_decision_response(
                            f"d{n:031d}", f"old-interaction-{n}", "old-model"
                        ),
                    )
                )
            conn.execute(
                sa.text(
                    "INSERT INTO outcomes (decision_id, activity, offered, accepted, ve_success,"
                    " csat, agent_id, occurred_at, recorded_at, payload) VALUES (:d, "
                    "'validate_purchase', :t, :t, :t, 5, 'agent-1', :at, :at, :payload)"
                ),
                {
                    "d": f"d{0:031d}",
                    "t": True,
                    "at": WHEN,
                    "payload": '{"offered": true, "accepted": true, "csat": 5}',
                },
            )
            conn.execute(
                sa.text(
                    "INSERT INTO customer_events (event_id, customer_id, type, occurred_at, "
                    "value, recorded_at, payload) VALUES ('e-1', 'old-customer-0', 'upgrade', "
                    ":at, 30.0, :at, :payload)"
                ),
                {"at": WHEN, "payload": '{"type": "upgrade", "value": 30.0}'},
            )
    finally:
        engine.dispose()


def _rows(url: str) -> dict[str, list[dict]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: [
                    dict(row._mapping)
                    for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1"))  # nosec B608 # fixed names
                ]
                for table in ("api_keys", "decisions", "outcomes", "customer_events")
            }
    finally:
        engine.dispose()


def test_upgrade_from_the_oldest_schema_keeps_every_row(old_url, monkeypatch):
    upgrade(old_url, OLDEST)
    _fill_oldest_schema(old_url)
    before = _rows(old_url)

    from service.cli import db

    monkeypatch.setenv("VEA_DATABASE_URL", old_url)
    result = CliRunner().invoke(db, ["upgrade"])
    assert result.exit_code == 0, result.output

    after = _rows(old_url)
    for table, rows in before.items():
        assert len(after[table]) == len(rows), table
        for old, new in zip(rows, after[table], strict=True):
            assert {k: new[k] for k in old} == old, table  # every value as written
    added = {"request_hash", "earlier_request_hashes", "best_activity", "shadow_version"}
    assert all(row[c] is None for row in after["decisions"] for c in added)
    assert all(row["nps"] is None and row["ces"] is None for row in after["outcomes"])

    engine = make_engine(old_url)
    try:
        with engine.connect() as conn:
            assert schema_differences(conn) == []
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    upgrade(old_url)  # a second upgrade is a no-op
    assert _rows(old_url) == after


def test_the_service_reads_rows_from_the_oldest_schema(old_url, registry_dir, compile_cache):
    from service.app import create_app

    upgrade(old_url, OLDEST)
    _fill_oldest_schema(old_url)
    upgrade(old_url)
    app = create_app(
        {
            "database_url": old_url,
            "registry": str(registry_dir),
            "compile_cache": str(compile_cache),
            "access_log": False,
            "rate_limit_per_s": 0.0,
        }
    )
    client = app.test_client()
    auth = {"Authorization": f"Bearer {KEY}"}
    assert client.get("/v1/models", headers=auth).status_code == 200  # the old key works
    # An old decision (no request hash) is replayed, not decided again.
    again = client.post(
        "/v1/decisions",
        json={
            "interaction_id": "old-interaction-1",
            "customer": {"customer_id": "old-customer-1", "tenure_months": 3},
            "contact": {"channel": "voice", "issue_type": "inquiry", "language": "ja"},
        },
        headers=auth,
    )
    assert again.status_code == 200, again.json
    assert again.json["decision_id"] == f"d{1:031d}"
    outcome = client.post(f"/v1/decisions/d{1:031d}/outcome", json={"offered": False}, headers=auth)
    assert outcome.status_code in (200, 201), outcome.json
    app.extensions["vea"].engine.dispose()
