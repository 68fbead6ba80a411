"""``/v1/pools``: the agent pools config, live availability and the proficiency rebuild."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g, request

from models.pools import PoolError, parse_config
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
    """The config, its source and its ``updated_at`` (``use_cases.read_config``)."""
    st = state()
    try:
        return use_cases.read_config(st.engine, st.pools.file_config)
    except PoolError as exc:
        raise _stored_refused(exc) from None


def _stored_refused(exc: PoolError) -> ApiError:
    # Stored before today's rules (e.g. a language that is no tag): the router keeps
    # serving its last good config; say what to fix instead of failing.
    return ApiError(
        409, f"the stored pools config no longer validates ({exc}): PUT a corrected one"
    )


def _if_match() -> datetime | None | use_cases.Unchecked:
    """The version ``If-Match`` names (the ``ETag`` of GET /v1/pools): a PUT stores only
    over that version, so an edit of a config another admin replaced meanwhile is refused
    rather than undoing their change. Without the header the PUT replaces any config."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return use_cases.UNCHECKED
    tags = [tag.strip() for tag in header.split(",")]
    try:
        if len(tags) != 1 or not (tags[0].startswith('"') and tags[0].endswith('"')):
            raise ValueError(header)
        return use_cases.version_of(tags[0][1:-1])
    except ValueError:
        raise ApiError(
            412,
            'If-Match must be the one ETag GET /v1/pools answered (e.g. "file"): nothing stored',
            code="precondition_failed",
        ) from None


def _refused(exc: PoolError) -> ApiError:
    """A pools config the routers would refuse: 422 naming the pool and field."""
    return ApiError(422, str(exc), fields={"pools": [str(exc)]})


def _unstorable(what: str, exc: PoolError) -> ApiError:
    return _refused(PoolError(f"{what} cannot be stored: {exc}"))


def _describe() -> tuple[dict[str, Any], dict[str, str]]:
    """GET /v1/pools's answer and its ``ETag``: the version of the config it shows."""
    st = state()
    config, source, read_at = _current()
    answer = use_cases.describe(st.engine, config, source, st.settings.availability_ttl_s)
    return answer, {"ETag": f'"{use_cases.version_tag(read_at)}"'}


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
        """The pools config every worker routes with, availability and proficiency.

        `ETag` names the config's version, for `If-Match` on `PUT /v1/pools`."""
        return _describe()

    @blp.route("", methods=["PUT"])
    @require("pools:write")
    @protected(blp)
    @blp.arguments(PoolsConfigSchema())
    @blp.response(200, PoolsSchema)
    @blp.alt_response(412, schema=ErrorSchema, description="the config is not If-Match's")
    @blp.alt_response(422, schema=ErrorSchema, description="invalid pools config")
    def put_pools(body):
        """Replace the pools config (validated: activities, members, the general pool).

        With `If-Match: <the ETag of GET /v1/pools>` it is stored only if the config is
        still that version (412 otherwise, nothing stored): an edit of a config another
        admin or a rebuild replaced meanwhile does not undo their change."""
        read_at = _if_match()
        try:
            config = parse_config(body)
        except PoolError as exc:
            raise _refused(exc) from None
        # A new config invalidates the last rebuild's per-agent figures only where pools
        # changed; they stay as the record of what the outcomes showed.
        event = audit.Event(
            audit.key_actor(g.key_id), "pools.update", None, {"pools": len(config.pools)}
        )
        st = state()
        try:
            use_cases.save_config(
                st.engine, config, actor=g.key_id or "", audit_event=event, read_at=read_at
            )
        except PoolError as exc:
            raise _unstorable("the pools config", exc) from None
        except use_cases.ConfigChanged as exc:
            raise ApiError(
                412,
                f"nothing stored: {exc}, so it is no longer the If-Match version; GET "
                "/v1/pools and make the change on the config it answers",
                code="precondition_failed",
            ) from None
        st.pools.refresh(force=True)
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
        config, _, _ = _current()
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
    @blp.alt_response(409, schema=ErrorSchema, description="the config kept changing while it ran")
    @blp.alt_response(
        422, schema=ErrorSchema, description="a rebuilt config the routers would refuse"
    )
    @heavy.slot()  # it reads every stored outcome, as a report does
    def rebuild(body):
        """Recompute proficiency from stored outcomes and refill the proficiency pools.

        The config is rebuilt as stored once the outcomes are read: a `PUT /v1/pools`
        made while they were read is kept (409 if the config kept changing)."""
        st = state()
        _current()  # a stored config that no longer validates: 409 before the long read
        min_contacts = body.get("min_contacts") or st.settings.proficiency_min_contacts
        proficiency = use_cases.measure(use_cases.outcome_records(st.engine), min_contacts)
        if body["dry_run"]:  # answers what a real run would: refused, if it would be
            config, _, _ = _current()
            result = use_cases.rebuild_pools(config, proficiency, min_contacts=min_contacts)
            try:
                use_cases.stored_form(result.config)
            except PoolError as exc:
                raise _unstorable("the rebuilt pools config", exc) from None
        else:
            try:
                result = use_cases.store_rebuild(
                    st.engine,
                    st.pools.file_config,
                    proficiency,
                    min_contacts,
                    actor=g.key_id or "",
                    audit_event=audit.Event(audit.key_actor(g.key_id), "pools.rebuild"),
                )
            except use_cases.StoredConfigRefused as exc:
                raise _stored_refused(exc) from None
            except PoolError as exc:
                raise _unstorable("the rebuilt pools config", exc) from None
            except use_cases.ConfigChanged as exc:
                raise ApiError(
                    409,
                    "nothing stored: the pools config changed each of the "
                    f"{use_cases.REBUILD_ATTEMPTS} times the rebuild went to store its result "
                    f"(last: {exc}); run the rebuild again",
                ) from None
            st.pools.refresh(force=True)
        return use_cases.rebuild_answer(result, stored_=not body["dry_run"])

    return blp
