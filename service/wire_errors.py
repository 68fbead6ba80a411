"""gunicorn's own error answers in the API's error format.

gunicorn refuses some requests before the app sees them: a request line over its limit
(414), headers over their limits (431), a malformed request line, header or chunk (400),
a transfer coding it does not support (501). It answers those with an HTML page; a
desktop client reads every error as ``{"error": {"code", "message", "fields"}}``, so the
workers write that instead (``install`` runs in each worker, see ``gunicorn_conf``).
gunicorn still chooses the status and closes the connection, as it would anyway.
"""

from __future__ import annotations

import json
import socket

from service.errors import CODES

# Statuses only gunicorn answers (the app's own are in ``service.errors.CODES``).
WIRE_CODES: dict[int, str] = {
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    501: "not_implemented",
}


def error_document(status: int, reason: str, message: str) -> bytes:
    """The whole HTTP answer: status line, headers and the JSON error body."""
    code = WIRE_CODES.get(status) or CODES.get(status, "bad_request")
    if status >= 500 and status != 501:
        message = "internal error"  # gunicorn's text of an app crash is not for clients
    body = json.dumps(
        {"error": {"code": code, "message": message or reason, "fields": {}}},
        ensure_ascii=True,
    ).encode("ascii")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for ``gunicorn.util.write_error`` (same signature and non-blocking write)."""
    from gunicorn import util

    util.write_nonblock(sock, error_document(status_int, reason, mesg))


def install() -> None:
    """Make this worker process answer gunicorn's own errors in JSON."""
    from gunicorn import util

    # gunicorn's workers look the function up on the module at each error
    # (``util.write_error(...)``), so replacing the attribute covers sync and gthread.
    util.write_error = write_json_error
