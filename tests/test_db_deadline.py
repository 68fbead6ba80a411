"""A hung database must not freeze the service (VEA_DB_TIMEOUT_S).

PostgreSQL hung but reachable: every process of a private cluster SIGSTOPped (the kernel
still takes connections and ACKs what is sent, so no TCP or libpq timeout ends the wait).
A decision answers degraded and an outcome 503 + Retry-After within the deadline, /readyz
says the database did not answer in time, and once the server runs again the service
recovers by itself. SQLite: another connection holding the write lock makes a decision
wait the deadline (not the 10 s busy timeout) before it answers degraded.

Every stopped process is continued in a ``finally``: a cluster is never left stopped.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psutil
import pytest

from tests.conftest import PostgresCluster, postgres_bindir, suite_app

DEADLINE_S = 1.0
# The request's own work, the test client, and a loaded 2-core machine.
SLACK_S = 1.5


# ------------------------------------------------------------------ helpers
def cluster_processes(cluster: PostgresCluster) -> list[int]:
    """The postmaster and every process it started (backends, checkpointer, ...)."""
    postmaster = psutil.Process(cluster.postmaster_pid())
    return [postmaster.pid, *(p.pid for p in postmaster.children(recursive=True))]


@contextmanager
def stopped(cluster: PostgresCluster) -> Iterator[None]:
    """The whole cluster SIGSTOPped for the block, and always continued after it."""
    pids = cluster_processes(cluster)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in cluster_processes(cluster) + pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def decision_body(customer: str | None = None) -> dict:
    return {
        "interaction_id": uuid.uuid4().hex,
        "customer": {"customer_id": customer or uuid.uuid4().hex, "tenure_months": 3},
        "contact": {"channel": "chat", "issue_type": "inquiry"},
    }


OUTCOME = {"offered": True, "accepted": True, "ves_confidence": 6, "ves_ability": 5}


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def recovered(client, headers, within_s: float = 20.0) -> tuple[dict, float]:
    """The first stored (not degraded) decision after the database runs again."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        r = client.post("/v1/decisions", json=decision_body(), headers=headers)
        if r.status_code == 201 and not r.get_json()["degraded"]:
            return r.get_json(), time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"no stored decision within {within_s} s of the database running")


def admin_key(app) -> dict[str, str]:
    from service.auth import create_key

    _, key = create_key(app.extensions["vea"].engine, "admin")
    return {"Authorization": f"Bearer {key}"}


def outcome_refused_in_time(client, headers, decision_id: str) -> None:
    """An outcome answered 503 + Retry-After (nothing stored) within the deadline."""
    outcome, took = timed(
        lambda: client.post(f"/v1/decisions/{decision_id}/outcome", json=OUTCOME, headers=headers)
    )
    assert outcome.status_code == 503, outcome.text
    assert outcome.headers["Retry-After"] == "1"
    assert took < DEADLINE_S + SLACK_S, took


def desktop_key(app) -> dict[str, str]:
    from service.auth import create_key

    _, key = create_key(app.extensions["vea"].engine, "desktop")
    return {"Authorization": f"Bearer {key}"}


# --------------------------------------------------------------- PostgreSQL
@contextmanager
def own_cluster() -> Iterator[PostgresCluster]:
    """A cluster of the test's own: stopping the suite's shared one would stall others."""
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    cluster = PostgresCluster(bindir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def private_cluster() -> Iterator[PostgresCluster]:
    with own_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_app(private_cluster, registry_dir, compile_cache):
    from service.db import upgrade

    url = private_cluster.create_database("vea_deadline")
    upgrade(url)
    app = suite_app(
        url,
        registry_dir,
        compile_cache,
        db_timeout_s=DEADLINE_S,
        retry_after_s=1,
        key_cache_s=300.0,  # the key stays verified: this test is about the decision
    )
    app.testing = True
    yield app
    app.extensions["vea"].close()


@pytest.mark.postgres
def test_a_stopped_postgresql_answers_degraded_and_503_within_the_deadline(pg_app, private_cluster):
    client, headers = pg_app.test_client(), desktop_key(pg_app)
    first = client.post("/v1/decisions", json=decision_body(), headers=headers)
    assert first.status_code == 201 and not first.get_json()["degraded"], first.text
    decision_id = first.get_json()["decision_id"]
    manager = admin_key(pg_app)
    assert client.get("/v1/reports/value", headers=manager).status_code == 200  # key known

    with stopped(private_cluster):
        # A pooled connection to a stopped server: its statement is abandoned.
        r, took = timed(lambda: client.post("/v1/decisions", json=decision_body(), headers=headers))
        assert r.status_code == 200, r.text  # answered, not stored
        assert r.get_json()["degraded"] is True
        assert took < DEADLINE_S + SLACK_S, took

        outcome_refused_in_time(client, headers, decision_id)

        ready, took = timed(lambda: client.get("/readyz"))
        assert ready.status_code == 503
        detail = ready.get_json()["checks"]["database"]["detail"]
        assert "did not answer in time (1 s, VEA_DB_TIMEOUT_S; DatabaseTimeout)" in detail, detail
        assert took < DEADLINE_S + SLACK_S, took

        # A report while the server is taken for hung: 503 at once (it answered 500).
        report = client.get("/v1/reports/value", headers=manager)
        assert report.status_code == 503, report.text
        assert report.get_json()["error"]["message"].startswith("database did not answer")
        assert report.headers["Retry-After"] == "1"

        # Past the quick-failure window the server is asked again (a new connection,
        # libpq's at least 2 s) and is still stopped: still answered, still degraded.
        time.sleep(DEADLINE_S)
        r, took = timed(lambda: client.post("/v1/decisions", json=decision_body(), headers=headers))
        assert r.status_code == 200 and r.get_json()["degraded"] is True, r.text
        assert took < 2 + SLACK_S, took

    answer, after_s = recovered(client, headers)
    assert answer["degraded"] is False
    assert after_s < 2 * DEADLINE_S + 2 + SLACK_S, after_s
    stored = client.post(f"/v1/decisions/{decision_id}/outcome", json=OUTCOME, headers=headers)
    assert stored.status_code == 201, stored.text
    assert client.get("/readyz").status_code == 200


@pytest.mark.postgres
def test_a_lock_held_long_answers_within_the_deadline_and_the_server_gives_up_too(
    pg_app, private_cluster
):
    """A lock held by another session (not a stopped server): the client abandons the
    write at the deadline, and the server ends its lock wait (the client gone), so no
    backend of the service is left queued behind the lock."""
    import psycopg

    client, headers = pg_app.test_client(), desktop_key(pg_app)
    first = client.post("/v1/decisions", json=decision_body(), headers=headers)
    assert first.status_code == 201 and not first.get_json()["degraded"], first.text
    decision_id = first.get_json()["decision_id"]

    dsn = f"host=127.0.0.1 port={private_cluster.port} user=postgres dbname=vea_deadline"
    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE outcomes, decisions IN ACCESS EXCLUSIVE MODE")
        outcome, took = timed(
            lambda: client.post(
                f"/v1/decisions/{decision_id}/outcome", json=OUTCOME, headers=headers
            )
        )
        assert outcome.status_code == 503, outcome.text
        assert took < DEADLINE_S + SLACK_S, took
        r, took = timed(lambda: client.post("/v1/decisions", json=decision_body(), headers=headers))
        assert r.status_code == 200 and r.get_json()["degraded"] is True, r.text
        assert took < DEADLINE_S + SLACK_S, took
        time.sleep(DEADLINE_S + 0.5)
        with psycopg.connect(dsn, autocommit=True) as watcher:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone()[0]
        assert waiting == 0
        holder.rollback()

    answer, _ = recovered(client, headers)
    assert answer["degraded"] is False
    stored = client.post(f"/v1/decisions/{decision_id}/outcome", json=OUTCOME, headers=headers)
    assert stored.status_code == 201, stored.text


@pytest.mark.postgres
def test_heavy_work_may_take_longer_than_the_deadline_without_degrading_decisions(pg_app):
    """A report over many decisions takes longer than a decision may wait: the deadline
    bounded it too, so it failed and, taken for a hung server, made the next decisions
    answer degraded. Inside a heavy slot a statement may run past the deadline."""
    from service import heavy

    client, headers = pg_app.test_client(), desktop_key(pg_app)
    assert client.post("/v1/decisions", json=decision_body(), headers=headers).status_code == 201
    engine = pg_app.extensions["vea"].engine
    with pg_app.test_request_context(), heavy.slot(), engine.connect() as conn:
        _, took = timed(lambda: conn.exec_driver_sql("SELECT pg_sleep(%(s)s)", {"s": 3.0}))
    assert took >= 3.0, took
    after = client.post("/v1/decisions", json=decision_body(), headers=headers)
    assert after.status_code == 201 and after.get_json()["degraded"] is False, after.text


@pytest.mark.postgres
def test_a_row_another_session_holds_fails_only_its_own_request(pg_app, private_cluster):
    """A healthy database with one row locked by another session (a long erasure, a
    prune): the outcome waiting for that row was abandoned at the deadline and the
    engine taken for hung, so every decision of the next second answered degraded
    (unstored) and /readyz 503. The server now ends the lock wait itself."""
    import psycopg

    client, headers = pg_app.test_client(), desktop_key(pg_app)
    first = client.post("/v1/decisions", json=decision_body(), headers=headers)
    assert first.status_code == 201, first.text
    decision_id = first.get_json()["decision_id"]
    dsn = f"host=127.0.0.1 port={private_cluster.port} user=postgres dbname=vea_deadline"
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT 1 FROM decisions WHERE decision_id = %s FOR UPDATE", (decision_id,))
        outcome, took = timed(
            lambda: client.post(
                f"/v1/decisions/{decision_id}/outcome", json=OUTCOME, headers=headers
            )
        )
        assert outcome.status_code == 503 and outcome.headers["Retry-After"] == "1", outcome.text
        assert took < DEADLINE_S + SLACK_S, took
        for _ in range(5):
            other = client.post("/v1/decisions", json=decision_body(), headers=headers)
            assert other.status_code == 201 and not other.get_json()["degraded"], other.text
        assert client.get("/readyz").status_code == 200
        holder.rollback()
    stored = client.post(f"/v1/decisions/{decision_id}/outcome", json=OUTCOME, headers=headers)
    assert stored.status_code == 201, stored.text


# ------------------------------------------------------------------- SQLite
@pytest.fixture
def sqlite_app(tmp_path, registry_dir, compile_cache):
    from service.db import upgrade

    url = f"sqlite:///{tmp_path / 'vea.db'}"
    upgrade(url)
    app = suite_app(url, registry_dir, compile_cache, db_timeout_s=DEADLINE_S, retry_after_s=1)
    app.testing = True
    yield app, tmp_path / "vea.db"
    app.extensions["vea"].close()


def test_a_locked_sqlite_file_answers_within_the_deadline_not_the_busy_timeout(sqlite_app):
    app, path = sqlite_app
    client, headers = app.test_client(), desktop_key(app)
    first = client.post("/v1/decisions", json=decision_body(), headers=headers)
    assert first.status_code == 201 and not first.get_json()["degraded"], first.text
    decision_id = first.get_json()["decision_id"]

    other = sqlite3.connect(path, isolation_level=None)  # another process's connection
    try:
        other.execute("BEGIN EXCLUSIVE")
        r, took = timed(lambda: client.post("/v1/decisions", json=decision_body(), headers=headers))
        assert r.status_code == 200 and r.get_json()["degraded"] is True, r.text
        assert DEADLINE_S * 0.9 < took < DEADLINE_S + SLACK_S, took
        outcome_refused_in_time(client, headers, decision_id)
    finally:
        other.rollback() if other.in_transaction else None
        other.close()

    r = client.post("/v1/decisions", json=decision_body(), headers=headers)
    assert r.status_code == 201 and r.get_json()["degraded"] is False, r.text
    stored = client.post(f"/v1/decisions/{decision_id}/outcome", json=OUTCOME, headers=headers)
    assert stored.status_code == 201, stored.text


def test_commands_keep_waiting_as_long_as_the_database_takes(tmp_path):
    """No deadline without VEA_DB_TIMEOUT_S: migrations, backups and exports run long."""
    from service.db import deadline_of, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        assert deadline_of(engine) is None
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    finally:
        engine.dispose()


def test_the_setting_is_checked_like_every_other():
    from service.config import Settings

    assert Settings().db_timeout_s == 5.0
    for wrong in ("0", "-1", "30", "nan"):
        with pytest.raises(ValueError, match="VEA_DB_TIMEOUT_S"):
            Settings.from_env({"VEA_DB_TIMEOUT_S": wrong})
