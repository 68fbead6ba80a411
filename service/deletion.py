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
from collections.abc import Iterator
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

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


# Decisions locked and deleted per round. Their ids pass through the service, not a
# temporary table (production database roles often lack PostgreSQL's TEMP privilege): a
# prune of millions of decisions holds this many ids at a time, in one transaction still.
BATCH = 1000


def _delete(
    engine: sa.Engine,
    decision_filter: sa.ColumnElement,
    event_filter: sa.ColumnElement,
    audit_event: tuple[str, str, str | None],
) -> dict[str, int]:
    """Delete, and record ``(actor, action, target)`` with the counts in the audit log in
    the same transaction (an audited deletion either happened or was not recorded)."""
    deleted = {"decisions": 0, "outcomes": 0, "surveys": 0}
    with begin_write(engine) as conn:
        for batch in _locked_decisions(conn, decision_filter):
            # Outcomes and surveys explicitly, not by the foreign key's cascade: the count
            # is answered and audited.
            for name, table in (
                ("outcomes", outcomes),
                ("surveys", surveys),
                ("decisions", decisions),
            ):
                deleted[name] += conn.execute(
                    table.delete().where(_in_batch(conn, table.c.decision_id, batch))
                ).rowcount
        deleted_events = conn.execute(customer_events.delete().where(event_filter)).rowcount
        counts = {**deleted, "events": deleted_events}
        actor, action, target = audit_event
        audit.record(conn, actor, action, target, counts)
    return counts


def _in_batch(conn: sa.Connection, column: sa.ColumnElement, batch: list[str]) -> sa.ColumnElement:
    """``column`` is one of the ids of ``batch`` (in id order)."""
    if conn.dialect.name == "postgresql":
        # One array parameter: with a parameter per id PostgreSQL's generic plan, used
        # after a few batches, compared every row with every id (3x slower in
        # bench/deletion.py).
        listed = column == sa.any_(sa.bindparam(None, batch, type_=postgresql.ARRAY(sa.String)))
    else:
        listed = column.in_(batch)
    # Implied by the ids, but it lets the planner read the index from first to last.
    return sa.and_(column.between(batch[0], batch[-1]), listed)


def _locked_decisions(
    conn: sa.Connection, decision_filter: sa.ColumnElement
) -> Iterator[list[str]]:
    """The ids of the decisions to delete, ``BATCH`` at a time in id order, each batch
    locked until the transaction ends (PostgreSQL; SQLite's writers take turns anyway).
    The caller deletes a batch before asking for the next.

    The outcome and survey writers lock their decision first (``_LOCKED_DECISION`` in
    service.decisions), so the two serialise: a write holding a decision is waited for
    and its row is then deleted and counted; a later one waits for this commit and finds
    no decision (404). Without the lock a row stored between the DELETEs went with its
    decision by the foreign key's cascade, uncounted. Only the decisions locked here are
    deleted, so every row deleted is counted; a decision stored meanwhile (PostgreSQL) is
    either in a later batch, locked and deleted whole with its outcome, or stays whole.
    Locked in id order across batches too, so two deletions at once (an erasure during a
    prune) take their common decisions in turn instead of deadlocking over them."""
    after: str | None = None
    while True:
        query = sa.select(decisions.c.decision_id).where(decision_filter)
        if after is not None:
            query = query.where(decisions.c.decision_id > after)
        batch = list(
            conn.execute(
                query.order_by(decisions.c.decision_id).limit(BATCH).with_for_update()
            ).scalars()
        )
        if not batch:
            return
        yield batch
        after = batch[-1]


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
