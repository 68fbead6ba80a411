"""What every API blueprint shares: how a JSON body is read, and the security schemes
and error answers of protected endpoints in the OpenAPI document."""

from __future__ import annotations

import functools
import json
from typing import Any

import flask
import flask_smorest
import orjson
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import ClientDisconnected

from service.errors import ApiError, ErrorSchema
from service.state import state


class JsonBodyParser(FlaskParser):
    """webargs' Flask parser reading bodies with orjson (the app's JSON provider).

    The standard library's decoder, webargs' default, accepts a lone UTF-16 surrogate
    (``"\\ud800"``), which no database or encoder can store; orjson refuses it as
    malformed JSON (400). A body in another format is refused as such (415) instead of
    being read as no body at all, which answered "missing" for every field; accepting
    it as JSON would let a cross-site form post (text/plain) reach the API.
    """

    def _raw_load_json(self, req: flask.Request) -> Any:
        try:
            data = req.get_data(cache=True)
            limit = req.max_content_length
            # A chunked body has no length to refuse up front, and the stream stops at
            # the limit (a longer body would read as truncated JSON, 400). The server's
            # own stream ends where the body does: one byte more tells a body of exactly
            # the limit from a longer one.
            chunked = limit is not None and req.content_length is None
            if chunked and len(data) >= limit and req.environ["wsgi.input"].read(1):
                raise ApiError(413, f"request body too large (limit {limit} bytes)")
        except (ClientDisconnected, TimeoutError) as exc:
            # The socket's VEA_CLIENT_TIMEOUT_S ran out (service.workers) while the body
            # was still coming: Werkzeug reports it as a disconnection (400), and the
            # server's own stream as the timeout itself.
            if not any(isinstance(e, TimeoutError) for e in (exc, exc.__context__)):
                raise
            timeout = state().settings.client_timeout_s
            raise ApiError(408, f"request body not received within {timeout:g} s") from None
        if req.content_length is not None and len(data) < req.content_length:
            # The client closed its side before sending what it announced: a cut body
            # that may still parse (a shorter list, an earlier end) is no request.
            raise ApiError(400, "request body shorter than its Content-Length")
        coding = (req.headers.get("Content-Encoding") or "").strip().lower() or "identity"
        if data and coding != "identity":
            raise ApiError(
                415,
                "the body must be sent uncompressed (no Content-Encoding)",
                fields={"Content-Encoding": [f"got {coding}"]},
            )
        if not is_json_request(req):
            if data:
                raise ApiError(
                    415,
                    "the body must be JSON sent with Content-Type: application/json",
                    fields={"Content-Type": [f"got {req.mimetype or 'none'}"]},
                )
            return core.missing
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            if not data:
                raise  # webargs reads an empty body as no body (422: what is missing)
            # orjson reports bytes that are not UTF-8 with an empty document, which
            # webargs would also take for no body at all.
            raise ApiError(
                400,
                "malformed request: the body must be valid JSON in UTF-8",
                fields={"_schema": [str(exc)]},
            ) from None
        # Every member of an object has a colon, so a body with no more colons than
        # the keys it loaded has no key twice: the exact (slower) check runs only when
        # there are more, e.g. colons in a time's text.
        if data.count(b":") > _key_count(body):
            _refuse_duplicate_keys(data)
        return body


def _key_count(value: Any) -> int:
    count, pending = 0, [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            count += len(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


class _DuplicateKey(Exception):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def _refuse_duplicate_keys(data: bytes) -> None:
    """400 for a key twice in one object: JSON leaves its meaning open and orjson keeps
    the last, so ``{"interaction_id": "a", "interaction_id": "b"}`` stored "b" while
    the caller's own parser (or a gateway's) may have read "a"."""
    try:
        json.loads(data, object_pairs_hook=_unique_members)
    except _DuplicateKey as exc:
        raise ApiError(
            400,
            "malformed request: a key appears twice in one JSON object",
            fields={"_schema": [f"duplicate key {exc.args[0]!r}"]},
        ) from None
    except RecursionError:
        raise ApiError(400, "malformed request: the JSON body is nested too deeply") from None


def _documenting_only(decorator):
    """flask-smorest's documenting ``decorator``, without the wrapper it puts around
    the view: that wrapper only calls the view, yet costs a dispatch on every request
    (a decision passed through twelve of them, 3% of its CPU time)."""

    def keep_view(view):
        # A new dict: a view made with functools.wraps shares its doc dict with the
        # function it wraps, which must keep its own.
        view._apidoc = decorator(view)._apidoc
        return view

    return keep_view


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonBodyParser()

    def alt_response(self, *args: Any, **kwargs: Any):
        return _documenting_only(super().alt_response(*args, **kwargs))

    @staticmethod
    def doc(**kwargs: Any):
        return _documenting_only(flask_smorest.Blueprint.doc(**kwargs))


def created_or_replayed(answer: dict[str, Any], created: bool) -> Any:
    """A write's answer: the view's 201 when this call stored something, else 200 with
    ``Idempotent-Replayed: true`` (a retry of what is already stored)."""
    if created:
        return answer
    return answer, 200, {"Idempotent-Replayed": "true"}


SECURITY = [{"bearerAuth": []}, {"apiKeyHeader": []}]
COMMON_ERRORS = {
    400: "malformed request: a body that is not JSON in UTF-8 or has a key twice in one "
    "object, a path that is not UTF-8",
    401: "missing, invalid or revoked API key",
    403: "the key's role may not use this endpoint",
    413: "request body over the size limit",
    415: "a request body not sent as Content-Type: application/json",
    422: "invalid request: a body, path or query parameter failed validation (`fields` names each)",
    429: "rate limit of this key exceeded, or for a report every VEA_HEAVY_CONCURRENCY slot "
    "busy (see Retry-After)",
    503: "database unavailable (a write, a read or the key check): retry after Retry-After",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}
REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true`: this call stored nothing, the answer is what was stored",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _locations(view) -> set[str]:
    """Where the view's declared arguments are read from (json, query, path)."""
    parameters = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    return {parameter["in"] for parameter in parameters}


def _refusing_query(view):
    """The view, refusing any query parameter (it takes none): ``?dry_run=1`` or a
    misspelt filter would otherwise be ignored in silence, and the call acted on."""

    @functools.wraps(view)
    def refuse_then_call(*args, **kwargs):
        unknown = flask.request.args
        if unknown:
            raise ApiError(
                422,
                "request parameters failed validation",
                fields={name: ["Unknown field."] for name in unknown},
            )
        return view(*args, **kwargs)

    return refuse_then_call


def protected(blp: Blueprint):
    """Document the security schemes and the shared error answers of a view, and refuse
    query parameters where it declares none (as views with a query schema do: 422)."""

    def decorate(view):
        read = _locations(view)
        if "query" not in read:
            view = _refusing_query(view)
        for status, description in COMMON_ERRORS.items():
            if status == 415 and "json" not in read:
                continue  # only a body the view reads is refused for its type
            headers = RETRY_AFTER if status in (429, 503) else None
            view = blp.alt_response(
                status, schema=ErrorSchema, description=description, headers=headers
            )(view)
        return blp.doc(security=SECURITY)(view)

    return decorate
