"""Group commit and the driver-cursor statements of the decision path, on both backends."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from service import history
from service.db import decisions, make_engine, outcomes
from service.group_commit import DecisionWriter


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def decision_row(customer_id: str, occurred_at: datetime, **changes) -> dict:
    decision_id = uuid.uuid4().hex
    row = {
        "decision_id": decision_id,
        "interaction_id": f"i-{decision_id}",
        "customer_id": customer_id,
        "occurred_at": occurred_at,
        "created_at": occurred_at,
        "channel": "chat",
        "issue_type": "inquiry",
        "language": "ja",
        "features": {"tenure_months": 7, "segment": "consumer", "note": "日本語"},
        "suggested_activity": "educate_usage",
        "propensity": 0.8,
        "pool_id": "general",
        "pool_propensity": 1.0,
        "model_version": "m1",
        "experiment_arm": "treatment",
        "degraded": False,
        "openness": 0.42,
        "continues_decision_id": None,
        "api_key_id": None,
        "response": {"decision_id": decision_id, "score": float("nan"), "ok": True},
    }
    return {**row, **changes}


def test_rows_written_on_the_driver_cursor_read_back_through_sqlalchemy(engine):
    writer = DecisionWriter(lambda: engine)
    moment = datetime(2026, 3, 1, 9, 30, 0)  # no microseconds: the storage format must pad
    row = decision_row(f"c-{uuid.uuid4().hex}", moment)
    assert writer.insert(row) is True
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(decisions).where(decisions.c.decision_id == row["decision_id"])
        ).one()
        # SQLAlchemy-built comparisons (reports, exports) see the same timestamp.
        found = conn.execute(
            sa.select(sa.func.count())
            .select_from(decisions)
            .where(decisions.c.occurred_at > moment - timedelta(microseconds=1))
            .where(decisions.c.customer_id == row["customer_id"])
        ).scalar_one()
    assert stored.occurred_at == moment and found == 1
    assert stored.features == row["features"]
    assert stored.response["ok"] is True and stored.response["score"] is None  # NaN -> null
    assert stored.degraded is False


def test_a_known_interaction_is_reported_not_raised_and_the_others_are_kept(engine):
    writer = DecisionWriter(lambda: engine)
    first = decision_row(f"c-{uuid.uuid4().hex}", datetime(2026, 3, 1, 9, 0))
    assert writer.insert(first) is True
    retry = {**first, "decision_id": uuid.uuid4().hex}
    assert writer.insert(retry) is False
    with engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(decisions)
            .where(decisions.c.interaction_id == first["interaction_id"])
        ).scalar_one()
    assert count == 1


def _insert_from_threads(writer: DecisionWriter, parts: list[list[dict]]) -> list[bool]:
    """Each part inserted row by row by its own thread, all starting together."""
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(len(parts))

    def insert(part: list[dict]) -> None:
        start.wait()
        for row in part:
            stored = writer.insert(row)
            with lock:
                results.append(stored)

    threads = [threading.Thread(target=insert, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_inserts_share_commits_and_all_are_stored(engine):
    writer = DecisionWriter(lambda: engine)
    customer = f"c-{uuid.uuid4().hex}"
    rows = [decision_row(customer, datetime(2026, 3, 1, 10, 0, i)) for i in range(40)]
    results = _insert_from_threads(writer, [[row] for row in rows])
    assert results == [True] * len(rows)
    with engine.connect() as conn:
        fetched = history.fetch(conn, customer, datetime(2026, 3, 2), days=30)
    assert len(fetched) == len(rows)
    assert fetched[0].occurred_at == datetime(2026, 3, 1, 10, 0, 39)  # newest first


def test_more_waiting_rows_than_a_group_holds_are_all_stored_and_reported(engine):
    # With more rows waiting than one group takes, a leader's own row can fall into a
    # later group: it must still be stored and reported as new (not as a known id).
    writer = DecisionWriter(lambda: engine, max_batch=2)
    customer = f"c-{uuid.uuid4().hex}"
    rows = [decision_row(customer, datetime(2026, 3, 1, 11, 0, i % 60, i)) for i in range(240)]
    results = _insert_from_threads(writer, [rows[i::8] for i in range(8)])
    assert results == [True] * len(rows)
    with engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(decisions.c.customer_id == customer)
        ).scalar_one()
    assert count == len(rows)


def test_a_bad_row_fails_alone(engine):
    writer = DecisionWriter(lambda: engine)
    customer = f"c-{uuid.uuid4().hex}"
    good = decision_row(customer, datetime(2026, 3, 1, 11, 0))
    bad = decision_row(customer, datetime(2026, 3, 1, 11, 1), suggested_activity=None)
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def insert(row: dict) -> None:
        start.wait()
        try:
            writer.insert(row)
        except sa.exc.DBAPIError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(r,)) for r in (good, bad)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 1 and isinstance(errors[0], sa.exc.IntegrityError)
    with engine.connect() as conn:
        ids = conn.execute(
            sa.select(decisions.c.decision_id).where(decisions.c.customer_id == customer)
        ).scalars()
        assert list(ids) == [good["decision_id"]]


def test_history_reads_outcome_flags_as_booleans(engine):
    writer = DecisionWriter(lambda: engine)
    customer = f"c-{uuid.uuid4().hex}"
    row = decision_row(customer, datetime(2026, 3, 1, 12, 0))
    writer.insert(row)
    with engine.begin() as conn:
        conn.execute(
            outcomes.insert().values(
                decision_id=row["decision_id"],
                activity="educate_usage",
                offered=True,
                accepted=False,
                ve_success=None,
                occurred_at=datetime(2026, 3, 1, 12, 5),
                recorded_at=datetime(2026, 3, 1, 12, 5),
                payload={},
            )
        )
    with engine.connect() as conn:
        (past,) = history.fetch(conn, customer, datetime(2026, 3, 1, 13, 0), days=30)
    assert past.offered is True and past.accepted is False and past.ve_success is None
    assert history.continuation_payload(past)["outcome"]["offered"] is True
