"""Persistence: the tables, the engine, and the Alembic upgrade entry point.

SQLAlchemy Core tables (the request path issues two or three plain statements; an ORM
unit of work would only add overhead). Timestamps are naive UTC in every backend.
The schema itself is owned by the Alembic migrations in ``service/migrations``; these
table objects must match them (``tests/test_api_*`` run the migrations, never
``create_all``).
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import logging
import math
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import UTC, datetime
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import (
    DatabaseError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)

from models.schema import MAX_LANGUAGE_TAG
from service.json_provider import dumps_text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
log = logging.getLogger("vea.db")

metadata = sa.MetaData()
# Execution option for a connection that only reads (SQLite: no write lock taken).
READ_ONLY = "vea_read_only"
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    # SHA-256 of the whole key: keys are 256-bit random, so a fast hash is enough and a
    # leaked table does not reveal usable keys.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("label", sa.String(100), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("revoked_at", sa.DateTime(), nullable=True),
    # Null: the key never expires (every key made before migration 0008).
    sa.Column("expires_at", sa.DateTime(), nullable=True),
)

# Administrative actions (key create/revoke, erasure, prune, pools, models), append-only:
# no command deletes from it and `vea db prune` leaves it alone. ``target`` never holds
# an erased customer's id (see service.audit).
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("occurred_at", sa.DateTime(), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(128), nullable=True),
    sa.Column("details", JSON, nullable=True),
    sa.Index("ix_audit_events_occurred_at", "occurred_at"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("decision_id", sa.String(32), primary_key=True),
    sa.Column("interaction_id", sa.String(128), nullable=False, unique=True),
    sa.Column("customer_id", sa.String(128), nullable=False),
    sa.Column("occurred_at", sa.DateTime(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("channel", sa.String(32), nullable=True),
    sa.Column("issue_type", sa.String(64), nullable=True),
    sa.Column("language", sa.String(MAX_LANGUAGE_TAG), nullable=True),
    # What the model saw: the features after history lookup (for off-policy learning).
    sa.Column("features", JSON, nullable=False),
    sa.Column("suggested_activity", sa.String(32), nullable=False),
    sa.Column("propensity", sa.Float(), nullable=False),
    sa.Column("pool_id", sa.String(64), nullable=True),
    sa.Column("pool_propensity", sa.Float(), nullable=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    # "treatment" or "holdout" (the randomized holdout that proves ROI).
    sa.Column("experiment_arm", sa.String(16), nullable=False, server_default="treatment"),
    sa.Column("degraded", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("openness", sa.Float(), nullable=False),
    sa.Column("continues_decision_id", sa.String(32), nullable=True),
    sa.Column("api_key_id", sa.String(32), nullable=True),
    # The answer exactly as served, so a retried interaction gets the same answer.
    sa.Column("response", JSON, nullable=False),
    # Hash of the request body (service.decisions.request_fingerprint): the same body is
    # a retry, a changed one decides again (migration 0006; null before it).
    sa.Column("request_hash", sa.String(32), nullable=True),
    # The hashes of the bodies it replaced (a list, latest last; migration 0007): a late
    # retry of one of them replays the current decision instead of reverting it.
    sa.Column("earlier_request_hashes", JSON, nullable=True),
    # The champion's own first choice before exploration or the holdout (the greedy
    # policy that off-policy evaluation compares a shadow with).
    sa.Column("best_activity", sa.String(32), nullable=True),
    # A shadow challenger's decision for the same contact: never served, only compared.
    sa.Column("shadow_version", sa.String(64), nullable=True),
    sa.Column("shadow_activity", sa.String(32), nullable=True),
    sa.Column("shadow", JSON, nullable=True),
    sa.Index("ix_decisions_customer_time", "customer_id", "occurred_at"),
    # Exports and reports select a period by the contact's time (migration 0005).
    sa.Index("ix_decisions_occurred_at", "occurred_at"),
    # The latest write, asked by every dashboard view (migration 0015).
    sa.Index("ix_decisions_created_at", "created_at"),
)

outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column(
        "decision_id",
        sa.String(32),
        sa.ForeignKey("decisions.decision_id", ondelete="CASCADE"),
        primary_key=True,  # one outcome per decision: never double-counted
    ),
    sa.Column("activity", sa.String(32), nullable=False),
    sa.Column("offered", sa.Boolean(), nullable=False),
    sa.Column("accepted", sa.Boolean(), nullable=True),
    sa.Column("ve_success", sa.Boolean(), nullable=True),
    sa.Column("ves_confidence", sa.SmallInteger(), nullable=True),
    sa.Column("ves_ability", sa.SmallInteger(), nullable=True),
    sa.Column("resolved", sa.Boolean(), nullable=True),
    sa.Column("handle_time_s", sa.Float(), nullable=True),
    sa.Column("csat", sa.SmallInteger(), nullable=True),
    # Relationship and effort beside VES and CSAT (seed 003): optional survey answers.
    sa.Column("nps", sa.SmallInteger(), nullable=True),
    sa.Column("ces", sa.SmallInteger(), nullable=True),
    sa.Column("agent_id", sa.String(128), nullable=True),
    sa.Column("pool_id", sa.String(64), nullable=True),
    sa.Column("occurred_at", sa.DateTime(), nullable=False),
    sa.Column("recorded_at", sa.DateTime(), nullable=False),
    # The request as validated: a retry with the same payload is a no-op, another is 409.
    sa.Column("payload", JSON, nullable=False),
    sa.Index("ix_outcomes_recorded_at", "recorded_at"),  # the latest write (migration 0015)
)

# Survey answers as the survey system sent them, hours or days after the contact
# (migration 0009). They arrive before or after the agent's outcome, or without one: kept
# here so none is lost, and copied into the outcome's empty answer columns (in the same
# transaction as whichever of the two comes second), so every reader of outcomes (export,
# reports, proficiency, drift) counts them once, from the one row per decision.
surveys = sa.Table(
    "surveys",
    metadata,
    sa.Column(
        "decision_id",
        sa.String(32),
        sa.ForeignKey("decisions.decision_id", ondelete="CASCADE"),
        primary_key=True,  # one survey per contact: answers are added, never replaced
    ),
    sa.Column("survey_id", sa.String(128), nullable=True),
    sa.Column("answered_at", sa.DateTime(), nullable=True),
    sa.Column("ves_confidence", sa.SmallInteger(), nullable=True),
    sa.Column("ves_ability", sa.SmallInteger(), nullable=True),
    sa.Column("csat", sa.SmallInteger(), nullable=True),
    sa.Column("nps", sa.SmallInteger(), nullable=True),
    sa.Column("ces", sa.SmallInteger(), nullable=True),
    sa.Column("recorded_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Index("ix_surveys_updated_at", "updated_at"),  # the latest write (migration 0015)
)

customer_events = sa.Table(
    "customer_events",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(128), nullable=True),
    sa.Column("customer_id", sa.String(128), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("occurred_at", sa.DateTime(), nullable=False),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("recorded_at", sa.DateTime(), nullable=False),
    sa.Column("payload", JSON, nullable=False),
    sa.UniqueConstraint("customer_id", "event_id", name="uq_customer_events_event"),
    sa.Index("ix_customer_events_customer_time", "customer_id", "occurred_at"),
)


# The pools config every worker and instance routes with (one row, id 1), and the last
# proficiency rebuild (for `vea pools show` and GET /v1/pools).
pool_config = sa.Table(
    "pool_config",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("config", JSON, nullable=False),
    sa.Column("proficiency", JSON, nullable=True),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False, server_default=""),
)

# Live availability per pool, posted by the contact-center platform; a report older
# than VEA_AVAILABILITY_TTL_S is ignored when routing.
pool_availability = sa.Table(
    "pool_availability",
    metadata,
    sa.Column("pool_id", sa.String(64), primary_key=True),
    sa.Column("agents_free", sa.Integer(), nullable=True),
    sa.Column("queue_length", sa.Integer(), nullable=True),
    sa.Column("expected_wait_s", sa.Float(), nullable=True),
    sa.Column("reported_at", sa.DateTime(), nullable=False),
    # Agents logged in to the pool's queue (migration 0012): the wait estimate's divisor.
    sa.Column("agents_staffed", sa.Integer(), nullable=True),
)

# Rate-limit token buckets shared by every instance on this database
# (VEA_RATE_LIMIT_SCOPE=database, service.ratelimit.DatabaseLeases). ``bucket`` is a hash
# of the limiter and its key (an API key id, a client address), never the key itself.
# ``updated_at`` is epoch seconds, not a timestamp column: the bucket's refill is
# arithmetic on it. A row whose bucket has refilled is the same as no row, and is deleted.
rate_limit_buckets = sa.Table(
    "rate_limit_buckets",
    metadata,
    sa.Column("bucket", sa.String(32), primary_key=True),
    sa.Column("limiter", sa.String(32), nullable=False),
    sa.Column("tokens", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
)


# Page sign-ins (service.web.session): the cookie carries a random session id, the table
# only its SHA-256. Sign-out deletes the row and revoking the key deletes its rows, so a
# copied cookie stops working on every worker and instance; rows past ``expires_at`` are
# deleted by the next sign-in.
page_sessions = sa.Table(
    "page_sessions",
    metadata,
    sa.Column("session_hash", sa.String(64), primary_key=True),
    sa.Column(
        "key_id",
        sa.String(32),
        sa.ForeignKey("api_keys.key_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False),
    sa.Index("ix_page_sessions_key_id", "key_id"),
    sa.Index("ix_page_sessions_expires_at", "expires_at"),
)


UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, ProgrammingError)


# PostgreSQL's "programming" errors that mean the database is not ready for this code
# (not migrated: a table, column or function missing; a grant missing), not a bug in it
# (a syntax error stays a 500 that someone sees).
NOT_READY_SQLSTATES = frozenset({"42P01", "42703", "42883", "42501", "3F000"})


def is_unavailable(exc: DBAPIError) -> bool:
    """True when the database cannot be reached, is not migrated, or its file is damaged
    (``is_corrupt``): callers answer degraded or 503 + Retry-After. Other driver errors
    are bugs and stay visible."""
    if exc.connection_invalidated or is_corrupt(exc):
        return True
    if isinstance(exc, ProgrammingError):
        sqlstate = getattr(exc.orig, "sqlstate", None)  # None: SQLite's, kept as before
        return sqlstate is None or sqlstate in NOT_READY_SQLSTATES
    return isinstance(exc, UNAVAILABLE_ERRORS)


def is_corrupt(exc: BaseException) -> bool:
    """True for SQLAlchemy's plain ``DatabaseError``, exactly that class: SQLite's
    "database disk image is malformed" (a truncated or damaged file) and "file is not a
    database". Its subclasses (IntegrityError, DataError...) are a statement's own
    errors, which callers handle themselves, and are not counted."""
    return type(exc) is DatabaseError


def corrupt_reason(exc: BaseException) -> str:
    """Why a damaged database (``is_corrupt``) cannot be used, for one line after its
    URL: the driver's first line, which quotes no row, and what to do."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    why = lines[0] if lines else type(exc).__name__
    return f"corrupt or not a database ({why}): put its latest backup in its place"


def error_name(exc: BaseException) -> str:
    """The class of a database error as the driver told it ("InsufficientPrivilege",
    "UndefinedTable"), for logs: SQLAlchemy's wrapper class alone ("ProgrammingError")
    does not tell a missing grant from a missing table."""
    return type(getattr(exc, "orig", None) or exc).__name__


# What the service's requests write, table by table: a role the database refuses one of
# these answers every such request 503 (stored nothing), though it still reads.
REQUEST_WRITES = {
    "decisions": ("SELECT", "INSERT", "UPDATE"),
    "outcomes": ("SELECT", "INSERT", "UPDATE"),
    "surveys": ("SELECT", "INSERT", "UPDATE"),
    "customer_events": ("SELECT", "INSERT"),
    "audit_events": ("SELECT", "INSERT"),
    "api_keys": ("SELECT",),
    "rate_limit_buckets": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "page_sessions": ("SELECT", "INSERT", "DELETE"),
    "pool_availability": ("SELECT", "INSERT", "UPDATE"),
}
# The tables whose ids come from a sequence (PostgreSQL): inserting takes its USAGE.
SEQUENCED = ("customer_events", "audit_events")


def missing_privileges(conn: sa.Connection) -> list[str]:
    """The privileges of ``REQUEST_WRITES`` this connection's PostgreSQL role lacks, as
    "INSERT on decisions" (empty when it has them all, and on SQLite, whose file access
    the operating system decides). One query: a readiness probe may ask every second."""
    if conn.dialect.name != "postgresql":
        return []
    pairs = [(table, p) for table, privileges in REQUEST_WRITES.items() for p in privileges]
    pairs += [(table, "USAGE") for table in SEQUENCED]
    tables = [t for t, _ in pairs]
    privileges = [p for _, p in pairs]
    rows = conn.execute(
        sa.text(
            "SELECT t.name, t.privilege FROM unnest(CAST(:tables AS text[]), "
            "CAST(:privileges AS text[])) AS t(name, privilege) "
            "WHERE NOT CASE WHEN t.privilege = 'USAGE' THEN "
            "coalesce(has_sequence_privilege(pg_get_serial_sequence(t.name, 'id'), 'USAGE'), true) "
            "ELSE has_table_privilege(t.name, t.privilege) END"
        ),
        {"tables": tables, "privileges": privileges},
    ).all()
    return [
        f"{privilege} on {name}" if privilege != "USAGE" else f"USAGE on {name}'s id sequence"
        for name, privilege in rows
    ]


def utcnow() -> datetime:
    """Naive UTC, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso_utc(moment: datetime) -> str:
    """A stored (naive UTC) time as every answer writes it: milliseconds and ``Z``."""
    return moment.isoformat(timespec="milliseconds") + "Z"


def to_naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (as most tools print them) and use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


SQLITE_SYNCHRONOUS = ("FULL", "NORMAL")


def make_engine(
    url: str,
    *,
    background_checkpoints: bool = False,
    sqlite_synchronous: str = "FULL",
    pool_size: int = 2,
    pool_timeout_s: float = 5.0,
    timeout_s: float | None = None,
) -> sa.Engine:
    """An engine tuned for the request path of a sync gunicorn worker.

    ``background_checkpoints`` (SQLite only): the service runs WAL checkpoints in a
    background thread (``SqliteCheckpointer``), so commits on the request path never
    pay for one; SQLite's own automatic checkpoint then only acts as a safety net.

    ``timeout_s``: the service's deadline for each database call (``VEA_DB_TIMEOUT_S``,
    see ``Deadline``); None (the commands: migrations, backups, exports) waits as long
    as the database takes.
    """
    url = normalize_url(url)
    deadline = Deadline(timeout_s)
    if url.startswith("sqlite"):
        if sqlite_synchronous.upper() not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"sqlite synchronous must be one of {SQLITE_SYNCHRONOUS}")
        return _sqlite_engine(
            url,
            background_checkpoints,
            sqlite_synchronous.upper(),
            pool_size=pool_size,
            pool_timeout_s=pool_timeout_s,
            deadline=deadline,
        )
    engine = sa.create_engine(
        url,
        pool_size=pool_size,  # one per request a worker handles at once
        max_overflow=4,
        pool_timeout=pool_timeout_s,
        pool_recycle=1800,
        pool_pre_ping=False,  # a dead connection is invalidated on error instead
        # Fail fast when the server is down: the decision still answers (degraded).
        connect_args={"connect_timeout": 3},
        json_serializer=dumps_text,
        json_deserializer=orjson.loads,
    )
    engine.vea_deadline = deadline

    @sa.event.listens_for(engine, "do_connect")
    def _connect(_dialect, _record, cargs, cparams):  # pragma: no cover - driver hook
        if deadline.seconds is None:
            return None  # the driver's own connect
        return _connect_with_deadline(deadline, cargs, cparams)

    return engine


# ------------------------------------------------------------------ deadline
# How long a fast failure lasts after a call was abandoned, in deadlines: the next
# requests answer at once (degraded, 503) instead of each waiting for the hung server.
STALL_DEADLINES = 1.0
# How often a PostgreSQL backend of the service checks, while it runs or waits, that the
# service is still connected (PostgreSQL 14 or newer).
CLIENT_CHECK_MS = 500
# A heavy computation's deadline per call (a report, the dashboard, a pools rebuild):
# under gunicorn's 30 s worker timeout, which would end it anyway.
HEAVY_DEADLINE_S = 25.0
# PostgreSQL ends a lock wait at the deadline itself (lock_timeout): one request fails,
# and the server has shown it is alive. The client gives up this much later, so that
# only a server that answers nothing at all is taken for hung.
SERVER_FIRST_S = 1.0


class DeadlineExceeded(Exception):  # noqa: N818 - mixed into the driver's error
    """Marks the driver error raised when a database call passed the deadline."""


class Deadline:
    """How long each database call of the service may take (``VEA_DB_TIMEOUT_S``), on
    the engine (``engine.vea_deadline``); None: no deadline.

    PostgreSQL: a server that is hung but reachable (stopped) still takes the
    connection and ACKs what is sent, so neither a TCP keepalive nor libpq's timeouts
    end the wait. The server itself ends a lock wait at the deadline (``lock_timeout``:
    that request fails, nothing else); each call waits on psycopg's own wait loop
    ``SERVER_FIRST_S`` longer (``DeadlineConnection``). Past that the connection is
    closed (SQLAlchemy then invalidates it, it is never reused) and a
    ``DatabaseTimeout`` (an ``OperationalError``: "database unavailable", decisions
    degraded, writes 503) is raised. For ``seconds * STALL_DEADLINES`` afterwards every
    call and connect of this engine fails at once, so the hung server costs one request
    a deadline, not every request; the first call after it asks the server again (it
    recovers by itself). A new connection waits at most the deadline too (libpq's whole
    seconds, at least 2), and the server ends a statement whose connection the service
    closed (``CLIENT_CHECK_MS``). Works alike in sync and gthread workers (no
    signals). SQLite: the busy timeout is the deadline (see ``_sqlite_engine``).
    """

    __slots__ = ("seconds", "stalled_until", "_lifted")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.stalled_until = 0.0
        self._lifted = threading.local()

    def is_lifted(self) -> bool:
        return bool(getattr(self._lifted, "depth", 0))

    def per_call(self) -> float | None:
        """The deadline of a call made now by this thread (None: wait as long as it takes)."""
        if self.seconds is None:
            return None
        return max(self.seconds, HEAVY_DEADLINE_S) if self.is_lifted() else self.seconds

    @contextmanager
    def lifted(self) -> Iterator[None]:
        """This thread's calls within the block wait up to ``HEAVY_DEADLINE_S``: a report
        over 100,000 decisions takes longer than a decision may wait, and a slow report is
        no sign of a hung server (its time-out does not make the next calls fail at once).
        A server already taken for hung still fails at once."""
        self._lifted.depth = getattr(self._lifted, "depth", 0) + 1
        try:
            yield
        finally:
            self._lifted.depth -= 1

    def stalled(self) -> bool:
        """A call passed the deadline a moment ago: fail at once instead of waiting."""
        until = self.stalled_until
        return bool(until) and until > time.monotonic()

    def trip(self) -> None:
        self.stalled_until = time.monotonic() + (self.seconds or 0.0) * STALL_DEADLINES

    def clear(self) -> None:
        self.stalled_until = 0.0

    def message(self) -> str:
        return f"the database did not answer within {self.seconds:g} s (VEA_DB_TIMEOUT_S)"

    def recently(self) -> str:
        return f"{self.message()} a moment ago: not asked again for up to {self.seconds:g} s"


def without_deadline(engine: sa.Engine) -> AbstractContextManager[None]:
    """This thread's database calls on ``engine`` wait as long as they take within the
    block (``Deadline.lifted``): heavy computations (``service.heavy``)."""
    deadline = getattr(engine, "vea_deadline", None)
    return deadline.lifted() if deadline is not None else nullcontext()


def deadline_of(engine: sa.Engine) -> float | None:
    deadline = getattr(engine, "vea_deadline", None)
    return deadline.seconds if deadline is not None else None


def timed_out(exc: BaseException) -> bool:
    """True when a database error is the deadline passing: a call abandoned (or failed
    at once just after one), the server's ``lock_timeout``, SQLite's busy timeout."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, DeadlineExceeded):
        return True
    if isinstance(orig, sqlite3.OperationalError):
        return "locked" in str(orig)  # "database is locked", "database table is locked"
    return getattr(orig, "sqlstate", None) == "55P03"  # lock_not_available


@functools.cache
def _psycopg_classes():
    """``(DeadlineConnection, DatabaseTimeout)``, made on first use (psycopg is only
    imported for PostgreSQL); None with a psycopg older than 3.3, whose
    ``Connection.wait`` takes no timeout (the deadline is then not kept, and said)."""
    import psycopg

    try:
        from psycopg.connection import _WAIT_INTERVAL
        from psycopg.errors import _WaitTimeout  # what wait(..., timeout=) raises
    except ImportError:
        _WaitTimeout = None
    if (
        _WaitTimeout is None
        or "interval" not in inspect.signature(psycopg.Connection.wait).parameters
    ):
        log.warning(
            "VEA_DB_TIMEOUT_S is not kept on PostgreSQL: psycopg %s has no wait timeout "
            "(3.3 or newer needed)",
            psycopg.__version__,
        )
        return None

    class DatabaseTimeout(psycopg.OperationalError, DeadlineExceeded):
        """The database did not answer within the deadline."""

    class DeadlineConnection(psycopg.Connection):
        """A psycopg connection whose every wait for the server ends at the deadline."""

        vea_deadline: Deadline | None = None

        def wait(self, gen, interval: float = _WAIT_INTERVAL, timeout: float | None = None):
            deadline = self.vea_deadline
            if deadline is None or deadline.seconds is None or timeout is not None:
                return super().wait(gen, interval, timeout)
            if deadline.stalled_until and deadline.stalled():
                self.pgconn.finish()  # nothing sent: closed so the pool drops it
                raise DatabaseTimeout(deadline.recently())
            heavy = deadline.is_lifted()
            try:
                return super().wait(gen, interval, deadline.per_call() + SERVER_FIRST_S)
            except _WaitTimeout:
                # The server may still answer later, mid-protocol: never reuse it.
                self.pgconn.finish()
                if heavy:
                    raise DatabaseTimeout(
                        f"a heavy computation's statement took over {HEAVY_DEADLINE_S:g} s"
                    ) from None
                deadline.trip()
                raise DatabaseTimeout(deadline.message()) from None

    return DeadlineConnection, DatabaseTimeout


def _connect_with_deadline(deadline: Deadline, cargs: tuple, cparams: dict):
    """A ``DeadlineConnection`` made within the deadline (failing at once while the
    server is taken for hung), its server-side lock waits bounded by it too."""
    import psycopg

    classes = _psycopg_classes()
    if classes is None:
        return psycopg.connect(*cargs, **cparams)
    connection_class, timeout_error = classes
    if deadline.stalled():
        raise timeout_error(deadline.recently())
    seconds = deadline.seconds
    # libpq counts whole seconds, at least 2.
    cparams = {**cparams, "connect_timeout": max(2, math.ceil(seconds))}
    try:
        conn = connection_class.connect(*cargs, **cparams)
    except psycopg.errors.ConnectionTimeout:
        deadline.trip()
        raise timeout_error(deadline.message() + " (connecting)") from None
    conn.vea_deadline = deadline
    try:
        # A lock wait past the deadline (a row another session holds) ends in the
        # server: that request answers degraded or 503, and the engine is not taken
        # for hung, so the other requests go on. A statement the service abandoned (the
        # connection closed) ends there too: the server checks its client while it runs.
        conn.execute(
            "SELECT set_config('lock_timeout', %s, false)", (f"{math.ceil(seconds * 1000)}ms",)
        )
        if conn.info.server_version >= 140000:
            conn.execute(
                "SELECT set_config('client_connection_check_interval', %s, false)",
                (f"{CLIENT_CHECK_MS}ms",),
            )
        conn.commit()
    except BaseException:
        conn.close()
        raise
    deadline.clear()
    return conn


def _sqlite_engine(
    url: str,
    background_checkpoints: bool,
    synchronous: str,
    *,
    pool_size: int,
    pool_timeout_s: float,
    deadline: Deadline,
) -> sa.Engine:
    database = sa.make_url(url).database
    on_disk = bool(database) and database != ":memory:"
    if on_disk and _creatable(database):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        # The same pool as on PostgreSQL (an in-memory database has a pool per thread).
        **(
            {"pool_size": pool_size, "max_overflow": 4, "pool_timeout": pool_timeout_s}
            if on_disk
            else {}
        ),
        connect_args={"timeout": 10},
        json_serializer=dumps_text,
        json_deserializer=orjson.loads,
    )

    engine.vea_deadline = deadline
    if on_disk:
        engine.vea_write_lock = WriteLock(database + ".writelock", deadline)

        @sa.event.listens_for(engine, "do_connect")
        def _create_private(_dialect, _record, _cargs, _cparams):  # pragma: no cover - hook
            _create_private_file(database)
            return None  # SQLite's own connect opens it

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - driver hook
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling
        # would defer it and break BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Another process holding the lock (a long write, a locked file): wait at most
        # the service's deadline (VEA_DB_TIMEOUT_S), then "database unavailable". First:
        # the next pragma may already wait for the lock.
        seconds = deadline.seconds
        busy_ms = SQLITE_BUSY_MS if seconds is None else max(1, math.ceil(seconds * 1000))
        cursor.execute(f"PRAGMA busy_timeout={busy_ms:d}")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        # FULL: every commit reaches the disk before the 2xx (survives a power cut).
        # NORMAL is faster and still survives a crash of the process, not of the machine.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted rows' bytes are overwritten, not left in free pages: an erased
        # customer's data must not stay readable in the file (some builds default to on).
        cursor.execute("PRAGMA secure_delete=ON")
        if background_checkpoints:
            # Default 1000 pages: a commit every ~100 decisions would stall 10-90 ms
            # copying the WAL back and syncing; the checkpointer thread does it instead.
            cursor.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_CHECKPOINT_PAGES}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # pragma: no cover - driver hook
        # IMMEDIATE takes the write lock up front: a read-then-write transaction can
        # otherwise fail with SQLITE_BUSY when another process committed in between.
        # Connections marked READ_ONLY run each SELECT in autocommit (its own snapshot).
        if not connection.get_execution_options().get(READ_ONLY, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


SAFETY_NET_CHECKPOINT_PAGES = 25_000  # ~100 MB of WAL
SQLITE_BUSY_MS = 10_000  # without a deadline (the commands)


class FairTurn:
    """A lock this process's threads get in the order they asked for it.

    ``threading.Lock`` lets the thread that just released it take it again before a
    waiting thread has woken: 16 threads writing 50 rows each back to back, one waited
    0.76 s for its turn (with a slow disk, past the deadline: a 503). Here a release
    hands the lock to the longest waiter, so a thread waits only for the writers queued
    before it (the same run: at most 45 ms, in the same total time).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self, timeout: float | None = None) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            baton = threading.Lock()
            baton.acquire()
            self._waiters.append(baton)
        if baton.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return True  # handed over by release()
        with self._mutex:
            if baton in self._waiters:
                self._waiters.remove(baton)
                return False
        return True  # handed over just as the wait ended: ours now

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # still held: by the next in line
            else:
                self._held = False


class WriteLock:
    """Takes turns among the SQLite writers of this host (processes and threads).

    SQLite's busy handler makes a writer that finds the lock taken sleep 1, 2, 5... ms
    and retry, although a commit holds it for about 0.2 ms; a blocked ``flock`` wakes
    the moment the lock is free. Two processes writing: 1.7x the commits per second and
    a p99 wait of 0.8 ms instead of 3.4 ms. ``busy_timeout`` still covers other writers
    (the CLI, the checkpointer).

    With a deadline (the service's engines, ``Deadline.per_call``) the turn is waited
    for at most that long: a command holding it (``vea db prune``) must not block every
    service writer indefinitely. Past it ``WriteLock.Timeout`` is raised, an
    ``OperationalError`` ("database is locked": unavailable, decisions degraded, writes
    503). Without one (the commands) the wait is as long as it takes.
    """

    class Timeout(OperationalError, sqlite3.OperationalError):
        """The write turn not had within the deadline. Also a ``sqlite3.Error``, as
        SQLite's own busy timeout is to callers of the driver (the checkpointer)."""

    MESSAGE = "database is locked: another vea process holds the write turn"
    # Polling while another process holds the turn (a blocked flock cannot be given a
    # time limit): every POLL_S while the wait is as short as commits are, so the turn
    # passes about as soon as with a blocked flock (a slower poll cost 10% of the
    # decisions per second at concurrency 16), then backing off up to LAST_POLL_S.
    POLL_S = 0.0001
    SHORT_WAIT_S = 0.005
    LAST_POLL_S = 0.005

    def __init__(self, path: str, deadline: Deadline | None = None) -> None:
        self.path = path
        self.deadline = deadline
        self._thread_lock = FairTurn()
        self._fd: int | None = None
        self._pid = 0
        self._locked = False

    def _timeout(self) -> WriteLock.Timeout:
        orig = sqlite3.OperationalError(self.MESSAGE)
        return self.Timeout(f"-- write turn ({self.path})", None, orig)

    def __enter__(self) -> None:
        limit = self.deadline.per_call() if self.deadline is not None else None
        until = None if limit is None else time.monotonic() + limit
        if until is None:
            self._thread_lock.acquire()
        elif not self._thread_lock.acquire(timeout=max(0.0, limit)):
            raise self._timeout()
        self._locked = False
        try:
            if self._fd is None or self._pid != os.getpid():
                # A forked child must not share its parent's open file: flock locks
                # belong to the open file, so parent and child would never exclude.
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            self._flock(until)
            self._locked = True
        except self.Timeout:
            self._thread_lock.release()
            raise
        except OSError:
            pass  # no lock file (its folder is gone): SQLite itself reports the problem
        except BaseException:
            self._thread_lock.release()
            raise

    def _flock(self, until: float | None) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return  # the usual case: nobody else writing
        except BlockingIOError:
            if until is None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                return
        pause, short_until = self.POLL_S, time.monotonic() + self.SHORT_WAIT_S
        while True:
            now = time.monotonic()
            left = until - now
            if left <= 0:
                raise self._timeout()
            time.sleep(min(pause, left))
            if now > short_until:
                pause = min(pause * 2, self.LAST_POLL_S)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                continue

    def __exit__(self, *exc: object) -> None:
        try:
            if self._locked:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


def autocommit_connection(engine: sa.Engine) -> sa.Connection:
    """A connection whose statements each commit by themselves (a single read, or a
    single insert taken in turn with ``write_turn``): on PostgreSQL one round trip
    instead of BEGIN, the statement, and COMMIT or ROLLBACK."""
    options: dict[str, object] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    return engine.connect().execution_options(**options)


def write_turn(engine: sa.Engine) -> WriteLock | nullcontext:
    """Hold while writing (SQLite: in turn with every other writer, see WriteLock)."""
    return getattr(engine, "vea_write_lock", None) or nullcontext()


@contextmanager
def begin_write(engine: sa.Engine) -> Iterator[sa.Connection]:
    """``engine.begin()`` for a transaction that writes (SQLite: in turn, see WriteLock)."""
    with write_turn(engine), engine.begin() as conn:
        yield conn


class SqliteCheckpointer(threading.Thread):
    """Copies the WAL back into the database every ``interval_s``, off the request path,
    and lets the next commit start the WAL file over.

    A PASSIVE checkpoint never blocks anyone. When it has copied every frame, the next
    commit starts the WAL over by itself; under steady load that usually happens within
    a round or two. Should it not (a writer always finding new frames, a long reader),
    the WAL would grow to the safety net and one unlucky commit would run the checkpoint
    inline while every writer waited behind it. So once the WAL holds more than
    ``RESTART_FRAMES`` the checkpointer takes the writers' turn (``write_lock``) for a
    RESTART: only the frames of the last moments are left to copy, and readers are
    waited for at most ``RESTART_WAIT_MS`` (else the next round tries). Not every round:
    a RESTART holds every writer for the sync of the database file (about 6 ms here
    under load), and one each second set the p99 of a busy service.
    """

    RESTART_WAIT_MS = 20
    RESTART_FRAMES = 20_000  # ~80 MB of 4 kB pages, below the safety net's 25,000

    def __init__(
        self, database: str, interval_s: float, write_lock: WriteLock | nullcontext | None = None
    ) -> None:
        super().__init__(name="vea-sqlite-checkpoint", daemon=True)
        self.database = database
        self.interval_s = interval_s
        self.write_lock = write_lock or nullcontext()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                self.checkpoint()
            except sqlite3.Error:
                continue  # busy or gone: the next round (or the safety net) catches up

    def checkpoint(self) -> None:
        """One round: copy the WAL back without blocking; when the WAL has grown large,
        then in the writers' turn the last frames and a restart for the next commit."""
        pending = Path(self.database + TRUNCATE_PENDING)
        if pending.exists() and _truncate(self.database, self.write_lock):
            pending.unlink(missing_ok=True)  # a deletion's WAL, owed since a reader held it
            return
        conn = sqlite3.connect(self.database, timeout=1.0, isolation_level=None)
        try:
            _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames > self.RESTART_FRAMES:
                conn.execute(f"PRAGMA busy_timeout={self.RESTART_WAIT_MS}")
                with self.write_lock:
                    conn.execute("PRAGMA wal_checkpoint(RESTART)")
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()


# How long the writers wait while a truncation waits for readers (as the checkpointer's
# restart): a reader holding an older snapshot (a long export) is not waited for.
def lock_customer(conn: sa.Connection, customer_id: str) -> None:
    """Hold the customer's lock until the transaction ends (PostgreSQL: an advisory lock
    on the id's hash; SQLite's writers take turns anyway): an erasure and an event for one
    customer then run one after the other."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(customer_id))))


TRUNCATE_WAIT_MS = 20
# Beside the database: a truncation is owed (a reader kept it from finishing); the
# service's checkpointer (SqliteCheckpointer) tries again every round until it is done.
TRUNCATE_PENDING = "-truncate"


def truncate_wal(engine: sa.Engine) -> bool:
    """Copy a SQLite database's WAL back and truncate it to nothing: after a deletion,
    the deleted rows' earlier versions are still in the WAL file until their frames
    happen to be overwritten (on a quiet instance, never). True when done (always on
    other backends, where this does not apply); False when a reader kept it from
    finishing, and then the service's checkpointer does it once the reader is done."""
    database = sqlite_file(engine.url.render_as_string(hide_password=False))
    if database is None:
        return True
    done = _truncate(database, getattr(engine, "vea_write_lock", nullcontext()))
    pending = Path(database + TRUNCATE_PENDING)
    with suppress(OSError):
        if done:
            pending.unlink(missing_ok=True)
        else:
            pending.touch()
    return done


def _truncate(database: str, write_lock: AbstractContextManager) -> bool:
    try:
        conn = sqlite3.connect(database, timeout=TRUNCATE_WAIT_MS / 1000, isolation_level=None)
        try:
            with write_lock:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:  # the write turn or the file busy past the wait (WriteLock too)
        return False
    return not busy


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL (None for other backends or in-memory)."""
    if not url.startswith("sqlite"):
        return None
    database = sa.make_url(url).database
    return database if database and database != ":memory:" else None


# Beside a SQLite database: every service process serving it holds a shared lock on this
# file while it lives, and `vea db restore` an exclusive one while it replaces the
# database, so a restore never swaps the file under a running service (whose open
# connections would go on writing to the file set aside, and its acknowledged writes
# would be missing from the restored one), and a service starting meanwhile waits.
SERVING_LOCK = ".serving"


class ServiceRunning(Exception):
    """A service holds the database open (``SERVING_LOCK``)."""


def hold_serving_lock(database: str) -> int | None:
    """Take the shared serving lock of the SQLite ``database`` for as long as the returned
    descriptor stays open (waiting for a restore in progress); None when the lock file
    cannot be made (a read-only folder: a restore cannot write there either) or the
    database is a ``file:`` URI (SQLite's to interpret)."""
    if database.startswith("file:"):
        return None
    try:
        fd = os.open(database + SERVING_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


@contextmanager
def serving_lock_alone(database: str) -> Iterator[None]:
    """Hold the serving lock of ``database`` exclusively: ServiceRunning at once when a
    service holds it."""
    fd = os.open(database + SERVING_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServiceRunning(database) from None
        yield
    finally:
        os.close(fd)  # the lock goes with the descriptor


def missing_sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL that does not exist in an existing folder (SQLite would
    create it empty on connect; only `vea db upgrade` and vea serve should), else None.
    A missing folder is left to SQLite, which cannot create a file there."""
    path = sqlite_file(url)
    if path is None or path.startswith("file:"):
        return None
    return path if Path(path).parent.is_dir() and not Path(path).exists() else None


def _create_private_file(database: str) -> None:
    """Create a missing SQLite database file empty (SQLite takes it for a new database)
    and readable by its owner only, as backups are: it holds customer data, and SQLite
    would create it with the umask's mode (usually 0644), then give its -wal and -shm
    files the database file's mode. An existing file is left as it is (``loose_mode``)."""
    if database.startswith("file:"):  # a URI (?uri=true): SQLite's to interpret
        return
    # It exists already, or its folder does not (SQLite then says so): nothing to do.
    with suppress(OSError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def loose_mode(url: str) -> str | None:
    """A note when the SQLite database file of ``url`` is open to other users (a file
    made before vea created it 0600, or by hand); None otherwise. Its mode is not
    changed behind the operator's back (a group may be meant to read it)."""
    path = sqlite_file(url)
    if path is None or path.startswith("file:"):
        return None
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"the SQLite database {path} is open to other users (mode {mode:04o}) and holds "
        "customer data: left as it is; make it private with chmod 600 on it and on its "
        "-wal and -shm files (vea creates a new database 0600)"
    )


def _creatable(database: str) -> bool:
    """Create var/ on a fresh clone, but never a directory tree an operator mistyped."""
    parent = Path(database).parent
    return parent == Path(".") or parent.parent.exists()


def alembic_config(url: str):
    """An Alembic config that needs no alembic.ini: the scripts ship in the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' would be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


class SchemaNewerThanCode(RuntimeError):
    """The database's schema revision is none of this code's migrations: a newer release
    migrated it (this one was rolled back, or is the older half of a rolling deploy).
    Nothing is changed: Alembic cannot plan from a revision it does not know."""

    def __init__(self, revision: str, head: str) -> None:
        super().__init__(
            f"the database schema is at revision {revision}, newer than this release's "
            f"migrations (up to {head}): a newer vea migrated it; nothing was changed"
        )
        self.revision = revision
        self.head = head


def migration_revisions() -> tuple[str, ...]:
    """The migrations this code ships, oldest first (the last is its head)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    return tuple(reversed([s.revision for s in scripts.walk_revisions()]))


def schema_revision(url: str) -> str | None:
    """The database's schema revision (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


class SchemaPastRevision(RuntimeError):
    """``upgrade`` to a revision older than the database's: Alembic would do nothing
    and say nothing; going down is ``downgrade``'s (it drops what the later migrations
    added)."""

    def __init__(self, revision: str, asked: str) -> None:
        super().__init__(
            f"the database is at revision {revision}, newer than the asked {asked}: "
            f"nothing was changed (an upgrade never goes down; `vea db downgrade "
            f"--revision {asked}` does, dropping what the migrations after {asked} added)"
        )
        self.revision = revision
        self.asked = asked


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to ``revision`` (idempotent; safe for several instances);
    returns the schema revision before and after. ``SchemaNewerThanCode`` when a newer
    release has migrated the database, ``SchemaPastRevision`` when ``revision`` is older
    than the database's."""
    before = schema_revision(url)
    known = migration_revisions()
    if before is not None and before not in known:
        raise SchemaNewerThanCode(before, known[-1])
    if before is not None and revision in known and known.index(before) > known.index(revision):
        raise SchemaPastRevision(before, revision)
    _migrate(url, "upgrade", revision)
    return before, schema_revision(url)


def downgrade(url: str, revision: str) -> None:
    """Undo migrations down to ``revision`` (``base``: an empty schema). The tables and
    columns the undone migrations added are dropped with their data."""
    _migrate(url, "downgrade", revision)


def migration_summaries() -> dict[str, str]:
    """Each migration's revision and the first clause of its description ("Late survey
    answers"), for saying what a downgrade undoes."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    summaries = {}
    for script in scripts.walk_revisions():
        doc = " ".join((script.doc or "").split())
        summaries[script.revision] = doc.split(": ")[0].split(". ")[0].rstrip(".:")
    return summaries


def _migrate(url: str, direction: str, revision: str) -> None:
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            getattr(command, direction)(config, revision)
    finally:
        engine.dispose()
