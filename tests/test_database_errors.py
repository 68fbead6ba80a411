"""Which database errors are an outage (503 + Retry-After, decisions degraded) and which
are bugs (500, logged with the traceback): a database not migrated or missing a grant
is the former, a statement the database cannot parse the latter."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from service.db import is_unavailable, make_engine


def error_of(engine: sa.Engine, sql: str) -> sa.exc.DBAPIError:
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as raised:
        conn.exec_driver_sql(sql)
    return raised.value


@pytest.mark.postgres
def test_a_statement_postgresql_cannot_parse_is_a_bug_not_an_outage(postgresql_url):
    """Every ProgrammingError counted as "database unavailable": a report with a SQL
    syntax error answered 503 "retry later" and its traceback was never logged."""
    engine = make_engine(postgresql_url)
    try:
        assert not is_unavailable(error_of(engine, "SELEC 1"))  # 42601 syntax_error
        assert is_unavailable(error_of(engine, "SELECT * FROM no_such_table"))  # not migrated
        assert is_unavailable(error_of(engine, "SELECT no_such_column FROM decisions"))
    finally:
        engine.dispose()


def test_sqlite_keeps_its_rules(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        # SQLite says "no such table" as an OperationalError: not migrated, an outage.
        assert is_unavailable(error_of(engine, "SELECT * FROM no_such_table"))
    finally:
        engine.dispose()
