"""The API keys verified lately, shared by the workers of one gunicorn master.

Each worker keeps the keys it verified in memory (``service.auth.KeyStore``) and, while
the database cannot be reached, still trusts a key it verified within ``STALE_GRACE_S``.
A worker started during an outage (gunicorn replaces one that timed out, crashed or
reached max_requests) has verified nothing itself: it reads this file instead, under the
same rules.

The file (``verified-keys.json`` in ``VEA_SHARED_STATE_DIR``, which the master makes or
empties at start) holds, for each key a worker found in the table, only what the table
holds: the key's SHA-256 (never the key), id, role, expiry and whether it is revoked,
with when it was last read there (wall clock, naive UTC, so any worker can tell its age).
A worker writes it only when what it read differs from the file, or the file's entry is
older than ``REFRESH_S``: a few writes a minute, never one per request. A write reads the
file afresh under ``flock`` (two workers' updates are not lost), writes a temporary file
in the same directory (mode 0600) and renames it over the old one, so a reader sees one
whole version or the other. A file not owned by this user, or writable by others, is
ignored: it decides who may call the service during an outage.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from datetime import datetime, timedelta

log = logging.getLogger("vea.auth")

FILE_NAME = "verified-keys.json"
# An unchanged entry is rewritten (its time renewed) at most this often: a worker started
# during an outage trusts a key for up to this much less than the grace, never longer.
REFRESH_S = 60.0
REFRESH = timedelta(seconds=REFRESH_S)

# key_id, role, expires_at (naive UTC or None), revoked: service.auth.KeyInfo's fields.
Record = tuple[str, str, datetime | None, bool]
Entry = tuple[datetime, Record]  # when it was last read from the table, and what


class SharedKeys:
    """``get`` the entry of a key hash; ``note`` what a lookup in the table found."""

    def __init__(self, directory: str, grace_s: float) -> None:
        self.path = os.path.join(directory, FILE_NAME)
        self._grace_s = grace_s  # entries older than this are dropped when writing
        self._stamp: tuple[int, int, int] | None = None  # the file version read last
        self._entries: dict[str, Entry] = {}

    def get(self, digest: str) -> Entry | None:
        self._refresh()
        return self._entries.get(digest)

    def note(self, digest: str, record: Record | None, now: datetime) -> None:
        """A lookup in the table at ``now`` found ``record`` (None: no such key)."""
        known = self.get(digest)
        if known is None and record is None:
            return
        if known is not None and known[1] == record and timedelta(0) <= now - known[0] < REFRESH:
            return  # the file says so already, lately enough
        try:
            self._write(digest, record, now)
        except OSError as exc:
            # Only the next outage's new workers miss it: the request goes on.
            log.warning("cannot write %s: %s", self.path, exc)

    def _refresh(self) -> None:
        """Read the file again if another worker replaced it since the last read."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._entries = None, {}
            return
        except OSError:
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._entries = self._read()  # one assignment: other threads see old or new
            self._stamp = stamp

    def _read(self) -> dict[str, Entry]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return {}
        with os.fdopen(fd, "rb") as file:
            st = os.fstat(file.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                log.warning("ignoring %s: not owned by this user or writable by others", self.path)
                return {}
            try:
                raw = json.loads(file.read())
                return {digest: _entry(value) for digest, value in raw.items()}
            except (ValueError, TypeError, AttributeError) as exc:
                log.warning("ignoring %s: %s", self.path, exc)
                return {}

    def _write(self, digest: str, record: Record | None, now: datetime) -> None:
        directory = os.path.dirname(self.path)
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close, or the kernel if killed
            entries = self._read()  # the other workers' latest entries
            known = entries.get(digest)
            if known is not None and known[1][3] and record is not None and not record[3]:
                # A revocation is final: a lookup that read the key alive just before it
                # and writes after another worker wrote "revoked" must not undo it.
                return
            if record is None:
                entries.pop(digest, None)
            else:
                entries[digest] = (now, record)
            kept = {
                d: (at, rec)
                for d, (at, rec) in entries.items()
                if (now - at).total_seconds() < self._grace_s
            }
            handle, temporary = tempfile.mkstemp(dir=directory, prefix=".verified-keys.")
            try:
                with os.fdopen(handle, "w") as file:  # mkstemp: mode 0600
                    json.dump({d: _stored(entry) for d, entry in kept.items()}, file)
                os.replace(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
        finally:
            os.close(fd)
        self._refresh()


def _stored(entry: Entry) -> list:
    at, (key_id, role, expires_at, revoked) = entry
    return [at.isoformat(), key_id, role, expires_at.isoformat() if expires_at else None, revoked]


def _entry(value: list) -> Entry:
    at, key_id, role, expires_at, revoked = value
    expiry = datetime.fromisoformat(expires_at) if expires_at is not None else None
    return datetime.fromisoformat(at), (str(key_id), str(role), expiry, revoked is True)
