"""Group commit: the decisions of concurrent requests share one transaction and one sync.

A durable commit waits for the disk (SQLite ``synchronous=FULL``, PostgreSQL's WAL
flush): 0.3-2 ms here, longer than computing the decision. With one commit per decision
the commits of a busy process queue behind each other and the disk, not the CPU, sets
the pace. Here the first request to arrive commits everything waiting (the leader);
requests arriving during its commit wait and go together in the next one. Every request
still returns only after its own row is committed: nothing is acknowledged before it is
stored. Alone (one thread per worker, a quiet moment) a request commits its own row at
once, with no hand-off to another thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from service.db import (
    autocommit_connection,
    begin_write,
    decisions,
    is_unavailable,
    write_turn,
)
from service.driver_sql import prepared

MAX_BATCH = 64


class _Ticket:
    __slots__ = ("row", "done", "inserted", "error")

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.done = False
        self.inserted = False
        self.error: BaseException | None = None


def _insert_ignoring_retries(dialect: Any) -> sa.Insert:
    return (
        dialect.insert(decisions)
        .on_conflict_do_nothing(index_elements=["interaction_id"])
        # rowcount is not reported for this statement by every driver (psycopg: -1).
        .returning(decisions.c.decision_id)
    )


# ``INSERT`` of a decision that skips a known ``interaction_id`` (a retry) instead of
# failing, so one retried request cannot abort the others' shared transaction.
INSERT_IGNORING_RETRIES = {
    "sqlite": _insert_ignoring_retries(sqlite),
    "postgresql": _insert_ignoring_retries(postgresql),
}


@contextmanager
def _writing(engine: sa.Engine, rows: int) -> Iterator[sa.Connection]:
    """One transaction for several rows; a single row is one statement that commits by
    itself (no BEGIN and COMMIT round trips)."""
    if rows == 1:
        with write_turn(engine), autocommit_connection(engine) as conn:
            yield conn
    else:
        with begin_write(engine) as conn:
            yield conn


class DecisionWriter:
    """Stores decision rows for the request threads of one process, in groups."""

    def __init__(self, engine: Callable[[], sa.Engine], max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self.max_batch = max_batch
        self._changed = threading.Condition()
        self._pending: list[_Ticket] = []
        self._committing = False

    def insert(self, row: dict[str, Any]) -> bool:
        """Store ``row``; False when its ``interaction_id`` is already stored. Database
        errors are raised to the caller whose row they concern (all of them when the
        database is unavailable).

        Callers must not hold a pooled connection while they wait here: the leader needs
        one for the group, and waiting holders could take the whole pool."""
        ticket = _Ticket(row)
        with self._changed:
            self._pending.append(ticket)
        while True:
            with self._changed:
                while not ticket.done and self._committing:
                    self._changed.wait()
                if ticket.done:
                    break
                self._committing = True
                # Oldest first: with more than a batch waiting, this thread's own row
                # may only go in a later group, which it then leads or waits for.
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
            try:
                self._commit(batch)
            finally:
                with self._changed:
                    for waiting in batch:
                        waiting.done = True
                    self._committing = False
                    self._changed.notify_all()
        if ticket.error is not None:
            raise ticket.error
        return ticket.inserted

    def _commit(self, batch: list[_Ticket]) -> None:
        engine = self._engine()
        insert = INSERT_IGNORING_RETRIES[engine.dialect.name]
        try:
            with _writing(engine, len(batch)) as conn:
                for ticket in batch:
                    statement = prepared(engine, insert, list(ticket.row))
                    ticket.inserted = bool(statement.rows(conn, ticket.row))
        except Exception as exc:  # noqa: BLE001 - handed to the requests it concerns
            if len(batch) == 1 or (isinstance(exc, DBAPIError) and is_unavailable(exc)):
                for ticket in batch:
                    ticket.inserted, ticket.error = False, exc
                return
            # One bad row must not fail the others: each on its own.
            for ticket in batch:
                self._commit([ticket])
