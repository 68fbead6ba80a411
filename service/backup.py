"""Online backups of the service database, taken while the service keeps serving.

SQLite: SQLite's backup API copies a consistent snapshot (in WAL mode readers do not block
writers, and the copy includes what is still in the WAL), checked for integrity.

PostgreSQL: ``pg_dump`` (custom format, for ``pg_restore``) of one snapshot, which the row
counts are read from too. It is given the service's own URL as libpq parameters (it takes
``postgresql+psycopg://...`` for a database name and tries the local default server), and
the password in its environment, never on its command line, where ``ps`` shows it.

Either way the copy is written beside its destination and takes its name only once it is
whole, so a backup file is either whole or absent, and never replaces a file.

Restores (``vea db restore``) put such a file back: SQLite's in place of the database,
set aside whole, never under a running service; PostgreSQL's into an empty database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess  # nosec B404 # pg_dump from PATH with an argv we build, never a shell
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from psycopg.conninfo import make_conninfo
from psycopg.pq import Conninfo
from sqlalchemy.exc import DBAPIError

from service.config import safe_url
from service.db import (
    ServiceRunning,
    WriteLock,
    make_engine,
    migration_revisions,
    serving_lock_alone,
    sqlite_file,
)
from service.erasure_ledger import fsync_directory

TABLES = ("decisions", "outcomes", "surveys", "customer_events", "api_keys")


def backup(database_url: str, out: Path) -> dict[str, int]:
    """Back up the database of ``database_url`` (SQLite or PostgreSQL) to ``out``, which
    must not exist; return the row count of each table in the backup. ValueError says
    why nothing was written."""
    if database_url.startswith("sqlite"):
        return backup_sqlite(database_url, out)
    return backup_postgresql(database_url, out)


def backup_sqlite(database_url: str, out: Path) -> dict[str, int]:
    """Copy the SQLite database of ``database_url`` to ``out`` (which must not exist);
    return the row count of each table in the copy."""
    source = sqlite_file(database_url)
    if source is None:
        raise ValueError("no SQLite database file in the URL (an in-memory database?)")
    if not Path(source).is_file():
        raise ValueError(f"no SQLite database at {source}: run vea db upgrade first")
    out = _new_file(out)
    # An unreadable source fails here, as itself: past this point, a file SQLite cannot
    # open or write is the copy.
    try:
        Path(source).open("rb").close()
    except OSError as exc:
        raise ValueError(f"cannot read {source}: {exc.strerror or exc}") from None
    # Read-only source: a backup must not create or change the live database. The path
    # is URI-escaped: unescaped, SQLite would cut it at a '#' or '?' (dropping
    # ``mode=ro`` with it) and decode a '%', opening (creating) another file.
    src = sqlite3.connect(f"{_file_uri(source)}?mode=ro", uri=True, timeout=30.0)
    partial = None
    try:
        partial = _private_partial(out)
        dst = sqlite3.connect(partial)
    except BaseException:
        src.close()
        if partial is not None:
            _remove_partial(partial)
        raise
    try:
        try:
            src.backup(dst)
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _WRITE_FAILURES:
                raise _cannot_write(out, exc) from None
            if type(exc) is not sqlite3.DatabaseError:  # locked, I/O: as they are
                raise
            # "file is not a database", "database disk image is malformed".
            raise ValueError(
                f"cannot back up {source}: it is corrupt or not a database ({exc}); "
                "nothing was written"
            ) from None
        if check != "ok":
            raise ValueError(
                f"cannot back up {source}: the copy failed its integrity check "
                f"({' '.join(check.split())[:300]}): the database is corrupt; nothing was "
                "written"
            )
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
        if not counts:
            raise ValueError(_no_tables(source))
        # The copy is a standalone file: no WAL beside it.
        try:
            dst.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError as exc:  # the disk filled up on the last write
            raise _cannot_write(out, exc) from None
        dst.close()
        _place(partial, out)
    finally:
        src.close()
        dst.close()
        _remove_partial(partial)
    return counts


# SQLite's primary result codes for a file it cannot create or write: the source is
# opened read-only and only read, so these are the copy's (the backup's) failures.
_WRITE_FAILURES = {
    sqlite3.SQLITE_PERM,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
}


def _cannot_write(out: Path, exc: BaseException) -> ValueError:
    """A failure to write the backup (disk full, permission denied, ...) as the one line
    the command prints: it is the operator's to fix, not a bug of vea's."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ValueError(f"cannot write the backup to {out}: {reason}; nothing was written")


def _remove_partial(partial: Path) -> None:
    """Remove the partial copy and the files SQLite keeps beside it while writing it (its
    rollback journal; -wal and -shm while the copy is still in the source's WAL mode):
    a failed backup leaves nothing in the target directory."""
    for leftover in ("", "-journal", "-wal", "-shm"):
        Path(f"{partial}{leftover}").unlink(missing_ok=True)


def _file_uri(path: str) -> str:
    """``file:`` URI of a path, every character SQLite's URI parser would read ('#',
    '?', '%', spaces) percent-escaped."""
    return Path(os.path.abspath(path)).as_uri()


def _no_tables(database: str) -> str:
    return (
        f"{database} holds none of vea's tables ({', '.join(TABLES)}): not the service's "
        "database, or never migrated (vea db upgrade); nothing was written"
    )


PG_DUMP_MISSING = (
    "pg_dump is not on PATH: vea db backup runs it to back up PostgreSQL. Install the "
    "PostgreSQL client tools of the server's major version or newer (Debian, Ubuntu: "
    "postgresql-client) or put their bin directory on PATH"
)


def backup_postgresql(database_url: str, out: Path) -> dict[str, int]:
    """``pg_dump --format=custom`` of the database of ``database_url`` (any URL the
    service takes) to ``out`` (which must not exist); return the row count of each table,
    read in the snapshot the dump holds."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise ValueError(PG_DUMP_MISSING)
    out = _new_file(out)
    engine = make_engine(database_url, pool_size=1)
    partial = _private_partial(out)
    try:
        # The snapshot is exported by a transaction that stays open while pg_dump runs:
        # the counts and the dump see the same rows.
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            exporting = conn.begin()
            try:
                # The transaction idles while pg_dump runs: a server's (or role's)
                # idle_in_transaction_session_timeout would end it, and the backup with
                # it. pg_dump lifts both timeouts for its own session too.
                conn.execute(sa.text("SET LOCAL idle_in_transaction_session_timeout = 0"))
                conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
                snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
                counts = _row_counts(conn)
                if not counts:
                    raise ValueError(_no_tables(safe_url(database_url)))
                argv, env = pg_dump_invocation(engine, pg_dump, partial, snapshot)
                done = _run_pg_tool(argv, env)
            finally:
                # pg_dump took the snapshot when it started: once it is done, how this
                # read-only transaction ends cannot spoil the dump.
                with contextlib.suppress(DBAPIError):
                    exporting.rollback()
        if done.returncode != 0:
            said = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
            raise ValueError(f"pg_dump failed, nothing was written: {said}")
        _place(partial, out)
    except DBAPIError as exc:
        raise ValueError(
            f"cannot read the database {safe_url(database_url)}: {' '.join(str(exc.orig).split())}"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
        engine.dispose()
    return counts


def _run_pg_tool(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(  # nosec B603 # pg_dump or pg_restore, argv built here, no shell
            argv, env=env, capture_output=True, text=True, errors="replace", check=False
        )
    except OSError as exc:  # found on PATH, yet not runnable (permissions, a bad binary)
        raise ValueError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None


def pg_dump_invocation(
    engine: sa.Engine, pg_dump: str, out: Path, snapshot: str
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run ``pg_dump`` on ``engine``'s database."""
    conninfo, env = libpq_connection(engine)
    argv = [
        pg_dump,
        "--format=custom",
        f"--file={out}",
        f"--snapshot={snapshot}",
        "--no-password",  # never wait for a prompt (cron): no password is an error
        f"--dbname={conninfo}",
    ]
    return argv, env


def libpq_connection(engine: sa.Engine) -> tuple[str, dict[str, str]]:
    """The libpq connection string and environment of ``engine``'s database, for the
    PostgreSQL client tools.

    The URL is turned into libpq parameters by SQLAlchemy's own dialect (so every form
    the service connects with, query options and several hosts included, means the same
    to pg_dump); the password goes into ``PGPASSWORD``, never into the command line."""
    _, params = engine.dialect.create_connect_args(engine.url)
    password = params.pop("password", None)
    # The dialect adds objects of its own for psycopg (its type adapters): libpq's
    # keywords only.
    keywords = {option.keyword.decode() for option in Conninfo.get_defaults()}
    conninfo = make_conninfo(
        "", **{name: str(value) for name, value in params.items() if name in keywords}
    )
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return conninfo, env


def _row_counts(conn: sa.Connection) -> dict[str, int]:
    present = set(sa.inspect(conn).get_table_names())
    return {
        table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()  # nosec B608
        for table in TABLES
        if table in present
    }


def _new_file(out: Path) -> Path:
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists: a backup never overwrites a file")
    if not out.parent.is_dir():
        raise ValueError(f"{out.parent} is not a directory")
    return out


def _partial(out: Path) -> Path:
    """Where the backup is written until it is whole (per process: two backups at once
    never write one file)."""
    return out.with_name(f".{out.name}.{os.getpid()}.partial")


def _private_partial(out: Path) -> Path:
    """The partial file, created empty and readable by its owner only: a backup holds
    customer data, and the umask's usual 0644 would let every local user read it.
    (SQLite and pg_dump write into the file as it is, keeping its mode.)"""
    partial = _partial(out)
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:  # an unwritable or full directory: nothing was created
        raise _cannot_write(out, exc) from None
    return partial


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
        try:
            os.replace(partial, out)
        except OSError as exc:
            raise _cannot_write(out, exc) from None
    fsync_directory(out.parent)  # the new name survives a crash right after the command


# ---------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class Restored:
    """What a restore did: the row counts of the restored database, and where the
    database it replaced was set aside (None: there was none, or PostgreSQL, which
    restores into an empty database only)."""

    counts: dict[str, int]
    set_aside: Path | None


def restore(database_url: str, source: Path, *, now: datetime) -> Restored:
    """Put the backup ``source`` (``vea db backup``'s) in place of ``database_url``'s
    database. ValueError says why nothing was changed. The schema is left at the
    backup's revision (``vea db upgrade`` migrates it)."""
    source = Path(source)
    if not source.is_file():
        raise ValueError(f"no backup at {source}: nothing was changed")
    if database_url.startswith("sqlite"):
        return restore_sqlite(database_url, source, now=now)
    return restore_postgresql(database_url, source)


def restore_sqlite(database_url: str, source: Path, *, now: datetime) -> Restored:
    """Replace the SQLite database with a copy of ``source``, checked first; the database
    replaced is renamed beside itself with its -wal and -shm (``<db>.before-restore-
    <UTC time>``: still a whole database with its log, nothing in it lost). Refused while
    a service has the database open (its serving lock) and never during a command's
    write (the write turn)."""
    target = sqlite_file(database_url)
    if target is None or target.startswith("file:"):
        raise ValueError("no SQLite database file in the URL (an in-memory database?)")
    if not Path(target).parent.is_dir():
        raise ValueError(f"{Path(target).parent} is not a directory: nothing was changed")
    try:
        with serving_lock_alone(target), WriteLock(target + ".writelock"):
            partial = _private_partial(Path(target))
            try:
                counts = _checked_copy(source, partial)
                aside = _set_aside(Path(target), now)
                os.replace(partial, target)
                fsync_directory(Path(target).parent)
            finally:
                _remove_partial(partial)
    except ServiceRunning:
        raise ValueError(
            f"a vea service has {target} open: stop it first (a database replaced under "
            "it would lose what it writes next); nothing was changed"
        ) from None
    return Restored(counts, aside)


def _checked_copy(source: Path, partial: Path) -> dict[str, int]:
    """Copy the SQLite backup ``source`` into ``partial``: a database holding vea's tables
    at a revision this release knows, whole by its integrity check."""
    try:
        src = sqlite3.connect(f"{_file_uri(str(source))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ValueError(f"cannot read {source}: {exc}; nothing was changed") from None
    dst = sqlite3.connect(partial)
    try:
        try:
            src.backup(dst)
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            present = {
                name for (name,) in dst.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            revision = (
                dst.execute("SELECT version_num FROM alembic_version").fetchone()
                if "alembic_version" in present
                else None
            )
        except sqlite3.DatabaseError as exc:
            if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _WRITE_FAILURES:
                raise ValueError(
                    f"cannot write beside the database: {exc}; nothing was changed"
                ) from None
            if _is_sqlite_file(source):
                raise ValueError(
                    f"{source} failed its integrity check ({exc}): the backup is damaged; "
                    "nothing was changed"
                ) from None
            raise ValueError(
                f"{source} is not a vea SQLite backup ({exc}): a PostgreSQL backup "
                "restores into PostgreSQL; nothing was changed"
            ) from None
        if check != "ok":
            raise ValueError(
                f"{source} failed its integrity check ({' '.join(check.split())[:300]}): "
                "the backup is damaged; nothing was changed"
            )
        if not present & set(TABLES) or revision is None:
            raise ValueError(f"{source} holds no vea database; nothing was changed")
        known = migration_revisions()
        if revision[0] not in known:
            raise ValueError(
                f"{source} is at schema revision {revision[0]}, newer than this release's "
                f"{known[-1]}: restore it with the release that wrote it; nothing was changed"
            )
        counts = {
            table: dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # nosec B608
            for table in TABLES
            if table in present
        }
        dst.commit()
    finally:
        src.close()
        dst.close()
    os.chmod(partial, 0o600)
    with open(partial, "rb+") as written:
        os.fsync(written.fileno())  # whole on disk before it takes the database's name
    return counts


def _is_sqlite_file(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(16) == b"SQLite format 3\x00"


def _set_aside(target: Path, now: datetime) -> Path | None:
    """Rename the database and its -wal and -shm files together (SQLite reads a database's
    log by its name) to ``<db>.before-restore-<time>``; None when there is no database."""
    if not target.exists():
        for leftover in ("-wal", "-shm"):  # a log without its database: not replayed
            Path(f"{target}{leftover}").unlink(missing_ok=True)
        return None
    aside = target.with_name(f"{target.name}.before-restore-{now:%Y%m%dT%H%M%SZ}")
    if aside.exists():
        raise ValueError(f"{aside} exists: nothing was changed")
    for suffix in ("-wal", "-shm", ""):  # the database last: until then it is as it was
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{target}{suffix}", f"{aside}{suffix}")
    return aside


PG_RESTORE_MISSING = PG_DUMP_MISSING.replace("pg_dump", "pg_restore").replace("back up", "restore")


def restore_postgresql(database_url: str, source: Path) -> Restored:
    """``pg_restore`` of the dump ``source`` into the database of ``database_url``, which
    must hold none of vea's tables (an empty database: ``createdb``): the database in
    use is never overwritten."""
    pg_restore = shutil.which("pg_restore")
    if pg_restore is None:
        raise ValueError(PG_RESTORE_MISSING)
    engine = make_engine(database_url, pool_size=1)
    try:
        try:
            with engine.connect() as conn:
                present = set(sa.inspect(conn).get_table_names())
        except DBAPIError as exc:
            raise ValueError(
                f"cannot reach the database {safe_url(database_url)}: "
                f"{' '.join(str(exc.orig).split())}; nothing was changed"
            ) from None
        if present & {*TABLES, "alembic_version"}:
            raise ValueError(
                f"{safe_url(database_url)} already holds vea's tables: a restore goes into "
                "an empty database (createdb NEWDB, VEA_DATABASE_URL naming it), the one in "
                "use stays as it is; nothing was changed"
            )
        conninfo, env = libpq_connection(engine)
        done = _run_pg_tool(
            [
                pg_restore,
                "--no-owner",
                "--exit-on-error",
                "--single-transaction",  # whole or not at all
                "--no-password",
                f"--dbname={conninfo}",
                str(source),
            ],
            env,
        )
        if done.returncode != 0:
            said = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
            raise ValueError(f"pg_restore failed, nothing was restored: {said}")
        with engine.connect() as conn:
            counts = _row_counts(conn)
    finally:
        engine.dispose()
    return Restored(counts, None)
