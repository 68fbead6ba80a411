"""API keys while the database is unavailable, across the workers of one master.

A worker trusts a key verified within ``STALE_GRACE_S`` while the database cannot be
reached, so decisions still answer (degraded). A worker started during the outage (one
gunicorn replaced after a timeout, a crash, max_requests) verified nothing itself: it uses
what the other workers verified, shared through ``VEA_SHARED_STATE_DIR``
(``service.key_cache``), under the same rules: a key revoked or expired before is still
refused, and nothing is trusted past the grace. Without the directory (tests, one
process) each process has only its own cache, as before."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import time
import uuid
from datetime import datetime, timedelta

import pytest
import requests

from service.auth import (
    STALE_GRACE_S,
    DatabaseUnavailable,
    KeyExpired,
    KeyRevoked,
    KeyStore,
    create_key,
    hash_key,
    revoke_key,
)
from service.db import make_engine
from service.key_cache import FILE_NAME, REFRESH_S


class Clocks:
    """The monotonic clock of the key cache and the wall clock (naive UTC), both moved
    by hand."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.now = datetime(2030, 1, 1, 12, 0, 0)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.now += timedelta(seconds=seconds)


class Database:
    """The engine every "worker" asks for; ``fail()`` makes it unreachable."""

    def __init__(self, url: str, tmp_path) -> None:
        self.engine = make_engine(url)
        self.working = self.engine
        self.unreachable = make_engine(f"sqlite:///{tmp_path}/missing/dir/vea.db")

    def fail(self) -> None:
        self.engine = self.unreachable

    def close(self) -> None:
        self.working.dispose()
        self.unreachable.dispose()


@pytest.fixture
def db(sqlite_url, tmp_path):
    database = Database(sqlite_url, tmp_path)
    yield database
    database.close()


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def shared(tmp_path):
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o700)
    return directory


def worker(db: Database, clocks: Clocks, shared_dir, cache_s: float = 5.0) -> KeyStore:
    """A fresh worker's key store (nothing in its own cache)."""
    return KeyStore(
        lambda: db.engine,
        cache_s,
        clock=lambda: clocks.mono,
        wall_clock=lambda: clocks.now,
        shared_dir=str(shared_dir),
    )


def test_a_worker_started_during_the_outage_trusts_a_key_another_verified(db, clocks, shared):
    key_id, key = create_key(db.working, "desktop")
    assert worker(db, clocks, shared).verify(key).key_id == key_id  # verified before
    db.fail()
    clocks.advance(600)
    fresh = worker(db, clocks, shared)
    info = fresh.verify(key, client="10.0.0.1")
    assert (info.key_id, info.role, info.revoked) == (key_id, "desktop", False)
    # Without the shared directory: only its own cache, which is empty (as before).
    with pytest.raises(DatabaseUnavailable):
        worker(db, clocks, "").verify(key)
    # An unknown key is still 503, never a false 401 nor a pass.
    with pytest.raises(DatabaseUnavailable):
        fresh.verify("vea_000000000000_unknown")


def test_a_key_revoked_before_the_outage_is_refused_by_a_new_worker(db, clocks, shared):
    key_id, key = create_key(db.working, "desktop")
    first = worker(db, clocks, shared)
    assert first.verify(key).key_id == key_id
    assert revoke_key(db.working, key_id)
    clocks.advance(6)  # past the worker's key cache: it reads the key again
    with pytest.raises(KeyRevoked):
        first.verify(key)
    db.fail()
    with pytest.raises(KeyRevoked):
        worker(db, clocks, shared).verify(key)
    # The worker that saw the revocation itself refuses it too.
    with pytest.raises(KeyRevoked):
        first.verify(key)


def test_a_key_that_expires_during_the_outage_is_refused_at_its_expiry(db, clocks, shared):
    key_id, key = create_key(db.working, "desktop", expires_at=clocks.now + timedelta(minutes=10))
    worker(db, clocks, shared).verify(key)
    db.fail()
    clocks.advance(9 * 60)
    assert worker(db, clocks, shared).verify(key).key_id == key_id
    clocks.advance(2 * 60)
    with pytest.raises(KeyExpired):
        worker(db, clocks, shared).verify(key)


def test_nothing_is_trusted_past_the_grace(db, clocks, shared):
    key_id, key = create_key(db.working, "admin")
    worker(db, clocks, shared).verify(key)
    db.fail()
    clocks.advance(STALE_GRACE_S - 1)
    assert worker(db, clocks, shared).verify(key).key_id == key_id
    clocks.advance(2)
    with pytest.raises(DatabaseUnavailable):
        worker(db, clocks, shared).verify(key)


def test_a_time_ahead_of_the_clock_is_not_trusted(db, clocks, shared):
    _key_id, key = create_key(db.working, "desktop")
    worker(db, clocks, shared).verify(key)
    db.fail()
    clocks.now -= timedelta(days=1)  # the wall clock stepped back (or a file from the future)
    with pytest.raises(DatabaseUnavailable):
        worker(db, clocks, shared).verify(key)
    db.engine = db.working  # back: the next lookup renews the entry at the clock's time
    worker(db, clocks, shared).verify(key)
    db.fail()
    assert worker(db, clocks, shared).verify(key) is not None


def test_the_latest_verification_wins(db, clocks, shared):
    """A worker whose own cache says the key is live, while another worker has seen it
    revoked since, refuses it during the outage."""
    key_id, key = create_key(db.working, "desktop")
    stale, other = worker(db, clocks, shared), worker(db, clocks, shared)
    stale.verify(key)
    assert revoke_key(db.working, key_id)
    clocks.advance(1)
    with pytest.raises(KeyRevoked):
        other.verify(key)
    db.fail()
    clocks.advance(5)  # past the stale worker's cache: it asks the database, which is away
    with pytest.raises(KeyRevoked):
        stale.verify(key)


def test_a_late_write_of_a_key_seen_alive_does_not_undo_its_revocation(shared):
    """A worker that read the key alive just before the revocation and writes after
    another worker wrote "revoked" (found in review: the file said alive again)."""
    from service.key_cache import SharedKeys

    alive = ("k1", "desktop", None, False)
    revoked = ("k1", "desktop", None, True)
    seen_revoked, seen_alive = SharedKeys(str(shared), 3600), SharedKeys(str(shared), 3600)
    at = datetime(2026, 11, 27, 12, 0, 0)
    seen_revoked.note("d" * 64, revoked, at + timedelta(seconds=1))
    seen_alive.note("d" * 64, alive, at)
    assert SharedKeys(str(shared), 3600).get("d" * 64)[1] == revoked


def test_the_file_holds_hashes_is_private_and_is_written_only_on_change(db, clocks, shared):
    key_id, key = create_key(db.working, "desktop")
    store = worker(db, clocks, shared, cache_s=0)  # a lookup in the table per request
    store.verify(key)
    path = shared / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert key not in text and key.split("_")[-1] not in text
    assert list(json.loads(text)) == [hash_key(key)]
    written = path.stat().st_ino, path.stat().st_mtime_ns
    for _ in range(20):
        clocks.advance(1)
        store.verify(key)
    store.verify("vea_000000000000_unknown")  # an unknown key is not written
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == written
    clocks.advance(REFRESH_S)  # an old entry is renewed
    store.verify(key)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) != written
    renewed = path.stat().st_ino
    assert revoke_key(db.working, key_id)
    with pytest.raises(KeyRevoked):
        store.verify(key)  # a change is written at once
    assert path.stat().st_ino != renewed
    assert json.loads(path.read_text())[hash_key(key)][-1] is True
    assert sorted(os.listdir(shared)) == [FILE_NAME, FILE_NAME + ".lock"]  # no temp left


def test_a_file_others_can_write_is_ignored(db, clocks, shared):
    _key_id, key = create_key(db.working, "desktop")
    worker(db, clocks, shared).verify(key)
    (shared / FILE_NAME).chmod(0o666)
    db.fail()
    with pytest.raises(DatabaseUnavailable):
        worker(db, clocks, shared).verify(key)


def test_a_second_app_answers_decisions_degraded(make_app, new_id, tmp_path, monkeypatch):
    """Two apps on one shared directory, as two workers of one master: the second, which
    never verified the key, answers a decision during the outage degraded, not 503."""
    from tests.test_api_decisions import decision_body, unreachable_url

    monkeypatch.setenv("VEA_SHARED_STATE_DIR", str(tmp_path))
    first, second = make_app(), make_app()
    _key_id, key = create_key(first.extensions["vea"].engine, "desktop")
    headers = {"Authorization": f"Bearer {key}"}
    ok = first.test_client().post("/v1/decisions", json=decision_body(new_id), headers=headers)
    assert ok.status_code == 201, ok.json
    state = second.extensions["vea"]
    state.engine = make_engine(unreachable_url(str(state.engine.url), tmp_path))
    try:
        answer = second.test_client().post(
            "/v1/decisions", json=decision_body(new_id), headers=headers
        )
    finally:
        state.engine.dispose()
    assert answer.status_code == 200, answer.json
    assert answer.json["degraded"] is True and answer.json["stored"] is False


# ------------------------------------------------------------- real gunicorn
@pytest.mark.postgres
def test_gunicorn_workers_restarted_during_an_outage_answer_degraded(
    registry_dir, tmp_path, monkeypatch
):
    """The audit's repro: PostgreSQL stopped, both workers SIGKILLed (the master starts
    new ones), a decision with a key verified just before answers 200 degraded, not 503.
    A private cluster: the session's shared one must not go away under other tests."""
    from tests.conftest import PostgresCluster, postgres_bindir
    from tests.test_e2e_gunicorn import decision_body
    from tests.test_faults import running_service, workers_of

    bindir = postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL server binaries not found")
    shared = tmp_path / "shared"
    monkeypatch.setenv("VEA_SHARED_STATE_DIR", str(shared))  # the master empties it
    cluster = PostgresCluster(bindir).start()
    try:
        url = cluster.create_database(f"vea_outage_{uuid.uuid4().hex[:8]}")
        with running_service(url, registry_dir, tmp_path) as running:
            decisions, desktop = running["base"] + "/v1/decisions", running["desktop"]
            before = requests.post(decisions, json=decision_body(), headers=desktop, timeout=60)
            assert before.status_code == 201, before.text
            cluster._run(
                str(bindir / "pg_ctl"), "-D", str(cluster.data), "-m", "fast", "-w", "stop"
            )
            master = running["master"].pid
            killed = workers_of(master)
            assert len(killed) == 2
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while not (len(workers_of(master)) == 2 and not workers_of(master) & killed):
                assert time.monotonic() < deadline, f"workers not replaced: {workers_of(master)}"
                time.sleep(0.1)
            # The master holds the socket: a request waits for a new worker to boot (slow
            # on a loaded machine). Both new workers answer some: no connection reuse.
            answers = [
                requests.post(decisions, json=decision_body(), headers=desktop, timeout=60)
                for _ in range(4)
            ]
            assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
            assert all(a.json()["degraded"] is True for a in answers)
            assert all(a.json()["stored"] is False for a in answers)
            assert stat.S_IMODE((shared / FILE_NAME).stat().st_mode) == 0o600
    finally:
        if (cluster.data / "postmaster.pid").exists():
            cluster.stop()
        else:  # stopped by the test
            shutil.rmtree(cluster.root, ignore_errors=True)
