"""A reader following the audit log's cursor sees every event exactly once, even when the
transactions that write events overlap and commit in another order than they started
(migration 0014: ids are drawn in commit order), and a cursor handed out before that
migration keeps working after it."""

from __future__ import annotations

import base64
import random
import threading
import time
import uuid
from datetime import datetime, timedelta

import pytest

from service import audit
from service.auth import create_key
from service.db import audit_events, begin_write, make_engine, upgrade
from tests.conftest import suite_app


def _admin(engine) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(engine, 'admin')[1]}"}


def _page(client, admin, cursor: str | None, limit: int) -> dict:
    query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
    answer = client.get("/v1/audit", query_string=query, headers=admin)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _ids(events: list[dict]) -> list[int]:
    return [event["id"] for event in events]


def test_an_event_committed_late_never_lands_behind_a_cursor(own_app):
    """A transaction writes event A and stays open; B and C are written after it in
    transactions of their own; a reader pages through the log meanwhile (a page an event,
    keeping every cursor it is handed); then A commits. Every cursor handed out is still
    a true position: the events read up to it and the events after it are the whole log,
    each once. (Before 0014, on PostgreSQL, B and C committed at once, the reader was
    handed a cursor past B, and A, committed later with an earlier time and id, lay
    behind it: the page after that cursor held only C.)"""
    engine = own_app.extensions["vea"].engine
    client = own_app.test_client()
    admin = _admin(engine)  # the log's first event (key.create)
    audit.record_now(engine, "committed-before", "pools.update")

    def record_later() -> None:
        for target in ("B", "C"):
            audit.record_now(engine, "quick-writer", "key.create", target)

    later = threading.Thread(target=record_later)
    handed_out: list[tuple[list[int], str]] = []
    with begin_write(engine) as slow:
        audit.record(slow, "slow-writer", "key.revoke", "A")
        later.start()
        later.join(timeout=1.0)
        waited_for_a = later.is_alive()
        read, cursor = [], None
        while True:
            page = _page(client, admin, cursor, limit=1)
            read += _ids(page["events"])
            if page["next"] is None:
                break
            cursor = page["next"]
            handed_out.append((list(read), cursor))
    later.join(timeout=30)
    assert not later.is_alive()

    everything = _page(client, admin, None, limit=1000)
    assert [e["target"] for e in everything["events"]][-3:] == ["A", "B", "C"]
    assert handed_out, "the reader was handed no cursor: the test proves nothing"
    for read_before, cursor in handed_out:
        after = _page(client, admin, cursor, limit=1000)
        assert read_before + _ids(after["events"]) == _ids(everything["events"])
    # B and C waited for A's transaction: audit writers commit one at a time (SQLite's
    # writers always did).
    assert waited_for_a


def test_a_tailing_reader_gets_every_event_of_overlapping_writers_once(own_app):
    """Writers whose transactions overlap (an event, then a pause before the commit)
    while a reader keeps asking for what follows the last page's ``resume``: the reader
    ends with every event once, in id order."""
    engine = own_app.extensions["vea"].engine
    rng = random.Random(20261129)
    pauses = [[rng.uniform(0, 0.004) for _ in range(15)] for _ in range(4)]

    def write(writer: int) -> None:
        for number, pause in enumerate(pauses[writer]):
            with begin_write(engine) as conn:
                audit.record(conn, f"tail-writer-{writer}", "key.create", str(number))
                time.sleep(pause)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    received: list[dict] = []
    kept: list[str | None] = [None]  # a log shipper keeps only the last page's resume

    def read_what_follows() -> None:
        after = audit.decode_cursor(kept[0]) if kept[0] else None
        page = audit.page_events(engine, limit=7, after=after)
        received.extend(page.events)
        kept[0] = page.resume or kept[0]

    while any(thread.is_alive() for thread in writers):
        read_what_follows()
    for thread in writers:
        thread.join()
    read_what_follows()
    read_what_follows()

    mine = [e for e in received if e["actor"].startswith("tail-writer-")]
    assert len(mine) == 60
    assert len(_ids(received)) == len(set(_ids(received)))
    assert _ids(received) == sorted(_ids(received))
    assert _ids(received) == _ids(audit.list_events(engine))


# ---------------------------------------------------------- across the upgrade
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url_at_0013(request, tmp_path) -> str:
    """A database migrated up to 0013, the last schema whose readers were handed
    (time, id) cursors."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'before-0014.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(
            f"vea_audit_0013_{uuid.uuid4().hex[:8]}"
        )
    upgrade(url, "0013")
    return url


def _cursor_before_0014(occurred_at: datetime, event_id: int) -> str:
    """A cursor as the code before migration 0014 handed it out: (time, id) in base64."""
    raw = f"{occurred_at.isoformat(timespec='microseconds')}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_cursor_from_before_the_upgrade_goes_on_where_it_was(
    url_at_0013, registry_dir, compile_cache
):
    start = datetime(1980, 1, 5, 9, 0, 0, 250_000)  # no other event of this database
    times = [start, start + timedelta(seconds=2), start + timedelta(seconds=3)]
    engine = make_engine(url_at_0013)
    with engine.begin() as conn:
        ids = [
            conn.execute(
                audit_events.insert().values(occurred_at=at, actor="before", action="key.create")
            ).inserted_primary_key[0]
            for at in times
        ]
        # Recorded last but timed before the second: the (time, id) order put it second.
        ids.append(
            conn.execute(
                audit_events.insert().values(
                    occurred_at=start + timedelta(seconds=1), actor="late", action="key.create"
                )
            ).inserted_primary_key[0]
        )
    engine.dispose()
    handed_out = {
        "after the first": _cursor_before_0014(times[0], ids[0]),
        "after the second": _cursor_before_0014(times[1], ids[1]),
        "after the last": _cursor_before_0014(times[2], ids[2]),
        "of an event that never was": _cursor_before_0014(times[2], 999_999),
    }

    upgrade(url_at_0013)
    app = suite_app(url_at_0013, registry_dir, compile_cache)
    try:
        client = app.test_client()
        admin = _admin(app.extensions["vea"].engine)  # one more event, after the four
        window = {"from": f"{start:%Y-%m-%d}T00:00:00Z", "to": f"{start:%Y-%m-%d}T23:00:00Z"}

        def rest(cursor: str, limit: int = 1000) -> list[int]:
            read = []
            while cursor:
                query = {"cursor": cursor, "limit": limit, **window}
                answer = client.get("/v1/audit", query_string=query, headers=admin)
                assert answer.status_code == 200, answer.get_json()
                read += _ids(answer.get_json()["events"])
                cursor = answer.get_json()["next"]
            return read

        # The first event had been read: the rest come, in the order recorded, a page at
        # a time with the new cursors too.
        assert rest(handed_out["after the first"]) == ids[1:]
        assert rest(handed_out["after the first"], limit=1) == ids[1:]
        # Past the second in time order (the late one, timed before it, counted as
        # passed): the reader goes on at the first event it had not reached. The late
        # one comes again rather than never (before 0014 it might have committed after
        # the cursor was handed out, and that reader never saw it).
        assert rest(handed_out["after the second"]) == ids[2:]
        assert rest(handed_out["after the last"]) == []
        # Nothing followed it: the place to resume from is still that cursor's own.
        query = {"cursor": handed_out["after the last"], **window}
        answer = client.get("/v1/audit", query_string=query, headers=admin).get_json()
        assert answer["resume"] == handed_out["after the last"]
        assert rest(handed_out["of an event that never was"]) == []
    finally:
        app.extensions["vea"].close()
