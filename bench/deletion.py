"""How long a retention prune takes: ``prune_before`` over N old decisions, each with an
outcome and a survey (plus as many young decisions it keeps), on a throw-away PostgreSQL
cluster or a SQLite file, while a live writer (another engine, as a service worker)
commits one small write every 10 ms: its longest wait for the write turn is what a
decision would wait during the prune (the prune commits every ``PRUNE_CHUNK``
decisions). Prints the figures; asserts nothing.

    python -m bench.deletion [--decisions 100000] [--backend postgresql|sqlite]
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from service import deletion
from service.db import (
    begin_write,
    decisions,
    make_engine,
    outcomes,
    pool_availability,
    surveys,
    upgrade,
)

ROWS_PER_INSERT = 5000


def fill(engine: sa.Engine, count: int, occurred_at: datetime) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    for start in range(0, count, ROWS_PER_INSERT):
        ids = [secrets.token_hex(16) for _ in range(min(ROWS_PER_INSERT, count - start))]
        with engine.begin() as conn:
            conn.execute(
                decisions.insert(),
                [
                    {
                        "decision_id": i,
                        "interaction_id": f"bench-{i}",
                        "customer_id": f"c-{n % 997}",
                        "occurred_at": occurred_at,
                        "created_at": now,
                        "features": {},
                        "suggested_activity": "none",
                        "propensity": 1.0,
                        "model_version": "bench",
                        "openness": 0.5,
                        "response": {},
                    }
                    for n, i in enumerate(ids)
                ],
            )
            common = {"occurred_at": occurred_at, "recorded_at": now}
            conn.execute(
                outcomes.insert(),
                [
                    {"decision_id": i, "activity": "none", "offered": False, "payload": {}} | common
                    for i in ids
                ],
            )
            conn.execute(
                surveys.insert(),
                [{"decision_id": i, "csat": 4, "recorded_at": now, "updated_at": now} for i in ids],
            )


class LiveWriter(threading.Thread):
    """One small write transaction every 10 ms on its own engine; the longest one."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(url)
        self.stopping = threading.Event()
        self.longest_s = 0.0
        self.writes = 0

    def run(self) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        row = {"pool_id": "bench", "agents_free": 1, "reported_at": now}
        while not self.stopping.wait(0.01):
            started = time.perf_counter()
            with begin_write(self.engine) as conn:
                conn.execute(
                    pool_availability.delete().where(pool_availability.c.pool_id == "bench")
                )
                conn.execute(pool_availability.insert(), row)
            self.longest_s = max(self.longest_s, time.perf_counter() - started)
            self.writes += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join()
        self.engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()

    cluster = None
    work = Path(tempfile.mkdtemp(prefix="vea-bench-deletion-"))
    if args.backend == "postgresql":
        from tests.conftest import PostgresCluster, postgres_bindir

        cluster = PostgresCluster(postgres_bindir(), durable=True).start()
        url = cluster.create_database("vea_deletion")
    else:
        url = f"sqlite:///{work / 'deletion.db'}"
    try:
        upgrade(url)
        engine = make_engine(url)
        long_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=400)
        started = time.perf_counter()
        fill(engine, args.decisions, long_ago)
        fill(engine, args.decisions, datetime.now(UTC).replace(tzinfo=None))
        print(
            f"fill {2 * args.decisions:,} decisions (setup): {time.perf_counter() - started:.1f} s"
        )

        if args.backend == "postgresql":
            with engine.begin() as conn:  # as autovacuum would have by then
                conn.exec_driver_sql("ANALYZE")
        cutoff = datetime.now(UTC) - timedelta(days=200)
        writer = LiveWriter(url)
        writer.start()
        started = time.perf_counter()
        counts = deletion.prune_before(engine, cutoff)
        elapsed = time.perf_counter() - started
        writer.stop()
        print(f"backend {args.backend}, batch {deletion.BATCH}: deleted {counts}")
        print(
            f"prune {counts['decisions']:,} of {2 * args.decisions:,} decisions: {elapsed:.2f} s "
            f"({counts['decisions'] / elapsed:,.0f} decisions/s)"
        )
        print(
            f"live writer during the prune: {writer.writes} writes, longest "
            f"{writer.longest_s * 1000:.0f} ms (chunks of {deletion.PRUNE_CHUNK:,} decisions)"
        )
        engine.dispose()
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
