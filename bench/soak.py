"""Load and soak: decisions and outcomes at a steady rate against the real service, with
optional faults, then a check in the database that nothing acknowledged was lost.

    python -m bench.soak [--rate 150] [--minutes 5] [--backend postgresql|sqlite]
                         [--faults] [--threads 16] [--workers 2]
                         [--durability full|relaxed] [--registry DIR] [--json out.json]

It starts the service the way production runs it (``service/gunicorn_conf.py``, sync
workers, a real champion model, a migrated database, API keys) on a private throw-away
PostgreSQL cluster (``tests/conftest.py``) or a SQLite file, and drives it from
``--threads`` client threads with ``http.client`` (only 127.0.0.1 is ever targeted).
Each interaction is a decision followed by its outcome, so ``--rate`` requests/s is
``--rate / 2`` interactions/s, paced evenly over the threads. The client behaves like a
well-behaved contact-center platform: a lost connection or a 503 is retried with the
same body (both calls are idempotent) until it is answered.

With ``--faults``, during the load and each at a set share of the run: SIGKILL of a
gunicorn worker, three times (15 %), a PostgreSQL restart (30 %, PostgreSQL only), promotion of
another model (45 %) and rollback (58 %), the champion bundle corrupted on disk (70 %:
promotion of it must be refused, serving goes on from memory) and restored (85 %). A
fault is survived when the service recovers by itself (traffic and stored outcomes
resume; models switch on every worker) within 30 s.

Afterwards every decision and outcome that was answered 2xx is looked up in the
database and compared with what was sent/answered. Prints requests/s held, minutes,
p50/p99 per endpoint, every status by endpoint, the error rate, decision 5xx (must be
0), 503s (allowed: retried), outcomes lost (must be 0) and the faults survived. Exits
1 when an acknowledged write is missing or differs, a decision got a 5xx, an outcome
got a 5xx other than 503, or a fault was not survived.

The same functions run a shortened soak in ``make test`` (``tests/test_soak.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder would come first on sys.path and bench/http.py
# would shadow the standard library's http package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, deque  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GIVE_UP_S = 60.0  # a request not answered (2xx/4xx) within this is abandoned
RECOVERY_S = 30.0  # a fault is survived when the service recovers within this
OUTCOME_FIELDS = (
    "offered",
    "accepted",
    "ves_confidence",
    "ves_ability",
    "resolved",
    "handle_time_s",
    "csat",
    "agent_id",
)
DECISION_FIELDS = ("interaction_id", "customer_id", "suggested_activity", "model_version")


@dataclass
class SoakConfig:
    rate: float = 150.0  # requests/s (decisions + outcomes)
    seconds: float = 300.0
    backend: str = "postgresql"
    faults: bool = False
    threads: int = 16
    workers: int = 2
    durability: str = "full"  # full: fsync on (as served); relaxed: fsync off
    registry: Path | None = None  # copied, never modified; else two small models are trained
    customers: int = 2000  # distinct customers (they repeat: history and policies apply)
    quiet: bool = False


# --------------------------------------------------------------------- stats
@dataclass
class Stats:
    """What the clients saw; shared by the load threads (one lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"decisions": [], "outcomes": []}
    )
    statuses: dict[str, Counter] = field(
        default_factory=lambda: {"decisions": Counter(), "outcomes": Counter()}
    )
    decisions: dict[str, dict] = field(default_factory=dict)  # acknowledged, as answered
    outcomes: dict[str, dict] = field(default_factory=dict)  # acknowledged, as sent
    completions: list[float] = field(default_factory=list)  # monotonic time of each 2xx
    degraded: int = 0
    unstored: int = 0  # decisions answered while the database was away: no outcome
    abandoned: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)  # 4xx samples, thread crashes
    versions: deque = field(default_factory=lambda: deque(maxlen=40))
    behind_resets: int = 0  # times a client thread fell > 2 s behind its schedule

    def attempt(self, endpoint: str, status: int | str, seconds: float) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            self.statuses[endpoint][status] += 1


def _call(port: int, method: str, path: str, body: dict | None, headers: dict) -> tuple:
    """One HTTP exchange on a fresh connection (sync workers close it anyway)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body)
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Retry-After"), response.read()
    finally:
        conn.close()


def send(port: int, endpoint: str, path: str, body: dict, headers: dict, stats: Stats):
    """POST like a well-behaved client: retry a lost connection or a 503 with the same
    body until answered. Returns ``(status, json)`` or None when abandoned."""
    deadline = time.monotonic() + GIVE_UP_S
    while True:
        started = time.perf_counter()
        try:
            status, retry_after, data = _call(port, "POST", path, body, headers)
        except (OSError, http.client.HTTPException):
            stats.attempt(endpoint, "connection", time.perf_counter() - started)
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
            continue
        stats.attempt(endpoint, status, time.perf_counter() - started)
        if status != 503:
            try:
                return status, json.loads(data)
            except ValueError:
                return status, {"raw": data[:200].decode("utf-8", "replace")}
        if time.monotonic() > deadline:
            break
        try:
            pause = float(retry_after or 1)
        except ValueError:
            pause = 1.0
        time.sleep(min(max(pause, 0.1), 2.0))
    with stats.lock:
        stats.abandoned[endpoint] += 1
    return None


def decision_body(thread: int, n: int, customers: int, run: str) -> dict:
    return {
        "interaction_id": f"soak-{run}-{thread}-{n}",
        "customer": {
            "customer_id": f"cust-{run}-{(thread * 7919 + n) % customers}",
            "segment": ("consumer", "premium", "business")[n % 3],
            "tenure_months": n % 48,
            "switching_effort": ("low", "high")[n % 2],
        },
        "contact": {
            "channel": ("chat", "voice", "email")[n % 3],
            "issue_type": ("inquiry", "billing", "technical")[n % 3],
            "language": "en",
        },
    }


def outcome_body(answer: dict, n: int) -> dict:
    offered = answer["suggested_activity"] != "none"
    return {
        "offered": offered,
        "accepted": offered and n % 3 != 0,
        "ves_confidence": 1 + n % 7,
        "ves_ability": 1 + (n * 3) % 7,
        "resolved": n % 4 != 0,
        "handle_time_s": float(120 + n % 300),
        "csat": 1 + n % 5,
        "agent_id": f"agent-{n % 25}",
    }


class Load(threading.Thread):
    """One client thread: decision -> outcome pairs on a fixed schedule."""

    def __init__(
        self, no: int, port: int, headers: dict, interval_s: float, end: float, stats: Stats,
        customers: int, run: str, offset_s: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__(daemon=True, name=f"soak-load-{no}")
        self.no, self.port, self.headers, self.offset_s = no, port, headers, offset_s
        self.interval_s, self.end, self.stats = interval_s, end, stats
        self.customers, self.run_id = customers, run

    def run(self) -> None:
        stats = self.stats
        next_at = time.monotonic() + self.offset_s  # threads spread over one interval
        n = 0
        while True:
            now = time.monotonic()
            if now >= self.end:
                return
            if next_at > now:
                time.sleep(min(next_at - now, self.end - now))
                continue
            if now - next_at > 2.0:  # a stall (fault): resume the pace, do not burst
                next_at = now
                with stats.lock:
                    stats.behind_resets += 1
            next_at += self.interval_s
            n += 1
            try:
                self.interaction(n)
            except Exception as exc:  # a crash of a client must show, not hide
                with stats.lock:
                    stats.unexpected.append(f"client crash: {exc!r}")

    def interaction(self, n: int) -> None:
        stats = self.stats
        body = decision_body(self.no, n, self.customers, self.run_id)
        result = send(self.port, "decisions", "/v1/decisions", body, self.headers, stats)
        if result is None:
            return
        status, answer = result
        if status not in (200, 201):
            if status < 500:
                with stats.lock:
                    stats.unexpected.append(f"decision {status} {str(answer)[:200]}")
            return
        if not answer.get("stored", True):
            with stats.lock:
                stats.unstored += 1
                stats.degraded += bool(answer.get("degraded"))
            return
        decision_id = answer["decision_id"]
        with stats.lock:
            stats.degraded += bool(answer.get("degraded"))
            stats.versions.append(answer["model_version"])
            stats.completions.append(time.monotonic())
            stats.decisions[decision_id] = {
                "interaction_id": body["interaction_id"],
                "customer_id": body["customer"]["customer_id"],
                "suggested_activity": answer["suggested_activity"],
                "model_version": answer["model_version"],
            }
        outcome = outcome_body(answer, n)
        path = f"/v1/decisions/{decision_id}/outcome"
        result = send(self.port, "outcomes", path, outcome, self.headers, stats)
        if result is None:
            return
        status, stored = result
        if status in (200, 201):
            with stats.lock:
                stats.outcomes[decision_id] = outcome
                stats.completions.append(time.monotonic())
        elif status < 500:
            with stats.lock:
                stats.unexpected.append(f"outcome {status} {str(stored)[:200]}")


# -------------------------------------------------------------------- service
@dataclass
class Service:
    """A running soak target: gunicorn on a migrated database, keys, the registry."""

    url: str
    port: int
    master: object  # subprocess.Popen of the gunicorn master
    desktop: dict
    admin: dict
    registry_dir: Path
    cluster: object | None  # tests.conftest.PostgresCluster when on PostgreSQL
    log: Path


def train_registry(target: Path) -> Path:
    """Two small real models (the first is the champion): promotion needs another one."""
    from models.registry import Registry
    from training.fit import train_bundle
    from training.simulate import simulate

    registry = Registry(target)
    for seed in (1, 2):
        log, _truth = simulate(rows=3000, seed=seed)
        registry.add(train_bundle(log, learner="s", seed=seed, num_threads=1, progress=False))
        time.sleep(1.1)  # version ids carry the second they were made
    return target


def prepare_registry(config: SoakConfig, work: Path) -> Path:
    from models.registry import Registry

    target = work / "registry"
    if config.registry is not None:
        source = Registry(config.registry)
        if source.champion() and len(source.version_ids()) >= 2:
            # a copy: the corruption fault writes to the champion on disk
            shutil.copytree(config.registry, target, ignore=shutil.ignore_patterns(".lock"))
            return target
    return train_registry(target)


def start_service(config: SoakConfig, work: Path) -> Service:
    from bench.http import start
    from service.auth import create_key
    from service.db import make_engine, upgrade

    cluster = None
    if config.backend == "postgresql":
        from tests.conftest import PostgresCluster, postgres_bindir

        bindir = postgres_bindir()
        if bindir is None or not (bindir / "pg_ctl").exists():
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        cluster = PostgresCluster(bindir, durable=config.durability == "full").start()
        url = cluster.create_database("vea_soak")
    else:
        url = f"sqlite:///{work / 'soak.db'}"
    try:
        registry_dir = prepare_registry(config, work)
        upgrade(url)
        engine = make_engine(url)
        try:
            keys = {role: create_key(engine, role, "soak")[1] for role in ("desktop", "admin")}
        finally:
            engine.dispose()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "VEA_DATABASE_URL": url,
            "VEA_REGISTRY": str(registry_dir),
            "VEA_WORKERS": str(config.workers),
            "VEA_THREADS": "1",
            "VEA_CHAMPION_POLL_S": "0.5",
            "VEA_RATE_LIMIT_PER_S": "0",  # one key drives all the load
            "VEA_ACCESS_LOG": "0",
            "VEA_RETRY_AFTER_S": "1",
            "VEA_SQLITE_SYNCHRONOUS": "FULL" if config.durability == "full" else "NORMAL",
            "PROMETHEUS_MULTIPROC_DIR": str(work / "prom"),
        }
        log = work / "gunicorn.log"
        master, base = start(env, None, log)
        return Service(
            url=url,
            port=int(base.rsplit(":", 1)[1]),
            master=master,
            desktop={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {keys['desktop']}",
            },
            admin={"Content-Type": "application/json", "Authorization": f"Bearer {keys['admin']}"},
            registry_dir=registry_dir,
            cluster=cluster,
            log=log,
        )
    except BaseException:
        if cluster is not None:
            cluster.stop()
        raise


def stop_service(service: Service) -> None:
    from bench.http import stop

    try:
        stop(service.master)
    finally:
        if service.cluster is not None:
            service.cluster.stop()


# --------------------------------------------------------------------- faults
def workers_of(master_pid: int) -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process(master_pid).children()}


def wait_for(predicate: Callable[[], bool], timeout: float = RECOVERY_S) -> float | None:
    """Seconds until ``predicate()`` holds, or None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def progressed(stats: Stats, what: str, more: int) -> Callable[[], bool]:
    """A predicate: ``more`` further acknowledged decisions/outcomes than now."""
    source = stats.decisions if what == "decisions" else stats.outcomes
    with stats.lock:
        target = len(source) + more
    return lambda: len(source) >= target


def all_serving(stats: Stats, version: str) -> Callable[[], bool]:
    """A predicate: the last 40 stored decisions (every worker) came from ``version``."""

    def check() -> bool:
        with stats.lock:
            recent = list(stats.versions)
        return len(recent) == stats.versions.maxlen and set(recent) == {version}

    with stats.lock:
        stats.versions.clear()
    return check


def admin_post(service: Service, path: str, body: dict) -> tuple[int, dict]:
    status, _retry, data = _call(service.port, "POST", path, body, service.admin)
    try:
        return status, json.loads(data)
    except ValueError:
        return status, {}


class Faults:
    """The fault schedule; each step returns (survived, detail)."""

    def __init__(self, service: Service, stats: Stats) -> None:
        from models.registry import Registry

        self.service, self.stats = service, stats
        self.registry = Registry(service.registry_dir)
        self.first = self.registry.champion()
        self.saved: tuple[Path, bytes] | None = None

    def schedule(self) -> list[tuple[float, str, Callable[[], tuple[bool, str]]]]:
        steps = [(0.15, "worker SIGKILL x3", self.kill_worker)]
        if self.service.cluster is not None:
            steps.append((0.30, "PostgreSQL restart", self.restart_postgres))
        steps += [
            (0.45, "promote another model", self.promote),
            (0.58, "rollback", self.rollback),
            (0.70, "corrupt champion bundle on disk", self.corrupt),
            (0.85, "restore champion bundle", self.restore),
        ]
        return steps

    def kill_worker(self, kills: int = 3) -> tuple[bool, str]:
        """SIGKILL a worker, wait for its replacement and for stored outcomes, ``kills``
        times: the more kills, the likelier one cuts a request short (the client then
        retries it on a new connection)."""
        master = self.service.master.pid
        with self.stats.lock:
            cut_before = sum(c["connection"] for c in self.stats.statuses.values())
        slowest = 0.0
        for round_no in range(kills):
            before = workers_of(master)
            victim = sorted(before)[round_no % len(before)]
            os.kill(victim, signal.SIGKILL)

            def replaced(before=before, victim=victim) -> bool:
                now = workers_of(master)
                return len(now) == len(before) and victim not in now

            took = wait_for(replaced)
            if took is None:
                return False, f"worker not replaced: {workers_of(master)}"
            resumed = wait_for(progressed(self.stats, "outcomes", 10))
            if resumed is None:
                return False, "outcomes did not resume after the replacement"
            slowest = max(slowest, took + resumed)
        with self.stats.lock:
            cut = sum(c["connection"] for c in self.stats.statuses.values()) - cut_before
        return True, (
            f"{kills} workers killed and replaced, outcomes stored again within "
            f"{slowest:.1f} s each time, {cut} requests cut and retried"
        )

    def restart_postgres(self) -> tuple[bool, str]:
        cluster = self.service.cluster
        started = time.monotonic()
        cluster._run(
            # -l: the restarted server must not inherit (and hold open) our pipe
            str(cluster.bindir / "pg_ctl"), "-D", str(cluster.data), "-m", "fast", "-w",
            "-t", "60", "-l", str(cluster.root / "server.log"), "restart",
        )  # fmt: skip
        restarted = time.monotonic() - started
        resumed = wait_for(progressed(self.stats, "outcomes", 10))
        if resumed is None:
            return False, "outcomes not stored again within 30 s"
        return True, f"restart took {restarted:.1f} s, outcomes stored again {resumed:.1f} s later"

    def promote(self) -> tuple[bool, str]:
        other = next(v for v in self.registry.version_ids() if v != self.first)
        status, answer = admin_post(self.service, f"/v1/models/{other}/promote", {"reason": "soak"})
        if status != 200:
            return False, f"promote answered {status} {answer}"
        took = wait_for(all_serving(self.stats, other))
        if took is None:
            return False, f"workers did not all switch to {other}"
        return True, f"every worker served {other} after {took:.1f} s"

    def rollback(self) -> tuple[bool, str]:
        status, answer = admin_post(self.service, "/v1/models/rollback", {})
        if status != 200 or answer.get("champion") != self.first:
            return False, f"rollback answered {status} {answer}"
        took = wait_for(all_serving(self.stats, self.first))
        if took is None:
            return False, f"workers did not all switch back to {self.first}"
        return True, f"every worker served {self.first} again after {took:.1f} s"

    def corrupt(self) -> tuple[bool, str]:
        champion = self.registry.champion()
        path = Path(self.registry.path_of(champion)) / "openness.txt"
        original = path.read_bytes()
        self.saved = (path, original)
        data = bytearray(original)
        data[len(data) // 2] ^= 0xFF  # as a bad disk or a careless edit would
        path.write_bytes(bytes(data))
        with self.stats.lock:
            degraded_before = self.stats.degraded
        status, answer = admin_post(
            self.service, f"/v1/models/{champion}/promote", {"reason": "soak"}
        )
        if status != 422:
            return False, f"promotion of the corrupted champion answered {status} {answer}"
        if self.registry.champion() != champion:
            return False, "the champion pointer moved"
        time.sleep(2.0)  # several champion polls (0.5 s) pass
        if wait_for(progressed(self.stats, "decisions", 10)) is None:
            return False, "decisions stopped while the bundle was corrupt"
        with self.stats.lock:
            degraded = self.stats.degraded - degraded_before
        if degraded:
            return False, f"{degraded} degraded decisions while the champion was in memory"
        return True, "promotion refused (422), decisions served from memory, none degraded"

    def restore(self) -> tuple[bool, str]:
        if self.saved is None:
            return False, "nothing to restore"
        path, original = self.saved
        path.write_bytes(original)
        self.saved = None
        champion = self.registry.champion()
        self.registry.load(champion)  # verifies every checksum again
        if wait_for(progressed(self.stats, "outcomes", 10)) is None:
            return False, "outcomes not stored after the restore"
        return True, f"bundle {champion} verifies again, traffic continues"

    def cleanup(self) -> None:
        if self.saved is not None:
            path, original = self.saved
            path.write_bytes(original)
            self.saved = None


def run_faults(faults: Faults, started: float, seconds: float, log) -> list[dict]:
    results = []
    for share, name, step in faults.schedule():
        at = started + share * seconds
        time.sleep(max(0.0, at - time.monotonic()))
        began = time.monotonic()
        try:
            survived, detail = step()
        except Exception as exc:  # a failed step is a fault not survived, not a crash
            survived, detail = False, f"{type(exc).__name__}: {exc}"
        result = {
            "fault": name,
            "at_s": round(began - started, 1),
            "took_s": round(time.monotonic() - began, 1),
            "survived": survived,
            "detail": detail,
        }
        results.append(result)
        log(f"  [{result['at_s']:6.1f} s] {name}: {'survived' if survived else 'FAILED'}, {detail}")
    return results


# ------------------------------------------------------------------ checking
def verify_stored(url: str, stats: Stats) -> dict:
    """Every acknowledged decision and outcome in the database, as answered/sent."""
    import sqlalchemy as sa

    from service.db import decisions, outcomes

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stored_decisions = {
                r.decision_id: r
                for r in conn.execute(
                    sa.select(decisions.c.decision_id, *(decisions.c[f] for f in DECISION_FIELDS))
                )
            }
            stored_outcomes = {
                r.decision_id: r
                for r in conn.execute(
                    sa.select(outcomes.c.decision_id, *(outcomes.c[f] for f in OUTCOME_FIELDS))
                )
            }
            outcome_rows = conn.execute(sa.select(sa.func.count()).select_from(outcomes)).scalar()
    finally:
        engine.dispose()
    lost_decisions = [d for d in stats.decisions if d not in stored_decisions]
    lost_outcomes = [d for d in stats.outcomes if d not in stored_outcomes]
    wrong_decisions = [
        d
        for d, sent in stats.decisions.items()
        if d in stored_decisions
        and tuple(getattr(stored_decisions[d], f) for f in DECISION_FIELDS)
        != tuple(sent[f] for f in DECISION_FIELDS)
    ]
    wrong_outcomes = [
        d
        for d, sent in stats.outcomes.items()
        if d in stored_outcomes
        and tuple(getattr(stored_outcomes[d], f) for f in OUTCOME_FIELDS)
        != tuple(sent[f] for f in OUTCOME_FIELDS)
    ]
    return {
        "decisions_acknowledged": len(stats.decisions),
        "decisions_stored": len(stored_decisions),
        "decisions_lost": len(lost_decisions),
        "decisions_differing": len(wrong_decisions),
        "outcomes_acknowledged": len(stats.outcomes),
        "outcomes_stored": len(stored_outcomes),
        "outcome_rows": outcome_rows,  # one per decision: no double counting
        "outcomes_lost": len(lost_outcomes),
        "outcomes_differing": len(wrong_outcomes),
        "samples": {
            "lost_decisions": lost_decisions[:5],
            "lost_outcomes": lost_outcomes[:5],
            "differing_decisions": wrong_decisions[:5],
            "differing_outcomes": wrong_outcomes[:5],
        },
    }


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def worst_window(times: list[float], started: float, held: float, width: float = 5.0) -> float:
    """Lowest completed requests/s over any ``width``-second window of the run."""
    if held < width:
        return len(times) / held if held else 0.0
    buckets = [0] * (int(held) + 1)
    for t in times:
        index = int(t - started)
        if 0 <= index < len(buckets):
            buckets[index] += 1
    w = int(width)
    sums = [sum(buckets[i : i + w]) for i in range(0, len(buckets) - w)]
    return min(sums) / width if sums else 0.0


def summarize(config: SoakConfig, stats: Stats, held: float, started: float, stored: dict,
              faults: list[dict]) -> dict:  # fmt: skip
    attempts = sum(sum(c.values()) for c in stats.statuses.values())
    by_status: Counter = Counter()
    for counter in stats.statuses.values():
        by_status.update({str(k): v for k, v in counter.items()})
    errors = {k: v for k, v in by_status.items() if not (k.isdigit() and 200 <= int(k) < 300)}
    decision_5xx = sum(
        v for k, v in stats.statuses["decisions"].items() if isinstance(k, int) and k >= 500
    )
    outcome_5xx_other = sum(
        v
        for k, v in stats.statuses["outcomes"].items()
        if isinstance(k, int) and k >= 500 and k != 503
    )
    completed = len(stats.completions)
    figures = {
        "backend": config.backend,
        "durability": config.durability,
        "workers": config.workers,
        "threads": config.threads,
        "rate_target": config.rate,
        "seconds_held": round(held, 1),
        "minutes_held": round(held / 60, 2),
        "requests_per_s": round(completed / held, 1) if held else 0.0,
        "attempts_per_s": round(attempts / held, 1) if held else 0.0,
        "worst_5s_requests_per_s": round(worst_window(stats.completions, started, held), 1),
        "endpoints": {
            endpoint: {
                "attempts": len(stats.latencies[endpoint]),
                "p50_ms": _round(percentile(stats.latencies[endpoint], 0.50)),
                "p99_ms": _round(percentile(stats.latencies[endpoint], 0.99)),
                "statuses": {
                    str(k): v
                    for k, v in sorted(stats.statuses[endpoint].items(), key=lambda kv: str(kv[0]))
                },
            }
            for endpoint in ("decisions", "outcomes")
        },  # fmt: skip
        "error_rate": round(sum(errors.values()) / attempts, 5) if attempts else 0.0,
        "errors_by_status": errors,
        "decision_5xx": decision_5xx,
        "outcome_5xx_not_503": outcome_5xx_other,
        "status_503": by_status.get("503", 0),
        "degraded_decisions": stats.degraded,
        "unstored_decisions": stats.unstored,
        "abandoned": dict(stats.abandoned),
        "behind_schedule_resets": stats.behind_resets,
        "unexpected": stats.unexpected[:10],
        "unexpected_count": len(stats.unexpected),
        **{k: v for k, v in stored.items()},
        "faults": faults,
        "faults_survived": sum(f["survived"] for f in faults),
        "faults_run": len(faults),
    }
    figures["ok"] = (
        figures["decisions_lost"] == 0
        and figures["outcomes_lost"] == 0
        and figures["decisions_differing"] == 0
        and figures["outcomes_differing"] == 0
        and decision_5xx == 0
        and outcome_5xx_other == 0
        and figures["faults_survived"] == figures["faults_run"]
    )
    return figures


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def report(figures: dict) -> str:
    lines = [
        f"soak: {figures['backend']} ({figures['durability']} durability), "
        f"{figures['workers']} sync workers, {figures['threads']} client threads, "
        f"target {figures['rate_target']:.0f} req/s",
        f"  held {figures['minutes_held']:.2f} min: {figures['requests_per_s']:.1f} req/s "
        f"acknowledged ({figures['attempts_per_s']:.1f} attempts/s incl. retries), "
        f"worst 5 s window {figures['worst_5s_requests_per_s']:.1f} req/s",
    ]
    for endpoint, e in figures["endpoints"].items():
        lines.append(
            f"  {endpoint:<9} {e['attempts']:>7} attempts  p50 {e['p50_ms'] or 0:7.2f} ms  "
            f"p99 {e['p99_ms'] or 0:8.2f} ms  statuses {e['statuses']}"
        )
    lines += [
        f"  error rate {figures['error_rate'] * 100:.3f} % of attempts, by status "
        f"{figures['errors_by_status'] or '{}'} (503 and connection errors are retried)",
        f"  decision 5xx {figures['decision_5xx']} (must be 0), outcome 5xx other than 503 "
        f"{figures['outcome_5xx_not_503']}, 503 {figures['status_503']}, degraded "
        f"{figures['degraded_decisions']}, answered but not stored "
        f"{figures['unstored_decisions']}, abandoned {figures['abandoned'] or 0}",
        f"  decisions acknowledged {figures['decisions_acknowledged']}, stored "
        f"{figures['decisions_stored']}, lost {figures['decisions_lost']}, differing "
        f"{figures['decisions_differing']}",
        f"  outcomes acknowledged {figures['outcomes_acknowledged']}, stored "
        f"{figures['outcomes_stored']} ({figures['outcome_rows']} rows), lost "
        f"{figures['outcomes_lost']} (must be 0), differing {figures['outcomes_differing']}",
        f"  faults survived {figures['faults_survived']}/{figures['faults_run']}",
    ]
    for f in figures["faults"]:
        verdict = "survived" if f["survived"] else "FAILED"
        lines.append(f"    at {f['at_s']:6.1f} s  {f['fault']}: {verdict}, {f['detail']}")
    if figures["unexpected_count"]:
        lines.append(
            f"  unexpected answers ({figures['unexpected_count']}): {figures['unexpected']}"
        )
    lines.append("  OK" if figures["ok"] else "  FAILED")
    return "\n".join(lines)


# ---------------------------------------------------------------------- main
def run_soak(config: SoakConfig) -> dict:
    """Start the service, hold the load (with faults), verify the database; the figures."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    def log(message: str) -> None:
        if not config.quiet:
            print(message, flush=True)

    work = Path(tempfile.mkdtemp(prefix="vea-soak-"))
    try:
        service = start_service(config, work)
        try:
            stats = Stats()
            faults = Faults(service, stats) if config.faults else None
            interval = config.threads * 2 / config.rate  # two requests per interaction
            run = uuid.uuid4().hex[:8]
            started = time.monotonic()
            end = started + config.seconds
            threads = [
                Load(i, service.port, service.desktop, interval, end, stats, config.customers,
                     run, interval * i / config.threads)
                for i in range(config.threads)
            ]  # fmt: skip
            for thread in threads:
                thread.start()
            log(f"soak: {config.rate:.0f} req/s for {config.seconds:.0f} s on {config.backend}")
            fault_results: list[dict] = []
            try:
                if faults is not None:
                    fault_results = run_faults(faults, started, config.seconds, log)
            finally:
                if faults is not None:
                    faults.cleanup()
                for thread in threads:
                    thread.join(timeout=config.seconds + GIVE_UP_S + 30)
            held = time.monotonic() - started
            stored = verify_stored(service.url, stats)
            figures = summarize(config, stats, held, started, stored, fault_results)
            if not figures["ok"]:
                figures["log_tail"] = service.log.read_text(errors="replace")[-3000:]
            return figures
        finally:
            stop_service(service)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=150.0, help="requests/s (both endpoints)")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--faults", action="store_true", help="inject the faults during load")
    parser.add_argument("--threads", type=int, default=16, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--durability", choices=["full", "relaxed"], default="full")
    parser.add_argument("--registry", type=Path, help="a registry with >= 2 versions (copied)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0 or args.threads < 1:
        parser.error("--rate, --minutes and --threads must be positive")
    config = SoakConfig(
        rate=args.rate,
        seconds=args.minutes * 60,
        backend=args.backend,
        faults=args.faults,
        threads=args.threads,
        workers=args.workers,
        durability=args.durability,
        registry=args.registry,
    )
    figures = run_soak(config)
    print(report(figures))
    if not figures["ok"] and figures.get("log_tail"):
        print("gunicorn log (tail):\n" + figures["log_tail"], file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
