"""Rate limits shared by instances through the database (``VEA_RATE_LIMIT_SCOPE=database``):
behind a load balancer a key's limit and an address's budget of failed key checks hold
across instances (each instance on its own let N instances give N times the limit).
Instances lease tokens a few at a time; while the database is away each limits alone."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from service.auth import create_key
from service.config import Settings
from service.db import rate_limit_buckets
from service.ratelimit import DatabaseLeases, RateLimiter
from tests.conftest import free_port
from tests.test_e2e_gunicorn import start_gunicorn, stop

NEVER = 1e-9  # tokens per second: nothing refills within a test


def instances(make_app, scope: str, **settings) -> list:
    """Two apps on one database, each with buckets of its own process: two instances."""
    return [make_app(rate_limit_scope=scope, **settings).test_client() for _ in range(2)]


def calls_until_refused(clients, headers: dict, address: str, tries: int = 40) -> list[int]:
    statuses = []
    for n in range(tries):
        answer = clients[n % 2].get(
            "/v1/models", headers=headers, environ_base={"REMOTE_ADDR": address}
        )
        statuses.append(answer.status_code)
    return statuses


@pytest.mark.parametrize(("scope", "allowed"), [("database", 10), ("instance", 20)])
def test_a_keys_limit_holds_across_instances(make_app, scope, allowed):
    clients = instances(make_app, scope, rate_limit_per_s=NEVER, rate_limit_burst=10)
    engine = clients[0].application.extensions["vea"].engine
    headers = {"Authorization": f"Bearer {create_key(engine, 'engineer')[1]}"}
    statuses = calls_until_refused(clients, headers, "192.0.2.1")
    assert statuses.count(200) == allowed
    assert set(statuses) == {200, 429}
    refused = clients[0].get("/v1/models", headers=headers)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.get_json()["error"]["code"] == "rate_limited"


def test_failed_key_checks_from_an_address_are_counted_across_instances(make_app):
    clients = instances(make_app, "database", auth_failures_per_s=NEVER, auth_failures_burst=4)
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    guesses = calls_until_refused(
        clients, {"Authorization": f"Bearer wrong-{uuid.uuid4().hex}"}, address, tries=8
    )
    assert guesses == [401] * 4 + [429] * 4
    # Another address is not blocked.
    other = clients[1].get(
        "/v1/models",
        headers={"Authorization": "Bearer wrong"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert other.status_code == 401


def _stored(engine: sa.Engine, leases: DatabaseLeases, key: str):
    table = rate_limit_buckets
    with engine.connect() as conn:
        return conn.execute(
            sa.select(table.c.tokens, table.c.updated_at).where(
                table.c.bucket == leases.bucket_id(key)
            )
        ).first()


def test_the_database_is_asked_once_per_lease_not_per_request(app):
    engine = app.extensions["vea"].engine
    now = [1_000.0]
    leases = DatabaseLeases(lambda: engine, f"test-{uuid.uuid4().hex[:8]}", lambda: now[0])
    limiter = RateLimiter(1_000.0, 400, leases=leases)
    assert limiter.lease_size == 100  # 0.1 s of the rate, at most a quarter of the burst
    key = uuid.uuid4().hex
    assert limiter.acquire(key) == 0
    assert tuple(_stored(engine, leases, key)) == (300.0, 1_000.0)
    now[0] = 1_000.05
    for _ in range(99):  # the rest of the lease: no database call
        assert limiter.acquire(key) == 0
    assert tuple(_stored(engine, leases, key)) == (300.0, 1_000.0)
    assert limiter.acquire(key) == 0  # a new lease, with 50 tokens refilled meanwhile
    assert tuple(_stored(engine, leases, key)) == pytest.approx((250.0, 1_000.05))
    assert key not in str(tuple(_stored(engine, leases, key)))  # only a hash is stored


def test_an_empty_bucket_is_not_asked_again_until_it_refills(app):
    engine = app.extensions["vea"].engine
    leases = DatabaseLeases(lambda: engine, f"test-{uuid.uuid4().hex[:8]}")
    limiter = RateLimiter(0.5, 2, leases=leases)
    key = uuid.uuid4().hex
    assert limiter.acquire(key) == 0 and limiter.acquire(key) == 0
    made = leases._leases_made
    waits = [limiter.acquire(key) for _ in range(20)]
    assert all(0 < wait <= 2.0 for wait in waits)
    assert leases._leases_made == made + 1  # one answer "empty", then remembered


def test_a_refunded_token_goes_back_to_the_lease(app):
    engine = app.extensions["vea"].engine
    leases = DatabaseLeases(lambda: engine, f"test-{uuid.uuid4().hex[:8]}")
    limiter = RateLimiter(NEVER, 2, leases=leases)
    key = uuid.uuid4().hex
    assert limiter.acquire(key) == 0 and limiter.acquire(key) == 0
    assert limiter.acquire(key) > 0
    limiter.refund(key)
    assert limiter.acquire(key) == 0 and limiter.acquire(key) > 0


def test_refilled_buckets_are_deleted(app):
    """Absent means full: a bucket that has refilled is removed, so the table holds only
    keys and addresses limited lately."""
    engine = app.extensions["vea"].engine
    now = [0.0]
    leases = DatabaseLeases(lambda: engine, f"test-{uuid.uuid4().hex[:8]}", lambda: now[0])
    leases.PRUNE_EVERY = 1
    idle, busy = uuid.uuid4().hex, uuid.uuid4().hex
    assert leases.lease(idle, 1, 1.0, 10) == (1, 0.0)
    now[0] = 9.5  # not yet refilled (10 tokens at 1/s)
    leases.lease(busy, 1, 1.0, 10)
    assert _stored(engine, leases, idle) is not None
    now[0] = 11.0
    leases.lease(busy, 1, 1.0, 10)
    assert _stored(engine, leases, idle) is None
    assert _stored(engine, leases, busy) is not None


def test_without_the_database_each_instance_limits_alone(tmp_path, caplog):
    # A database that cannot be opened, and one without the table (code ahead of its
    # migration during a rolling upgrade): requests are limited locally, never failed.
    for engine in (
        sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'vea.db'}"),
        sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}"),
    ):
        limiter = RateLimiter(NEVER, 3, leases=DatabaseLeases(lambda e=engine: e, "api-keys"))
        assert [limiter.acquire("k") == 0 for _ in range(4)] == [True, True, True, False]
    warnings = [r for r in caplog.records if "limits alone" in r.getMessage()]
    assert len(warnings) == 2  # once per outage and limiter, not per request


def test_the_scope_setting_is_checked():
    assert Settings(rate_limit_scope="Database").rate_limit_scope == "Database"
    with pytest.raises(
        ValueError, match="^VEA_RATE_LIMIT_SCOPE: must be one of instance, database"
    ):
        Settings(rate_limit_scope="cluster")


@pytest.mark.postgres
def test_two_gunicorn_instances_on_one_postgresql_share_the_limit(postgres, registry_dir, tmp_path):
    """Two real gunicorn masters (2 sync workers each, their own shared-state files) on one
    PostgreSQL database, as behind a load balancer: 12 requests per key in all."""
    url = postgres.create_database(f"vea_limits_{uuid.uuid4().hex[:8]}")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VEA_")},
        "VEA_DATABASE_URL": url,
        "VEA_REGISTRY": str(registry_dir),
        "VEA_COMPILE_CACHE": "",
        "VEA_RATE_LIMIT_SCOPE": "database",
        "VEA_RATE_LIMIT_PER_S": "0.0001",
        "VEA_RATE_LIMIT_BURST": "12",
        "VEA_ACCESS_LOG": "0",
    }
    masters, bases = [], []
    try:
        for n in range(2):
            port = free_port()
            prom = tmp_path / f"prom-{n}"
            prom.mkdir()
            log = tmp_path / f"gunicorn-{n}.log"
            masters.append(
                start_gunicorn({**env, "PROMETHEUS_MULTIPROC_DIR": str(prom)}, port, 2, log)
            )
            bases.append(f"http://127.0.0.1:{port}")
        engine = sa.create_engine(url)
        headers = {"Authorization": f"Bearer {create_key(engine, 'engineer')[1]}"}
        engine.dispose()

        def call(n: int) -> int:
            return requests.get(
                f"{bases[n % 2]}/v1/models", headers=headers, timeout=30
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(48)))
    finally:
        for master in masters:
            stop(master)
    assert statuses.count(200) == 12 and statuses.count(429) == 36
