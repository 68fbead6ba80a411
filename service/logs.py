"""Structured JSON logs on stderr, one object per line, with the request id.

Only fields put there on purpose are logged: routes are logged as their template
(``/v1/customers/<customer_id>/events``), never the raw path, and no request body, so
no customer identifier or free text reaches the logs. An error's traceback is logged
with its frames and exception types but none of its messages (``scrubbed_traceback``):
a message can quote the data the code was working on.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import sys
import time
import traceback
from types import TracebackType

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
        if record.exc_info and record.exc_info[1] is not None:
            # Frames and types, never the messages (``scrubbed_traceback``).
            data["exc"] = scrubbed_traceback(record.exc_info[1])
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


# How Python's traceback joins the exceptions of a chain, oldest first.
CAUSE = ("", "The above exception was the direct cause of the following exception:", "")
CONTEXT = ("", "During handling of the above exception, another exception occurred:", "")
MESSAGE_LEFT_OUT = "(message not logged)"
SAME_FRAMES_SHOWN = 3  # then "[Previous line repeated N more times]", as Python writes it
# A database error's class, read from the driver's exception: kept only when it has the
# form of a code, so that nothing else it might hold is written.
SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")
SQLITE_RESULT_CODE = re.compile(r"^SQLITE_[A-Z_]{1,40}$")


def scrubbed_traceback(exc: BaseException) -> str:
    """``exc``'s traceback as Python prints it, less any text that could quote data.

    Every exception of the chain (causes, contexts, the members of a group) keeps its
    type and its frames (file, line, function), and a database error its class
    (PostgreSQL's SQLSTATE, SQLite's result code); no message is kept. An error raised on
    a contact's data quotes it (``KeyError('customer-17')``), a failed statement's text
    holds its bound values (SQLAlchemy's ``[parameters: ...]``), and PostgreSQL's DETAIL
    and CONTEXT lines the row, the key or an inner statement. The frames' code lines are
    left out too: the file and line number find them in the release."""
    return "\n".join(_chain_lines(exc, set()))


def _chain_lines(exc: BaseException, seen: set[int]) -> list[str]:
    lines: list[str] = []
    current = exc
    while id(current) not in seen:  # a cycle of causes is possible
        seen.add(id(current))
        lines[:0] = _exception_lines(current, seen)
        if current.__cause__ is not None:
            current, link = current.__cause__, CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, CONTEXT
        else:
            break
        if id(current) not in seen:
            lines[:0] = link
    return lines


def _exception_lines(exc: BaseException, seen: set[int]) -> list[str]:
    frames = _frame_lines(exc.__traceback__)
    lines = ["Traceback (most recent call last):", *frames] if frames else []
    lines.append(f"{_type_name(exc)}{_database_class(exc)} {MESSAGE_LEFT_OUT}")
    if isinstance(exc, BaseExceptionGroup):
        members = exc.exceptions
        for number, member in enumerate(members, 1):
            lines.append(f"  +-- {number} of {len(members)}:")
            lines.extend(f"  |   {line}".rstrip() for line in _chain_lines(member, seen))
    return lines


def _frame_lines(tb: TracebackType | None) -> list[str]:
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_qualname}')
        tb = tb.tb_next
    lines = []
    for line, same in itertools.groupby(frames):  # a deep recursion: a few, then a count
        count = sum(1 for _ in same)
        lines += [line] * min(count, SAME_FRAMES_SHOWN)
        if count > SAME_FRAMES_SHOWN:
            lines.append(f"  [Previous line repeated {count - SAME_FRAMES_SHOWN} more times]")
    return lines


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    if kind.__module__ in ("builtins", "__main__"):
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _database_class(exc: BaseException) -> str:
    """`` [SQLSTATE 23505]`` (PostgreSQL) or `` [SQLITE_CONSTRAINT_UNIQUE]`` for a
    database error (SQLAlchemy's or the driver's own), else ``""``."""
    driver_error = exc.orig if isinstance(exc, StatementError) else exc
    sqlstate = getattr(driver_error, "sqlstate", None)
    if isinstance(sqlstate, str) and SQLSTATE.match(sqlstate):
        return f" [SQLSTATE {sqlstate}]"
    result_code = getattr(driver_error, "sqlite_errorname", None)
    if isinstance(result_code, str) and SQLITE_RESULT_CODE.match(result_code):
        return f" [{result_code}]"
    return ""


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
        if isinstance(sys.exc_info()[1], TimeoutError):
            # A client socket's VEA_CLIENT_TIMEOUT_S (service.workers) ran out while
            # gunicorn read the request line and headers or wrote the answer: the
            # client's doing, not an error with a traceback ("Socket error processing").
            from service.config import Settings

            timeout = Settings.from_env(only=["client_timeout_s"]).client_timeout_s
            self.warning("client connection closed: idle for VEA_CLIENT_TIMEOUT_S (%g s)", timeout)
            return
        # "Error handling request %s %s" with the method and the raw URI.
        if isinstance(msg, str) and msg.startswith(ERROR_HANDLING) and args:
            msg, args = f"{ERROR_HANDLING} (path not logged)", ()
        super().exception(msg, *args, **kwargs)
