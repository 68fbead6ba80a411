"""The erasure ledger: one line per customer erasure, kept outside the database.

A restored backup (a SQLite file copy, a pg_dump restore) brings back every customer
erased after the backup was taken, and the database itself cannot say which: the
erasure's audit event holds only counts. The ledger is an append-only file beside the
model registry (``VEA_ERASURE_LEDGER``) that a restore does not roll back; after a
restore, ``vea db reapply-erasures`` erases those customers again.

A line never holds the customer id: it holds an HMAC-SHA-256 of the id under a secret
key kept in the ledger's own directory (``erasure-ledger.key``, mode 0600, created on
the first erasure), so the ledger alone does not give away ids that could be guessed
(a phone number, a sequential customer number). A line::

    {"v":1,"at":"2026-03-01T09:30:00.123456Z","customer":"<64 hex>","key":"<16 hex>",
     "deleted":{"decisions":2,"outcomes":1,"surveys":0,"events":1}}

``at`` is the service's clock (UTC, microseconds) once the rows were deleted, before
the commit: the replay deletes only what was stored up to then (erasure is not a block
list: a contact stored after the erasure is a new record). ``key`` names the key the
line was written under (a digest of it, not the key), so a line whose key was lost is
reported instead of silently matching nobody.

Several gunicorn workers (and a ``vea`` command) append at once: each line is one
``write`` on a descriptor opened with O_APPEND, which the kernel places whole at the end
of the file on a local file system; the line is fsync'ed before the erasure commits.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from service.db import utcnow

KEY_NAME = "erasure-ledger.key"
VERSION = 1
# Every line starts so: where a failed write left a fragment, the next line is found
# after it (see ``_parse``).
LINE_START = b'{"v":'


class LedgerError(Exception):
    """The ledger cannot be written or read. An erasure is then refused (nothing is
    deleted); the message names files, never a customer id."""


class LedgerElsewhere(LedgerError):
    """The database recorded erasures, but not in this ledger: retrying will not help."""


@dataclass(frozen=True)
class Entry:
    customer: str  # the keyed hash of the customer id
    at: datetime  # naive UTC: the rows stored up to then were erased
    deleted: dict[str, int]


@dataclass(frozen=True)
class Reading:
    """What a ledger holds: its erasures, and the fragments of lines whose write failed
    (``torn``: their erasure was refused, nothing to redo)."""

    entries: list[Entry] = field(default_factory=list)
    torn: int = 0
    hasher: Callable[[str], str] | None = None

    def cutoffs(self) -> dict[str, datetime]:
        """Each erased customer's hash and the latest time it was erased."""
        latest: dict[str, datetime] = {}
        for entry in self.entries:
            if entry.customer not in latest or entry.at > latest[entry.customer]:
                latest[entry.customer] = entry.at
        return latest


def _fingerprint(key: bytes) -> str:
    """Which key a line was written under: a digest of the key (it cannot be undone)."""
    return hashlib.sha256(b"vea erasure ledger key\0" + key).hexdigest()[:16]


def fsync_directory(path: Path) -> None:
    """A file just created or renamed in ``path`` survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ErasureLedger:
    """The ledger file ``path``, with its key beside it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.key_path = self.path.parent / KEY_NAME

    # ---------------------------------------------------------------- the key
    def _has_lines(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def started(self) -> bool:
        """Whether this ledger exists (its key or its lines): the first erasure starts it.
        True when that cannot be told (its directory unreadable): reading it says why."""
        try:
            return self.key_path.exists() or self._has_lines()
        except OSError:
            return True

    def _read_key(self) -> bytes:
        text = self.key_path.read_bytes()
        try:
            key = bytes.fromhex(text.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            key = b""
        if len(key) != 32:
            raise LedgerError(f"the erasure ledger's key {self.key_path} is damaged (not 64 hex)")
        return key

    def key(self, *, create: bool = False) -> bytes:
        """The ledger's key; with ``create``, a new one when neither it nor a ledger with
        lines exists (the first erasure). A ledger with lines but no key is refused: a
        new key would match none of its lines."""
        try:
            return self._read_key()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LedgerError(f"the erasure ledger's key cannot be read: {exc}") from None
        if self._has_lines():
            raise LedgerError(
                f"the erasure ledger {self.path} has lines but its key {self.key_path} is "
                "missing: restore the key from where you keep it (a new key would match "
                "none of the lines)"
            )
        if not create:
            raise LedgerError(f"the erasure ledger's key {self.key_path} does not exist")
        try:
            return self._create_key()
        except OSError as exc:
            raise LedgerError(f"the erasure ledger's key cannot be created: {exc}") from None

    def _create_key(self) -> bytes:
        """A new random key, written whole under a temporary name then linked into
        place: two processes creating it at once both end up with the one that won."""
        directory = self.key_path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = directory / f".{KEY_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.write(fd, secrets.token_hex(32).encode("ascii") + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            # Another process made it first: its key is the one.
            with contextlib.suppress(FileExistsError):
                os.link(partial, self.key_path)
        finally:
            partial.unlink(missing_ok=True)
        fsync_directory(directory)
        return self._read_key()

    @staticmethod
    def hasher(key: bytes) -> Callable[[str], str]:
        def customer_hash(customer_id: str) -> str:
            return hmac.new(key, customer_id.encode("utf-8"), hashlib.sha256).hexdigest()

        return customer_hash

    # --------------------------------------------------------------- writing
    def prepare(self) -> Callable[[str, Mapping[str, int], datetime | None], None]:
        """Ready to append (the key read or created): the function that appends an
        erasure's line. Called before the erasure starts, so a missing or unreadable key
        refuses it before any row is locked."""
        key = self.key(create=True)
        return lambda customer_id, deleted, latest=None: self._append(
            key, customer_id, deleted, latest
        )

    def _append(
        self,
        key: bytes,
        customer_id: str,
        deleted: Mapping[str, int],
        latest: datetime | None = None,
    ) -> None:
        """One line for the erasure of ``customer_id``, on disk (fsync'ed) on return;
        LedgerError when it could not be written whole. Its time is now, or ``latest``
        (the newest stored time of the rows erased) when a host's clock put that later."""
        at = utcnow() if latest is None else max(utcnow(), latest)
        line = {
            "v": VERSION,
            "at": at.isoformat(timespec="microseconds") + "Z",
            "customer": self.hasher(key)(customer_id),
            "key": _fingerprint(key),
            "deleted": dict(deleted),
        }
        data = json.dumps(line, separators=(",", ":")).encode("ascii") + b"\n"
        try:
            new = not self.path.exists()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fd = os.open(self.path, flags, 0o600)
            try:
                # One write: O_APPEND places it whole at the end, whoever else appends.
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"wrote {written} of {len(data)} bytes (disk full?)")
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                fsync_directory(self.path.parent)
        except OSError as exc:
            raise LedgerError(f"the erasure ledger cannot be written: {exc}") from None

    # --------------------------------------------------------------- reading
    def read(self) -> Reading:
        """Every erasure the ledger holds. No file: no erasure (a ``Reading`` without
        entries). LedgerError when the key is missing or a line was written under
        another key (what it erased cannot be found again without that key)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Reading()
        except OSError as exc:
            raise LedgerError(f"the erasure ledger cannot be read: {exc}") from None
        key = self.key()
        fingerprint = _fingerprint(key)
        entries: list[Entry] = []
        torn = other_key = 0
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            entry, fragments = _parse(raw)
            torn += fragments
            if entry is None:
                continue
            if entry[1] != fingerprint:
                other_key += 1
                continue
            entries.append(entry[0])
        if other_key:
            raise LedgerError(
                f"{other_key} lines of the erasure ledger {self.path} were written under "
                f"another key than {self.key_path}: restore the key they were written "
                "under (nothing was erased)"
            )
        return Reading(entries, torn, self.hasher(key))


class ErasureIndex:
    """When each customer of a ledger was last erased, read from the ledger again when the
    file changes (a stat per lookup): a webhook retrying an event that happened before
    the erasure must not bring the erased customer back. Erasures recorded in other
    hosts' ledgers are not known here."""

    def __init__(self, ledger: ErasureLedger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._cutoffs: dict[str, datetime] = {}
        self._hasher: Callable[[str], str] | None = None

    def erased_at(self, customer_id: str) -> datetime | None:
        """The time (naive UTC) of the customer's latest erasure, or None."""
        try:
            st = os.stat(self.ledger.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None  # no ledger (no erasure yet), or unreadable: nothing known
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._reload(stamp)
        if self._hasher is None:
            return None
        return self._cutoffs.get(self._hasher(customer_id))

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        cutoffs: dict[str, datetime] = {}
        hasher = None
        if stamp is not None:
            try:
                reading = self.ledger.read()
                cutoffs, hasher = reading.cutoffs(), reading.hasher
            except LedgerError:
                pass  # its own errors are the erasure's and reapply's to report
        self._cutoffs, self._hasher, self._stamp = cutoffs, hasher, stamp


def _parse(raw: bytes) -> tuple[tuple[Entry, str] | None, int]:
    """A line as (its entry, its key's fingerprint), and how many fragments of failed
    writes it held. A write that failed part way (disk full) left a fragment, which the
    next line was appended to: that line is read from its own start."""
    start = raw.rfind(LINE_START)
    fragments = 1 if start > 0 or start < 0 else 0
    if start < 0:
        return None, fragments
    try:
        line = json.loads(raw[start:])
        entry = Entry(
            customer=str(line["customer"]),
            at=datetime.fromisoformat(line["at"].removesuffix("Z")),
            deleted={str(k): int(v) for k, v in dict(line.get("deleted") or {}).items()},
        )
        return (entry, str(line["key"])), fragments
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, fragments + 1
