"""Decisions keep a hash of their request body.

The same ``interaction_id`` with the same body is a retry (the stored answer); with
changed details (the desktop calls again once the issue type is known) the contact is
decided again. Rows from before this migration have no hash and are replayed as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("request_hash", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("request_hash")
