"""Deleting stored records on purpose: one customer's (erasure) or everything older than
a retention cutoff (pruning). Nothing else in the service deletes a decision.

Each deletion is one transaction over the four tables that hold customer data: the
decisions (with the features, answer and history they carry), the outcomes and survey
answers recorded for them and the customers' later events. Either all of it goes or none (a failure rolls
back). What stays: aggregates built earlier (pool proficiency, trained models) and files
exported earlier (`vea export`), which are the operator's to delete. Each deletion is
recorded in the audit log in its transaction; pruning never touches the audit log.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from service import audit
from service.db import (
    begin_write,
    customer_events,
    decisions,
    iso_utc,
    outcomes,
    surveys,
    to_naive_utc,
    utcnow,
)
from service.export import RETENTION_WINDOWS

log = logging.getLogger("vea.deletion")

# A decision younger than its longest reward window (retained_90d) still waits for its
# outcome to be known: pruning it would drop the contacts whose customers stayed and
# bias both the value report and the next model.
MIN_RETENTION_DAYS = max(RETENTION_WINDOWS.values())


def _delete(
    engine: sa.Engine,
    decision_filter: sa.ColumnElement,
    event_filter: sa.ColumnElement,
    audit_event: tuple[str, str, str | None],
) -> dict[str, int]:
    """Delete, and record ``(actor, action, target)`` with the counts in the audit log in
    the same transaction (an audited deletion either happened or was not recorded)."""
    deleting = sa.select(_deleting.c.decision_id)
    with begin_write(engine) as conn:
        _lock_decisions(conn, decision_filter)
        deleted_outcomes = conn.execute(
            outcomes.delete().where(outcomes.c.decision_id.in_(deleting))
        ).rowcount
        # Explicitly, not by the foreign key's cascade: the count is answered and audited.
        deleted_surveys = conn.execute(
            surveys.delete().where(surveys.c.decision_id.in_(deleting))
        ).rowcount
        deleted_decisions = conn.execute(
            decisions.delete().where(decisions.c.decision_id.in_(deleting))
        ).rowcount
        deleted_events = conn.execute(customer_events.delete().where(event_filter)).rowcount
        _deleting.drop(conn)
        counts = {
            "decisions": deleted_decisions,
            "outcomes": deleted_outcomes,
            "surveys": deleted_surveys,
            "events": deleted_events,
        }
        actor, action, target = audit_event
        audit.record(conn, actor, action, target, counts)
    return counts


# The ids of the decisions one deletion deletes: a temporary table of the transaction's
# connection, created and dropped inside the transaction (a rollback drops it too).
_deleting = sa.Table(
    "deleting_decisions",
    sa.MetaData(),
    sa.Column("decision_id", sa.String(32), primary_key=True),
    prefixes=["TEMPORARY"],
)


def _lock_decisions(conn: sa.Connection, decision_filter: sa.ColumnElement) -> None:
    """Lock the decisions to delete until the transaction ends (PostgreSQL; SQLite's
    writers take turns anyway) and keep their ids in ``_deleting``.

    The outcome and survey writers lock their decision first (``_LOCKED_DECISION`` in
    service.decisions), so the two serialise: a write holding a decision is waited for
    and its row is then deleted and counted; a later one waits for this commit and finds
    no decision (404). Without the lock a row stored between the DELETEs went with its
    decision by the foreign key's cascade, uncounted. Only the decisions locked here are
    deleted: one stored meanwhile (PostgreSQL) stays whole, with its outcome. Locked in id
    order, so two deletions at once (an erasure during a prune) take their common
    decisions in turn instead of deadlocking over them."""
    _deleting.create(conn)
    conn.execute(
        _deleting.insert().from_select(
            ["decision_id"],
            sa.select(decisions.c.decision_id)
            .where(decision_filter)
            .order_by(decisions.c.decision_id)
            .with_for_update(),
        )
    )


def forget_customer(
    engine: sa.Engine, customer_id: str, *, actor: str = audit.SYSTEM_ACTOR
) -> dict[str, int]:
    """Delete every stored record of ``customer_id`` (right to deletion: APPI, GDPR);
    return how many of each went.

    Idempotent: a customer with nothing stored (or erased before) gives zeros. A contact
    stored after the erasure is a new record: erasure is not a block list."""
    counts = _delete(
        engine,
        decisions.c.customer_id == customer_id,
        customer_events.c.customer_id == customer_id,
        # No target: the customer id must not be stored after its erasure.
        (actor, "customer.erase", None),
    )
    # The counts only: the id itself never goes into the logs.
    log.info("customer data erased", extra={"deleted": counts})
    return counts


def check_cutoff(cutoff: datetime) -> datetime:
    """``cutoff`` as naive UTC, or ValueError when it is less than ``MIN_RETENTION_DAYS``
    ago."""
    cutoff = to_naive_utc(cutoff)
    latest = utcnow() - timedelta(days=MIN_RETENTION_DAYS)
    if cutoff > latest:
        raise ValueError(
            f"the cutoff must be at least {MIN_RETENTION_DAYS} days ago (on or before "
            f"{latest.date().isoformat()}): younger contacts still wait for their "
            "retention outcome"
        )
    return cutoff


def prune_before(
    engine: sa.Engine, cutoff: datetime, *, actor: str = audit.SYSTEM_ACTOR
) -> dict[str, int]:
    """Delete the decisions (with their outcomes and surveys) and the events that happened before
    ``cutoff`` (aware, or naive UTC): a data-retention policy.

    Refused (ValueError) for a cutoff less than ``MIN_RETENTION_DAYS`` ago."""
    cutoff = check_cutoff(cutoff)
    counts = _delete(
        engine,
        decisions.c.occurred_at < cutoff,
        customer_events.c.occurred_at < cutoff,
        (actor, "data.prune", iso_utc(cutoff)),
    )
    log.info("records older than the retention cutoff deleted", extra={"deleted": counts})
    return counts
