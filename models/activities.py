"""The five value activities (ids are part of the API contract) and the `none` action."""

from __future__ import annotations

VALUE_ACTIVITIES: tuple[str, ...] = (
    "validate_purchase",
    "anticipate_needs",
    "achieve_goals",
    "educate_usage",
    "advise_new_uses",
)
NONE = "none"
# Every action a policy can take; the index of an action in this tuple is its code
# in feature matrices and logged-policy arrays.
ACTIONS: tuple[str, ...] = (NONE, *VALUE_ACTIVITIES)
ACTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(ACTIONS)}

CHANNELS = ("voice", "chat", "email", "messaging", "self_service")
ISSUE_TYPES = (
    "inquiry",
    "how_to",
    "billing",
    "technical",
    "order_change",
    "complaint",
    "cancellation",
)
SEGMENTS = ("consumer", "premium", "small_business", "enterprise")
LANGUAGES = ("ja", "en")
