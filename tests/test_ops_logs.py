"""Logs: one JSON object per line, and nothing of a failed SQL statement's data (its
bound values, PostgreSQL's DETAIL line with the row or key) in a logged traceback: they
hold customer, interaction and agent ids."""

from __future__ import annotations

import io
import json
import logging

import pytest
import sqlalchemy as sa

from service.db import make_engine
from service.logs import JsonFormatter

SECRET = "customer-secret-17"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'logs.db'}"
    cluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"vea_logs_{tmp_path.name[-12:].lower()}")


def _logged(fail) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("vea.test_ops_logs")
    logger.addHandler(handler)
    try:
        try:
            fail()
        except Exception:
            logger.exception("unhandled error")
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize("violation", ["unique", "check"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_a_failed_statement_is_logged_without_its_data(url, violation, wrapped):
    engine = make_engine(url)
    value = SECRET  # never a literal on a line a traceback would quote
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE t (customer_id VARCHAR(64) PRIMARY KEY, n INTEGER CHECK (n > 0))"
        )
        conn.execute(sa.text("INSERT INTO t VALUES (:c, 1)"), {"c": value})

    def fail() -> None:
        row = {"c": value if violation == "unique" else value + "-2", "n": 1}
        if violation == "check":
            row["n"] = -1
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO t VALUES (:c, :n)"), row)
        except sa.exc.IntegrityError as exc:
            if wrapped:  # as a caller re-raising it would
                raise RuntimeError("could not store the decision") from exc
            raise

    text = _logged(fail)
    engine.dispose()
    lines = text.splitlines()
    assert len(lines) == 1  # the traceback is inside the one JSON object
    line = json.loads(lines[0])
    assert "IntegrityError" in line["exc"] and "INSERT INTO t" in line["exc"]
    assert SECRET not in text, line["exc"]
