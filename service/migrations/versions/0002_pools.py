"""Pools: the shared pools config (with the last proficiency rebuild) and live availability.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "pool_config",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("proficiency", JSON, nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False, server_default=""),
    )
    op.create_table(
        "pool_availability",
        sa.Column("pool_id", sa.String(64), primary_key=True),
        sa.Column("agents_free", sa.Integer(), nullable=True),
        sa.Column("queue_length", sa.Integer(), nullable=True),
        sa.Column("expected_wait_s", sa.Float(), nullable=True),
        sa.Column("reported_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pool_availability")
    op.drop_table("pool_config")
