"""``/v1/models``: the registry seen from the service: list, promote, rollback.

Promotion verifies the bundle (checksums) and runs a smoke decision before the
pointer moves; every worker picks up the new champion within ``champion_poll_s``.
"""

from __future__ import annotations

from flask import g

from models.bundle import BundleError
from models.registry import RegistryError
from service import audit
from service.api.common import Blueprint, protected
from service.auth import require
from service.errors import ApiError, ErrorSchema
from service.schemas import (
    ChampionSchema,
    ModelPathSchema,
    ModelsSchema,
    PromoteRequestSchema,
    RollbackRequestSchema,
    ShadowSchema,
)
from service.serving import build_decider
from service.state import state


def serving_status() -> dict:
    models = state().models
    return {
        "version": models.version,
        "degraded": models.problem is not None,
        "reason": models.problem,
        "warning": models.warning,
    }


def shadow_status() -> dict:
    models = state().models
    return {"version": models.shadow_version, "problem": models.shadow_problem}


def _known_version(registry, version: str) -> None:
    try:
        registry.path_of(version)
    except RegistryError as exc:
        raise ApiError(404, str(exc)) from None
    if version not in registry.version_ids():
        raise ApiError(404, f"unknown model version {version!r}")


def _audit(action: str, target: str | None, details: dict | None = None) -> None:
    """Record a registry change just made (the registry is on disk, not in a transaction)."""
    audit.record_after(state().engine, audit.key_actor(g.get("key_id")), action, target, details)


def blueprint() -> Blueprint:
    blp = Blueprint(
        "models", __name__, url_prefix="/v1/models", description="Model registry and champion."
    )

    @blp.route("", methods=["GET"])
    @require("models:read")
    @protected(blp)
    @blp.response(200, ModelsSchema)
    def list_models():
        """Versions in the registry (newest first), the champion, and what this worker serves."""
        models = state().models
        models.refresh()
        return {
            "champion": models.registry.champion(),
            "shadow": models.registry.shadow(),
            "serving": serving_status(),
            "shadow_serving": shadow_status(),
            "versions": models.registry.versions(),
        }

    @blp.route("/<version>/promote", methods=["POST"])
    @require("models:write")
    @protected(blp)
    @blp.arguments(ModelPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(PromoteRequestSchema())
    @blp.response(200, ChampionSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="unknown version")
    @blp.alt_response(422, schema=ErrorSchema, description="bundle fails verification")
    def promote(body, version):
        """Make a version the champion (after checksum verification and a smoke decision)."""
        models = state().models
        registry = models.registry
        _known_version(registry, version)
        try:
            decider = build_decider(registry, version)
            change = registry.promote_change(
                version, reason=body["reason"], forced=body["force"], actor=g.key_id or ""
            )
        except RegistryError as exc:
            raise ApiError(404, str(exc)) from None
        except (BundleError, Exception) as exc:  # noqa: BLE001 - any failure: not servable
            raise ApiError(
                422, f"model {version} cannot serve: {exc}", code="model_refused"
            ) from None
        # A retried promotion of the champion changed nothing: answered as the first call
        # was, not audited (the log would show a change that did not happen).
        if change.changed:
            _audit("model.promote", version, {"previous": change.previous, "forced": body["force"]})
        models.refresh(force=True)
        return {
            "champion": version,
            "previous": change.previous,
            "serving": serving_status(),
            "extra_features": decider.bundle.extra_features,
        }

    @blp.route("/rollback", methods=["POST"])
    @require("models:write")
    @protected(blp)
    @blp.arguments(RollbackRequestSchema())
    @blp.response(200, ChampionSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="nothing to roll back to")
    def rollback(body):
        """Return to the previous champion."""
        models = state().models
        try:
            # What changed comes from the registry, read under its lock: read here before
            # it, a concurrent rollback could be answered and audited as V1 from V1.
            change = models.registry.rollback_change(actor=g.key_id or "")
        except RegistryError as exc:
            raise ApiError(409, str(exc)) from None
        except BundleError as exc:
            raise ApiError(409, f"previous champion cannot serve: {exc}") from None
        _audit("model.rollback", change.champion, {"previous": change.previous})
        models.refresh(force=True)
        return {
            "champion": change.champion,
            "previous": change.previous,
            "serving": serving_status(),
        }

    @blp.route("/<version>/shadow", methods=["POST"])
    @require("models:write")
    @protected(blp)
    @blp.arguments(ModelPathSchema(), location="path", as_kwargs=True)
    @blp.response(200, ShadowSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="unknown version")
    @blp.alt_response(409, schema=ErrorSchema, description="the version is the champion")
    @blp.alt_response(422, schema=ErrorSchema, description="bundle fails verification")
    def shadow(version):
        """Let a version decide beside the champion on live traffic, never served.

        Its choice and probabilities are stored with each decision, so `vea evaluate
        --shadow` and the value report can compare it with the champion on the same
        contacts. Workers pick it up within `champion_poll_s`.
        """
        models = state().models
        registry = models.registry
        _known_version(registry, version)
        try:
            build_decider(registry, version)
            previous = registry.set_shadow(version, actor=g.key_id or "")  # under its lock
        except RegistryError as exc:
            raise ApiError(409, str(exc)) from None
        except (BundleError, Exception) as exc:  # noqa: BLE001 - any failure: cannot run
            raise ApiError(
                422, f"model {version} cannot run as a shadow: {exc}", code="model_refused"
            ) from None
        _audit("model.shadow", version, {"previous": previous})
        models.refresh(force=True)
        return {"shadow": version, "previous": previous, "champion": registry.champion()}

    @blp.route("/shadow", methods=["DELETE"])
    @require("models:write")
    @protected(blp)
    @blp.response(200, ShadowSchema)
    def stop_shadow():
        """Stop the shadow challenger (no-op when there is none)."""
        models = state().models
        previous = models.registry.clear_shadow(actor=g.key_id or "")
        _audit("model.shadow", None, {"previous": previous, "stopped": True})
        models.refresh(force=True)
        return {"shadow": None, "previous": previous, "champion": models.registry.champion()}

    return blp
