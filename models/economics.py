"""What a value attempt is worth and what it costs: the inputs of the decision policy.

The expected value of an action is ``p_success * value_of_success - extra_handle_time_s *
cost_per_second``. `none` adds no handle time. The defaults are the product's; a spec
file or the service configuration overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.activities import ACTIONS, NONE, VALUE_ACTIVITIES

# Extra seconds an agent spends on each value activity, over plain resolution.
# Validation is a sentence or two; goal planning and education take longest.
DEFAULT_EXTRA_HANDLE_TIME_S: dict[str, float] = {
    "validate_purchase": 45.0,
    "anticipate_needs": 90.0,
    "achieve_goals": 150.0,
    "educate_usage": 120.0,
    "advise_new_uses": 100.0,
}


@dataclass(frozen=True)
class Economics:
    """Value of one value-enhancement success and the price of an agent's second."""

    value_of_success: float = 20.0
    cost_per_second: float = 0.02
    extra_handle_time_s: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_EXTRA_HANDLE_TIME_S)
    )

    def action_costs(self) -> list[float]:
        """Cost of each action in ``ACTIONS`` order (`none` costs nothing)."""
        return [
            0.0 if a == NONE else self.extra_handle_time_s.get(a, 0.0) * self.cost_per_second
            for a in ACTIONS
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "value_of_success": self.value_of_success,
            "cost_per_second": self.cost_per_second,
            "extra_handle_time_s": dict(self.extra_handle_time_s),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Economics:
        data = dict(data or {})
        unknown = set(data) - {"value_of_success", "cost_per_second", "extra_handle_time_s"}
        if unknown:
            raise ValueError(f"unknown economics keys: {sorted(unknown)}")
        handle = dict(DEFAULT_EXTRA_HANDLE_TIME_S)
        for activity, seconds in (data.get("extra_handle_time_s") or {}).items():
            if activity not in VALUE_ACTIVITIES:
                raise ValueError(f"extra_handle_time_s: unknown activity {activity!r}")
            if float(seconds) < 0:
                raise ValueError(f"extra_handle_time_s.{activity} must be >= 0")
            handle[activity] = float(seconds)
        value = float(data.get("value_of_success", cls.value_of_success))
        cost = float(data.get("cost_per_second", cls.cost_per_second))
        if value <= 0 or cost < 0:
            raise ValueError("value_of_success must be > 0 and cost_per_second >= 0")
        return cls(value_of_success=value, cost_per_second=cost, extra_handle_time_s=handle)
