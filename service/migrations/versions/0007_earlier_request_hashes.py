"""Decisions remember the request bodies they replaced.

An interaction decided again with changed details keeps the hashes of the earlier
bodies, so a late retry of one of them (a network retry arriving after the update)
replays the current decision instead of reverting it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("decisions", sa.Column("earlier_request_hashes", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("earlier_request_hashes")
