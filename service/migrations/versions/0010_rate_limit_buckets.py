"""Rate-limit buckets shared by the instances on one database
(``VEA_RATE_LIMIT_SCOPE=database``): one row per limiter and key hash.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_buckets",
        sa.Column("bucket", sa.String(32), primary_key=True),
        sa.Column("limiter", sa.String(32), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_buckets")
