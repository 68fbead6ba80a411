"""Token buckets per key (an API key, a client address).

Under gunicorn every worker of one master shares the buckets through a small
memory-mapped file (``VEA_SHARED_STATE_DIR``, which the master creates), so a limit of
200/s is 200/s per key and not 200/s per worker, and a key guesser gets the same few
tries whichever worker answers. ``flock`` serialises the read-modify-write of a bucket
(a few microseconds; the kernel drops the lock of a killed worker). Without a shared
file (a bare ``create_app()``) each process keeps its own buckets.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable

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
    ) -> None:
        self.rate = rate_per_s
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: LocalBuckets | SharedBuckets = (
            SharedBuckets(shared_path, shared_slots) if shared_path else LocalBuckets()
        )

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str) -> float:
        """Take one token; return 0.0 if allowed, else seconds until a token is free."""
        if not self.enabled:
            return 0.0
        return self._buckets.apply(key, self._step(self._clock()))

    def refund(self, key: str) -> None:
        """Give back a token ``acquire`` took for something that turned out not to count."""
        if not self.enabled:
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
