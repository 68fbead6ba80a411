"""The latest write of each table the dashboard reports on, indexed: the dashboard keeps
its computed sections per worker until the data changes, and it asks on every view.

Counting the rows of ``decisions``, ``outcomes``, ``surveys`` and ``customer_events``
and taking the latest ``created_at`` / ``recorded_at`` / ``updated_at`` without an index
read all four tables each time (seconds at 10 million rows). With these indexes each
latest time is the end of a B-tree, and the few rows written just before it a short
range of it (``service.web.dashboard._data_version``); ``customer_events`` has its
increasing ``id`` and deletions are told by the audit log's latest id, both keys
already. Migration 0005 dropped a ``created_at`` index that no query read; this one is
read, by every view of the dashboard.

Building an index blocks writes to its table for as long as it takes. On large
PostgreSQL tables build them first without blocking, then upgrade (this migration keeps
an index that already exists, unless it is INVALID: a CONCURRENTLY build that failed or
was cancelled leaves one, which no query reads; it is then dropped and built again):

    CREATE INDEX CONCURRENTLY ix_decisions_created_at ON decisions (created_at);
    CREATE INDEX CONCURRENTLY ix_outcomes_recorded_at ON outcomes (recorded_at);
    CREATE INDEX CONCURRENTLY ix_surveys_updated_at ON surveys (updated_at);

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_decisions_created_at", "decisions", "created_at"),
    ("ix_outcomes_recorded_at", "outcomes", "recorded_at"),
    ("ix_surveys_updated_at", "surveys", "updated_at"),
)


def upgrade() -> None:
    for name, table, column in INDEXES:
        if _invalid(name):
            op.drop_index(name, table_name=table)
        op.create_index(name, table, [column], if_not_exists=True)


def _invalid(name: str) -> bool:
    """An index of that name that PostgreSQL marks INVALID (its planner ignores it)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        bind.execute(
            sa.text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND pg_table_is_visible(c.oid)"
            ),
            {"name": name},
        ).scalar()
    )


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
