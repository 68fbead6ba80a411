"""Token buckets per key (an API key, a client address).

Under gunicorn every worker of one master shares the buckets through a small
memory-mapped file (``VEA_SHARED_STATE_DIR``, which the master creates), so a limit of
200/s is 200/s per key and not 200/s per worker, and a key guesser gets the same few
tries whichever worker answers. ``flock`` serialises the read-modify-write of a bucket
(a few microseconds; the kernel drops the lock of a killed worker). Without a shared
file (a bare ``create_app()``) each process keeps its own buckets.

Several instances behind a load balancer share one database, not a file: with
``VEA_RATE_LIMIT_SCOPE=database`` the buckets live in the database
(``DatabaseLeases``) and each instance leases a few tokens at a time into its shared file,
so the limit holds across instances while the database is asked once per lease, not per
request. While the database cannot be reached each instance limits on its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from service.db import begin_write, is_unavailable, rate_limit_buckets

log = logging.getLogger("vea.ratelimit")

Bucket = tuple[float, float]  # tokens, updated_at (time.monotonic: the same in every process)
Step = Callable[[Bucket | None], tuple[Bucket | None, float]]


class RateLimiter:
    """``acquire(key)`` takes a token (0.0) or says how many seconds until one is free."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        shared_path: str | None = None,
        shared_slots: int = 8192,
        leases: DatabaseLeases | None = None,
    ) -> None:
        self.rate = rate_per_s
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets = _buckets_at(shared_path, shared_slots)
        # With ``leases``: the tokens this instance leased from the database, and until
        # when the database said the bucket is empty (buckets of their own, in a second
        # file beside the first); ``_buckets`` limits alone while the database is away.
        self._leases = leases
        self._leased = _buckets_at(shared_path and shared_path + ".leased", shared_slots)
        self.lease_size = max(1, min(self.burst // 4, math.ceil(self.rate * LEASE_S)))

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str) -> float:
        """Take one token; return 0.0 if allowed, else seconds until a token is free."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        if self._leases is None:
            return self._buckets.apply(key, self._step(now))
        wait = self._leased.apply(key, _take_leased(now, self.burst))
        if wait != LEASE_NEEDED:
            return wait
        try:
            granted, wait = self._leases.lease(key, self.lease_size, self.rate, self.burst)
        except (DBAPIError, PoolTimeout) as exc:
            if isinstance(exc, DBAPIError) and not is_unavailable(exc):
                raise
            self._leases.report_unavailable(exc)
            return self._buckets.apply(key, self._step(now))
        self._leased.apply(key, _store_lease(now, granted, wait))
        return 0.0 if granted else wait

    def refund(self, key: str) -> None:
        """Give back a token ``acquire`` took for something that turned out not to count."""
        if not self.enabled:
            return
        if self._leases is not None and not self._leases.unavailable:
            # Back into this instance's lease, where ``acquire`` took it from. While the
            # database is away the token came from ``_buckets`` and goes back there: put
            # into the lease, each refund of the outage was a token the database never
            # granted, spent after it came back.
            self._leased.apply(key, _return_leased)
            return
        burst = float(self.burst)

        def step(bucket: Bucket | None) -> tuple[Bucket | None, float]:
            if bucket is None:
                return None, 0.0
            tokens, updated = bucket
            return (min(burst, tokens + 1.0), updated), 0.0

        self._buckets.apply(key, step)

    def _step(self, now: float) -> Step:
        burst, rate = float(self.burst), self.rate

        def step(bucket: Bucket | None) -> tuple[Bucket | None, float]:
            tokens, updated = bucket if bucket is not None else (burst, now)
            if not (0.0 <= tokens <= burst and math.isfinite(updated)):
                tokens, updated = burst, now  # a slot torn by a killed worker: start afresh
            # Another process may have stored a later clock reading than ours.
            tokens = min(burst, tokens + max(0.0, now - updated) * rate)
            updated = max(updated, now)
            if tokens >= 1.0:
                return (tokens - 1.0, updated), 0.0
            return (tokens, updated), (1.0 - tokens) / rate

        return step

    @staticmethod
    def retry_after_header(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))


def _buckets_at(shared_path: str | None, slots: int) -> LocalBuckets | SharedBuckets:
    """Buckets shared through the file at ``shared_path``, or this process's own."""
    return SharedBuckets(shared_path, slots) if shared_path else LocalBuckets()


# A lease covers about this many seconds of a key's rate (at least one token, at most a
# quarter of its burst): the database is asked ~10 times a second for a key at its limit,
# and tokens idle in other instances' leases refuse a key early by at most that much.
LEASE_S = 0.1
LEASE_NEEDED = -1.0  # ``_take_leased``: no token leased here, ask the database


def _take_leased(now: float, burst: int) -> Step:
    def step(bucket: Bucket | None) -> tuple[Bucket | None, float]:
        tokens, refused_until = bucket if bucket is not None else (0.0, 0.0)
        if not (0.0 <= tokens <= burst and math.isfinite(refused_until)):
            bucket, tokens, refused_until = None, 0.0, 0.0  # torn by a killed worker
        if tokens >= 1.0:
            return (tokens - 1.0, refused_until), 0.0
        if now < refused_until:  # the database said empty: no need to ask again yet
            return bucket, refused_until - now
        return bucket, LEASE_NEEDED

    return step


def _store_lease(now: float, granted: int, wait: float) -> Step:
    def step(bucket: Bucket | None) -> tuple[Bucket | None, float]:
        tokens = bucket[0] if bucket is not None else 0.0
        if granted:
            return (tokens + granted - 1.0, 0.0), 0.0  # one of them for this request
        return (tokens, now + wait), wait

    return step


def _return_leased(bucket: Bucket | None) -> tuple[Bucket | None, float]:
    tokens, refused_until = bucket if bucket is not None else (0.0, 0.0)
    return (tokens + 1.0, refused_until), 0.0


def _ignoring_conflicts(dialect) -> sa.Insert:
    return dialect.insert(rate_limit_buckets).on_conflict_do_nothing(index_elements=["bucket"])


class DatabaseLeases:
    """Token buckets in the database, one per limiter and key, which every instance on it
    takes tokens from in leases (``RateLimiter`` asks for ``lease_size`` at a time).

    Time is each instance's wall clock (instances keep it in step with NTP; a skew only
    delays a refill by as much). A bucket that has refilled is deleted: absent means full,
    so the table holds only keys and addresses limited within the last few minutes."""

    PRUNE_EVERY = 256  # leases of this process between deletions of refilled buckets

    def __init__(
        self,
        engine_getter: Callable[[], sa.Engine],
        limiter: str,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine_getter
        self.limiter = limiter
        self._wall_clock = wall_clock
        self._leases_made = 0
        self._reported = False

    def bucket_id(self, key: str) -> str:
        # Neither API key ids nor client addresses are stored as such.
        return hashlib.blake2b(f"{self.limiter}\0{key}".encode(), digest_size=16).hexdigest()

    def lease(self, key: str, want: int, rate: float, burst: int) -> tuple[int, float]:
        """Take up to ``want`` whole tokens from ``key``'s bucket; answer how many were
        taken and, when none, the seconds until one is free."""
        table, bucket = rate_limit_buckets, self.bucket_id(key)
        engine = self._engine()
        insert = _ignoring_conflicts(postgresql if engine.dialect.name == "postgresql" else sqlite)
        now = self._wall_clock()
        with begin_write(engine) as conn:
            conn.execute(
                insert.values(
                    bucket=bucket, limiter=self.limiter, tokens=float(burst), updated_at=now
                )
            )
            tokens, updated = conn.execute(
                sa.select(table.c.tokens, table.c.updated_at)
                .where(table.c.bucket == bucket)
                .with_for_update()
            ).one()
            tokens = min(float(burst), tokens + max(0.0, now - updated) * rate)
            granted = min(want, int(tokens))
            conn.execute(
                table.update()
                .where(table.c.bucket == bucket)
                .values(tokens=tokens - granted, updated_at=max(updated, now))
            )
            self._leases_made += 1
            if self._leases_made % self.PRUNE_EVERY == 0:
                conn.execute(
                    table.delete().where(
                        table.c.limiter == self.limiter, table.c.updated_at < now - burst / rate
                    )
                )
        if self._reported:
            log.info("rate-limit buckets in the database again", extra={"limiter": self.limiter})
            self._reported = False
        return granted, 0.0 if granted else (1.0 - tokens) / rate

    @property
    def unavailable(self) -> bool:
        """Whether the database failed this instance's last lease (it limits alone)."""
        return self._reported

    def report_unavailable(self, exc: BaseException) -> None:
        """Log once per outage that this instance limits alone."""
        if not self._reported:
            log.warning(
                "rate-limit buckets unavailable in the database: this instance limits alone",
                extra={"limiter": self.limiter, "error": type(exc).__name__},
            )
            self._reported = True


class LocalBuckets:
    """Buckets of this process only."""

    MAX_KEYS = 100_000  # keyed by client address too: bound the memory

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, Bucket] = {}

    def apply(self, key: str, step: Step) -> float:
        with self._lock:
            if len(self._buckets) > self.MAX_KEYS:
                self._buckets.clear()
            bucket, wait = step(self._buckets.get(key))
            if bucket is not None:
                self._buckets[key] = bucket
            return wait


class SharedBuckets:
    """Buckets in a memory-mapped file shared by the processes that open the same path.

    A fixed table of slots (key hash, tokens, updated_at) with linear probing: the file
    never grows. When a key finds no free slot within ``PROBES`` it takes the one
    touched longest ago, whose bucket has most likely refilled anyway.
    """

    SLOT = struct.Struct("<Qdd")
    PROBES = 16

    def __init__(self, path: str, slots: int = 8192) -> None:
        self.path = path
        self.slots = slots
        self._thread_lock = threading.Lock()  # flock is per open file, not per thread
        self._pid = 0
        self._fd = -1
        self._map: mmap.mmap | None = None

    def _open(self) -> mmap.mmap:
        # A forked child must open the file itself: an inherited descriptor shares its
        # flock with the parent, which would let both in at once.
        if self._pid != os.getpid() or self._map is None:
            size = self.slots * self.SLOT.size
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size < size:
                    os.ftruncate(fd, size)  # zero-filled: every slot empty
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._map, self._fd, self._pid = mmap.mmap(fd, size), fd, os.getpid()
        return self._map

    def apply(self, key: str, step: Step) -> float:
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        key_hash = int.from_bytes(digest, "little") or 1  # 0 marks an empty slot
        first = key_hash % self.slots
        slot, size = self.SLOT, self.SLOT.size
        with self._thread_lock:
            table = self._open()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                found: Bucket | None = None
                target, oldest = -1, math.inf
                for probe in range(self.PROBES):
                    offset = (first + probe) % self.slots * size
                    stored_hash, tokens, updated = slot.unpack_from(table, offset)
                    if stored_hash == key_hash:
                        target, found = offset, (tokens, updated)
                        break
                    if stored_hash == 0:  # slots are never emptied: the key is not further on
                        target = offset
                        break
                    if updated < oldest:
                        target, oldest = offset, updated
                bucket, wait = step(found)
                if bucket is not None:
                    slot.pack_into(table, target, key_hash, *bucket)
                return wait
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
