"""Erasing one customer's stored data: the right to deletion (APPI, GDPR).

Everything the service keeps under a customer id goes in one transaction: the decisions
(with the features, answer and history they carry), the outcomes recorded for them and
the customer's later events. Either all of it is gone or none (a failure rolls back).

What stays: aggregates built before the erasure (pool proficiency, trained models) and
files exported earlier (`vea export`), which are the operator's to delete. A contact
stored after the erasure is a new record: erasure is not a block list.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from service.db import begin_write, customer_events, decisions, outcomes

log = logging.getLogger("vea.erasure")


def forget_customer(engine: sa.Engine, customer_id: str) -> dict[str, int]:
    """Delete every stored record of ``customer_id``; return how many of each went.

    Idempotent: a customer with nothing stored (or erased before) gives zeros."""
    theirs = sa.select(decisions.c.decision_id).where(decisions.c.customer_id == customer_id)
    with begin_write(engine) as conn:
        deleted_outcomes = conn.execute(
            outcomes.delete().where(outcomes.c.decision_id.in_(theirs))
        ).rowcount
        deleted_decisions = conn.execute(
            decisions.delete().where(decisions.c.customer_id == customer_id)
        ).rowcount
        deleted_events = conn.execute(
            customer_events.delete().where(customer_events.c.customer_id == customer_id)
        ).rowcount
    counts = {
        "decisions": deleted_decisions,
        "outcomes": deleted_outcomes,
        "events": deleted_events,
    }
    # The counts only: the id itself never goes into the logs.
    log.info("customer data erased", extra={"deleted": counts})
    return counts
