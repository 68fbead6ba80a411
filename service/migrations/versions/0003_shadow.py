"""Shadow challengers: the shadow model's decision stored beside the served one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("best_activity", sa.String(32), nullable=True))
        batch.add_column(sa.Column("shadow_version", sa.String(64), nullable=True))
        batch.add_column(sa.Column("shadow_activity", sa.String(32), nullable=True))
        batch.add_column(sa.Column("shadow", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("shadow")
        batch.drop_column("shadow_activity")
        batch.drop_column("shadow_version")
        batch.drop_column("best_activity")
