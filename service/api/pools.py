"""``/v1/pools``: the agent pools config, live availability and the proficiency rebuild."""

from __future__ import annotations

from typing import Any

from flask import g

from models.pools import PoolConfig, PoolError, parse_config
from service import audit, heavy
from service import pools as use_cases
from service.api.common import Blueprint, protected
from service.auth import require
from service.errors import ApiError, ErrorSchema
from service.schemas import (
    AvailabilityRequestSchema,
    AvailabilitySchema,
    PoolPathSchema,
    PoolsConfigSchema,
    PoolsSchema,
    RebuildRequestSchema,
    RebuildSchema,
)
from service.state import state


def _current():
    st = state()
    try:
        return use_cases.current_config(st.engine, st.pools.file_config)
    except PoolError as exc:
        # Stored before today's rules (e.g. a language that is no tag): the router keeps
        # serving its last good config; say what to fix instead of failing.
        raise ApiError(
            409, f"the stored pools config no longer validates ({exc}): PUT a corrected one"
        ) from None


def _refused(exc: PoolError) -> ApiError:
    """A pools config the routers would refuse: 422 naming the pool and field."""
    return ApiError(422, str(exc), fields={"pools": [str(exc)]})


def _unstorable(what: str, exc: PoolError) -> ApiError:
    return _refused(PoolError(f"{what} cannot be stored: {exc}"))


def _store(config: PoolConfig, what: str, **options: Any) -> None:
    """Store ``config`` for every worker (``use_cases.save_config``): 422 and nothing
    stored when the routers would refuse to read it."""
    st = state()
    try:
        use_cases.save_config(st.engine, config, **options)
    except PoolError as exc:
        raise _unstorable(what, exc) from None
    st.pools.refresh(force=True)


def _describe():
    st = state()
    config, source = _current()
    return use_cases.describe(st.engine, config, source, st.settings.availability_ttl_s)


def blueprint() -> Blueprint:
    blp = Blueprint(
        "pools",
        __name__,
        url_prefix="/v1/pools",
        description="Agent pools, their availability and proficiency-based membership.",
    )

    @blp.route("", methods=["GET"])
    @require("pools:read")
    @protected(blp)
    @blp.response(200, PoolsSchema)
    def get_pools():
        """The pools config every worker routes with, availability and proficiency."""
        return _describe()

    @blp.route("", methods=["PUT"])
    @require("pools:write")
    @protected(blp)
    @blp.arguments(PoolsConfigSchema())
    @blp.response(200, PoolsSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="invalid pools config")
    def put_pools(body):
        """Replace the pools config (validated: activities, members, the general pool)."""
        try:
            config = parse_config(body)
        except PoolError as exc:
            raise _refused(exc) from None
        # A new config invalidates the last rebuild's per-agent figures only where pools
        # changed; they stay as the record of what the outcomes showed.
        event = audit.Event(
            audit.key_actor(g.key_id), "pools.update", None, {"pools": len(config.pools)}
        )
        _store(config, "the pools config", actor=g.key_id or "", audit_event=event)
        return _describe()

    @blp.route("/<pool>/availability", methods=["PUT"])
    @require("pools:availability")
    @protected(blp)
    @blp.arguments(PoolPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(AvailabilityRequestSchema())
    @blp.response(200, AvailabilitySchema)
    @blp.alt_response(404, schema=ErrorSchema, description="unknown pool")
    @blp.alt_response(422, schema=ErrorSchema, description="invalid availability")
    def put_availability(body, pool):
        """Report a pool's availability (agents free, queue length, expected wait, agents
        staffed).

        Posted by the contact-center platform; a report older than
        `VEA_AVAILABILITY_TTL_S` is ignored by routing (`expires_at`)."""
        st = state()
        config, _ = _current()
        try:
            answer = use_cases.report_availability(
                st.engine, config, pool, body, st.settings.availability_ttl_s
            )
        except PoolError as exc:
            raise ApiError(404, str(exc)) from None
        st.pools.refresh(force=True)
        return {**answer, "stale": False}

    @blp.route("/rebuild", methods=["POST"])
    @require("pools:write")
    @protected(blp)
    @blp.arguments(RebuildRequestSchema())
    @blp.response(200, RebuildSchema)
    @blp.alt_response(
        422, schema=ErrorSchema, description="a rebuilt config the routers would refuse"
    )
    @heavy.slot()  # it reads every stored outcome, as a report does
    def rebuild(body):
        """Recompute proficiency from stored outcomes and refill the proficiency pools."""
        st = state()
        config, _ = _current()
        min_contacts = body.get("min_contacts") or st.settings.proficiency_min_contacts
        result = use_cases.rebuild(config, use_cases.outcome_records(st.engine), min_contacts)
        if body["dry_run"]:  # answers what a real run would: refused, if it would be
            try:
                use_cases.stored_form(result.config)
            except PoolError as exc:
                raise _unstorable("the rebuilt pools config", exc) from None
        else:
            _store(
                result.config,
                "the rebuilt pools config",
                actor=g.key_id or "",
                proficiency=[p.to_dict() for p in result.proficiency],
                audit_event=audit.Event(audit.key_actor(g.key_id), "pools.rebuild"),
            )
        return use_cases.rebuild_answer(result, stored_=not body["dry_run"])

    return blp
