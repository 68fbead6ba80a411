"""``/v1/customers/{customer_id}``: later facts (renewal, churn, upgrade) and erasure."""

from __future__ import annotations

import logging

from flask import g
from werkzeug.routing import PathConverter

from service import audit
from service import decisions as use_cases
from service.api import examples
from service.api.common import REPLAYED, Blueprint, created_or_replayed, protected
from service.auth import require
from service.deletion import forget_customer
from service.erasure_ledger import ErasureLedger, LedgerElsewhere, LedgerError
from service.errors import ApiError, ErrorSchema, unavailable_as_503
from service.schemas import (
    CustomerLookupPathSchema,
    CustomerPathSchema,
    CustomerRecordsSchema,
    ErasureSchema,
    EventRequestSchema,
    EventSchema,
)
from service.state import state

log = logging.getLogger("vea.api.customers")


class CustomerIdConverter(PathConverter):
    """A customer id in a path. It may hold "/" (``jp/0001``, sent as ``jp%2F0001`` or
    not: Werkzeug decodes it before routing) but no empty part, so ``abc/`` is not an id
    of its own: 404 with the hint to drop the slash, not the erasure of a customer
    "abc/" that does not exist while "abc" keeps their records."""

    regex = "[^/]+(?:/[^/]+)*"


def blueprint() -> Blueprint:
    blp = Blueprint(
        "customers",
        __name__,
        url_prefix="/v1/customers",
        description="Facts about a customer that arrive after the contact.",
    )
    blp.record_once(
        lambda setup: setup.app.url_map.converters.setdefault("customer_id", CustomerIdConverter)
    )

    @blp.route("/<customer_id:customer_id>/events", methods=["POST"])
    @require("events")
    @protected(blp)
    @blp.arguments(CustomerPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(EventRequestSchema(), example=examples.EVENT_REQUEST)
    @blp.response(201, EventSchema, description="event recorded", example=examples.EVENT)
    @blp.alt_response(
        200, schema=EventSchema, description="the same event_id, already stored", headers=REPLAYED
    )
    @blp.alt_response(
        409,
        schema=ErrorSchema,
        description="event_id reused with other values (event_exists), or the event "
        "happened before the customer's erasure (customer_erased)",
    )
    def record_event(body, customer_id):
        """Record a later fact about the customer; joined to earlier decisions for learning."""
        return created_or_replayed(*use_cases.record_event(state(), customer_id, body))

    @blp.route("/<customer_id:customer_id>", methods=["GET"])
    @require("customers:read")
    @protected(blp)
    @blp.arguments(CustomerLookupPathSchema(), location="path", as_kwargs=True)
    @blp.response(200, CustomerRecordsSchema, description="everything stored for the customer")
    def customer_records(customer_id):
        """Everything stored under the customer id, oldest first (right of access): the
        decisions with the features they were made on, their outcomes and survey answers,
        and the customer's events. Empty lists when nothing is stored."""
        return use_cases.customer_records(state(), customer_id)

    @blp.route("/<customer_id:customer_id>", methods=["DELETE"])
    @require("customers:erase")
    @protected(blp)
    @blp.arguments(CustomerLookupPathSchema(), location="path", as_kwargs=True)
    @blp.response(200, ErasureSchema, description="the customer's stored records are gone")
    @blp.alt_response(
        409,
        schema=ErrorSchema,
        description="the database's earlier erasures went to another erasure ledger than "
        "the service's (erasure_ledger_elsewhere): nothing was erased",
    )
    def erase_customer(customer_id):
        """Erase every decision, outcome, survey and event stored for the customer (right to
        deletion). Idempotent: erasing again answers zeros. Aggregates built earlier
        (pool proficiency, trained models) and exported files are not changed."""
        current = state()
        refused = "database unavailable: nothing was erased; retry later"
        ledger = ErasureLedger(current.settings.erasure_ledger_path())
        try:
            with unavailable_as_503(refused, current.settings.retry_after_s):
                deleted = forget_customer(
                    current.engine,
                    customer_id,
                    actor=audit.key_actor(g.get("key_id")),
                    ledger=ledger,
                )
        except LedgerElsewhere as exc:
            # An operator's fix, not a retry's: the log names the path and the remedy.
            log.error("erasure refused", extra={"error": str(exc)})
            raise ApiError(
                409,
                "this database recorded erasures in another erasure ledger than the "
                "service's: nothing was erased; the service log says where it looked "
                "(VEA_ERASURE_LEDGER; vea db erase-customer --new-ledger if that ledger "
                "is lost)",
                code="erasure_ledger_elsewhere",
            ) from None
        except LedgerError as exc:
            # Not erased without its ledger line (a restore would bring it back unseen).
            log.error("erasure refused: the erasure ledger failed", extra={"error": str(exc)})
            raise ApiError(
                503,
                "erasure ledger unavailable: nothing was erased; retry later",
                headers={"Retry-After": str(current.settings.retry_after_s)},
            ) from None
        return {"customer_id": customer_id, "deleted": deleted}

    return blp
