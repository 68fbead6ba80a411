"""Faults under a light request loop, bounded (about a minute): real gunicorn (2 sync
workers) on a real PostgreSQL, reusing the helpers of ``test_e2e_gunicorn``.

* SIGKILL of one worker: gunicorn starts a replacement; no decision answers 5xx and every
  outcome that was acknowledged with a 2xx is in the database afterwards, as sent. A
  request cut off by the kill has no answer at all: the client retries it with the same
  body, which the API makes idempotent (interaction id, one outcome per decision).
* PostgreSQL restarted under load: decisions are answered (degraded while the database
  is away, never 5xx), writes it cannot take are 503 so the client retries, the service
  recovers by itself, and again no acknowledged outcome is lost.
* A corrupted bundle on disk (a challenger, then the serving champion itself) is refused
  on promotion (422), the champion pointer does not move and decisions keep being
  answered by the model already in memory, never degraded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from models.registry import Registry
from tests.conftest import PostgresCluster, free_port, postgres_bindir
from tests.test_e2e_gunicorn import ROOT, decision_body, start_gunicorn, stop

pytestmark = pytest.mark.postgres
RETRIES = 20  # a restarted worker is back in well under a second; 20 x 0.1 s is ample


def post(
    session: requests.Session, url: str, body: dict, headers: dict, retried: Counter | None = None
) -> requests.Response:
    """POST like a well-behaved client: retry a lost connection or a 503 with the same
    body (safe: decisions and outcomes are idempotent). ``retried`` counts why.

    A worker killed between sending the head and the body of its answer leaves a
    response cut short (``ChunkedEncodingError``): lost in transit like a refused
    connection, so retried the same way."""
    retried = Counter() if retried is None else retried
    for _attempt in range(RETRIES):
        try:
            response = session.post(url, json=body, headers=headers, timeout=10)
        except requests.ConnectionError:
            retried["connection"] += 1
            time.sleep(0.1)
            continue
        except requests.exceptions.ChunkedEncodingError:
            retried["answer cut short"] += 1
            time.sleep(0.1)
            continue
        if response.status_code != 503:
            return response
        retried["503"] += 1
        time.sleep(float(response.headers.get("Retry-After", "0.1")))
    raise AssertionError(f"no answer from {url} after {RETRIES} tries")


class Load(threading.Thread):
    """Decision -> outcome pairs at a light steady rate; remembers what was acknowledged."""

    def __init__(self, base: str, headers: dict[str, str], pause_s: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.base, self.headers, self.pause_s = base, headers, pause_s
        self.stopping = threading.Event()
        self.decision_statuses: list[int] = []
        self.degraded = 0
        self.unstored = 0  # decisions answered while the database was away
        self.versions: set[str] = set()
        self.acknowledged: dict[str, dict] = {}  # decision_id -> outcome body answered 2xx
        self.errors: list[str] = []
        self.retried: Counter[str] = Counter()  # what the fault made the client retry

    def run(self) -> None:
        session = requests.Session()
        n = 0
        while not self.stopping.is_set():
            n += 1
            try:
                decision = post(
                    session, f"{self.base}/v1/decisions", decision_body(), self.headers,
                    self.retried,
                )  # fmt: skip
                self.decision_statuses.append(decision.status_code)
                if decision.status_code not in (200, 201):
                    self.errors.append(f"decision {decision.status_code} {decision.text[:200]}")
                    continue
                answer = decision.json()
                self.degraded += bool(answer["degraded"])
                self.versions.add(answer["model_version"])
                if not answer.get("stored", True):
                    self.unstored += 1  # nothing to attach an outcome to
                    time.sleep(self.pause_s)
                    continue
                outcome = {
                    "offered": True,
                    "accepted": n % 2 == 0,
                    "ves_confidence": 1 + n % 7,
                    "ves_ability": 1 + (n * 3) % 7,
                    "agent_id": f"agent-{n % 5}",
                }
                decision_id = answer["decision_id"]
                stored = post(
                    session, f"{self.base}/v1/decisions/{decision_id}/outcome", outcome,
                    self.headers, self.retried,
                )  # fmt: skip
                if stored.status_code in (200, 201):
                    self.acknowledged[decision_id] = outcome
                else:
                    self.errors.append(f"outcome {stored.status_code} {stored.text[:200]}")
            except Exception as exc:  # a crash of this thread must fail the test, not hide
                self.errors.append(repr(exc))
            time.sleep(self.pause_s)

    def finish(self) -> None:
        self.stopping.set()
        self.join(timeout=60)

    def summary(self) -> str:
        return (
            f"{len(self.decision_statuses)} decisions ({self.degraded} degraded, "
            f"{self.unstored} not stored), {len(self.acknowledged)} outcomes acknowledged, "
            f"retried {dict(self.retried)}"
        )


def workers_of(master: int) -> set[int]:
    return {p.pid for p in psutil.Process(master).children()}


@contextlib.contextmanager
def running_service(url: str, registry_dir: Path, tmp_path: Path) -> Iterator[dict]:
    """One gunicorn (2 sync workers) on the database at ``url``, with a desktop and an
    admin key."""
    from service.cli import keys as keys_group

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VEA_DATABASE_URL": url,
        "VEA_REGISTRY": str(registry_dir),
        "VEA_CHAMPION_POLL_S": "0.5",
        "VEA_RATE_LIMIT_PER_S": "0",
        "VEA_ACCESS_LOG": "0",
        "VEA_THREADS": "1",
        "VEA_RETRY_AFTER_S": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    env.pop("VEA_AUTO_MIGRATE", None)  # the master migrates the fresh database
    port = free_port()
    master = start_gunicorn(env, port, 2, tmp_path / "gunicorn.log")
    try:
        runner = CliRunner()
        made = {
            role: runner.invoke(keys_group, ["create", "--role", role], env=env)
            for role in ("desktop", "admin")
        }
        assert all(r.exit_code == 0 for r in made.values()), [r.output for r in made.values()]
        yield {
            "base": f"http://127.0.0.1:{port}",
            "master": master,
            "url": url,
            "registry": Registry(registry_dir),
            "log": tmp_path / "gunicorn.log",
            **{
                role: {"Authorization": f"Bearer {r.stdout.strip().splitlines()[-1]}"}
                for role, r in made.items()
            },
        }
    finally:
        stop(master)


@pytest.fixture
def service(postgres, registry_dir, tmp_path):
    url = postgres.create_database(f"vea_faults_{uuid.uuid4().hex[:8]}")
    with running_service(url, registry_dir, tmp_path) as running:
        yield running


def stored_outcomes(url: str) -> dict:
    from service.db import outcomes

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    outcomes.c.decision_id,
                    outcomes.c.accepted,
                    outcomes.c.ves_confidence,
                    outcomes.c.ves_ability,
                    outcomes.c.agent_id,
                )
            ).all()
    finally:
        engine.dispose()
    return {r.decision_id: r for r in rows}


def assert_nothing_lost(load: Load, url: str) -> None:
    stored = stored_outcomes(url)
    missing = set(load.acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged outcomes lost"
    for decision_id, sent in load.acknowledged.items():
        row = stored[decision_id]
        assert (row.accepted, row.ves_confidence, row.ves_ability, row.agent_id) == (
            sent["accepted"],
            sent["ves_confidence"],
            sent["ves_ability"],
            sent["agent_id"],
        )


def test_sigkill_of_a_worker_loses_no_acknowledged_outcome(service, capsys):
    master = service["master"].pid
    assert len(workers_of(master)) == 2
    # Two clients keep both workers busy, so a kill is likely to cut a request short.
    loads = [Load(service["base"], service["desktop"]) for _ in range(2)]
    stalls: list[float] = []  # seconds until 10 more decisions after each replacement
    for load in loads:
        load.start()
    try:
        time.sleep(2)
        for _round in range(2):  # each round kills one worker; gunicorn replaces it
            current = workers_of(master)
            victim = min(current)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                now = workers_of(master)
                if len(now) == 2 and victim not in now:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"worker not replaced: {workers_of(master)}")
            served = sum(len(load.decision_statuses) for load in loads)
            resumed = time.monotonic()
            while sum(len(load.decision_statuses) for load in loads) < served + 10:
                assert time.monotonic() - resumed < 30, "traffic stalled after the kill"
                time.sleep(0.05)
            stalls.append(time.monotonic() - resumed)
            time.sleep(1)
    finally:
        for load in loads:
            load.finish()

    with capsys.disabled():
        for load in loads:
            print(f"\nworker SIGKILL x2: {load.summary()}")
        print(f"stalls after replacement: {[round(x, 2) for x in stalls]} s")
    for load in loads:
        assert load.errors == []
        assert not [s for s in load.decision_statuses if s >= 500]
        assert load.degraded == 0
        assert len(load.acknowledged) > 20
        assert_nothing_lost(load, service["url"])


def test_postgresql_restart_loses_no_acknowledged_outcome(registry_dir, tmp_path, capsys):
    """A private cluster (the session's shared one must not go away under other tests)."""
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL server binaries not found")
    cluster = PostgresCluster(bindir).start()
    try:
        url = cluster.create_database("vea_restart")
        with running_service(url, registry_dir, tmp_path) as running:
            load = Load(running["base"], running["desktop"])
            load.start()
            try:
                time.sleep(2)
                before = len(load.acknowledged)
                cluster._run(
                    # -l: the restarted server must not inherit (and hold open) our pipe
                    str(bindir / "pg_ctl"), "-D", str(cluster.data), "-m", "fast", "-w",
                    "-t", "60", "-l", str(cluster.root / "server.log"), "restart",
                )  # fmt: skip
                deadline = time.monotonic() + 30
                while len(load.acknowledged) < before + 20 and time.monotonic() < deadline:
                    time.sleep(0.2)  # recovered by itself: outcomes are stored again
                assert len(load.acknowledged) >= before + 20, "no recovery after the restart"
            finally:
                load.finish()
            with capsys.disabled():
                print(f"\nPostgreSQL restart: {load.summary()}")
            assert load.errors == []
            assert not [s for s in load.decision_statuses if s >= 500]
            assert_nothing_lost(load, url)
    finally:
        cluster.stop()


def corrupt(registry: Registry, version: str) -> None:
    """Flip bytes in the model text, as a bad disk or a careless edit would."""
    path = Path(registry.path_of(version)) / "openness.txt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupted_bundles_are_refused_and_serving_goes_on(service):
    base, admin = service["base"], service["admin"]
    registry: Registry = service["registry"]
    champion = registry.champion()
    challenger = next(v for v in registry.version_ids() if v != champion)
    load = Load(base, service["desktop"])
    load.start()
    try:
        time.sleep(1)
        # A corrupted challenger: promotion refused, the pointer does not move.
        corrupt(registry, challenger)
        refused = requests.post(
            f"{base}/v1/models/{challenger}/promote", json={"reason": "fault"}, headers=admin
        )
        assert refused.status_code == 422, refused.text
        assert "checksum" in refused.json()["error"]["message"]
        assert registry.champion() == champion

        # The serving champion corrupted on disk: it stays in memory and keeps serving;
        # promoting it again (which would reload it) is refused.
        corrupt(registry, champion)
        again = requests.post(
            f"{base}/v1/models/{champion}/promote", json={"reason": "fault"}, headers=admin
        )
        assert again.status_code == 422, again.text
        assert registry.champion() == champion
        served = len(load.decision_statuses)
        time.sleep(2)  # several champion polls (0.5 s) pass
        assert len(load.decision_statuses) > served + 10
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
    finally:
        load.finish()
    assert load.errors == []
    assert not [s for s in load.decision_statuses if s >= 500]
    assert load.degraded == 0 and load.versions == {champion}
