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
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from service.db import audit_events, autocommit_connection, begin_write, iso_utc, utcnow

log = logging.getLogger("vea.audit")

ACTIONS = (
    "key.create",
    "key.revoke",
    "customer.erase",
    "data.prune",
    "data.restore",
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


# Paging of GET /v1/audit: events come in the order they were committed (their ids),
# ``limit`` per page.
#
# The order must be the commit order, or a reader can pass an event before it is visible:
# on PostgreSQL an event's id and time are taken when its INSERT runs, but it is seen only
# after its transaction commits, so an earlier-started transaction committing later used
# to put its event behind the position (time, id) a reader had already passed (an
# exporter following ``next`` never saw it). Three ways out were weighed:
#
# - The writing transaction's xid (pg_current_xact_id) with each event, pages in xid
#   order, and only events of transactions older than the reader's snapshot xmin handed
#   out (all finished). Writers never wait, but xids belong to the cluster, not to the
#   data: a pg_dump restored into another cluster (the README's restore) keeps xids far
#   above the new cluster's, so every restored event would sit above the horizon (hidden)
#   and every new event would sort before them, behind the readers' cursors. And any
#   transaction anywhere in the cluster holding an xid (another application's, a session
#   idle in a transaction) would hold every page back until it ended.
# - Time order with a safety lag (only events older than N s): no lag bounds how long a
#   transaction stays open, so it only makes the skip rarer.
# - Chosen: the writers of audit events take turns from their event's INSERT to their
#   commit (migration 0014: a statement-level trigger takes a transaction advisory lock
#   before the id is drawn; the lock is released after the commit is visible), so ids are
#   drawn in commit order and a page after id N can never later gain an event <= N. It
#   survives a dump and restore (the ids and the sequence are data), readers never wait
#   or get held-back pages, and the cursor is an id on both backends. The cost: audit
#   writers on PostgreSQL commit one at a time. They are administrative actions, each
#   records its event as its last (revoke_key: nearly last) write, so a turn lasts about
#   a commit; keep it so: a transaction that recorded an event and then waits for a row
#   another audit writer holds while that one waits for its turn is a deadlock (PostgreSQL
#   fails one of them, nothing half-stored).
#
# SQLite needs no lock: one write transaction at a time, and the rowid (max + 1) is drawn
# inside it, so ids are in commit order there too. Its times are not: they come from the
# wall clock (taken under the write lock by ``record``), which a clock step sets back, and
# on PostgreSQL a writer takes its time before its turn. So time is only the period
# filter (``from``/``to``), never the page order.
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_CURSOR = 100
# The largest id audit_events.id (INTEGER: 4 bytes on PostgreSQL) holds: a cursor naming
# a larger one cannot come from an answer, and the database would refuse the comparison
# (PostgreSQL: integer out of range; SQLite's driver: above 8 bytes) as a 500.
MAX_EVENT_ID = 2**31 - 1
_CURSOR_PREFIX = "after:"


@dataclass(frozen=True)
class Position:
    """Where a page ended: after the event ``event_id``. A cursor issued before migration
    0014 named a place in the old (time, id) order instead: ``occurred_at`` is then set
    (see ``page_events``)."""

    event_id: int
    occurred_at: datetime | None = None


class Page(NamedTuple):
    """A page of events; ``next``: the cursor of the following page (None after the
    last); ``resume``: the cursor of the position after this page (after the last event
    read, or where the asked cursor was when nothing followed it), None only when there
    was nothing to read from the start: a log shipper polls with it to read, later,
    what has been recorded since."""

    events: list[dict[str, Any]]
    next: str | None
    resume: str | None


def encode_cursor(event_id: int) -> str:
    """The position after an event, for the next page (opaque to clients)."""
    return _opaque(f"{_CURSOR_PREFIX}{event_id}")


def _opaque(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position an ``encode_cursor`` text stands for, or one issued before migration
    0014 (``<time>|<id>``: its clients keep their place across the upgrade); ValueError
    for anything else."""
    if len(cursor) > MAX_CURSOR:
        raise ValueError("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith(_CURSOR_PREFIX):
            position = Position(_strict_int(raw.removeprefix(_CURSOR_PREFIX)))
        else:
            moment, event_id = raw.split("|")
            position = Position(int(event_id), datetime.fromisoformat(moment))
    except ValueError:  # also bad base64 (binascii.Error) and bad UTF-8
        raise ValueError("not a cursor") from None
    legacy_time = position.occurred_at
    if (legacy_time is not None and legacy_time.tzinfo is not None) or not (
        1 <= position.event_id <= MAX_EVENT_ID
    ):
        raise ValueError("not a cursor")
    return position


def _strict_int(text: str) -> int:
    """Digits only (``int`` also takes signs, spaces and underscores)."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def _event(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "occurred_at": iso_utc(row.occurred_at),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "details": row.details,
    }


def _in_period(since: datetime | None, until: datetime | None) -> list[sa.ColumnElement]:
    conditions = []
    if since is not None:
        conditions.append(audit_events.c.occurred_at >= since)
    if until is not None:
        conditions.append(audit_events.c.occurred_at < until)
    return conditions


def list_events(
    engine: sa.Engine, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Events with ``since <= occurred_at < until`` (naive UTC) in commit order (all of
    them: ``page_events`` reads a long log a page at a time)."""
    query = sa.select(audit_events).where(*_in_period(since, until)).order_by(audit_events.c.id)
    with autocommit_connection(engine) as conn:
        rows = conn.execute(query).all()
    return [_event(row) for row in rows]


class CursorPastTheEnd(ValueError):
    """A cursor beyond the last event ever recorded (the log is append-only)."""


PAST_THE_END = (
    "the cursor is past the end of the log: one from another database, or from before "
    "a restore of an older backup; start again without it (or from a time)"
)


def page_events(
    engine: sa.Engine,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    limit: int = DEFAULT_PAGE,
    after: Position | None = None,
) -> Page:
    """Up to ``limit`` events of the period after the position ``after`` (a decoded
    cursor) in commit order, the cursor of the next page (None after the last) and the
    one to resume from later (see ``Page``).

    Keyset paging on the id, not an offset: a page costs the same however deep in the
    log it is, events appended meanwhile do not shift the pages already read, and (ids
    being drawn in commit order) none can appear behind a page already read."""
    period = _in_period(since, until)
    query = sa.select(audit_events).where(*period).order_by(audit_events.c.id)
    if after is not None and after.occurred_at is None:
        query = query.where(audit_events.c.id > after.event_id)
    elif after is not None:
        # A cursor from before migration 0014 ended a page in (time, id) order: go on
        # from the first event of the period that order had not reached. Ids and times
        # almost always agree, so that is the rest of the old order; where an event
        # committed late (the reason for 0014) it comes now rather than never, and one
        # the reader had already passed may come again (its id says so).
        not_reached = sa.or_(
            audit_events.c.occurred_at > after.occurred_at,
            sa.and_(
                audit_events.c.occurred_at == after.occurred_at,
                audit_events.c.id > after.event_id,
            ),
        )
        first = sa.select(sa.func.min(audit_events.c.id)).where(*period, not_reached)
        query = query.where(audit_events.c.id >= first.scalar_subquery())
    # One row more than asked says whether a next page exists without a count query.
    with autocommit_connection(engine) as conn:
        rows = conn.execute(query.limit(limit + 1)).all()
        # (A cursor from before 0014 is a place in time, its id only a tie-break.)
        if not rows and after is not None and after.occurred_at is None:
            last = conn.execute(sa.select(sa.func.max(audit_events.c.id))).scalar()
            if after.event_id > (last or 0):
                raise CursorPastTheEnd(PAST_THE_END)
    more, rows = len(rows) > limit, rows[:limit]
    following = encode_cursor(rows[-1].id) if more else None
    if rows:
        resume = encode_cursor(rows[-1].id)
    elif after is not None:
        resume = _encode_position(after)
    else:
        resume = None
    return Page([_event(row) for row in rows], following, resume)


def _encode_position(position: Position) -> str:
    """The cursor text of a decoded cursor (one from before 0014 in its own format, so
    it keeps meaning the same place)."""
    if position.occurred_at is None:
        return encode_cursor(position.event_id)
    return _opaque(f"{position.occurred_at.isoformat(timespec='microseconds')}|{position.event_id}")
