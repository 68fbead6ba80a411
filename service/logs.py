"""Structured JSON logs on stderr, one object per line, with the request id.

Only fields put there on purpose are logged: routes are logged as their template
(``/v1/customers/<customer_id>/events``), never the raw path, and no request body, so
no customer identifier or free text reaches the logs.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import orjson
from flask import g, has_request_context
from gunicorn import glogging

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
            data["exc"] = self.formatException(record.exc_info)
        try:
            # orjson: the access line is written for every request.
            return orjson.dumps(data, default=str).decode()
        except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
            return json.dumps(data, default=str, ensure_ascii=False)


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


class GunicornLogger(glogging.Logger):
    """gunicorn's own messages, without its access lines.

    The app writes one structured access line per request (route template, status,
    duration). gunicorn's would repeat it with the raw path, and paths such as
    ``/v1/customers/{customer_id}/events`` hold customer identifiers; formatting it also
    cost a twentieth of a decision's time.
    """

    def access(self, resp, req, environ, request_time) -> None:  # noqa: ANN001 - gunicorn's
        return None
