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
    matching = sa.select(decisions.c.decision_id).where(decision_filter)
    with begin_write(engine) as conn:
        deleted_outcomes = conn.execute(
            outcomes.delete().where(outcomes.c.decision_id.in_(matching))
        ).rowcount
        # Explicitly, not by the foreign key's cascade: the count is answered and audited.
        deleted_surveys = conn.execute(
            surveys.delete().where(surveys.c.decision_id.in_(matching))
        ).rowcount
        deleted_decisions = conn.execute(decisions.delete().where(decision_filter)).rowcount
        deleted_events = conn.execute(customer_events.delete().where(event_filter)).rowcount
        counts = {
            "decisions": deleted_decisions,
            "outcomes": deleted_outcomes,
            "surveys": deleted_surveys,
            "events": deleted_events,
        }
        actor, action, target = audit_event
        audit.record(conn, actor, action, target, counts)
    return counts


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
