"""The canonical interaction log: column names, types and the rules a row must obey.

The rules are plain data so that the batch loader (pandas, in ``training``) and the
service's request schemas check the same things.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.activities import ACTIONS


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "str", "category", "float", "int", "binary", "timestamp"
    minimum: float | None = None
    maximum: float | None = None
    # (0, 1]: propensities are probabilities of what was actually chosen, never 0.
    exclusive_minimum: bool = False
    allowed: tuple[str, ...] | None = None


COLUMNS: tuple[Column, ...] = (
    Column("interaction_id", "str"),
    Column("customer_id", "str"),
    Column("occurred_at", "timestamp"),
    Column("channel", "category"),
    Column("issue_type", "category"),
    Column("segment", "category"),
    Column("persona", "category"),
    Column("tenure_months", "float", minimum=0.0),
    Column("switching_effort", "category"),
    Column("prior_contacts_30d", "int", minimum=0),
    Column("sentiment", "float", minimum=-1.0, maximum=1.0),
    Column("language", "category"),
    Column("activity", "category", allowed=ACTIONS),
    Column("propensity", "float", minimum=0.0, maximum=1.0, exclusive_minimum=True),
    Column("agent_id", "str"),
    Column("pool_id", "str"),
    Column("ve_success", "binary"),
    Column("ves_confidence", "int", minimum=1, maximum=7),
    Column("ves_ability", "int", minimum=1, maximum=7),
    Column("accepted", "binary"),
    Column("offered", "binary"),
    Column("handle_time_s", "float", minimum=0.0),
    Column("csat", "int", minimum=1, maximum=5),
    Column("retained_60d", "binary"),
)
COLUMN_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}

# The context a model may learn from. Outcomes, ids and the logged choice are not
# features: they are unknown when a decision is made.
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "channel",
    "issue_type",
    "segment",
    "persona",
    "switching_effort",
    "language",
)
NUMERIC_FEATURES: tuple[str, ...] = ("tenure_months", "prior_contacts_30d", "sentiment")
CONTEXT_FEATURES: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES

LABEL = "ve_success"
