"""Decisions indexed by the time of the contact, not of the insert.

Exports and value reports select and order decisions by ``occurred_at``; nothing reads
by ``created_at``. The ``created_at`` index cost every decision one more B-tree write
and helped no query, while a period's export or report scanned the whole table.

Building the index blocks inserts into ``decisions`` for as long as it takes. On a large
PostgreSQL table build it first without blocking, then upgrade (this migration keeps an
index that already exists):

    CREATE INDEX CONCURRENTLY ix_decisions_occurred_at ON decisions (occurred_at);

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_decisions_occurred_at", "decisions", ["occurred_at"], if_not_exists=True)
    op.drop_index("ix_decisions_created_at", table_name="decisions", if_exists=True)


def downgrade() -> None:
    op.create_index("ix_decisions_created_at", "decisions", ["created_at"])
    op.drop_index("ix_decisions_occurred_at", table_name="decisions")
