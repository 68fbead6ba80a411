"""Availability reports carry the agents staffed (logged in) per pool: the wait
estimated from a queue is shared among them, not among one agent (``general`` lists no
members). Nullable: reports stored before it keep their values and read as "not sent".

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pool_availability") as batch:
        batch.add_column(sa.Column("agents_staffed", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pool_availability") as batch:
        batch.drop_column("agents_staffed")
