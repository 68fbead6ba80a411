"""Structured JSON logs on stderr, one object per line, with the request id.

Only fields put there on purpose are logged: routes are logged as their template
(``/v1/customers/<customer_id>/events``), never the raw path, and no request body, so
no customer identifier or free text reaches the logs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback

import orjson
from flask import g, has_request_context
from gunicorn import glogging
from sqlalchemy.exc import StatementError

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # one tuple: threads swap it whole

    def _timestamp(self, record: logging.LogRecord) -> str:
        second, text = self._second
        if int(record.created) != second:  # formatted once a second, not once a line
            second = int(record.created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if "request_id" not in vars(record) and has_request_context() and "request_id" in g:
            data["request_id"] = g.request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = _without_statement_data(record.exc_info[1], self.formatException)(
                record.exc_info
            )
        try:
            # orjson: the access line is written for every request.
            return orjson.dumps(data, default=str).decode()
        except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
            return json.dumps(data, default=str, ensure_ascii=False)


def error_summary(exc: BaseException) -> str:
    """An error as a log line names it: its type and where it was raised, not its message,
    which for an error raised on a contact's data (a model's predict) can quote that data
    (ids, free text)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


# PostgreSQL's DETAIL line of a constraint violation quotes the key or the whole row.
_DETAIL = re.compile(r"^(\s*)DETAIL:.*$", re.MULTILINE)


def _without_statement_data(exc: BaseException | None, format_exception):
    """A traceback formatter that leaves out a failed SQL statement's data.

    SQLAlchemy writes the bound values into the exception's text (``[parameters:
    ('customer-17', ...)]``) and PostgreSQL's message adds a DETAIL line with the key or
    row: customer, interaction and agent ids. Every exception in the chain is told to
    hide its parameters, and DETAIL lines are replaced."""
    seen: set[int] = set()
    statement = False
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StatementError):
            exc.hide_parameters = True
            statement = True
        exc = exc.__cause__ or exc.__context__
    if not statement:
        return format_exception

    def formatted(exc_info) -> str:
        return _DETAIL.sub(
            r"\1DETAIL: (hidden: it may quote customer data)", format_exception(exc_info)
        )

    return formatted


def configure(level: str) -> None:
    """Attach one JSON handler to the ``vea`` logger (idempotent across app instances)."""
    logger = logging.getLogger("vea")
    logger.setLevel(level.upper())
    logger.propagate = False
    if not any(getattr(h, "vea_json", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.vea_json = True
        logger.addHandler(handler)


# gunicorn's messages that carry the request as sent (workers/base.py handle_error).
INVALID_REQUEST = "Invalid request from ip="
ERROR_HANDLING = "Error handling request"
QUOTED = re.compile(r"['\"]")


class GunicornLogger(glogging.Logger):
    """gunicorn's own messages, without its access lines.

    The app writes one structured access line per request (route template, status,
    duration). gunicorn's would repeat it with the raw path, and paths such as
    ``/v1/customers/{customer_id}/events`` hold customer identifiers; formatting it also
    cost a twentieth of a decision's time.
    """

    def access(self, resp, req, environ, request_time) -> None:  # noqa: ANN001 - gunicorn's
        return None

    def warning(self, msg, *args, **kwargs) -> None:  # noqa: ANN001 - gunicorn's
        # A request gunicorn refuses is logged with its error's text, which quotes the
        # request line or header as sent: the raw path with its customer id. The kind of
        # error stays (the text before the quote), the quoted request does not.
        if isinstance(msg, str) and msg.startswith(INVALID_REQUEST):
            head, _, error = msg.partition(": ")
            kept = QUOTED.split(error, maxsplit=1)[0].rstrip(" :")
            msg = f"{head}: {kept[:200]} (request text not logged)"
        super().warning(msg, *args, **kwargs)

    def exception(self, msg, *args, **kwargs) -> None:  # noqa: ANN001 - gunicorn's
        # "Error handling request %s %s" with the method and the raw URI.
        if isinstance(msg, str) and msg.startswith(ERROR_HANDLING) and args:
            msg, args = f"{ERROR_HANDLING} (path not logged)", ()
        super().exception(msg, *args, **kwargs)
