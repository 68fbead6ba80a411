"""An unexpected error (a bug) is logged with its traceback's frames (file, line,
function) and exception types, a database error with its class (SQLSTATE, SQLite's
result code), but no message: a message can quote the data the code was working on (a
customer id in a ValueError, a failed statement's ``[parameters: ...]``, PostgreSQL's
QUERY and CONTEXT lines). The API still answers the design's 500 body without details;
gunicorn's error log and the ``vea`` CLI leave the messages out the same way."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_api_decisions import decision_body

from service.logs import scrubbed_traceback
from tests.conftest import suite_app

ROOT = Path(__file__).resolve().parents[1]
INTERNAL_ERROR = {"error": {"code": "internal_error", "message": "internal error", "fields": {}}}


def secret_id() -> str:
    return f"C-SECRET-{uuid.uuid4().hex[:10]}"


def unhandled_error_line(stream: io.StringIO) -> dict:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    errors = [line for line in lines if line["msg"] == "unhandled error"]
    assert len(errors) == 1, lines
    return errors[0]


def test_a_bug_on_the_decision_path_is_logged_without_its_message(
    make_app, captured_logs, monkeypatch, new_id
):
    from service import history

    def failing_fetch(conn, customer_id, until, days):
        raise ValueError(f"customer {customer_id}")

    monkeypatch.setattr(history, "fetch", failing_fetch)
    app = make_app()
    from service.auth import create_key

    key = create_key(app.extensions["vea"].engine, "desktop")[1]
    customer = secret_id()
    response = app.test_client().post(
        "/v1/decisions",
        json=decision_body(new_id, customer_id=customer),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 500
    assert response.json == INTERNAL_ERROR
    line = unhandled_error_line(captured_logs)
    assert customer not in captured_logs.getvalue()
    assert line["error_type"] == "ValueError" and line["route"] == "/v1/decisions"
    exc = line["exc"]
    assert exc.startswith("Traceback (most recent call last):")
    assert f'File "{ROOT / "service" / "decisions.py"}", line ' in exc
    assert ", in decide\n" in exc and ", in _history\n" in exc
    assert "in test_a_bug_on_the_decision_path_is_logged_without_its_message.<locals>" in exc
    assert exc.endswith("\nValueError (message not logged)")


@pytest.fixture
def refusing_database(postgres, tmp_path, registry_dir, compile_cache):
    """An app on a database of its own, whose decisions table refuses every insert with a
    real PostgreSQL error quoting the customer id (message, QUERY and CONTEXT lines)."""
    from service.db import make_engine, upgrade

    url = postgres.create_database(f"vea_scrub_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse_decision() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN EXECUTE format('SELECT %%L::integer', NEW.customer_id); RETURN NEW; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_decision BEFORE INSERT ON decisions "
            "FOR EACH ROW EXECUTE FUNCTION refuse_decision()"
        )
    engine.dispose()
    app = suite_app(url, registry_dir, compile_cache)
    yield app
    app.extensions["vea"].close()


@pytest.mark.postgres
def test_a_database_error_is_logged_by_its_class_without_the_statements_data(
    refusing_database, captured_logs, new_id
):
    from service.auth import create_key

    app = refusing_database
    key = create_key(app.extensions["vea"].engine, "desktop")[1]
    customer = secret_id()
    response = app.test_client().post(
        "/v1/decisions",
        json=decision_body(new_id, customer_id=customer),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 500
    assert response.json == INTERNAL_ERROR
    text = captured_logs.getvalue()
    assert customer not in text
    exc = unhandled_error_line(captured_logs)["exc"]
    # The driver's error, then SQLAlchemy's wrapping it: types and SQLSTATE only.
    assert "psycopg.errors.InvalidTextRepresentation [SQLSTATE 22P02] (message not logged)" in exc
    assert exc.endswith("\nsqlalchemy.exc.DataError [SQLSTATE 22P02] (message not logged)")
    assert "The above exception was the direct cause of the following exception:" in exc
    assert f'File "{ROOT / "service" / "driver_sql.py"}", line ' in exc
    for data in ("[parameters", "[SQL:", "QUERY", "CONTEXT", "integer"):
        assert data not in exc


def test_an_error_past_the_error_handlers_logs_the_route_not_the_path(
    make_app, captured_logs, keys_for
):
    """An after-request hook that fails reaches Flask's own ``log_exception``, whose line
    names the raw path ("Exception on /v1/decisions/<the id> [GET]")."""
    app = make_app()
    app.testing = False  # Flask's 500 path, as in production (no re-raise)
    failed = []

    @app.after_request
    def fail_once(response):
        if not failed:
            failed.append(True)
            from flask import request

            raise RuntimeError(f"finishing {request.path}")
        return response

    decision_id = secret_id()
    response = app.test_client().get(f"/v1/decisions/{decision_id}", headers=keys_for(app))
    assert response.status_code == 500
    assert response.json == INTERNAL_ERROR
    assert decision_id not in captured_logs.getvalue()
    line = unhandled_error_line(captured_logs)
    assert line["route"] == "/v1/decisions/<decision_id>" and line["method"] == "GET"
    assert line["exc"].endswith("\nRuntimeError (message not logged)")
    assert "<locals>.fail_once\n" in line["exc"]


@pytest.fixture
def keys_for():
    from service.auth import create_key

    def headers(app) -> dict[str, str]:
        key = create_key(app.extensions["vea"].engine, "desktop")[1]
        return {"Authorization": f"Bearer {key}"}

    return headers


def test_a_sqlite_error_is_named_by_its_result_code(tmp_path):
    from service.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'scrub.db'}")
    customer = secret_id()
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (customer_id VARCHAR(64) PRIMARY KEY)")
        conn.execute(sa.text("INSERT INTO t VALUES (:c)"), {"c": customer})
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (:c)"), {"c": customer})
    except sa.exc.IntegrityError as exc:
        text = scrubbed_traceback(exc)
    engine.dispose()
    assert customer not in text and "INSERT" not in text
    assert "sqlite3.IntegrityError [SQLITE_CONSTRAINT_PRIMARYKEY] (message not logged)" in text
    assert text.endswith(
        "sqlalchemy.exc.IntegrityError [SQLITE_CONSTRAINT_PRIMARYKEY] (message not logged)"
    )


def test_a_chain_is_written_oldest_first_as_python_writes_it():
    def recurse(depth: int) -> None:
        if depth == 0:
            raise KeyError("customer-17")
        recurse(depth - 1)

    try:
        try:
            recurse(10)
        except KeyError:
            raise RuntimeError("while storing customer-17") from None
    except RuntimeError as exc:
        hidden_context = scrubbed_traceback(exc)
    try:
        try:
            recurse(10)
        except KeyError:
            raise RuntimeError("while storing customer-17")  # noqa: B904 - the context
    except RuntimeError as exc:
        with_context = scrubbed_traceback(exc)
    assert "customer-17" not in hidden_context + with_context
    assert hidden_context.count("Traceback") == 1  # `from None`: the context is left out
    first, separator, last = with_context.partition(
        "\n\nDuring handling of the above exception, another exception occurred:\n\n"
    )
    assert first.endswith("\nKeyError (message not logged)")
    assert last.endswith("\nRuntimeError (message not logged)")
    # A deep recursion: three of the same frame, then a count (as Python writes it).
    assert (
        first.count(
            ", in test_a_chain_is_written_oldest_first_as_python_writes_it.<locals>.recurse"
        )
        == 4
    )
    assert "  [Previous line repeated 7 more times]" in first


def test_gunicorns_error_log_leaves_the_messages_out(tmp_path):
    """gunicorn's own error lines (a request its worker could not handle) go through the
    logging config of service/gunicorn_conf.py, in the service's JSON lines."""
    customer = secret_id()
    script = """
import sys
from gunicorn.config import Config
import service.gunicorn_conf as conf
from service.logs import GunicornLogger

cfg = Config()
cfg.set("logconfig_dict", conf.logconfig_dict)
cfg.set("errorlog", conf.errorlog)
logger = GunicornLogger(cfg)
secret = sys.argv[1]
try:
    raise ValueError("customer " + secret)
except ValueError:
    logger.exception("Error handling request %s %s", "GET", "/v1/customers/" + secret)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEA_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(TMPDIR=str(tmp_path), VEA_REGISTRY=str(tmp_path / "registry"))
    done = subprocess.run(
        [sys.executable, "-c", script, customer],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert customer not in done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["msg"] for line in lines] == ["Error handling request (path not logged)"]
    assert lines[0]["exc"].endswith(
        'File "<string>", line 13, in <module>\nValueError (message not logged)'
    )


def run_vea(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``vea ARGS`` through its entry point (``training.cli:main``), as a shell runs it."""
    from training.cli import main

    monkeypatch.setattr(sys, "argv", ["vea", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    captured = capsys.readouterr()
    return stopped.value.code, captured.out + captured.err


def test_the_cli_reports_a_bug_without_its_message(monkeypatch, capsys, tmp_path):
    from models.registry import Registry

    customer = secret_id()

    def failing_versions(self):
        raise RuntimeError(f"customer {customer}")

    monkeypatch.setattr(Registry, "versions", failing_versions)
    code, output = run_vea(monkeypatch, capsys, "models", "list", "--registry", str(tmp_path))
    assert code == 1
    assert customer not in output
    assert output.startswith("Traceback (most recent call last):")
    assert f'File "{ROOT / "training" / "cli.py"}", line ' in output
    assert "RuntimeError (message not logged)\nError: unexpected RuntimeError (a bug" in output


@pytest.mark.postgres
def test_the_cli_reports_a_database_error_without_the_statements_data(
    postgres, monkeypatch, capsys
):
    from service.db import make_engine, upgrade

    url = postgres.create_database(f"vea_scrub_cli_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        # Statement-level: fires with no row to delete, the customer id in the parameters
        # (an erasure deletes the customer's events by id whatever else it finds).
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse_erasure() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'erasure refused' USING ERRCODE = 'XX000'; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_erasure BEFORE DELETE ON customer_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION refuse_erasure()"
        )
    engine.dispose()
    monkeypatch.setenv("VEA_DATABASE_URL", url)
    customer = secret_id()
    code, output = run_vea(monkeypatch, capsys, "db", "erase-customer", customer, "--yes")
    assert code == 1
    assert customer not in output
    assert "sqlalchemy.exc.InternalError [SQLSTATE XX000] (message not logged)" in output
    assert "[parameters" not in output and "erasure refused" not in output
