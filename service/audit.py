"""The audit log of administrative actions (who created or revoked a key, erased a
customer, pruned data, changed pools, promoted or rolled back a model), append-only.

An event is written in the same transaction as the change when the change is in the
database (``record`` on the caller's connection, or an ``Event`` handed to the use case
that opens it: both commit or neither), and right after it for model actions (the
registry is on disk: ``record_after``). Nothing in the
product deletes an event: there is no command for it and `vea db prune` leaves the table
alone. An erasure's event names no customer: the id must not outlive its erasure, so
only the counts are kept.
"""

from __future__ import annotations

import base64
import getpass
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from service.db import audit_events, autocommit_connection, begin_write, iso_utc, utcnow

log = logging.getLogger("vea.audit")

ACTIONS = (
    "key.create",
    "key.revoke",
    "customer.erase",
    "data.prune",
    "pools.update",
    "pools.rebuild",
    "model.promote",
    "model.rollback",
    "model.shadow",
)
# Who acted when no API key did (start-up bootstrap, a library call).
SYSTEM_ACTOR = "system"


def cli_actor() -> str:
    """``cli:<OS user>`` for a command run by hand (``cli`` when the user is unknown)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        return "cli"
    return f"cli:{user}"[:128]


def key_actor(key_id: str | None) -> str:
    """The actor of an API request: its key id (12 hex digits, never ``cli:...``)."""
    return key_id or SYSTEM_ACTOR


def record(
    conn: sa.Connection,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an event on ``conn``, inside the caller's transaction."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    conn.execute(
        audit_events.insert().values(
            occurred_at=utcnow(),
            actor=actor[:128],
            action=action,
            target=target[:128] if target else None,
            details=details,
        )
    )


@dataclass(frozen=True)
class Event:
    """An event for a use case to write inside its own transaction (``write`` on the
    connection that makes the change), so the change and its event commit together."""

    actor: str
    action: str
    target: str | None = None
    details: dict[str, Any] | None = None

    def write(self, conn: sa.Connection) -> None:
        record(conn, self.actor, self.action, self.target, self.details)


def record_now(
    engine: sa.Engine,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an event in its own transaction (for changes outside the database)."""
    with begin_write(engine) as conn:
        record(conn, actor, action, target, details)


def record_after(
    engine: sa.Engine,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> bool:
    """``record_now`` for a change already made outside the database (the model
    registry): a database outage must not turn a done promotion into an error, so it is
    logged instead; False when the event could not be written."""
    try:
        record_now(engine, actor, action, target, details)
    except DBAPIError as exc:
        log.error(
            "audit event not recorded: database error",
            extra={"action": action, "target": target, "error": type(exc).__name__},
        )
        return False
    return True


def record_cli_model_action(action: str, target: str | None, details: dict | None = None) -> bool:
    """Record a `vea models ...` change (made on the registry just before) in the service
    database named by ``VEA_DATABASE_URL``; False (and nothing raised) when that database
    cannot take it, e.g. a training-only machine with no service database."""
    from service.config import Settings
    from service.db import make_engine

    try:
        engine = make_engine(Settings.from_env().database_url)
    except Exception:  # noqa: BLE001 - a bad setting must not undo a done promotion
        return False
    try:
        return record_after(engine, cli_actor(), action, target, details)
    finally:
        engine.dispose()


# Paging of GET /v1/audit: events come oldest first, ``limit`` per page.
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_CURSOR = 100
# The largest id audit_events.id (INTEGER: 4 bytes on PostgreSQL) holds: a cursor naming
# a larger one cannot come from an answer, and the database would refuse the comparison
# (PostgreSQL: integer out of range; SQLite's driver: above 8 bytes) as a 500.
MAX_EVENT_ID = 2**31 - 1


def encode_cursor(occurred_at: datetime, event_id: int) -> str:
    """The position after an event, for the next page. It holds the full stored time
    (microseconds, not the milliseconds answers show): the page order is (time, id), and
    a rounded time would repeat or skip events that share a millisecond."""
    raw = f"{occurred_at.isoformat(timespec='microseconds')}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """``(time, id)`` of an ``encode_cursor`` text; ValueError for anything else."""
    if len(cursor) > MAX_CURSOR:
        raise ValueError("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, event_id = raw.split("|")
        occurred_at, position = datetime.fromisoformat(moment), int(event_id)
    except ValueError:  # also bad base64 (binascii.Error) and bad UTF-8
        raise ValueError("not a cursor") from None
    if occurred_at.tzinfo is not None or not 1 <= position <= MAX_EVENT_ID:
        raise ValueError("not a cursor")
    return occurred_at, position


def _event(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "occurred_at": iso_utc(row.occurred_at),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "details": row.details,
    }


def _period_query(since: datetime | None, until: datetime | None) -> sa.Select:
    query = sa.select(audit_events).order_by(audit_events.c.occurred_at, audit_events.c.id)
    if since is not None:
        query = query.where(audit_events.c.occurred_at >= since)
    if until is not None:
        query = query.where(audit_events.c.occurred_at < until)
    return query


def list_events(
    engine: sa.Engine, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Events with ``since <= occurred_at < until`` (naive UTC), oldest first (all of
    them: ``page_events`` reads a long log a page at a time)."""
    with autocommit_connection(engine) as conn:
        rows = conn.execute(_period_query(since, until)).all()
    return [_event(row) for row in rows]


def page_events(
    engine: sa.Engine,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    limit: int = DEFAULT_PAGE,
    after: tuple[datetime, int] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` events of the period after the position ``after`` (a decoded
    cursor), oldest first, and the cursor of the next page (None after the last).

    Keyset paging on (time, id), not an offset: a page costs the same however deep in
    the log it is, and events appended meanwhile do not shift the pages already read."""
    query = _period_query(since, until)
    if after is not None:
        occurred_at, event_id = after
        query = query.where(
            sa.or_(
                audit_events.c.occurred_at > occurred_at,
                sa.and_(audit_events.c.occurred_at == occurred_at, audit_events.c.id > event_id),
            )
        )
    # One row more than asked says whether a next page exists without a count query.
    with autocommit_connection(engine) as conn:
        rows = conn.execute(query.limit(limit + 1)).all()
    more, rows = len(rows) > limit, rows[:limit]
    following = encode_cursor(rows[-1].occurred_at, rows[-1].id) if more else None
    return [_event(row) for row in rows], following
