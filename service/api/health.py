"""``/healthz`` (alive), ``/readyz`` (database and model, with reasons), ``/metrics``."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response
from sqlalchemy.exc import DBAPIError

from service.api.common import Blueprint
from service.db import READ_ONLY
from service.schemas import HealthSchema, ReadySchema
from service.state import state


def blueprint() -> Blueprint:
    blp = Blueprint("health", __name__, description="Liveness, readiness and metrics.")

    @blp.route("/healthz", methods=["GET"])
    @blp.response(200, HealthSchema)
    def healthz():
        """The process answers (no dependency is checked)."""
        return {"status": "ok"}

    @blp.route("/readyz", methods=["GET"])
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, schema=ReadySchema, description="not ready: see reasons")
    def readyz():
        """Ready to serve: the database answers and a verified champion model is loaded.

        503 with the reasons otherwise (decisions still answer, degraded)."""
        st = state()
        reasons: list[str] = []
        checks = {}
        try:
            with st.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            checks["database"] = {"ok": True, "detail": f"schema revision {revision}"}
        except DBAPIError as exc:
            detail = f"database unavailable or not migrated ({type(exc.orig).__name__})"
            checks["database"] = {"ok": False, "detail": detail}
            reasons.append(detail + ": run `vea db upgrade` / check VEA_DATABASE_URL")
        st.models.refresh()
        problem = st.models.problem
        checks["model"] = {
            "ok": problem is None,
            "detail": problem or st.models.warning or f"serving {st.models.version}",
        }
        if problem:
            reasons.append(f"{problem}: decisions answer from the rule-based fallback")
        ready = not reasons
        body = {
            "ready": ready,
            "degraded": problem is not None or not checks["database"]["ok"],
            "model_version": st.models.version,
            "checks": checks,
            "reasons": reasons,
        }
        return body, 200 if ready else 503

    @blp.route("/metrics", methods=["GET"])
    @blp.doc(responses={"200": {"description": "Prometheus text format"}})
    def metrics():
        """Prometheus metrics (all gunicorn workers aggregated)."""
        payload, content_type = state().metrics.render()
        return Response(payload, content_type=content_type)

    return blp
