"""Exploration with logged propensities, and the randomized holdout.

The served activity is drawn from a distribution around the model's best action, so that
every action keeps a known, positive probability and any later policy can be valued
off-policy on the logs (``training.ope``). The draw is a pure function of the decision id
(hashed into a uniform), so a stored decision can be replayed and audited exactly.

Only *candidates* are ever drawn: `none`, plus the activities the model learned that the
contact policy did not block, and none of them when no attempt is allowed (complaint
rules, decline cool-down). Exploration widens the choice among what is allowed; it never
overrides the contact policy.

The holdout is a share of customers (a stable hash of the customer id, salted by the
experiment name, so a customer stays in one arm for the whole experiment) who always get
`none`: the control group the value report compares the treated arm with.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from models.activities import ACTIONS, NONE

MODES = ("none", "epsilon", "softmax")
TREATMENT, HOLDOUT = "treatment", "holdout"
_SCALE = float(1 << 64)
# The digest's first 8 bytes as a big-endian integer, read in place: the same number as
# int.from_bytes(digest[:8], "big") without the slice, on every decision's draws.
_FIRST_8 = struct.Struct(">Q").unpack_from
_SHA256 = hashlib.sha256


def uniform_from(key: str, salt: str = "") -> float:
    """A uniform number in [0, 1) from a string: the same key always gives the same number."""
    return _FIRST_8(_SHA256(f"{salt}\x1f{key}".encode()).digest())[0] / _SCALE


@dataclass(frozen=True)
class ExplorationConfig:
    """How far the served choice may stray from the best action.

    ``epsilon``: the best action keeps ``1 - epsilon``, the rest is spread evenly over
    all candidates. ``softmax``: probabilities proportional to ``exp(value / temperature)``
    (values are in money units, see ``models.economics``). Both are then mixed with a
    uniform floor so no candidate gets less than ``floor`` (bounded importance weights).
    ``none``: always the best action, propensity 1.
    """

    mode: str = "none"
    epsilon: float = 0.1
    temperature: float = 1.0
    floor: float = 0.01

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"exploration must be one of {MODES}, got {self.mode!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError("epsilon must be in [0, 1]")
        if not self.temperature > 0.0:
            raise ValueError("softmax temperature must be > 0")
        if not 0.0 <= self.floor <= 1.0 / len(ACTIONS):
            raise ValueError(f"propensity floor must be in [0, 1/{len(ACTIONS)}]")


@dataclass(frozen=True)
class Draw:
    """The served action, its exact probability, and the whole distribution it came from."""

    action: str
    propensity: float
    distribution: dict[str, float] = field(default_factory=dict)


def distribution(
    values: Mapping[str, float], best: str, config: ExplorationConfig
) -> dict[str, float]:
    """Probability of every candidate (the keys of ``values``), in ``ACTIONS`` order."""
    names = [a for a in ACTIONS if a in values]
    if best not in values:
        raise ValueError(f"best action {best!r} is not a candidate")
    k = len(names)
    if config.mode == "none" or k == 1:
        return {a: (1.0 if a == best else 0.0) for a in names}
    if config.mode == "epsilon":
        probs = [config.epsilon / k + (1.0 - config.epsilon) * (a == best) for a in names]
    else:
        top = max(values[a] for a in names)
        weights = [math.exp((values[a] - top) / config.temperature) for a in names]
        total = sum(weights)
        probs = [w / total for w in weights]
    # Mix with the floor: p' = floor + (1 - k * floor) p keeps a distribution and puts at
    # least `floor` on every candidate (k * floor <= 1 because floor <= 1/len(ACTIONS)).
    probs = [config.floor + (1.0 - k * config.floor) * p for p in probs]
    total = sum(probs)
    return {a: p / total for a, p in zip(names, probs, strict=True)}


def draw(
    decision_id: str,
    values: Mapping[str, float],
    best: str,
    config: ExplorationConfig,
) -> Draw:
    """The served action for a decision: deterministic for a given decision id."""
    dist = distribution(values, best, config)
    u = uniform_from(decision_id, "explore")
    cumulative = 0.0
    chosen = None
    for action, p in dist.items():
        cumulative += p
        if p > 0.0 and u < cumulative:
            chosen = action
            break
    if chosen is None:  # u within round-off of 1: the last action with any mass
        chosen = [a for a, p in dist.items() if p > 0.0][-1]
    return Draw(chosen, dist[chosen], dist)


def candidates(
    expected_values: Mapping[str, float | None],
    none_value: float,
    *,
    blocked: frozenset[str] | set[str] = frozenset(),
    allow_attempt: bool = True,
) -> dict[str, float]:
    """Actions exploration may serve: `none` always; a value activity only when the model
    learned it (its value is known), the contact policy does not block it and an attempt
    is allowed."""
    out = {NONE: float(none_value)}
    if not allow_attempt:
        return out
    for activity, value in expected_values.items():
        if activity == NONE or value is None or activity in blocked:
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        out[activity] = float(value)
    return out


def holdout_draw(customer_id: str, experiment: str) -> float:
    """The customer's assignment number in [0, 1) under ``experiment``: the customer is
    held out while the share is above it. The one place the holdout's salt is written,
    so the value report re-draws exactly what the service assigned."""
    return uniform_from(customer_id, f"holdout:{experiment}")


def holdout_arm(customer_id: str, share: float, experiment: str) -> str:
    """``holdout`` for a stable ``share`` of customers, else ``treatment``."""
    if not 0.0 <= share < 1.0:
        raise ValueError("holdout share must be in [0, 1)")
    if share == 0.0:
        return TREATMENT
    return HOLDOUT if holdout_draw(customer_id, experiment) < share else TREATMENT
