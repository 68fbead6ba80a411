"""NPS and CES beside VES and CSAT in outcomes (optional survey answers).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outcomes") as batch:
        batch.add_column(sa.Column("nps", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("ces", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_column("ces")
        batch.drop_column("nps")
