"""Audit events are numbered in the order they commit (PostgreSQL), so a reader paging by
id never finds an event appear behind a position it has passed.

Before, an event's id came from the sequence when its INSERT ran, but it became visible
only at its transaction's commit: a transaction that drew id 10 and committed after the
one that drew id 11 put event 10 behind a reader already past 11 (an exporter following
the cursor never saw it). Now every INSERT into ``audit_events`` first takes a
transaction-scoped advisory lock (a statement-level BEFORE trigger: it fires before the
row's id default draws from the sequence), so audit-writing transactions take turns from
their event's insert to their commit; the lock is released after the commit is visible,
so the next writer draws a larger id and every reader sees events appear in id order.
Why this and not the writing transaction's xid with a snapshot-xmin horizon: see
``service.audit``.

SQLite needs nothing: its writers already take turns (one write transaction at a time),
so the rowid is assigned in commit order.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Any constant other than the migrations' own lock (service/migrations/env.py): advisory
# locks are per database, so only this database's audit writers take turns.
AUDIT_WRITERS_LOCK = 0x7665_6101


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION audit_events_take_turn() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock({AUDIT_WRITERS_LOCK});
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_events_take_turn BEFORE INSERT ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_take_turn()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER audit_events_take_turn ON audit_events")
    op.execute("DROP FUNCTION audit_events_take_turn()")
