"""Erasure and pruning racing the writers of the rows they delete, on both backends.

Each race is set up statement by statement, not left to timing: the first side runs until
it has executed a chosen statement (an engine event), then the second side runs until it
has finished or waits for a lock the first one holds, then the first side goes on. On
SQLite every write transaction takes the writers' turn (``service.db.WriteLock``), so the
second side always waits for the first one's commit; on PostgreSQL only row locks order
them. Whatever the order, a deletion answers the rows it deleted, and a record is either
deleted whole (and counted) or left whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from test_api_outcomes_events import make_decision

from service.auth import create_key
from service.db import customer_events, decisions, outcomes, surveys
from service.deletion import forget_customer, prune_before

# own_app (conftest): a database of its own, as pruning deletes every old row of it.

OLD_CONTACT = "2020-01-02T10:00:00+00:00"
PRUNE_CUTOFF = datetime(2020, 1, 3, tzinfo=UTC)  # after OLD_CONTACT
LOCK_WAIT_LIMIT_S = 60  # a hang guard only: the race itself is ordered by events


class Side(threading.Thread):
    """One side of a race, keeping what it returned or raised."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # noqa: BLE001 - re-raised by outcome()
            self.error = exc

    def outcome(self) -> Any:
        self.join()
        if self.error is not None:
            raise self.error
        return self.result


def waits_for_a_lock(engine: sa.Engine) -> bool:
    """Whether a session of this PostgreSQL database waits for a lock another one holds."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def finished_or_waiting(engine: sa.Engine, side: Side) -> None:
    if engine.dialect.name != "postgresql":
        return  # SQLite: the writers' turn makes the second side wait in any case
    deadline = time.monotonic() + LOCK_WAIT_LIMIT_S
    while side.is_alive() and not waits_for_a_lock(engine):
        if time.monotonic() > deadline:
            raise AssertionError("the second side neither finished nor waited for a lock")
        time.sleep(0.01)


def race(
    engine: sa.Engine,
    first: Callable[[], Any],
    after_statement: str,
    second: Callable[[], Any],
) -> tuple[Any, Any]:
    """Run ``first``; once it has executed a statement starting with ``after_statement``,
    run ``second`` until it finishes or waits for a lock, then let ``first`` go on.
    Returns what each returned."""
    first_side = Side(first)
    second_side = Side(second)
    started = threading.Event()

    def between(_conn, _cursor, statement: str, *_args) -> None:
        if (
            threading.current_thread() is first_side
            and statement.lstrip().upper().startswith(after_statement)
            and not started.is_set()
        ):
            started.set()
            second_side.start()
            finished_or_waiting(engine, second_side)

    sa.event.listen(engine, "after_cursor_execute", between)
    try:
        first_side.start()
        first_result = first_side.outcome()
    finally:
        sa.event.remove(engine, "after_cursor_execute", between)
    assert started.is_set(), f"{after_statement} was never executed"
    return first_result, second_side.outcome()


def stored(engine: sa.Engine, customer_id: str) -> dict[str, int]:
    theirs = sa.select(decisions.c.decision_id).where(decisions.c.customer_id == customer_id)
    with engine.connect() as conn:
        return {
            "decisions": conn.execute(
                sa.select(sa.func.count()).select_from(theirs.subquery())
            ).scalar_one(),
            "outcomes": conn.execute(
                sa.select(sa.func.count()).where(outcomes.c.decision_id.in_(theirs))
            ).scalar_one(),
            "surveys": conn.execute(
                sa.select(sa.func.count()).where(surveys.c.decision_id.in_(theirs))
            ).scalar_one(),
            "events": conn.execute(
                sa.select(sa.func.count()).where(customer_events.c.customer_id == customer_id)
            ).scalar_one(),
        }


DELETIONS = {
    "erasure": lambda engine, customer_id: forget_customer(engine, customer_id),
    "pruning": lambda engine, _customer_id: prune_before(engine, PRUNE_CUTOFF),
}
WRITES = {
    "outcome": {"offered": False},
    "survey": {"csat": 3},
}


def desk_key(engine: sa.Engine) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}


def post(app, headers: dict[str, str], decision_id: str, write: str) -> int:
    answer = app.test_client().post(
        f"/v1/decisions/{decision_id}/{write}", json=WRITES[write], headers=headers
    )
    assert answer.status_code in (201, 404), answer.json
    return answer.status_code


def written(write: str, created: bool) -> dict[str, int]:
    return {
        "outcomes": int(created and write == "outcome"),
        "surveys": int(created and write == "survey"),
    }


NOTHING = {"decisions": 0, "outcomes": 0, "surveys": 0, "events": 0}


@pytest.mark.parametrize("deletion", DELETIONS)
@pytest.mark.parametrize("write", WRITES)
def test_a_write_arriving_between_the_deletes_waits_and_finds_no_decision(
    own_app, new_id, deletion, write
):
    """The outcome (or survey) of a decision being deleted, posted after its table was
    emptied but before the decision went: it waits for the deletion's commit and finds no
    decision. (It used to be stored with a 201, then deleted uncounted by the foreign
    key's cascade when the decision went.)"""
    engine = own_app.extensions["vea"].engine
    headers = desk_key(engine)
    customer = new_id("c-")
    decision = make_decision(
        own_app.test_client(), headers, new_id, customer_id=customer, occurred_at=OLD_CONTACT
    )

    deleted, status = race(
        engine,
        lambda: DELETIONS[deletion](engine, customer),
        f"DELETE FROM {write.upper()}S",
        lambda: post(own_app, headers, decision["decision_id"], write),
    )

    assert deleted == {"decisions": 1, **written(write, status == 201), "events": 0}
    assert stored(engine, customer) == NOTHING
    assert status == 404


@pytest.mark.parametrize("deletion", DELETIONS)
@pytest.mark.parametrize("write", WRITES)
def test_a_write_holding_its_decision_is_deleted_after_it_and_counted(
    own_app, new_id, deletion, write
):
    """The deletion starts while an outcome (or survey) write holds its decision: it waits
    for that commit and counts the row it then deletes."""
    engine = own_app.extensions["vea"].engine
    headers = desk_key(engine)
    customer = new_id("c-")
    decision = make_decision(
        own_app.test_client(), headers, new_id, customer_id=customer, occurred_at=OLD_CONTACT
    )

    status, deleted = race(
        engine,
        lambda: post(own_app, headers, decision["decision_id"], write),
        f"INSERT INTO {write.upper()}S",
        lambda: DELETIONS[deletion](engine, customer),
    )

    assert status == 201
    assert deleted == {"decisions": 1, **written(write, True), "events": 0}
    assert stored(engine, customer) == NOTHING


@pytest.mark.parametrize("deletion", DELETIONS)
def test_a_decision_stored_during_a_deletion_goes_whole_or_stays_whole(own_app, new_id, deletion):
    """A new decision of the customer (and its outcome, and an event) stored while the
    deletion runs: whatever of it is deleted is counted, and the decision never goes
    without its outcome or stays without it."""
    engine = own_app.extensions["vea"].engine
    headers = desk_key(engine)
    customer = new_id("c-")
    client = own_app.test_client()
    make_decision(client, headers, new_id, customer_id=customer, occurred_at=OLD_CONTACT)

    def new_contact() -> None:
        client = own_app.test_client()
        decision = make_decision(
            client, headers, new_id, customer_id=customer, occurred_at=OLD_CONTACT
        )
        assert post(own_app, headers, decision["decision_id"], "outcome") == 201
        event = {"type": "renewed", "occurred_at": OLD_CONTACT}
        answer = client.post(f"/v1/customers/{customer}/events", json=event, headers=headers)
        assert answer.status_code == 201, answer.json

    deleted, _ = race(
        engine, lambda: DELETIONS[deletion](engine, customer), "DELETE FROM OUTCOMES", new_contact
    )

    ever_stored = {"decisions": 2, "outcomes": 1, "surveys": 0, "events": 1}
    left = stored(engine, customer)
    assert {table: deleted[table] + left[table] for table in ever_stored} == ever_stored
    assert left["decisions"] == left["outcomes"]
