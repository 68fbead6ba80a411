"""An online backup of the embedded SQLite database.

SQLite's backup API copies a consistent snapshot while the service keeps serving (in WAL
mode readers do not block writers, and the copy includes what is still in the WAL). The
copy is written beside its destination and renamed into place only once it has passed
an integrity check, so a backup file is either whole or absent. PostgreSQL has its own
tools (``pg_dump``, base backups with WAL archiving): this module refuses it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from service.db import sqlite_file

TABLES = ("decisions", "outcomes", "surveys", "customer_events", "api_keys")


def backup_sqlite(database_url: str, out: Path) -> dict[str, int]:
    """Copy the SQLite database of ``database_url`` to ``out`` (which must not exist);
    return the row count of each table in the copy."""
    source = sqlite_file(database_url)
    if source is None:
        raise ValueError(
            "vea db backup copies the embedded SQLite database; back up PostgreSQL with "
            "pg_dump or base backups"
        )
    if not Path(source).is_file():
        raise ValueError(f"no SQLite database at {source}: run vea db upgrade first")
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists: a backup never overwrites a file")
    if not out.parent.is_dir():
        raise ValueError(f"{out.parent} is not a directory")
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    # Read-only source: a backup must not create or change the live database.
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30.0)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise RuntimeError(f"the copy failed its integrity check: {check}")
        # A database not yet upgraded to the newest migration lacks its tables (surveys
        # before 0009): the copy is still whole, there is just nothing to count there.
        present = {
            name for (name,) in dst.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        counts = {
            table: dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # nosec B608
            for table in TABLES
            if table in present
        }
        # The copy is a standalone file: no WAL beside it.
        dst.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        dst.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    dst.close()
    try:
        _place(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return counts


def _place(partial: Path, out: Path) -> None:
    """Give the finished copy its name, never over a file that appeared meanwhile (another
    backup, a file copied in by hand), and make the name durable."""
    try:
        os.link(partial, out)  # atomic: fails when ``out`` exists, unlike a rename
    except FileExistsError:
        raise ValueError(f"{out} exists: a backup never overwrites a file") from None
    except OSError:  # a filesystem without hard links: the check, then the rename
        if out.exists():
            raise ValueError(f"{out} exists: a backup never overwrites a file") from None
        os.replace(partial, out)
    directory = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the new name survives a crash right after the command
    finally:
        os.close(directory)
