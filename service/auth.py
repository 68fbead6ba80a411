"""API keys with roles.

A key looks like ``vea_<key_id>_<secret>``; only its SHA-256 is stored. Roles:

* ``desktop``: the contact-center desktop / routing platform: decisions, outcomes,
  customer events;
* ``engineer``: model registry (list, promote, rollback);
* ``manager``: CX / operations managers: value and drift reports, pools (read);
* ``admin``: everything.

Verified keys are cached in the worker for ``key_cache_s`` seconds so the request path
does not read the key table every time; a revoked key stops working within that time.
A key may carry an expiry (``expires_at``, naive UTC): the cache holds it with the key and
checks it against the wall clock on every request, so an expired key stops at once,
without a query, and gets ``KeyExpired`` (a 401 that says so) rather than "invalid".
If the database is unreachable, a key verified earlier keeps working (so decisions can
still be answered in degraded mode); an unknown key then gets 503, never a false 401.
Under gunicorn "earlier" includes the other workers of the master (the keys they verified
are shared through ``VEA_SHARED_STATE_DIR``, see ``service.key_cache``), so a worker
started during the outage does not refuse every request.

An address that failed key checks too often gets 429 for any key not verified just
before, except a revoked or expired key: that one still hears it is revoked (or expired),
so a desktop sending a rotated-out key from a host that shares its address with a guesser
asks for the new key instead of retrying for ever. Such a key is found by its hash, and
telling it is dead gives a guesser nothing it could use.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from service import audit
from service.db import (
    READ_ONLY,
    api_keys,
    autocommit_connection,
    begin_write,
    error_name,
    is_unavailable,
    iso_utc,
    page_sessions,
    utcnow,
)
from service.key_cache import SharedKeys
from service.ratelimit import RateLimiter

ROLES = ("desktop", "engineer", "admin", "manager")
PERMISSIONS: dict[str, frozenset[str]] = {
    "decisions": frozenset({"desktop", "admin"}),
    "outcomes": frozenset({"desktop", "admin"}),
    "events": frozenset({"desktop", "admin"}),
    # A customer's whole record (access requests) and its erasure: administrators only.
    "customers:read": frozenset({"admin"}),
    "customers:erase": frozenset({"admin"}),
    "models:read": frozenset({"engineer", "admin"}),
    "models:write": frozenset({"engineer", "admin"}),
    # CX managers read the value dashboard; they cannot touch models or pools.
    "reports": frozenset({"engineer", "admin", "manager"}),
    "pools:read": frozenset({"desktop", "engineer", "admin", "manager"}),
    "pools:write": frozenset({"admin"}),
    # The contact-center platform posts availability with its desktop key.
    "pools:availability": frozenset({"desktop", "admin"}),
    # The audit log names keys and administrative actions: administrators only.
    "audit:read": frozenset({"admin"}),
}
KEY_PREFIX = "vea_"
# How long a key verified earlier is trusted while the database cannot be reached.
STALE_GRACE_S = 3600.0
# The revoked and expiring keys a blocked address is checked against are read at most
# this often, even with the key cache off.
DEAD_KEYS_MIN_READ_S = 1.0


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    role: str
    expires_at: datetime | None = None  # naive UTC; None: never expires
    # A revoked key is refused like an unknown one, but it is no guess (see KeyStore).
    revoked: bool = False

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(
    engine: sa.Engine,
    role: str,
    label: str = "",
    expires_at: datetime | None = None,
    *,
    actor: str = audit.SYSTEM_ACTOR,
) -> tuple[str, str]:
    """Store a new key; return ``(key_id, key)``. The key is shown once, never stored.
    ``expires_at`` (naive UTC, or None for never) is checked by the callers that take it
    from a person (the CLI refuses a past date); here any time is stored as given."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    with begin_write(engine) as conn:
        conn.execute(
            api_keys.insert().values(
                key_id=key_id,
                key_hash=hash_key(key),
                role=role,
                label=label[:100],
                created_at=utcnow(),
                expires_at=expires_at,
            )
        )
        details = {"role": role, "expires_at": iso_utc(expires_at) if expires_at else None}
        audit.record(conn, actor, "key.create", key_id, details)
    return key_id, key


def revoke_key(engine: sa.Engine, key_or_id: str, *, actor: str = audit.SYSTEM_ACTOR) -> bool:
    """Disable a key given the key itself or its id; False if no active key matched."""
    if key_or_id.startswith(KEY_PREFIX):
        condition = api_keys.c.key_hash == hash_key(key_or_id)
    else:
        condition = api_keys.c.key_id == key_or_id
    with begin_write(engine) as conn:
        revoked = conn.execute(
            api_keys.update()
            .where(condition, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .returning(api_keys.c.key_id)
        ).all()
        for row in revoked:
            audit.record(conn, actor, "key.revoke", row.key_id)
        # Its page sessions end with it (the pages also check the key on every request;
        # this leaves no row that names a dead key).
        ended = [row.key_id for row in revoked]
        if ended:
            conn.execute(page_sessions.delete().where(page_sessions.c.key_id.in_(ended)))
    return bool(revoked)


def list_keys(
    engine: sa.Engine, *, include_revoked: bool = True
) -> list[dict[str, str | bool | None]]:
    """Every key's id, role, label, times and whether it has expired, oldest first (never
    a secret or a hash). ``include_revoked=False`` leaves out revoked and expired keys."""
    now = utcnow()
    query = sa.select(
        api_keys.c.key_id,
        api_keys.c.role,
        api_keys.c.label,
        api_keys.c.created_at,
        api_keys.c.revoked_at,
        api_keys.c.expires_at,
    ).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if not include_revoked:
        query = query.where(
            api_keys.c.revoked_at.is_(None),
            sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
        )
    with autocommit_connection(engine) as conn:
        rows = conn.execute(query).all()
    return [
        {
            "key_id": row.key_id,
            "role": row.role,
            "label": row.label,
            "created_at": iso_utc(row.created_at),
            "revoked_at": iso_utc(row.revoked_at) if row.revoked_at else None,
            "expires_at": iso_utc(row.expires_at) if row.expires_at else None,
            "expired": row.expires_at is not None and row.expires_at <= now,
        }
        for row in rows
    ]


class DatabaseUnavailable(Exception):
    """The key could not be checked because the database is unreachable."""


class KeyExpired(Exception):
    """The key exists and is not revoked, but its expiry has passed."""

    def __init__(self, key_id: str, expires_at: datetime) -> None:
        super().__init__(f"API key {key_id} expired at {iso_utc(expires_at)}")
        self.key_id = key_id
        self.expires_at = expires_at


class KeyRevoked(Exception):
    """The key exists but was revoked: said as such, so an integration still sending a
    rotated-out key asks for the new one instead of hunting for a typo."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id} was revoked")
        self.key_id = key_id


class TooManyFailures(Exception):
    """This client failed key checks too often; it may try again in ``retry_after_s``."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many failed API key attempts; retry in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class KeyStore:
    """Verifies presented keys against the table, with a short per-worker cache."""

    def __init__(
        self,
        engine_getter: Callable[[], sa.Engine],
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
        failures: RateLimiter | None = None,
        wall_clock: Callable[[], datetime] = utcnow,
        shared_dir: str = "",
    ) -> None:
        self._engine = engine_getter
        self._cache_s = cache_s
        self._clock = clock
        # Expiry is a calendar time: compared with the wall clock (naive UTC), while the
        # cache's freshness uses the monotonic ``clock``.
        self._wall_clock = wall_clock
        self._failures = failures  # failed checks per client address (brute force)
        self._lock = threading.Lock()
        # hash -> (checked_at, KeyInfo, revoked ones too, or None for "no such key")
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        # hash -> every revoked key and every key with an expiry, read at most once per
        # ``cache_s`` and only for blocked addresses (see ``_dead_key``).
        self._dead: dict[str, KeyInfo] = {}
        self._dead_read_at = -math.inf
        # The keys every worker of this gunicorn master verified (the directory the
        # master made, VEA_SHARED_STATE_DIR; "": this process's own cache only).
        self._shared = SharedKeys(shared_dir, STALE_GRACE_S) if shared_dir else None

    def verify(self, key: str, client: str | None = None) -> KeyInfo | None:
        """The key's id and role, or None for no such key; ``KeyRevoked`` for a revoked key
        and ``KeyExpired`` for one past its expiry. With
        ``client`` (the caller's address), failed checks are counted and a client over its
        budget gets ``TooManyFailures``, except for a revoked or expired key."""
        digest = hash_key(key)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(digest)
        fresh = cached is not None and now - cached[0] < self._cache_s
        if fresh and cached[1] is not None:
            # A key verified moments ago is no guess: it works even from a blocked address
            # (callers behind one proxy share it with whoever is guessing). Its expiry is
            # checked every time: the cache must not keep an expired key alive.
            return self._usable(cached[1])
        budget = self._failures if client is not None else None
        if budget is not None:
            # Every check not known good takes a token first and a good key gives it back:
            # concurrent guesses cannot all pass a look at the last token.
            wait = budget.acquire(client)
            if wait > 0:
                # A dead key is told so even here: a 429 would hide from the desktop that
                # it needs a new key. A live key not verified just before still gets 429,
                # so a blocked guesser learns nothing about the keys that work.
                dead = self._dead_key(digest, cached)
                if dead is not None:
                    self._usable(dead)  # raises KeyRevoked or KeyExpired
                raise TooManyFailures(wait)
        try:
            info = None if fresh else self._lookup(digest, cached, now)
        except BaseException:
            if budget is not None:
                budget.refund(client)  # the database failed, not the caller
            raise
        if info is not None and budget is not None:
            # An expired or revoked key is a real key too, not a guess: a desktop still
            # sending the key rotated out must not use up its address's budget, or the
            # new key from the same address (one platform host) would be refused too.
            budget.refund(client)
        return self._usable(info) if info is not None else None

    def _usable(self, info: KeyInfo) -> KeyInfo | None:
        """The key's info; ``KeyRevoked`` for a revoked key, ``KeyExpired`` past its expiry."""
        if info.revoked:
            raise KeyRevoked(info.key_id)
        return self._unexpired(info)

    def _unexpired(self, info: KeyInfo) -> KeyInfo:
        # Most keys never expire: no clock read on their requests.
        if info.expires_at is not None and info.expired(self._wall_clock()):
            raise KeyExpired(info.key_id, info.expires_at)
        return info

    def _dead_key(self, digest: str, cached: tuple[float, KeyInfo | None] | None) -> KeyInfo | None:
        """The revoked or expired key of this hash, or None (unknown, or alive)."""
        if cached is not None and cached[1] is not None and self._dead_now(cached[1]):
            return cached[1]  # revocation and expiry are final: a stale entry still holds
        info = self._dead_keys().get(digest)
        return info if info is not None and self._dead_now(info) else None

    def _dead_now(self, info: KeyInfo) -> bool:
        return info.revoked or (info.expires_at is not None and info.expired(self._wall_clock()))

    def _dead_keys(self) -> dict[str, KeyInfo]:
        """Revoked keys and keys with an expiry, by hash: read in one query at most once per
        ``cache_s``, so a blocked address sending new guesses at any rate costs the
        database no more than that (a lookup per guess would let it load the database
        once its budget is gone). The key table is small: administrators create its rows."""
        now = self._clock()
        with self._lock:
            # At least a second apart: with the key cache off (VEA_KEY_CACHE_S=0) a
            # blocked address would otherwise cost a query per guess.
            if now - self._dead_read_at < max(self._cache_s, DEAD_KEYS_MIN_READ_S):
                return self._dead
            self._dead_read_at = now  # other threads use the last read meanwhile
        try:
            with self._engine().connect().execution_options(**{READ_ONLY: True}) as conn:
                rows = conn.execute(
                    sa.select(
                        api_keys.c.key_hash,
                        api_keys.c.key_id,
                        api_keys.c.role,
                        api_keys.c.expires_at,
                        api_keys.c.revoked_at,
                    ).where(
                        sa.or_(api_keys.c.revoked_at.isnot(None), api_keys.c.expires_at.isnot(None))
                    )
                ).all()
        except DBAPIError as exc:
            if not is_unavailable(exc):
                raise
            return self._dead  # the caller is refused anyway: the keys read before
        dead = {row.key_hash: _key_info(row) for row in rows}
        with self._lock:
            self._dead = dead
        return dead

    def _lookup(
        self, digest: str, cached: tuple[float, KeyInfo | None] | None, now: float
    ) -> KeyInfo | None:
        try:
            with self._engine().connect().execution_options(**{READ_ONLY: True}) as conn:
                row = conn.execute(
                    sa.select(
                        api_keys.c.key_id,
                        api_keys.c.role,
                        api_keys.c.expires_at,
                        api_keys.c.revoked_at,
                    ).where(api_keys.c.key_hash == digest)
                ).first()
        except DBAPIError as exc:
            if not is_unavailable(exc):
                raise
            info = self._verified_lately(digest, cached, now)
            if info is not None:
                return info
            raise DatabaseUnavailable(error_name(exc)) from exc
        info = _key_info(row) if row else None
        with self._lock:
            if len(self._cache) > 10_000:  # bound memory against floods of bogus keys
                self._cache.clear()
            self._cache[digest] = (now, info)
        if self._shared is not None:
            # Written only when it changes the file or renews an old entry, not per lookup.
            record = None if info is None else _record(info)
            self._shared.note(digest, record, self._wall_clock())
        return info

    def _verified_lately(
        self, digest: str, cached: tuple[float, KeyInfo | None] | None, now: float
    ) -> KeyInfo | None:
        """While the database is away: what the latest lookup within ``STALE_GRACE_S``
        found, by this worker or (shared) another of its master, or None."""
        latest, age = None, STALE_GRACE_S
        if cached is not None and now - cached[0] < age:
            latest, age = cached[1], now - cached[0]
        shared = self._shared.get(digest) if self._shared is not None else None
        if shared is not None:
            shared_age = (self._wall_clock() - shared[0]).total_seconds()
            if 0 <= shared_age < age:  # a time ahead of the clock is not trusted
                latest = KeyInfo(*shared[1])
        return latest


def _key_info(row: sa.Row) -> KeyInfo:
    """A key row (key_id, role, expires_at, revoked_at) as the cache holds it."""
    return KeyInfo(row.key_id, row.role, row.expires_at, revoked=row.revoked_at is not None)


def _record(info: KeyInfo) -> tuple[str, str, datetime | None, bool]:
    """``info`` as the shared file holds it (``KeyInfo(*record)`` turns it back)."""
    return (info.key_id, info.role, info.expires_at, info.revoked)


def presented_key(headers) -> str | None:
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("X-API-Key") or None


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS.get(permission, frozenset())


def require(permission: str):
    """Mark a view as needing ``permission``; the app's before-request hook enforces it
    (before the body is parsed, so an anonymous caller never learns about validation)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def mark(view):
        view.vea_permission = permission
        return view

    return mark
