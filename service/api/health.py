"""``/healthz`` (alive), ``/readyz`` (database and model, with reasons), ``/metrics``
(open, or for the bearer token ``VEA_METRICS_TOKEN`` when it is set)."""

from __future__ import annotations

import hmac

import sqlalchemy as sa
from flask import Response, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from service.api.common import RETRY_AFTER, Blueprint
from service.db import (
    READ_ONLY,
    deadline_of,
    error_name,
    migration_revisions,
    missing_privileges,
    timed_out,
)
from service.errors import ApiError
from service.schemas import HealthSchema, ReadySchema
from service.state import state


def schema_check(revision: str | None, revisions: tuple[str, ...]) -> tuple[bool, str]:
    """Whether the database's schema revision serves this code, and why.

    A schema behind the code's head fails writes on the columns it lacks (a new release
    started with VEA_AUTO_MIGRATE=0 before `vea db upgrade`): not ready. One newer than
    the code is a release rolling out whose migrations only add: still ready."""
    head = revisions[-1]
    if revision == head:
        return True, f"schema revision {revision}"
    if revision is None or revision in revisions:
        return False, f"schema revision {revision or 'none'} is behind this code's {head}"
    return True, f"schema revision {revision} (newer than this code's {head})"


def bearer_token_matches(authorization: str, token: str) -> bool:
    """Whether an ``Authorization`` header is ``Bearer <token>`` (the scheme in any case).

    Compared in constant time: how long a wrong guess took must not tell how much of it
    was right."""
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Werkzeug reads header bytes as latin-1: encoded back, every byte is compared.
    return hmac.compare_digest(
        presented.strip().encode("latin-1", "replace"), token.encode("latin-1")
    )


def blueprint() -> Blueprint:
    blp = Blueprint("health", __name__, description="Liveness, readiness and metrics.")
    revisions = migration_revisions()  # read once per app, not per probe

    @blp.route("/healthz", methods=["GET"])
    @blp.response(200, HealthSchema)
    def healthz():
        """The process answers (no dependency is checked)."""
        return {"status": "ok"}

    @blp.route("/readyz", methods=["GET"])
    @blp.response(200, ReadySchema)
    @blp.alt_response(
        503,
        schema=ReadySchema,
        description="not ready: see reasons (Retry-After while every pooled database "
        "connection is busy)",
        headers=RETRY_AFTER,
    )
    def readyz():
        """Ready to serve: the database answers and a verified champion model is loaded.

        503 with the reasons otherwise (decisions still answer, degraded)."""
        st = state()
        reasons: list[str] = []
        checks = {}
        headers = {}
        try:
            with st.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
                schema_ok, detail = schema_check(revision, revisions)
                missing = missing_privileges(conn) if schema_ok else []
            checks["database"] = {"ok": schema_ok and not missing, "detail": detail}
            if not schema_ok:
                reasons.append(f"{detail}: run `vea db upgrade`")
            elif missing:
                # Reached and migrated, but every write would answer 503: not ready, and
                # said as what it is (a grant to fix), not as an outage.
                detail = "the database role lacks " + ", ".join(missing)
                checks["database"]["detail"] = detail
                reasons.append(f"{detail}: grant them to the service's role")
        except DBAPIError as exc:
            if timed_out(exc):
                # Hung but reachable (stopped, a lock held): not a missing migration.
                seconds = deadline_of(st.engine)
                limit = f"{seconds:g} s, VEA_DB_TIMEOUT_S; " if seconds else ""
                detail = f"the database did not answer in time ({limit}{error_name(exc)})"
                checks["database"] = {"ok": False, "detail": detail}
                reasons.append(f"{detail}: it is hung or a lock is held; retry later")
                headers["Retry-After"] = str(st.settings.retry_after_s)
            else:
                detail = f"database unavailable or not migrated ({error_name(exc)})"
                checks["database"] = {"ok": False, "detail": detail}
                reasons.append(detail + ": run `vea db upgrade` / check VEA_DATABASE_URL")
        except PoolTimeout:
            # Every pooled connection stayed busy for VEA_DB_POOL_TIMEOUT_S: the database
            # is up but this instance is overloaded. Said as such (not the generic 503 of
            # the error handler), and when to ask again, like a write refused for it.
            detail = "database pool exhausted: every connection busy past VEA_DB_POOL_TIMEOUT_S"
            checks["database"] = {"ok": False, "detail": detail}
            reasons.append(f"{detail}: overloaded, retry later")
            headers["Retry-After"] = str(st.settings.retry_after_s)
        st.models.refresh()
        problem = st.models.problem
        checks["model"] = {
            "ok": problem is None,
            "detail": problem or st.models.warning or f"serving {st.models.version}",
        }
        if problem:
            reasons.append(f"{problem}: decisions answer from the rule-based fallback")
        st.pools.refresh()
        # Routing goes on with the last good config: a warning, not a reason to take
        # the instance out of the load balancer.
        checks["pools"] = {
            "ok": st.pools.problem is None,
            "detail": st.pools.problem or f"pools config from the {st.pools.source}",
        }
        ready = not reasons
        body = {
            "ready": ready,
            "degraded": problem is not None or not checks["database"]["ok"],
            "model_version": st.models.version,
            "checks": checks,
            "reasons": reasons,
        }
        return body, 200 if ready else 503, headers

    @blp.route("/metrics", methods=["GET"])
    # The token's 401 is told in the description: the documented 401 answers are the API
    # keys' (a documented 401 marks an endpoint as key-protected).
    @blp.doc(responses={"200": {"description": "Prometheus text format"}})
    def metrics():
        """Prometheus metrics (all gunicorn workers aggregated).

        When the service sets `VEA_METRICS_TOKEN`, only for `Authorization: Bearer
        <token>` (401 in the API's error format otherwise)."""
        st = state()
        token = st.settings.metrics_token
        if token and not bearer_token_matches(request.headers.get("Authorization", ""), token):
            raise ApiError(
                401,
                "/metrics needs the metrics token: send Authorization: Bearer <token> "
                "(VEA_METRICS_TOKEN)",
                headers={"WWW-Authenticate": 'Bearer realm="vea-metrics"'},
            )
        payload, content_type = st.metrics.render()
        return Response(payload, content_type=content_type)

    return blp
