"""How long before now (or before a contact) something happened, in the words an agent
reads at a glance: "just now", "12 min ago", "3 h ago", "2 days ago".

The continuation window (``VEA_CONTINUATION_WINDOW_MIN``, a day by default, unbounded
above) lets an earlier contact be seconds or days old, so minutes alone read badly at
both ends ("0 min ago", "1,440 min ago"). One rule picks the unit for every sentence that
says it (the decision's continuation note, the desk's earlier-contact card); each caller
passes its own wording per unit (``AGO`` here, the desk's "before this contact").
"""

from __future__ import annotations

from collections.abc import Mapping

MINUTE, HOUR, DAY = 60, 3600, 86400

# Keys: now (under a minute), minutes, hours, day (exactly one), days. Whole units,
# rounded down, as a clock reads ("59 min" until the hour has passed).
AGO: dict[str, dict[str, str]] = {
    "en": {
        "now": "just now",
        "minutes": "{n} min ago",
        "hours": "{n} h ago",
        "day": "1 day ago",
        "days": "{n} days ago",
    },
    # No space between a number and its unit in Japanese (3時間前, not 3 時間前).
    "ja": {
        "now": "先ほど",
        "minutes": "{n}分前",
        "hours": "{n}時間前",
        "day": "1日前",
        "days": "{n}日前",
    },
}


def unit(seconds: float) -> tuple[str, int]:
    """``(key, whole units)`` for a span of ``seconds`` (negative: clocks apart, now)."""
    if seconds < MINUTE:
        return "now", 0
    if seconds < HOUR:
        return "minutes", int(seconds // MINUTE)
    if seconds < DAY:
        return "hours", int(seconds // HOUR)
    days = int(seconds // DAY)
    return ("day" if days == 1 else "days"), days


def say(seconds: float, phrases: Mapping[str, str]) -> str:
    """The span in ``phrases``' wording (one language's table, keyed as ``AGO``)."""
    key, n = unit(seconds)
    return phrases[key].format(n=n)
