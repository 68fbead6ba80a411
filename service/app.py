"""The application factory (Flask tutorial style): ``create_app(config=None)``."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, g, request
from flask_smorest import Api
from werkzeug.middleware.proxy_fix import ProxyFix

from service import errors, logs
from service.api import audit, customers, decisions, docs, health, models, pools, reports
from service.auth import (
    DatabaseUnavailable,
    KeyExpired,
    KeyRevoked,
    KeyStore,
    TooManyFailures,
    allowed,
    presented_key,
)
from service.config import Settings
from service.db import (
    SqliteCheckpointer,
    hold_serving_lock,
    iso_utc,
    make_engine,
    sqlite_file,
    write_turn,
)
from service.drift_monitor import DriftMonitor
from service.errors import ApiError, ErrorSchema, key_rate_limited, route_template
from service.group_commit import DecisionWriter
from service.json_provider import OrjsonProvider
from service.metrics import Metrics
from service.ratelimit import DatabaseLeases, RateLimiter
from service.routing import PoolRouter
from service.serving import ModelManager
from service.state import State
from service.web import pages

access_log = logging.getLogger("vea.access")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class VeaFlask(Flask):
    """Flask, remembering which views need an async adapter.

    Flask asks ``inspect`` on every call whether a view is a coroutine, and
    flask-smorest's decorators make a decision pass through a dozen such calls.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_views: dict[Any, Any] = {}

    def ensure_sync(self, func):
        adapted = self._sync_views.get(func)
        if adapted is None:
            adapted = self._sync_views[func] = super().ensure_sync(func)
        return adapted

    def log_exception(self, exc_info) -> None:
        # An error raised past the error handlers (an after-request hook): Flask's line
        # names the raw path, which holds customer ids, and its traceback the messages.
        errors.log_unexpected(exc_info[1])


class VeaApi(Api):
    """flask-smorest's Api with the design's error format for every HTTP error."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        return errors.error_response(errors.from_http_exception(error))


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides settings by name (``database_url``, ...) on
    top of the ``VEA_*`` environment; see ``service.config.Settings``."""
    settings = Settings.from_env(overrides=config)
    logs.configure(settings.log_level)
    app = VeaFlask(__name__)
    # A path with an empty part ("//") matches no route (404): merged, it was redirected
    # to another path, or answered 405 naming the methods of another customer route.
    app.url_map.merge_slashes = False
    app.config.update(
        API_TITLE="vea: value-enhancement assist",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_SPEC_OPTIONS={
            "info": {
                "description": "Openness score, value-activity choice and routing for every "
                "live contact; outcomes and customer events for learning. Authenticate "
                "with `Authorization: Bearer <key>` (or `X-API-Key`)."
            },
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer"},
                    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                }
            },
        },
    )
    if settings.trusted_proxies:
        # Behind a load balancer every request comes from its address: one guesser would
        # use up every client's budget of failed key checks.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    app.json = OrjsonProvider(app)  # answers keep the schema's field order
    docs.configure(app)

    metrics = Metrics()
    sqlite_path = sqlite_file(settings.database_url)
    background_checkpoints = bool(sqlite_path) and settings.sqlite_checkpoint_s > 0
    engine = make_engine(
        settings.database_url,
        background_checkpoints=background_checkpoints,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=max(2, settings.worker_threads()),
        pool_timeout_s=settings.db_pool_timeout_s,
        timeout_s=settings.db_timeout_s,
    )
    serving_lock = hold_serving_lock(sqlite_path) if sqlite_path else None
    checkpointer = None
    if background_checkpoints:
        checkpointer = SqliteCheckpointer(
            sqlite_path, settings.sqlite_checkpoint_s, write_lock=write_turn(engine)
        )
    model_manager = ModelManager(
        settings.registry,
        settings.champion_poll_s,
        compile_cache=settings.compile_cache,
        shadow_budget_ms=settings.shadow_budget_ms,
    )
    model_manager.on_swap = metrics.set_model
    model_manager.on_warning = metrics.set_model_warning

    def database_leases(limiter: str) -> DatabaseLeases | None:
        if settings.rate_limit_scope.lower() != "database":
            return None
        return DatabaseLeases(lambda: app.extensions["vea"].engine, limiter)

    model_manager.refresh(force=True)
    app.extensions["vea"] = State(
        settings=settings,
        engine=engine,
        keys=KeyStore(
            lambda: app.extensions["vea"].engine,
            settings.key_cache_s,
            shared_dir=settings.shared_state_dir,
            failures=RateLimiter(
                settings.auth_failures_per_s,
                settings.auth_failures_burst,
                shared_path=settings.shared_state_path("auth-failures.buckets"),
                leases=database_leases("auth-failures"),
            ),
        ),
        limiter=RateLimiter(
            settings.rate_limit_per_s,
            settings.rate_limit_burst,
            shared_path=settings.shared_state_path("api-keys.buckets"),
            leases=database_leases("api-keys"),
        ),
        models=model_manager,
        pools=PoolRouter(settings, lambda: app.extensions["vea"].engine),
        policy=settings.contact_policy(),
        metrics=metrics,
        writer=DecisionWriter(lambda: app.extensions["vea"].engine),
        checkpointer=checkpointer,
        serving_lock=serving_lock,
    )
    if checkpointer is not None:
        checkpointer.start()
    # vea_feature_psi and vea_calibration_gap: the live traffic's, refreshed as /metrics is read.
    metrics.drift.source = DriftMonitor(app).scraped

    errors.register(app)
    api = VeaApi(app)
    for module in (decisions, customers, models, pools, reports, health, audit):
        api.register_blueprint(module.blueprint())
    app.register_blueprint(docs.assets_blueprint())
    pages.register(app, settings)  # /login, /desk, /dashboard (session-cookie pages)
    _install_hooks(app)
    return app


def _install_hooks(app: Flask) -> None:
    st: State = app.extensions["vea"]

    @app.before_request
    def _before() -> None:
        # The proxies ``request`` and ``g`` cost a microsecond per use: resolved once.
        req, ctx = request._get_current_object(), g._get_current_object()
        ctx.started = time.perf_counter()
        headers = req.headers
        incoming = headers.get("X-Request-ID", "")
        ctx.request_id = incoming if REQUEST_ID.match(incoming) else secrets.token_hex(8)
        ctx.key_id = None
        length = req.content_length
        if length is not None and length > st.settings.max_body_bytes:
            raise ApiError(
                413, f"request body too large (limit {st.settings.max_body_bytes} bytes)"
            )
        environ = req.environ
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        if not path.isascii() or "%" in query:
            # Werkzeug would turn bytes that are not UTF-8 into U+FFFD, and an id in the
            # path or the desk's query would be stored as that.
            try:
                path.encode("latin-1").decode("utf-8")  # WSGI passes the bytes as latin-1
                unquote_to_bytes(query.replace("+", " ")).decode("utf-8")
            except UnicodeError:
                raise ApiError(400, "the URL is not valid UTF-8") from None
        view = app.view_functions.get(req.endpoint or "")
        permission = getattr(view, "vea_permission", None)
        if permission is None:
            return
        key = presented_key(headers)
        if key is None:
            raise ApiError(
                401,
                "missing API key: send Authorization: Bearer <key>",
                headers={"WWW-Authenticate": 'Bearer realm="vea"'},
            )
        try:
            info = st.keys.verify(key, client=req.remote_addr or "-")
        except TooManyFailures as exc:
            raise ApiError(
                429,
                "too many failed API key attempts from this address",
                headers={"Retry-After": RateLimiter.retry_after_header(exc.retry_after_s)},
            ) from None
        except KeyExpired as exc:
            # Said plainly: an integration told "invalid" hunts for a typo, not a new key.
            raise ApiError(
                401,
                f"the API key expired at {iso_utc(exc.expires_at)}: ask an administrator "
                "for a new one",
                headers={
                    "WWW-Authenticate": 'Bearer realm="vea", error="invalid_token", '
                    'error_description="the API key has expired"'
                },
            ) from None
        except KeyRevoked:
            raise ApiError(
                401,
                "the API key was revoked: ask an administrator for the new one",
                headers={
                    "WWW-Authenticate": 'Bearer realm="vea", error="invalid_token", '
                    'error_description="the API key has been revoked"'
                },
            ) from None
        except DatabaseUnavailable:
            # Also a schema behind the code (VEA_AUTO_MIGRATE=0 before `vea db upgrade`):
            # the key table lacks a column. /readyz tells the two apart.
            raise ApiError(
                503,
                "cannot verify the API key: database unavailable or not migrated "
                "(GET /readyz says which)",
                headers={"Retry-After": str(st.settings.retry_after_s)},
            ) from None
        if info is None:
            raise ApiError(
                401,
                "invalid API key",
                headers={"WWW-Authenticate": 'Bearer realm="vea", error="invalid_token"'},
            )
        ctx.key_id = info.key_id
        if not allowed(info.role, permission):
            raise ApiError(403, f"role {info.role!r} may not use {permission}")
        wait = st.limiter.acquire(info.key_id)
        if wait > 0:
            raise key_rate_limited(wait)

    @app.after_request
    def _after(response):
        req, ctx = request._get_current_object(), g._get_current_object()
        request_id = ctx.get("request_id", "")
        headers = response.headers
        headers["X-Request-ID"] = request_id
        if response.mimetype == "application/json":
            # A browser must not read an answer quoting the caller's input as a page.
            headers["X-Content-Type-Options"] = "nosniff"
            if "Cache-Control" not in headers:
                # Decisions and reports hold customer data: no proxy or browser keeps a copy.
                headers["Cache-Control"] = "no-store"
        if st.settings.hsts_seconds and req.is_secure:
            headers["Strict-Transport-Security"] = f"max-age={st.settings.hsts_seconds}"
        started = ctx.get("started")
        if started is None:
            return response
        elapsed = time.perf_counter() - started
        endpoint = route_template(req.url_rule)
        status = response.status_code
        st.metrics.request_done(endpoint, req.method, status, elapsed)
        if st.settings.access_log:
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": req.method,
                    "route": endpoint,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "key_id": ctx.get("key_id"),
                },
            )
        return response
