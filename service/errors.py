"""One error format for every failure: ``{"error": {"code", "message", "fields"}}``.

Views raise ``ApiError``; Werkzeug/webargs exceptions (404, 405, 413, bad JSON, schema
validation) are translated by ``handle_http_exception``; anything unexpected becomes a
500 with no detail leaked. Bad input must never reach the 500 path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import marshmallow as ma
from flask import Flask, current_app, has_request_context, jsonify, request
from gunicorn.http.errors import ParseException
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed, NotFound
from werkzeug.routing import Rule

log = logging.getLogger("vea.errors")
UNEXPECTED_MESSAGE = "internal error"  # a bug's answer: no detail of it

CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}
        self.code = code or CODES.get(status, "error")


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "machine-readable code"})
    message = ma.fields.String(required=True)
    fields = ma.fields.Dict(
        required=True,
        metadata={"description": "per-field messages (validation errors); may be empty"},
    )


class ErrorSchema(ma.Schema):
    error = ma.fields.Nested(ErrorBodySchema, required=True)


def database_outage(message: str, retry_after_s: float, error: str | None = None) -> ApiError:
    """The 503 + Retry-After of a database the caller should retry later, logged once."""
    log.error(message, extra={"error": error} if error else None)
    return ApiError(503, message, headers={"Retry-After": str(retry_after_s)})


@contextmanager
def unavailable_as_503(message: str, retry_after_s: float) -> Iterator[None]:
    """A database that cannot be reached inside the block answers 503 with Retry-After
    (the caller retries); any other database error still propagates."""
    from service.db import error_name, is_unavailable

    try:
        yield
    except DBAPIError as exc:
        if not is_unavailable(exc):
            raise
        raise database_outage(message, retry_after_s, error_name(exc)) from None


def error_response(error: ApiError):
    body = {"error": {"code": error.code, "message": error.message, "fields": error.fields}}
    response = jsonify(body)
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _flatten_webargs_messages(messages: Any) -> dict[str, Any]:
    # webargs nests messages by location ({"json": {...}}); callers only send JSON bodies
    # and path parameters, so the location level is noise.
    if isinstance(messages, dict) and set(messages) <= {"json", "query", "path", "headers"}:
        merged: dict[str, Any] = {}
        for value in messages.values():
            if isinstance(value, dict):
                merged.update(value)
            else:
                merged.setdefault("_schema", value)
        return merged
    return messages if isinstance(messages, dict) else {"_schema": messages}


def from_http_exception(exc: HTTPException) -> ApiError:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    fields: dict[str, Any] = {}
    messages = data.get("errors") or data.get("messages")
    if messages:
        fields = _flatten_webargs_messages(messages)
    if status == 422:
        where = set(messages) if isinstance(messages, dict) else {"json"}
        message = (
            "request body failed validation"
            if "json" in where or not where <= {"path", "query", "headers"}
            else "request parameters failed validation"
        )
    elif status == 400 and "message" not in data:
        message = "malformed request: the body must be valid JSON"
    elif status == 413:
        message = "request body too large"
    elif isinstance(exc, InternalServerError):
        # Flask's wrapper of an error raised past the handlers (an after-request hook),
        # logged by ``log_unexpected``: the answer of any other unexpected error.
        message = UNEXPECTED_MESSAGE
    elif isinstance(exc, NotFound | MethodNotAllowed) and exc.description == type(exc).description:
        message = _routing_message(exc)  # Werkzeug's own, from matching the URL
    else:
        message = data.get("message") or exc.description or exc.name
    headers = dict(data.get("headers") or {})
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    return ApiError(status, message, fields=fields, headers=headers)


def key_rate_limited(wait_s: float) -> ApiError:
    """429 for a key over its request limit (API calls and its page sessions alike)."""
    from service.ratelimit import RateLimiter

    return ApiError(
        429,
        "rate limit exceeded for this API key",
        headers={"Retry-After": RateLimiter.retry_after_header(wait_s)},
    )


def _routing_message(exc: NotFound | MethodNotAllowed) -> str:
    """Name what was asked for, and the likely mistake: Werkzeug's text ("The requested
    URL was not found on the server. If you entered the URL manually...") names neither."""
    method, path = request.method, request.path
    if isinstance(exc, MethodNotAllowed):
        allowed = ", ".join(sorted(set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"}))
        return f"{method} is not allowed on {path}: use {allowed}"
    message = f"no endpoint at {path}"
    bare = path.rstrip("/")
    if bare == path or not bare:
        return message
    try:
        current_app.url_map.bind("").match(bare, method=method)
    except HTTPException:
        return message
    return f"{message}: without the trailing slash, {bare}"


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)

    @app.errorhandler(PoolTimeout)
    def _pool_exhausted(exc: PoolTimeout):
        # Every pooled connection stayed busy for the pool's timeout: an overload the
        # caller should retry, not a bug (decisions answer degraded instead).
        retry = app.extensions["vea"].settings.retry_after_s
        return error_response(database_outage("database busy: retry later", retry))

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        # A read that finds the database gone, hung or not migrated (a report, a page)
        # is an outage the caller retries, not a bug: 503 as the writes answer it.
        from service.db import error_name, is_unavailable, timed_out

        if not is_unavailable(exc):
            return _unexpected(exc)
        retry = app.extensions["vea"].settings.retry_after_s
        said = "did not answer in time" if timed_out(exc) else "unavailable"
        message = f"database {said}: retry later"
        return error_response(database_outage(message, retry, error_name(exc)))

    @app.errorhandler(ParseException)
    def _malformed_body(exc: ParseException):
        # gunicorn decodes a chunked body as the app reads it, so a malformed chunk
        # (size, terminator, extension) surfaces here, not before the app runs.
        return error_response(ApiError(400, f"malformed request body ({type(exc).__name__})"))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return error_response(from_http_exception(exc))
        log_unexpected(exc)
        return error_response(ApiError(500, UNEXPECTED_MESSAGE))


_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def route_template(rule: Rule | None) -> str:
    """The route a request matched as logs, metrics and the role table name it: its rule
    without converter names (``/v1/customers/<customer_id>/events``, whatever converter
    takes the id); "unmatched" without one. Kept on the rule: it never changes."""
    if rule is None:
        return "unmatched"
    template = getattr(rule, "vea_template", None)
    if template is None:
        template = rule.vea_template = _CONVERTER.sub(r"<\1>", rule.rule)
    return template


def log_unexpected(exc: BaseException) -> None:
    """One line for an unexpected error (a bug): the route's template and the traceback's
    frames and exception types, but no message (``service.logs.scrubbed_traceback``) and
    not the raw path (Flask's own line names it, and paths hold customer ids)."""
    route = method = None
    if has_request_context():
        route = route_template(request.url_rule)
        method = request.method
    log.error(
        "unhandled error",
        extra={"error_type": type(exc).__name__, "route": route, "method": method},
        exc_info=(type(exc), exc, exc.__traceback__),
    )
