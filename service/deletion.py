"""Deleting stored records on purpose: one customer's (erasure) or everything older than
a retention cutoff (pruning). Nothing else in the service deletes a decision.

Each deletion is one transaction over the four tables that hold customer data: the
decisions (with the features, answer and history they carry), the outcomes and survey
answers recorded for them and the customers' later events. Either all of it goes or none (a failure rolls
back). What stays: aggregates built earlier (pool proficiency, trained models) and files
exported earlier (`vea export`), which are the operator's to delete. Each deletion is
recorded in the audit log in its transaction; pruning never touches the audit log.

An erasure asked for (API, ``vea db erase-customer``) is also written to the erasure
ledger (service.erasure_ledger), outside the database, so that one a restored backup
brings back can be done again (``reapply_erasures``, ``vea db reapply-erasures``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from service import audit
from service.db import (
    audit_events,
    begin_write,
    customer_events,
    decisions,
    iso_utc,
    lock_customer,
    outcomes,
    surveys,
    to_naive_utc,
    truncate_wal,
    utcnow,
)
from service.erasure_ledger import ErasureLedger, LedgerElsewhere
from service.export import RETENTION_WINDOWS

log = logging.getLogger("vea.deletion")

# A decision younger than its longest reward window (retained_90d) still waits for its
# outcome to be known: pruning it would drop the contacts whose customers stayed and
# bias both the value report and the next model.
MIN_RETENTION_DAYS = max(RETENTION_WINDOWS.values())


# Decisions locked and deleted per round. Their ids pass through the service, not a
# temporary table (production database roles often lack PostgreSQL's TEMP privilege): a
# prune of millions of decisions holds this many ids at a time, in one transaction still.
BATCH = 1000
# Decisions (and events) a prune deletes per transaction (about 0.15 s of SQLite's write
# turn here), and the pause after each commit that lets waiting writers take the turn:
# without it the prune took it straight back and a live writer waited seconds
# (bench/deletion.py).
PRUNE_CHUNK = 2 * BATCH
PRUNE_PAUSE_S = 0.02


def _delete(
    engine: sa.Engine,
    decision_filter: sa.ColumnElement,
    event_filter: sa.ColumnElement,
    audit_event: tuple[str, str, str | None],
    before_commit: Callable[[dict[str, int], datetime | None], None] | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
    customer_id: str | None = None,
) -> dict[str, int]:
    """Delete, and record ``(actor, action, target)`` with the counts in the audit log in
    the same transaction (an audited deletion either happened or was not recorded).
    ``before_commit(counts, latest)`` runs last in the transaction (``latest``: the
    newest stored time of the rows deleted, None without any): what it raises rolls the
    deletion back. With ``limit``, at most that many decisions and that many events
    (the first in id order), after ``progress``'s ids (which it moves on)."""
    deleted = {"decisions": 0, "outcomes": 0, "surveys": 0}
    with begin_write(engine) as conn:
        if customer_id is not None:
            lock_customer(conn, customer_id)  # an event recorded meanwhile waits for it
        latest = None
        if before_commit is not None:
            latest = _latest_stored(conn, decision_filter, event_filter)
        for batch in _locked_decisions(conn, decision_filter, limit, progress):
            # Outcomes and surveys explicitly, not by the foreign key's cascade: the count
            # is answered and audited.
            for name, table in (
                ("outcomes", outcomes),
                ("surveys", surveys),
                ("decisions", decisions),
            ):
                deleted[name] += conn.execute(
                    table.delete().where(_in_batch(conn, table.c.decision_id, batch))
                ).rowcount
        if limit is not None:
            first = sa.select(customer_events.c.id).where(event_filter)
            if progress is not None and progress.event_after is not None:
                first = first.where(customer_events.c.id > progress.event_after)
            chosen = conn.execute(first.order_by(customer_events.c.id).limit(limit)).scalars()
            ids = list(chosen)
            event_filter = customer_events.c.id.in_(ids)
            if progress is not None and ids:
                progress.event_after = ids[-1]
        deleted_events = conn.execute(customer_events.delete().where(event_filter)).rowcount
        counts = {**deleted, "events": deleted_events}
        actor, action, target = audit_event
        audit.record(conn, actor, action, target, counts)
        if before_commit is not None:
            before_commit(counts, latest)
    return counts


def _out_of_the_wal(engine: sa.Engine) -> None:
    """After rows were deleted: their earlier versions out of SQLite's WAL file too."""
    if not truncate_wal(engine):
        log.warning("deleted rows stay in the SQLite WAL file until the next checkpoint")


def _latest_stored(
    conn: sa.Connection, decision_filter: sa.ColumnElement, event_filter: sa.ColumnElement
) -> datetime | None:
    """The newest ``created_at`` / ``recorded_at`` of the rows about to be deleted: an
    erasure's ledger line covers them all, even one another host stored with its clock
    ahead of this one's."""
    times = [
        conn.execute(sa.select(sa.func.max(decisions.c.created_at)).where(decision_filter)),
        conn.execute(sa.select(sa.func.max(customer_events.c.recorded_at)).where(event_filter)),
    ]
    found = [t for t in (r.scalar_one() for r in times) if t is not None]
    return max(found) if found else None


def _in_batch(conn: sa.Connection, column: sa.ColumnElement, batch: list[str]) -> sa.ColumnElement:
    """``column`` is one of the ids of ``batch`` (in id order)."""
    if conn.dialect.name == "postgresql":
        # One array parameter: with a parameter per id PostgreSQL's generic plan, used
        # after a few batches, compared every row with every id (3x slower in
        # bench/deletion.py).
        listed = column == sa.any_(sa.bindparam(None, batch, type_=postgresql.ARRAY(sa.String)))
    else:
        listed = column.in_(batch)
    # Implied by the ids, but it lets the planner read the index from first to last.
    return sa.and_(column.between(batch[0], batch[-1]), listed)


@dataclass
class Progress:
    """Where a deletion in several transactions has got to: the last ids it deleted (in
    id order), so the next transaction's scan starts there, not over the rows it keeps."""

    after: str | None = None
    event_after: int | None = None


def _locked_decisions(
    conn: sa.Connection,
    decision_filter: sa.ColumnElement,
    limit: int | None = None,
    progress: Progress | None = None,
) -> Iterator[list[str]]:
    """The ids of the decisions to delete (at most ``limit``), ``BATCH`` at a time in id
    order, each batch locked until the transaction ends (PostgreSQL; SQLite's writers take turns anyway).
    The caller deletes a batch before asking for the next.

    The outcome and survey writers lock their decision first (``_LOCKED_DECISION`` in
    service.decisions), so the two serialise: a write holding a decision is waited for
    and its row is then deleted and counted; a later one waits for this commit and finds
    no decision (404). Without the lock a row stored between the DELETEs went with its
    decision by the foreign key's cascade, uncounted. Only the decisions locked here are
    deleted, so every row deleted is counted; a decision stored meanwhile (PostgreSQL) is
    either in a later batch, locked and deleted whole with its outcome, or stays whole.
    Locked in id order across batches too, so two deletions at once (an erasure during a
    prune) take their common decisions in turn instead of deadlocking over them."""
    after = progress.after if progress is not None else None
    left = limit
    while left is None or left > 0:
        query = sa.select(decisions.c.decision_id).where(decision_filter)
        if after is not None:
            query = query.where(decisions.c.decision_id > after)
        size = BATCH if left is None else min(BATCH, left)
        batch = list(
            conn.execute(
                query.order_by(decisions.c.decision_id).limit(size).with_for_update()
            ).scalars()
        )
        if not batch:
            return
        yield batch
        after = batch[-1]
        if progress is not None:
            progress.after = after
        if left is not None:
            left -= len(batch)


def forget_customer(
    engine: sa.Engine,
    customer_id: str,
    *,
    actor: str = audit.SYSTEM_ACTOR,
    ledger: ErasureLedger | None = None,
    new_ledger: bool = False,
) -> dict[str, int]:
    """Delete every stored record of ``customer_id`` (right to deletion: APPI, GDPR);
    return how many of each went.

    Idempotent: a customer with nothing stored (or erased before) gives zeros. A contact
    stored after the erasure is a new record: erasure is not a block list.

    With ``ledger`` (every erasure asked for: the API's, the CLI's) the erasure is
    written to the erasure ledger first: its line (the keyed hash of the id, the time,
    the counts) is on disk, fsync'ed, after the rows are deleted and before the deletion
    commits. LedgerError when it cannot be written: the deletion is rolled back and
    nothing is erased. A failure after the line (the commit, a crash) leaves a line
    whose erasure did not happen; that is safe: the erasure was asked for, and replaying
    the line (``reapply_erasures``) deletes only what was stored up to the line's time,
    which is what the erasure would have deleted (and nothing once it is retried and
    done). The other order could commit an erasure with no line, and a restored backup
    would bring the customer back with nothing left to say so.

    A ledger that does not exist yet is started only for a database that never recorded
    an erasure, or with ``new_ledger``: otherwise the erasures so far went to another
    file (LedgerError, nothing erased)."""
    if ledger is not None and not new_ledger and not ledger.started() and _erased_before(engine):
        # A ledger started here would hold this erasure where the next restore's
        # reapply-erasures does not look (the default path is relative to the current
        # directory: a command run from elsewhere), and the customer would come back.
        raise LedgerElsewhere(
            f"this database recorded erasures before, but there is no erasure ledger at "
            f"{ledger.path}: set VEA_ERASURE_LEDGER to the ledger the service writes (by "
            "default erasures/ledger.jsonl beside VEA_REGISTRY, a path relative to the "
            "directory the service runs in); if that ledger is lost for good, start a new "
            "one with vea db erase-customer --new-ledger"
        )
    append = ledger.prepare() if ledger is not None else None  # the key before any lock
    counts = _delete(
        engine,
        decisions.c.customer_id == customer_id,
        customer_events.c.customer_id == customer_id,
        # No target: the customer id must not be stored after its erasure.
        (actor, "customer.erase", None),
        None if append is None else (lambda deleted, latest: append(customer_id, deleted, latest)),
        customer_id=customer_id,
    )
    # The counts only: the id itself never goes into the logs.
    if any(counts.values()):
        _out_of_the_wal(engine)
    log.info("customer data erased", extra={"deleted": counts})
    return counts


def _erased_before(engine: sa.Engine) -> bool:
    """Whether the audit log holds an erasure asked for (not one reapplied from a ledger)."""
    query = (
        sa.select(audit_events.c.id)
        .where(audit_events.c.action == "customer.erase", audit_events.c.target.is_(None))
        .limit(1)
    )
    with engine.connect() as conn:
        return conn.execute(query).first() is not None


# The audit target of an erasure done again from the ledger (no customer id either).
REAPPLIED = "erasure-ledger"


@dataclass
class Reapplied:
    """What ``reapply_erasures`` found (and with ``apply``, deleted)."""

    erasures: int = 0  # lines in the ledgers
    torn: int = 0  # fragments of failed writes (their erasure was refused)
    customers: int = 0  # stored customers with rows stored before their erasure
    deleted: dict[str, int] = field(
        default_factory=lambda: {"decisions": 0, "outcomes": 0, "surveys": 0, "events": 0}
    )


def _stored_customers(engine: sa.Engine) -> Iterator[tuple[str, datetime]]:
    """Every stored customer id with the time its first row (decision or event) was
    stored, a customer possibly twice; streamed, not held."""
    queries = (
        sa.select(decisions.c.customer_id, sa.func.min(decisions.c.created_at)).group_by(
            decisions.c.customer_id
        ),
        sa.select(
            customer_events.c.customer_id, sa.func.min(customer_events.c.recorded_at)
        ).group_by(customer_events.c.customer_id),
    )
    with engine.connect() as conn:
        for query in queries:
            rows = conn.execution_options(stream_results=True, yield_per=5000).execute(query)
            yield from ((customer_id, first) for customer_id, first in rows)


def reapply_erasures(
    engine: sa.Engine,
    ledgers: Iterable[ErasureLedger],
    *,
    apply: bool,
    actor: str = audit.SYSTEM_ACTOR,
) -> Reapplied:
    """Erase again every stored customer that an erasure ledger holds (after a backup
    was restored): the rows stored up to the customer's latest erasure there, by the
    deletion ``forget_customer`` does, each customer in its own transaction, audited as
    ``customer.erase`` with the target ``erasure-ledger``. Rows stored after the erasure
    are new records and stay. Without ``apply``, only counts the customers.

    LedgerError when a ledger cannot be read whole (nothing is deleted then)."""
    found = Reapplied()
    readings = []
    for ledger in ledgers:
        reading = ledger.read()
        found.erasures += len(reading.entries)
        found.torn += reading.torn
        if reading.entries and reading.hasher is not None:
            readings.append((reading.hasher, reading.cutoffs()))
    if not readings:
        return found
    matches: dict[str, datetime] = {}
    for customer_id, first_stored in _stored_customers(engine):
        for customer_hash, cutoffs in readings:
            cutoff = cutoffs.get(customer_hash(customer_id))
            if cutoff is not None and first_stored <= cutoff:
                matches[customer_id] = max(cutoff, matches.get(customer_id, cutoff))
    found.customers = len(matches)
    if not apply:
        return found
    for customer_id, cutoff in sorted(matches.items()):
        counts = _delete(
            engine,
            sa.and_(decisions.c.customer_id == customer_id, decisions.c.created_at <= cutoff),
            sa.and_(
                customer_events.c.customer_id == customer_id,
                customer_events.c.recorded_at <= cutoff,
            ),
            (actor, "customer.erase", REAPPLIED),
            customer_id=customer_id,
        )
        for name, number in counts.items():
            found.deleted[name] += number
    if any(found.deleted.values()):
        _out_of_the_wal(engine)
    log.info(
        "erasures reapplied from the erasure ledger",
        extra={"customers": found.customers, "deleted": found.deleted},
    )
    return found


def check_cutoff(cutoff: datetime) -> datetime:
    """``cutoff`` as naive UTC, or ValueError when it is less than ``MIN_RETENTION_DAYS``
    ago."""
    cutoff = to_naive_utc(cutoff)
    latest = utcnow() - timedelta(days=MIN_RETENTION_DAYS)
    if cutoff > latest:
        raise ValueError(
            f"the cutoff must be at least {MIN_RETENTION_DAYS} days ago (on or before "
            f"{latest.date().isoformat()}): younger contacts still wait for their "
            "retention outcome"
        )
    return cutoff


def prune_before(
    engine: sa.Engine, cutoff: datetime, *, actor: str = audit.SYSTEM_ACTOR
) -> dict[str, int]:
    """Delete the decisions (with their outcomes and surveys) and the events that happened before
    ``cutoff`` (aware, or naive UTC): a data-retention policy.

    Deleted ``PRUNE_CHUNK`` decisions (and events) per transaction, each audited with
    its counts: the first prune of a year of contacts held SQLite's write turn for
    seconds in one transaction, and live decisions waiting past the deadline were
    answered unstored. A prune stopped part way kept what it committed, audited; run it
    again to finish (also for a row stored meanwhile with an id before the chunk's).

    Refused (ValueError) for a cutoff less than ``MIN_RETENTION_DAYS`` ago."""
    cutoff = check_cutoff(cutoff)
    counts = dict.fromkeys(("decisions", "outcomes", "surveys", "events"), 0)
    progress = Progress()
    while True:
        chunk = _delete(
            engine,
            decisions.c.occurred_at < cutoff,
            customer_events.c.occurred_at < cutoff,
            (actor, "data.prune", iso_utc(cutoff)),
            limit=PRUNE_CHUNK,
            progress=progress,
        )
        for name, number in chunk.items():
            counts[name] += number
        if chunk["decisions"] < PRUNE_CHUNK and chunk["events"] < PRUNE_CHUNK:
            break
        time.sleep(PRUNE_PAUSE_S)
    if any(counts.values()):
        _out_of_the_wal(engine)
    log.info("records older than the retention cutoff deleted", extra={"deleted": counts})
    return counts
