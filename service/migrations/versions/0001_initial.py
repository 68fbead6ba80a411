"""Initial schema: API keys, decisions, outcomes, customer events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("label", sa.String(100), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(32), primary_key=True),
        sa.Column("interaction_id", sa.String(128), nullable=False, unique=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("issue_type", sa.String(64), nullable=True),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("features", JSON, nullable=False),
        sa.Column("suggested_activity", sa.String(32), nullable=False),
        sa.Column("propensity", sa.Float(), nullable=False),
        sa.Column("pool_id", sa.String(64), nullable=True),
        sa.Column("pool_propensity", sa.Float(), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("experiment_arm", sa.String(16), nullable=False, server_default="treatment"),
        sa.Column("degraded", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("openness", sa.Float(), nullable=False),
        sa.Column("continues_decision_id", sa.String(32), nullable=True),
        sa.Column("api_key_id", sa.String(32), nullable=True),
        sa.Column("response", JSON, nullable=False),
    )
    op.create_index("ix_decisions_customer_time", "decisions", ["customer_id", "occurred_at"])
    op.create_index("ix_decisions_created_at", "decisions", ["created_at"])
    op.create_table(
        "outcomes",
        sa.Column(
            "decision_id",
            sa.String(32),
            sa.ForeignKey("decisions.decision_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("activity", sa.String(32), nullable=False),
        sa.Column("offered", sa.Boolean(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=True),
        sa.Column("ve_success", sa.Boolean(), nullable=True),
        sa.Column("ves_confidence", sa.SmallInteger(), nullable=True),
        sa.Column("ves_ability", sa.SmallInteger(), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("handle_time_s", sa.Float(), nullable=True),
        sa.Column("csat", sa.SmallInteger(), nullable=True),
        sa.Column("agent_id", sa.String(128), nullable=True),
        sa.Column("pool_id", sa.String(64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("payload", JSON, nullable=False),
    )
    op.create_table(
        "customer_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.UniqueConstraint("customer_id", "event_id", name="uq_customer_events_event"),
    )
    op.create_index(
        "ix_customer_events_customer_time", "customer_events", ["customer_id", "occurred_at"]
    )


def downgrade() -> None:
    op.drop_table("customer_events")
    op.drop_table("outcomes")
    op.drop_table("decisions")
    op.drop_table("api_keys")
