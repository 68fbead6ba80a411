"""The drift gauges of the live traffic: ``vea_feature_psi`` and ``vea_calibration_gap``.

They describe the decisions of the last ``VEA_DRIFT_WINDOW_H`` hours (by when the contact
occurred, as the reports count), computed by the drift report's own code
(``service.reports.drift``), whoever reads the reports: a report for another period
changes nothing in /metrics.

- Computed when /metrics is read and the values are older than ``REFRESH_S``: after
  the answer is sent (that scrape shows the values it found, the next one the new ones),
  by the worker that answered, holding one of the instance's heavy slots as a report does
  (``service.heavy``). A sync worker takes no decision meanwhile: the decisions go to
  the other workers, never wait behind it.
- One computation for all the workers of a gunicorn master: it holds
  ``drift-gauges.lock`` (flock) in ``VEA_SHARED_STATE_DIR`` and writes its values whole to
  ``drift-gauges.json`` there (a temporary file renamed over the old one); every worker's
  /metrics shows that file. Without the directory (a bare ``create_app()``) each app
  keeps its own.
- At most the latest ``MAX_DECISIONS`` decisions of the window are read.
- No PSI series below ``MIN_DECISIONS`` decisions in the window, no band's gap below
  ``MIN_OUTCOMES`` value attempts with an outcome in that band: absent, not zero (an
  absent series fires no alert; ``absent()`` can tell). A feature or band that drops out
  is gone at the next refresh.
- A failure (the database down, the champion's bundle unreadable) keeps the last values,
  is logged once until a computation succeeds again, and is tried again after
  ``REFRESH_S``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, after_this_request, has_request_context
from sqlalchemy.exc import SQLAlchemyError

from service import heavy, reports
from service.db import decisions, error_name, utcnow
from service.metrics import CALIBRATION_GAP, FEATURE_PSI

log = logging.getLogger("vea.drift")

# Seconds between two computations (a constant: the alerts wait an hour, and a refresh
# reads the whole window's decisions).
REFRESH_S = 300.0
REFRESH = timedelta(seconds=REFRESH_S)
# PSI of a sample without drift is about (bins - 1) / n: some 0.05 for 10 bins at 200
# decisions, well under the 0.2 alert; at 2 decisions it read 17.7.
MIN_DECISIONS = 200
# A success rate of 100 outcomes is known to about +-0.1 (95%), the alert's threshold.
MIN_OUTCOMES = 100
# At most the latest this many decisions of the window: a computation reads the
# decisions whole (about 35 us and 3.4 KB each here), in a serving worker, and a busy
# centre's day (100k decisions: 4-7 s, +420 MB) or a week's window would pass gunicorn's
# worker timeout. A sample this size knows a PSI to about 0.0005, far under the 0.2 alert.
MAX_DECISIONS = 30_000
FILE_NAME = "drift-gauges.json"
LOCK_NAME = "drift-gauges.lock"

Values = dict[str, dict[str, float]]  # {metric name: {label value: value}}


class DriftMonitor:
    """The drift gauges' values for /metrics (``scraped``), refreshed after the scrape
    that found them due (``refresh``)."""

    def __init__(self, app: Flask) -> None:
        settings = app.extensions["vea"].settings
        self._app = app
        self._window = timedelta(hours=settings.drift_window_h)
        directory = settings.shared_state_dir
        self._store: _SharedFile | _Memory = _SharedFile(directory) if directory else _Memory()

    def scraped(self) -> Values:
        """The values to show now; when they are due, a refresh is arranged for after
        this request's answer is sent."""
        if not self._window:
            return {}
        snapshot = self._store.read()
        if due(snapshot, utcnow()) and has_request_context():
            after_this_request(self._refresh_after)
        if snapshot is None:
            return {}
        return {
            name: {str(label): float(value) for label, value in (snapshot.get(name) or {}).items()}
            for name in (FEATURE_PSI, CALIBRATION_GAP)
        }

    def _refresh_after(self, response: Any) -> Any:
        response.call_on_close(self.refresh)
        return response

    def refresh(self) -> None:
        """Compute the values if they are due and no other worker is at it; never raises
        (it runs after an answer was sent, where nobody could be told)."""
        try:
            release = self._store.try_lock()
        except OSError as exc:
            log.warning("drift gauges not refreshed: cannot lock %s: %s", LOCK_NAME, exc)
            return
        if release is None:
            return  # another worker is computing them
        try:
            with self._app.app_context():
                self._refresh_locked()
        except Exception as exc:  # a bug: said, the last values stay
            log.error("drift gauges not refreshed", exc_info=exc)
        finally:
            release()

    def _refresh_locked(self) -> None:
        now = utcnow()
        before = self._store.read()
        if not due(before, now):
            return  # another worker refreshed them while this one waited for the lock
        kept = dict(before or {}, attempted_at=now.isoformat())
        try:
            with heavy.slot():
                # Said before computing: a worker killed on the way (gunicorn's timeout)
                # is not followed at once by the next one.
                self._store.write(kept)
                values = self._compute(now)
        except heavy.Busy:
            return  # reports hold the instance's heavy slots: the next scrape tries again
        except Exception as exc:
            if not kept.get("failing"):
                log.warning(
                    "drift gauges not refreshed (%s): the last values stay, tried again every %g s",
                    error_name(exc),
                    REFRESH_S,
                    # A database's message can quote its statement: only its class.
                    exc_info=None if isinstance(exc, SQLAlchemyError) else exc,
                )
            self._store.write(dict(kept, failing=True))
            return
        self._store.write(values)
        if kept.get("failing"):
            log.info("drift gauges refreshed again")

    def _compute(self, now: datetime) -> dict[str, Any]:
        st = self._app.extensions["vea"]
        start = latest_start(st.engine, now - self._window, MAX_DECISIONS)
        report = reports.drift(st.engine, st.settings, st.models.registry, start, None)
        psi = {}
        if report["decisions"] >= MIN_DECISIONS:
            psi = {f["feature"]: f["psi"] for f in report["features"] if f["psi"] is not None}
        gaps = {
            band["band"]: band["gap"]
            for band in report["calibration"]
            if band["n"] >= MIN_OUTCOMES and band["gap"] is not None
        }
        return {
            "attempted_at": now.isoformat(),
            "window_h": self._window.total_seconds() / 3600,
            "model_version": report["model_version"],
            "decisions": report["decisions"],
            FEATURE_PSI: psi,
            CALIBRATION_GAP: gaps,
        }


def latest_start(engine: sa.Engine, start: datetime, most: int) -> datetime:
    """``start``, or later: the contact time of the latest ``most`` decisions since it,
    when there are more (one step along ``ix_decisions_occurred_at``)."""
    query = (
        sa.select(decisions.c.occurred_at)
        .where(decisions.c.occurred_at >= start)
        .order_by(decisions.c.occurred_at.desc())
        .offset(most - 1)
        .limit(1)
    )
    with engine.connect() as conn:
        cut = conn.execute(query).scalar()
    return start if cut is None else max(start, cut)


def due(snapshot: dict[str, Any] | None, now: datetime) -> bool:
    """Whether values last tried at the snapshot's time are to be computed again (a clock
    set back counts as due: values must not freeze until it catches up)."""
    try:
        attempted = datetime.fromisoformat(snapshot["attempted_at"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return True
    return not timedelta(0) <= now - attempted < REFRESH


class _SharedFile:
    """The values in ``drift-gauges.json``, shared by the workers of one master."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, FILE_NAME)
        self._lock_path = os.path.join(directory, LOCK_NAME)
        self._stamp: tuple[int, int, int] | None = None  # the file version read last
        self._snapshot: dict[str, Any] | None = None

    def read(self) -> dict[str, Any] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:  # replaced by a worker since: read once, not per scrape
            try:
                with open(self.path, "rb") as file:
                    snapshot = json.loads(file.read())
            except (OSError, ValueError) as exc:
                log.warning("ignoring %s: %s", self.path, exc)
                return None  # due: the next refresh writes it whole again
            # One assignment each: another thread sees the old pair or the new one.
            self._snapshot, self._stamp = snapshot if isinstance(snapshot, dict) else None, stamp
        return self._snapshot

    def write(self, snapshot: dict[str, Any]) -> None:
        handle, temporary = tempfile.mkstemp(
            dir=os.path.dirname(self.path), prefix=".drift-gauges."
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(snapshot, file)
            os.replace(temporary, self.path)  # a reader sees one whole version or the other
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def try_lock(self) -> Callable[[], None] | None:
        # Opened per call: flock excludes each open file, so the threads of one worker
        # exclude each other as processes do (as service.heavy's slots).
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return lambda: os.close(fd)  # closing the only descriptor drops the lock


class _Memory:
    """The values of one app (no shared state directory)."""

    def __init__(self) -> None:
        self._snapshot: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any] | None:
        return self._snapshot

    def write(self, snapshot: dict[str, Any]) -> None:
        self._snapshot = snapshot

    def try_lock(self) -> Callable[[], None] | None:
        return self._lock.release if self._lock.acquire(blocking=False) else None
