"""Customer history from the service's own decisions and outcomes.

One indexed query per decision (``ix_decisions_customer_time``) returns the customer's
contacts of the look-back window with their outcomes. From it come
``prior_contacts_30d`` (when the caller does not send it), the contact-policy summary,
and the earlier contact this one continues (same customer, any channel, within the
continuation window), so the customer never has to repeat themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from models.contact_policy import PastContact
from models.schema import normal_category
from service.db import decisions, iso_utc, outcomes
from service.driver_sql import prepared

PRIOR_CONTACTS_DAYS = 30
MAX_ROWS = 500  # a customer with more contacts than this in the window is an outlier


@dataclass(frozen=True)
class HistoryRow:
    decision_id: str
    interaction_id: str
    occurred_at: datetime
    channel: str | None
    issue_type: str | None
    suggested_activity: str
    outcome_activity: str | None
    offered: bool | None
    accepted: bool | None
    ve_success: bool | None
    resolved: bool | None

    def past_contact(self) -> PastContact:
        return PastContact(
            occurred_at=self.occurred_at,
            activity=self.outcome_activity or self.suggested_activity,
            offered=self.offered,
            accepted=self.accepted,
            channel=self.channel,  # a self-service contact is no attempt (weekly cap)
        )


def lookback_days(decline_days: int) -> int:
    return max(PRIOR_CONTACTS_DAYS, decline_days, 7)


def _history_query() -> sa.Select:
    d, o = decisions.c, outcomes.c
    return (
        sa.select(
            d.decision_id,
            d.interaction_id,
            d.occurred_at,
            d.channel,
            d.issue_type,
            d.suggested_activity,
            o.activity,
            o.offered,
            o.accepted,
            o.ve_success,
            o.resolved,
        )
        .select_from(decisions.outerjoin(outcomes, o.decision_id == d.decision_id))
        .where(
            d.customer_id == sa.bindparam("customer_id"),
            d.occurred_at > sa.bindparam("since"),
            d.occurred_at <= sa.bindparam("until"),
        )
        .order_by(d.occurred_at.desc())
        .limit(MAX_ROWS)
    )


# Built once: constructing a statement costs more than running it on the request path.
HISTORY_QUERY = _history_query()


def fetch(conn: sa.Connection, customer_id: str, until: datetime, days: int) -> list[HistoryRow]:
    """The customer's contacts in ``(until - days, until]``, newest first."""
    params = {"customer_id": customer_id, "since": until - timedelta(days=days), "until": until}
    return [HistoryRow(*row) for row in prepared(conn.engine, HISTORY_QUERY).rows(conn, params)]


def prior_contacts(rows: list[HistoryRow], until: datetime) -> int:
    since = until - timedelta(days=PRIOR_CONTACTS_DAYS)
    return sum(1 for r in rows if r.occurred_at > since)


def continued(rows: list[HistoryRow], until: datetime, window_min: float) -> HistoryRow | None:
    """The most recent earlier contact within the window, if any (rows newest first)."""
    if window_min <= 0 or not rows:
        return None
    latest = rows[0]
    if until - latest.occurred_at > timedelta(minutes=window_min):
        return None
    issue = latest.issue_type
    if issue is not None and issue != normal_category(issue):
        # Stored before the API loaded categories in lower case ("Complaint"): inherited
        # as such, it escaped the complaint rule and was an unknown value to the model.
        return replace(latest, issue_type=normal_category(issue) or None)
    return latest


def continuation_payload(row: HistoryRow) -> dict:
    has_outcome = row.offered is not None
    return {
        "decision_id": row.decision_id,
        "interaction_id": row.interaction_id,
        "occurred_at": iso_utc(row.occurred_at),
        "channel": row.channel,
        "issue_type": row.issue_type,
        "activity": row.outcome_activity or row.suggested_activity,
        "outcome": (
            {
                "offered": row.offered,
                "accepted": row.accepted,
                "ve_success": row.ve_success,
                "resolved": row.resolved,
            }
            if has_outcome
            else None
        ),
    }
