"""``/v1/audit``: the audit log of administrative actions (admin keys only)."""

from __future__ import annotations

from marshmallow import RAISE

from service import audit
from service.api.common import Blueprint, protected
from service.auth import require
from service.db import to_naive_utc
from service.errors import ApiError, ErrorSchema
from service.schemas import AuditQuerySchema, AuditSchema
from service.state import state


def blueprint() -> Blueprint:
    blp = Blueprint(
        "audit",
        __name__,
        url_prefix="/v1/audit",
        description="Who created or revoked keys, erased customers, pruned data, changed "
        "pools or models, and when (append-only).",
    )

    @blp.route("", methods=["GET"])
    @require("audit:read")
    @protected(blp)
    @blp.arguments(AuditQuerySchema(), location="query", unknown=RAISE)
    @blp.response(
        200, AuditSchema, description="a page of the period's events, in the order recorded"
    )
    @blp.alt_response(422, schema=ErrorSchema, description="a bad period, limit or cursor")
    def list_audit(query):
        """Audit events with ``from <= time < to`` (both optional) in the order they were
        recorded (committed), ``limit`` a page: while ``next`` is not null, ask again with
        ``cursor=<next>`` (and the same ``from``/``to``) for the following events. An
        event never appears behind a cursor already handed out, so following the cursors
        reads each event once. ``resume`` is always the position after this page: a log
        shipper keeps it and asks with ``cursor=<resume>`` later for the events recorded
        since (``next`` is null on the last page). An erasure's event names no customer
        (only the counts)."""
        start, end = query.get("from_"), query.get("to")
        try:
            page = audit.page_events(
                state().engine,
                since=to_naive_utc(start) if start else None,
                until=to_naive_utc(end) if end else None,
                limit=query["limit"],
                after=query["cursor"],
            )
        except audit.CursorPastTheEnd as exc:
            # Kept, it would be resumed from forever while new events pass beneath it.
            raise ApiError(422, str(exc), fields={"cursor": [str(exc)]}) from None
        return page._asdict()

    return blp
