"""The statements every decision runs, executed on the database driver's own cursor.

SQLAlchemy Core's work around each statement (execution context, events, type
processing, result objects) took a fifth of a decision's CPU time, more than SQLite
itself. The two statements of the decision path are therefore compiled once by
SQLAlchemy, for the engine's dialect, and run on the driver's cursor inside a connection
and transaction that SQLAlchemy still manages (pooling, BEGIN, commit, rollback). Driver
errors are raised as SQLAlchemy's exceptions, and a connection the server dropped is
invalidated, exactly as ``Connection.execute`` would do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from service.json_provider import dumps_text


class DriverStatement:
    """One Core statement, compiled for ``engine``'s dialect, run on the raw cursor."""

    def __init__(self, engine: sa.Engine, statement: Any, column_keys: list[str] | None = None):
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql = compiled.string
        self.defaults = dict(compiled.params)  # e.g. the LIMIT value
        self.positions = compiled.positiontup  # None: the driver takes named parameters
        self.sqlite = dialect.name == "sqlite"
        self.dialect = dialect
        if self.sqlite:
            self.readers = [
                _sqlite_reader(c.type) for c in getattr(statement, "selected_columns", [])
            ]
        else:
            from psycopg.types.json import Jsonb

            self._jsonb = Jsonb
            self.readers = []
        # A decision binds about thirty values: converters found by exact type (None:
        # passed as is), with isinstance only for other types.
        self._json = dumps_text if self.sqlite else lambda v: self._jsonb(v, dumps=dumps_text)
        self._by_type: dict[type, Any] = dict.fromkeys((str, int, float, bool, type(None), bytes))
        self._by_type.update({dict: self._json, list: self._json})
        if self.sqlite:
            self._by_type[datetime] = _sqlite_datetime

    def _value(self, value: Any) -> Any:
        convert = self._by_type.get(type(value), _UNKNOWN)
        if convert is None:
            return value
        if convert is not _UNKNOWN:
            return convert(value)
        if isinstance(value, dict | list):  # subclasses: the general rule
            return self._json(value)
        if self.sqlite and isinstance(value, datetime):
            return _sqlite_datetime(value)
        return value

    def _parameters(self, params: dict[str, Any]) -> Any:
        values = {**self.defaults, **params} if self.defaults else params
        value = self._value
        if self.positions is not None:
            return tuple([value(values[name]) for name in self.positions])
        return {name: value(v) for name, v in values.items()}

    def rows(self, conn: sa.Connection, params: dict[str, Any]) -> list[tuple]:
        """Run the statement; its rows (SQLite values converted as SQLAlchemy would)."""
        cursor = self._execute(conn, params)
        try:
            fetched = cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()
        if self.readers and fetched:
            readers = self.readers
            return [
                tuple(read(v) if read else v for read, v in zip(readers, row, strict=True))
                for row in fetched
            ]
        return fetched

    def _execute(self, conn: sa.Connection, params: dict[str, Any]) -> Any:
        raw = conn.connection.dbapi_connection
        parameters = self._parameters(params)
        cursor = raw.cursor()
        try:
            cursor.execute(self.sql, parameters)
        except self.dialect.loaded_dbapi.Error as exc:
            cursor.close()
            disconnected = self.dialect.is_disconnect(exc, raw, cursor)
            if disconnected:
                conn.invalidate(exc)
            raise sa.exc.DBAPIError.instance(
                self.sql,
                parameters,
                exc,
                self.dialect.loaded_dbapi.Error,
                connection_invalidated=disconnected,
                dialect=self.dialect,
            ) from exc
        return cursor


_UNKNOWN = object()


def _sqlite_datetime(value: datetime) -> str:
    """SQLAlchemy's text for a DateTime on SQLite (zero-padded year, microseconds, no
    zone), as ``isoformat`` writes it: five times faster than ``strftime``."""
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds")


def _sqlite_reader(column_type: sa.types.TypeEngine):
    if isinstance(column_type, sa.DateTime):
        return lambda v: datetime.fromisoformat(v) if isinstance(v, str) else v
    if isinstance(column_type, sa.Boolean):
        return lambda v: None if v is None else bool(v)
    return None


def prepared(
    engine: sa.Engine, statement: Any, column_keys: list[str] | None = None
) -> DriverStatement:
    """The engine's compiled form of ``statement`` (made once, kept on the engine)."""
    cache = engine.__dict__.setdefault("vea_driver_statements", {})
    key = (id(statement), tuple(column_keys or ()))
    found = cache.get(key)
    if found is None:
        found = cache[key] = DriverStatement(engine, statement, column_keys)
    return found
