"""``/v1/customers/{customer_id}/events``: later facts (renewal, churn, upgrade)."""

from __future__ import annotations

from service import decisions as use_cases
from service.api.common import Blueprint, protected
from service.auth import require
from service.errors import ErrorSchema
from service.schemas import CustomerPathSchema, EventRequestSchema, EventSchema
from service.state import state


def blueprint() -> Blueprint:
    blp = Blueprint(
        "customers",
        __name__,
        url_prefix="/v1/customers",
        description="Facts about a customer that arrive after the contact.",
    )

    @blp.route("/<customer_id>/events", methods=["POST"])
    @require("events")
    @protected(blp)
    @blp.arguments(CustomerPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(EventRequestSchema())
    @blp.response(201, EventSchema, description="event recorded")
    @blp.alt_response(200, schema=EventSchema, description="the same event_id, already stored")
    @blp.alt_response(409, schema=ErrorSchema, description="event_id reused with other values")
    @blp.alt_response(503, schema=ErrorSchema, description="database unavailable: retry")
    def record_event(body, customer_id):
        """Record a later fact about the customer; joined to earlier decisions for learning."""
        answer, created = use_cases.record_event(state(), customer_id, body)
        if created:
            return answer
        return answer, 200, {"Idempotent-Replayed": "true"}

    return blp
