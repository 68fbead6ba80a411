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
    # The error's class is named; no message: not even the statement's text.
    assert "sqlalchemy.exc.IntegrityError [" in line["exc"] and "INSERT INTO t" not in line["exc"]
    assert SECRET not in text, line["exc"]


def test_gunicorns_own_messages_do_not_quote_the_raw_request(capfd):
    from gunicorn.config import Config

    from service.logs import GunicornLogger

    logger = GunicornLogger(Config())
    secret = "/v1/customers/" + SECRET + "/events"
    logger.warning(f"Invalid request from ip=10.0.0.1: Invalid HTTP request line: 'GET {secret}'")
    logger.warning(f"Invalid request from ip=10.0.0.1: Invalid HTTP Header: '{SECRET}: x'")
    logger.warning("Invalid request from ip=10.0.0.1: Request Line is too large (5000 > 4094)")
    try:
        raise RuntimeError("worker error")
    except RuntimeError:
        logger.exception("Error handling request %s %s", "GET", secret)
    err = capfd.readouterr().err
    assert SECRET not in err
    assert "Invalid HTTP request line (request text not logged)" in err
    assert "Request Line is too large (5000 > 4094)" in err  # no request text: kept whole
    assert "Error handling request (path not logged)" in err and "worker error" in err


def test_served_refusals_of_malformed_requests_log_no_path(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEA_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        VEA_BIND=f"127.0.0.1:{port}",
        VEA_WORKERS="1",
        VEA_DATABASE_URL=f"sqlite:///{tmp_path / 'vea.db'}",
        VEA_REGISTRY=str(tmp_path / "registry"),
        VEA_COMPILE_CACHE="",
        VEA_LOG_LEVEL="DEBUG",  # gunicorn's debug lines follow it: none may quote a path
    )
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        for raw, status in (
            (f"GET /v1/customers/{SECRET}\x7f/events HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (f"GET /v1/customers/{SECRET}/events HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400),
            (f"POST /v1/customers/{SECRET}/events HTTP/1.1\r\nHost: x\r\n\r\n", 401),
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(raw.encode("latin-1"))
                assert sock.recv(100).startswith(f"HTTP/1.1 {status}".encode())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    text = (tmp_path / "gunicorn.log").read_text()
    assert "Invalid request from ip=127.0.0.1" in text
    assert '"level":"debug"' in text and "/v1/customers/<customer_id>/events" in text
    assert SECRET not in text


def test_python_warnings_in_a_worker_are_json_lines(tmp_path):
    import os
    import subprocess
    import sys

    script = (
        "import logging.config, warnings\n"
        "import service.gunicorn_conf as conf\n"
        "logging.config.dictConfig(conf.logconfig_dict)\n"
        "conf.post_worker_init(None)\n"
        "warnings.warn('a library changes its defaults', FutureWarning)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEA_")}
    env.update(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        VEA_SHARED_STATE_DIR=str(tmp_path / "shared"),
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines, "the warning was not written at all"
    records = [json.loads(line) for line in lines]  # every line one JSON object
    assert any("a library changes its defaults" in r["msg"] for r in records)
