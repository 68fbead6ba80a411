"""/readyz on PostgreSQL tells a role that may read but not write: every decision would
be answered degraded and unstored, every outcome 503, while the probe said ready (it
only read the schema revision). Now it says which grants are missing, and is ready again
once they are given."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from conftest import suite_app
from test_deletion_privileges import _superuser, table_privileges_only  # noqa: F401

from service.auth import create_key
from service.db import REQUEST_WRITES, missing_privileges


def _database(url: str) -> str:
    return sa.make_url(url).database


@pytest.mark.postgres
def test_readyz_names_the_missing_grants_until_they_are_given(
    table_privileges_only,  # noqa: F811
    postgres,
    registry_dir,
    compile_cache,
    new_id,
):
    app = suite_app(table_privileges_only, registry_dir, compile_cache)
    name, role = _database(table_privileges_only), sa.make_url(table_privileges_only).username
    try:
        client = app.test_client()
        assert client.get("/readyz").status_code == 200, client.get("/readyz").json
        desk = {"Authorization": f"Bearer {create_key(app.extensions['vea'].engine, 'desktop')[1]}"}
        with _superuser(postgres, name) as conn:
            conn.execute(f"REVOKE INSERT ON decisions FROM {role}")
            conn.execute(f"REVOKE USAGE ON SEQUENCE audit_events_id_seq FROM {role}")

        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.json
        database = ready.json["checks"]["database"]
        assert database["ok"] is False
        assert "INSERT on decisions" in database["detail"]
        assert "USAGE on audit_events's id sequence" in database["detail"]
        assert "UPDATE on decisions" not in database["detail"]  # only what is missing
        assert any("grant them" in reason for reason in ready.json["reasons"])
        assert ready.json["degraded"] is True

        # What the probe warns of: the decision answers, unstored, and the log names the
        # driver's error (a grant), not only SQLAlchemy's wrapper class.
        body = {
            "interaction_id": new_id("i-"),
            "customer": {"customer_id": new_id("c-"), "tenure_months": 4},
            "contact": {"channel": "voice", "issue_type": "how_to"},
        }
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # however the suite captures stderr
        logging.getLogger("vea.decisions").addHandler(handler)
        try:
            answer = client.post("/v1/decisions", json=body, headers=desk)
        finally:
            logging.getLogger("vea.decisions").removeHandler(handler)
        assert answer.json["degraded"] is True, answer.json
        errors = [getattr(record, "error", None) for record in records]
        assert "InsufficientPrivilege" in errors, errors

        with _superuser(postgres, name) as conn:
            conn.execute(f"GRANT INSERT ON decisions TO {role}")
            conn.execute(f"GRANT USAGE ON SEQUENCE audit_events_id_seq TO {role}")
        assert client.get("/readyz").status_code == 200
    finally:
        app.extensions["vea"].close()


@pytest.mark.postgres
def test_every_request_write_is_checked(table_privileges_only, postgres):  # noqa: F811
    """Each table and privilege of REQUEST_WRITES is reported once revoked (a misspelt
    table name would raise, a privilege never asked would pass unnoticed)."""
    name, role = _database(table_privileges_only), sa.make_url(table_privileges_only).username
    engine = sa.create_engine(table_privileges_only)
    try:
        with engine.connect() as conn:
            assert missing_privileges(conn) == []
        with _superuser(postgres, name) as su:
            su.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
            su.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}")
        with engine.connect() as conn:
            missing = missing_privileges(conn)
        expected = [f"{p} on {t}" for t, privileges in REQUEST_WRITES.items() for p in privileges]
        expected += [
            "USAGE on customer_events's id sequence",
            "USAGE on audit_events's id sequence",
        ]
        assert missing == expected
    finally:
        engine.dispose()


def test_sqlite_has_no_role_to_check(make_app):
    engine = make_app().extensions["vea"].engine
    if engine.dialect.name != "sqlite":
        pytest.skip("the PostgreSQL role is checked above")
    with engine.connect() as conn:
        assert missing_privileges(conn) == []
