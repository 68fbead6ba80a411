"""Rate-limit buckets shared by processes: a per-key limit holds across gunicorn's
workers (it used to be per worker, so W workers let W times the limit through), for
API keys and for the brute-force limit on failed key checks."""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from collections import Counter

import pytest
import requests
from click.testing import CliRunner

from service.ratelimit import RateLimiter, SharedBuckets
from tests.conftest import free_port
from tests.test_e2e_gunicorn import ROOT, decision_body, start_gunicorn, stop

NEVER = 1e-9  # tokens per second: nothing refills within a test


def test_two_limiters_on_one_file_share_each_key(tmp_path):
    path = str(tmp_path / "buckets")
    one = RateLimiter(NEVER, 3, shared_path=path)
    two = RateLimiter(NEVER, 3, shared_path=path)
    assert one.acquire("k") == 0 and two.acquire("k") == 0 and one.acquire("k") == 0
    assert two.acquire("k") > 0 and one.acquire("k") > 0
    assert two.acquire("other key") == 0  # per key
    two.refund("k")  # a token taken for what turned out not to count comes back
    assert one.acquire("k") == 0 and two.acquire("k") > 0
    one.refund("never seen")  # nothing to give back: the bucket is full anyway
    assert one.acquire("never seen") == 0


def test_refill_is_shared_and_a_clock_behind_gains_nothing(tmp_path):
    path = str(tmp_path / "buckets")
    now = [100.0]
    ahead = RateLimiter(2.0, 2, clock=lambda: now[0], shared_path=path)
    behind = RateLimiter(2.0, 2, clock=lambda: now[0] - 5.0, shared_path=path)
    assert ahead.acquire("k") == 0 and ahead.acquire("k") == 0
    # A process that read the clock before the last update must not see a refill (nor
    # mistake the bucket for a broken one and fill it).
    assert behind.acquire("k") == pytest.approx(0.5)
    now[0] += 0.5
    assert behind.acquire("k") > 0  # its clock is still before the last update
    assert ahead.acquire("k") == 0  # half a second at 2/s: one token


BURST = 20_000  # long enough a race that a lost update would show


def _hammer(path: str, limiter: RateLimiter | None, start, granted) -> None:
    limiter = limiter or RateLimiter(NEVER, BURST, shared_path=path)
    start.wait()
    won = sum(limiter.acquire("shared key") == 0 for _ in range(BURST // 2))
    with granted.get_lock():
        granted.value += won


@pytest.mark.parametrize("inherited", [False, True], ids=["opened-in-child", "forked-open"])
def test_processes_racing_for_one_key_get_exactly_the_burst(tmp_path, inherited):
    path = str(tmp_path / "buckets")
    context = multiprocessing.get_context("fork")
    granted, start = context.Value("i", 0), context.Event()
    parent = None
    if inherited:  # the file is open and mapped before the fork, as a preloaded app has
        parent = RateLimiter(NEVER, BURST, shared_path=path)
        assert parent.acquire("shared key") == 0
        granted.value = 1
    workers = [
        context.Process(target=_hammer, args=(path, parent, start, granted)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert granted.value == BURST


def test_more_keys_than_slots_stay_within_the_file(tmp_path):
    path = tmp_path / "buckets"
    limiter = RateLimiter(NEVER, 1, shared_path=str(path), shared_slots=32)
    assert all(limiter.acquire(f"key-{n}") == 0 for n in range(500))
    assert path.stat().st_size == 32 * SharedBuckets.SLOT.size
    assert limiter.acquire("key-499") > 0  # the latest keys are still counted


def test_a_torn_slot_starts_afresh(tmp_path):
    path = tmp_path / "buckets"
    limiter = RateLimiter(NEVER, 2, shared_path=str(path), shared_slots=4)
    assert limiter.acquire("k") == 0 and limiter.acquire("k") == 0
    raw = bytearray(path.read_bytes())
    for offset in range(0, len(raw), SharedBuckets.SLOT.size):
        key_hash = raw[offset : offset + 8]
        if any(key_hash):  # keep the key, break its numbers (NaN tokens and clock)
            raw[offset + 8 :] = b"\xff" * 16 + raw[offset + 24 :]
    path.write_bytes(bytes(raw))
    assert limiter.acquire("k") == 0  # a usable bucket again, not stuck


@pytest.fixture
def gunicorn_with_limits(registry_dir, tmp_path):
    """Real gunicorn, 2 sync workers, SQLite; 6 requests per key, 4 failed key checks per
    address, neither refilling during the test."""
    from service.cli import keys as keys_group

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}",
        "VEA_REGISTRY": str(registry_dir),
        "VEA_RATE_LIMIT_PER_S": "0.0001",
        "VEA_RATE_LIMIT_BURST": "6",
        "VEA_AUTH_FAILURES_PER_S": "0.0001",
        "VEA_AUTH_FAILURES_BURST": "4",
        "VEA_ACCESS_LOG": "0",
        "VEA_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    for name in ("VEA_AUTO_MIGRATE", "VEA_SHARED_STATE_DIR"):
        env.pop(name, None)  # the master migrates and makes the shared directory
    port = free_port()
    proc = start_gunicorn(env, port, 2, tmp_path / "gunicorn.log")
    try:
        created = CliRunner().invoke(keys_group, ["create", "--role", "desktop"], env=env)
        assert created.exit_code == 0, created.output
        key = created.stdout.strip().splitlines()[-1]
        yield f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
    finally:
        stop(proc)


def concurrently(send, clients: int = 4, each: int = 6) -> Counter[int]:
    """``clients`` threads, each sending ``each`` requests on fresh connections: sync
    workers serve one request at a time, so both workers get some."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def client() -> None:
        for _ in range(each):
            status = send()
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_the_limits_hold_across_gunicorn_workers(gunicorn_with_limits):
    base, desktop = gunicorn_with_limits

    def decide() -> int:
        return requests.post(
            f"{base}/v1/decisions", json=decision_body(), headers=desktop, timeout=10
        ).status_code

    assert concurrently(decide) == {201: 6, 429: 18}

    def guess() -> int:
        wrong = {"Authorization": f"Bearer vea_{uuid.uuid4().hex}"}
        return requests.post(
            f"{base}/v1/decisions", json=decision_body(), headers=wrong, timeout=10
        ).status_code

    assert concurrently(guess) == {401: 4, 429: 20}
