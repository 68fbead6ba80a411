"""At most ``VEA_HEAVY_CONCURRENCY`` heavy computations at once per instance.

A report over the stored decisions (``/v1/reports/*``, the dashboard's uncached sections
and its CSV downloads) takes seconds at 100,000 decisions and holds its worker all that
time: a few at once left none for the decisions, which desktops give up on after half a
second. ``slot()`` takes one of N slots or refuses at once (``Busy``: 429 with
Retry-After), never waits. The slots are files in ``VEA_SHARED_STATE_DIR``, locked with
``flock``, so every worker of one gunicorn master counts against the same N (the kernel
drops the lock of a killed worker); without that directory (a bare ``create_app()``)
each app has its own. Decisions, outcomes and events never take a slot, nor do answers
already kept (the dashboard's cached sections).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import current_app

from service.db import without_deadline
from service.errors import ApiError
from service.state import state


class Busy(ApiError):
    """Every slot is taken: 429 ``rate_limited`` with Retry-After (``retry_after_s``)."""

    def __init__(self, limit: int, retry_after_s: int) -> None:
        super().__init__(
            429,
            f"busy: {limit} heavy computation(s) (reports, a pools rebuild) already running on "
            "this instance "
            f"(VEA_HEAVY_CONCURRENCY); retry after {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


@contextmanager
def slot() -> Iterator[None]:
    """Hold a slot for the block, or raise ``Busy`` at once. Also a decorator
    (``@heavy.slot()``): the slot is taken per call."""
    settings = state().settings
    limit = settings.heavy_concurrency
    release = _take(limit) if limit > 0 else _nothing
    if release is None:
        raise Busy(limit, max(1, settings.retry_after_s))
    try:
        # A report may take longer than VEA_DB_TIMEOUT_S: that is its work, not a hung
        # database, and must not make the decisions answer degraded.
        with without_deadline(state().engine):
            yield
    finally:
        release()


def _take(limit: int) -> Callable[[], None] | None:
    """A free slot's release, or None when all ``limit`` are held."""
    settings = state().settings
    if not settings.shared_state_dir:
        locks = current_app.extensions.setdefault(
            "vea.heavy_slots", [threading.Lock() for _ in range(limit)]
        )
        for lock in locks:
            if lock.acquire(blocking=False):
                return lock.release
        return None
    for index in range(limit):
        # Opened per request: flock excludes each open file, so threads of one worker
        # (VEA_THREADS) exclude each other as processes do.
        path = settings.shared_state_path(f"heavy-{index}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        return lambda fd=fd: os.close(fd)  # closing the only descriptor drops the lock
    return None


def _nothing() -> None:
    return None
