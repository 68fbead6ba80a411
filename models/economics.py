"""What a value attempt is worth and what it costs: the inputs of the decision policy.

The expected value of an action is ``p_success * value_of_success - extra_handle_time_s *
cost_per_second``. `none` adds no handle time. The defaults are the product's; a spec
file or the service configuration overrides them.
"""

from __future__ import annotations

import math
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

    def __post_init__(self) -> None:
        # Checked here, not only in from_dict, so that no Economics exists with a number
        # the policy cannot use: with NaN (YAML `.nan`) every expected value is NaN and
        # the policy answers `none` everywhere, without a word (a model trained that
        # way was stored, became champion and never suggested anything).
        _check("value_of_success", self.value_of_success, positive=True)
        _check("cost_per_second", self.cost_per_second)
        for activity, seconds in self.extra_handle_time_s.items():
            if activity not in VALUE_ACTIVITIES:
                raise ValueError(f"extra_handle_time_s: unknown activity {activity!r}")
            _check(f"extra_handle_time_s.{activity}", seconds)

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
            handle[activity] = _number(f"extra_handle_time_s.{activity}", seconds)
        value = _number("value_of_success", data.get("value_of_success", cls.value_of_success))
        cost = _number("cost_per_second", data.get("cost_per_second", cls.cost_per_second))
        return cls(value_of_success=value, cost_per_second=cost, extra_handle_time_s=handle)


def _number(name: str, raw: Any) -> float:
    """``raw`` as a float, or ValueError naming the field (a YAML `yes` is no price)."""
    if isinstance(raw, bool):
        raise ValueError(f"{name} must be a number (got {raw!r})")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number (got {raw!r})") from None


def _check(name: str, value: float, *, positive: bool = False) -> None:
    """ValueError naming the field unless ``value`` is finite and > 0 (``positive``) or
    >= 0. NaN fails every comparison, so ``value <= 0`` alone lets it (and inf) through."""
    bound = "> 0" if positive else ">= 0"
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {bound} (got {value!r})")
