"""Decisions hold a contact's whole language tag: up to 35 characters, the longest the
API takes (``models.schema.MAX_LANGUAGE_TAG``), not 16 (PostgreSQL refused a longer tag
with a 500). PostgreSQL widens the column in its catalogue (no table rewrite). SQLite
does not enforce a VARCHAR length, and altering a column there means copying the table,
whose drop would cascade to every stored outcome: it is left as it is.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("decisions", "language", type_=sa.String(35), existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "decisions",
            "language",
            type_=sa.String(16),
            existing_nullable=True,
            postgresql_using="left(language, 16)",
        )
