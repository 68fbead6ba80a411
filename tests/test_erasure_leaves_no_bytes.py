"""An erased customer's data leaves the SQLite files, not only the tables: the WAL file
kept the rows' earlier versions until their frames happened to be overwritten (on a
quiet instance, never: a volume snapshot took them along), and deleted rows' bytes
stay in free pages unless secure_delete is on (a build's default, not SQLite's)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from service.auth import create_key
from service.db import upgrade
from tests.conftest import suite_app


@pytest.fixture
def sqlite_app(tmp_path, registry_dir, compile_cache):
    url = f"sqlite:///{tmp_path / 'vea.db'}"
    upgrade(url)
    app = suite_app(url, registry_dir, compile_cache, erasure_ledger=str(tmp_path / "l.jsonl"))
    yield app, tmp_path / "vea.db"
    app.extensions["vea"].close()


def test_an_erased_customer_is_in_neither_the_database_file_nor_its_wal(sqlite_app):
    app, database = sqlite_app
    client, engine = app.test_client(), app.extensions["vea"].engine
    desktop = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    admin = {"Authorization": f"Bearer {create_key(engine, 'admin')[1]}"}
    erased = f"erase-me-{uuid.uuid4().hex}"

    def decide(customer: str) -> None:
        body = {
            "interaction_id": uuid.uuid4().hex,
            "customer": {"customer_id": customer, "tenure_months": 3},
            "contact": {"channel": "chat", "issue_type": "inquiry"},
        }
        assert client.post("/v1/decisions", json=body, headers=desktop).status_code == 201

    for _ in range(3):
        decide(erased)
    # Some in the database file proper, some only in the WAL.
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for _ in range(2):
        decide(erased)
    for _ in range(5):
        decide(f"kept-{uuid.uuid4().hex}")
    files = [database, Path(f"{database}-wal")]
    assert any(erased.encode() in path.read_bytes() for path in files)

    assert client.delete(f"/v1/customers/{erased}", headers=admin).status_code == 200

    for path in files:
        if path.exists():
            assert erased.encode() not in path.read_bytes(), path.name
    assert client.get(f"/v1/customers/{erased}", headers=admin).json["decisions"] == []
    decide(f"after-{uuid.uuid4().hex}")  # the service writes on as before


def test_a_reader_holding_a_snapshot_delays_the_truncation_not_the_writers(sqlite_app):
    """With a reader on an older snapshot (a long export) the truncation waited 2 s in the
    writers' turn, every write waiting behind it, then gave up for good: the erased id
    stayed in the WAL. Now it gives up at once, leaves a marker, and the service's
    checkpointer truncates as soon as the reader is done."""
    import time

    from service.db import TRUNCATE_PENDING

    app, database = sqlite_app
    client, state = app.test_client(), app.extensions["vea"]
    desktop = {"Authorization": f"Bearer {create_key(state.engine, 'desktop')[1]}"}
    admin = {"Authorization": f"Bearer {create_key(state.engine, 'admin')[1]}"}
    erased = f"erase-me-{uuid.uuid4().hex}"
    body = {
        "interaction_id": uuid.uuid4().hex,
        "customer": {"customer_id": erased, "tenure_months": 3},
        "contact": {"channel": "chat", "issue_type": "inquiry"},
    }
    assert client.post("/v1/decisions", json=body, headers=desktop).status_code == 201
    wal, pending = Path(f"{database}-wal"), Path(f"{database}{TRUNCATE_PENDING}")

    reader = sqlite3.connect(database, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM decisions").fetchone()  # holds its snapshot
    started = time.perf_counter()
    assert client.delete(f"/v1/customers/{erased}", headers=admin).status_code == 200
    assert time.perf_counter() - started < 1.0
    assert pending.exists() and erased.encode() in wal.read_bytes()

    reader.execute("COMMIT")
    reader.close()
    state.checkpointer.checkpoint()  # its next round
    assert not pending.exists()
    assert not wal.exists() or erased.encode() not in wal.read_bytes()
    assert erased.encode() not in database.read_bytes()
