"""The background SQLite checkpointer: it copies the WAL back without blocking writers,
so the next commit starts the WAL file over, and only when the WAL has grown large takes
the writers' turn to restart it (a restart each round held every writer for the sync of
the database file once a second)."""

from __future__ import annotations

import sqlite3
import threading

from service.db import SqliteCheckpointer, WriteLock, make_engine, upgrade, write_turn


def _wal_frames(path: str) -> tuple[int, int]:
    """(frames in the WAL, frames copied back) without blocking anyone."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _busy, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return log, copied
    finally:
        conn.close()


def _write(path: str, lock: WriteLock, rows: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        for _ in range(rows):
            with lock:
                conn.execute("INSERT INTO filler VALUES (?)", ("x" * 3000,))
    finally:
        conn.close()


def _database(tmp_path):
    path = str(tmp_path / "vea.db")
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}", background_checkpoints=True)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE filler (v TEXT)")
    return path, engine, write_turn(engine), holder


def test_a_round_copies_the_wal_back_without_waiting_for_writers(tmp_path):
    path, engine, lock, holder = _database(tmp_path)
    _write(path, lock, 200)
    assert _wal_frames(path)[0] > 200
    checkpointer = SqliteCheckpointer(path, 60.0, write_lock=lock)
    finished = threading.Event()
    round_ = threading.Thread(target=lambda: (checkpointer.checkpoint(), finished.set()))
    with lock:  # a writer's turn: a small WAL does not wait for it
        round_.start()
        assert finished.wait(5)
    round_.join(timeout=10)
    _write(path, lock, 1)  # every frame was copied back: the commit starts the WAL over
    log, copied = _wal_frames(path)
    assert log < 10, log
    assert copied == log
    holder.close()
    engine.dispose()


def test_a_large_wal_is_restarted_in_the_writers_turn(tmp_path):
    path = str(tmp_path / "vea.db")
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}", background_checkpoints=True)
    lock = write_turn(engine)
    # An open connection keeps the WAL file (the last one to close removes it).
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE filler (v TEXT)")
    _write(path, lock, 200)
    assert _wal_frames(path)[0] > 200

    checkpointer = SqliteCheckpointer(path, 60.0, write_lock=lock)
    checkpointer.RESTART_FRAMES = 100  # "large" for this test
    finished = threading.Event()
    round_ = threading.Thread(target=lambda: (checkpointer.checkpoint(), finished.set()))
    with lock:  # a writer's turn: the restart must wait for it
        round_.start()
        assert not finished.wait(0.3)
    round_.join(timeout=10)
    assert finished.is_set()

    _write(path, lock, 1)  # the next commit starts the WAL file over
    log, copied = _wal_frames(path)
    assert log < 10, log
    assert copied == log
    holder.close()
    engine.dispose()
