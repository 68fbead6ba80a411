"""Late survey answers: a ``surveys`` table, one row per decision.

The VES items, CSAT, NPS and CES come from the survey system hours or days after the
agent's outcome (or before it, or without one). They are kept here as sent and copied
into the outcome's empty columns once both exist (service.decisions.record_survey).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column(
            "decision_id",
            sa.String(32),
            sa.ForeignKey("decisions.decision_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("survey_id", sa.String(128), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("ves_confidence", sa.SmallInteger(), nullable=True),
        sa.Column("ves_ability", sa.SmallInteger(), nullable=True),
        sa.Column("csat", sa.SmallInteger(), nullable=True),
        sa.Column("nps", sa.SmallInteger(), nullable=True),
        sa.Column("ces", sa.SmallInteger(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("surveys")
