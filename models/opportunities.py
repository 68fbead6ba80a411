"""Where agents already enhance value without being asked: the situations to suggest (or
automate) next.

The research's operating model (seed 001, "identify what to automate") starts where
value enhancement already happens organically: situations in which agents attempt a value
activity on their own and customers report value. Here an attempt is *organic* when the
agent offered an activity vea did not suggest for that contact (vea suggested another
one, or none: holdout customers and low openness included). Per situation (segment and
issue type by default) and activity the report counts organic attempts and their
success, beside how often vea suggests that activity there and how often the contact
center's attempts succeed overall.

A *candidate* is a situation and activity with at least ``min_attempts`` organic attempts
with a known result, whose success (95% Wilson interval) lies above the overall success
of attempts, and which vea suggests in under half of that situation's contacts. The rates
are observational: agents choose whom to try, so a candidate is where to look, and the
way to know is to let vea suggest it there (exploration, the holdout comparison), not
proof that suggesting it would work as well.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from models.activities import VALUE_ACTIVITIES

DEFAULT_SITUATION = ("segment", "issue_type")
SITUATION_FEATURES = ("segment", "issue_type", "channel", "persona", "switching_effort")
MIN_ATTEMPTS = 30
Z_95 = 1.959963984540054
SUGGESTED_SHARE_BELOW = 0.5
UNKNOWN = "(unknown)"
NOTE = (
    "Organic attempts are activities agents offered that vea did not suggest for the "
    "contact. Their success is observational (agents choose whom to try): a candidate is "
    "where to let vea suggest the activity and measure it, not proof that it works."
)


def parse_situation(text: str) -> tuple[str, ...]:
    """``segment,issue_type`` as the features of a situation; ValueError saying which
    may be named."""
    names = tuple(name.strip() for name in text.split(","))
    if any(name not in SITUATION_FEATURES for name in names) or len(set(names)) < len(names):
        raise ValueError(
            f"features from {', '.join(SITUATION_FEATURES)}, each once, comma-separated; "
            f"got {text!r}"
        )
    return names


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound at 0 or n successes and small n,
    where the normal approximation gives bounds outside [0, 1])."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _flag(value: Any) -> bool | None:
    """A 0/1 column value as True/False, None when unknown (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def _situation_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return UNKNOWN
    return str(value)


def organic_opportunities(
    columns: Mapping[str, Sequence[Any]],
    *,
    situation: Sequence[str] = DEFAULT_SITUATION,
    min_attempts: int = MIN_ATTEMPTS,
) -> dict[str, Any]:
    """The organic-value report of decisions joined to their outcomes.

    ``columns``: equal-length columns ``activity`` (the suggested one),
    ``delivered_activity``, ``offered``, ``ve_success`` (0/1, None or NaN when unknown),
    ``has_outcome`` and the ``situation`` features (as ``service.export.decision_frame``
    has them). Rows: every situation and activity with an organic attempt, candidates
    first, then by organic successes."""
    unknown = [name for name in situation if name not in SITUATION_FEATURES]
    if unknown or not situation:
        raise ValueError(
            f"situation: {', '.join(unknown) or '(none)'} is not one of "
            f"{', '.join(SITUATION_FEATURES)}"
        )
    if len(set(situation)) != len(situation):
        raise ValueError("situation: a feature is named twice")
    if min_attempts < 1:
        raise ValueError(f"min_attempts: must be >= 1, got {min_attempts}")
    n = len(columns["activity"])
    keys = (
        [
            tuple(_situation_value(v) for v in values)
            for values in zip(*(columns[name] for name in situation), strict=True)
        ]
        if n
        else []
    )

    contacts: dict[tuple, int] = {}
    suggested: dict[tuple, int] = {}  # (situation, activity) -> contacts vea suggested it in
    organic: dict[tuple, list[int]] = {}  # (situation, activity) -> [attempts, known, successes]
    attempts_known = attempts_succeeded = organic_total = 0
    for i in range(n):
        key, proposed = keys[i], columns["activity"][i]
        contacts[key] = contacts.get(key, 0) + 1
        if proposed in VALUE_ACTIVITIES:
            suggested[(key, proposed)] = suggested.get((key, proposed), 0) + 1
        if not columns["has_outcome"][i] or not _flag(columns["offered"][i]):
            continue
        delivered = columns["delivered_activity"][i]
        if delivered not in VALUE_ACTIVITIES:
            continue
        success = _flag(columns["ve_success"][i])
        if success is not None:
            attempts_known += 1
            attempts_succeeded += success
        if delivered == proposed:
            continue
        organic_total += 1
        cell = organic.setdefault((key, delivered), [0, 0, 0])
        cell[0] += 1
        if success is not None:
            cell[1] += 1
            cell[2] += success
    baseline = attempts_succeeded / attempts_known if attempts_known else None

    rows = []
    for (key, activity), (attempts, known, successes) in organic.items():
        low, high = wilson_interval(successes, known)
        share = suggested.get((key, activity), 0) / contacts[key]
        candidate = (
            known >= min_attempts
            and baseline is not None
            and low > baseline
            and share < SUGGESTED_SHARE_BELOW
        )
        rows.append(
            {
                "situation": dict(zip(situation, key, strict=True)),
                "activity": activity,
                "contacts": contacts[key],
                "organic_attempts": attempts,
                "organic_with_result": known,
                "organic_successes": successes,
                "organic_success_rate": successes / known if known else None,
                "interval": [low, high] if known else None,
                "suggested_share": share,
                "candidate": candidate,
            }
        )
    rows.sort(key=lambda r: (not r["candidate"], -r["organic_successes"], -r["organic_attempts"]))
    return {
        "situation": list(situation),
        "min_attempts": min_attempts,
        "contacts": n,
        "attempts_with_result": attempts_known,
        "baseline_success_rate": baseline,
        "organic_attempts": organic_total,
        "candidates": sum(r["candidate"] for r in rows),
        "rows": rows,
        "note": NOTE,
    }
