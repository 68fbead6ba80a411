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


def list_events(
    engine: sa.Engine, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Events with ``since <= occurred_at < until`` (naive UTC), oldest first."""
    query = sa.select(audit_events).order_by(audit_events.c.occurred_at, audit_events.c.id)
    if since is not None:
        query = query.where(audit_events.c.occurred_at >= since)
    if until is not None:
        query = query.where(audit_events.c.occurred_at < until)
    with autocommit_connection(engine) as conn:
        rows = conn.execute(query).all()
    return [
        {
            "id": row.id,
            "occurred_at": iso_utc(row.occurred_at),
            "actor": row.actor,
            "action": row.action,
            "target": row.target,
            "details": row.details,
        }
        for row in rows
    ]
