"""Contact policy: which value attempts a customer's recent history rules out.

Three rules protect the customer from pushy or badly timed value enhancement:

1. **Recently declined**: an activity the customer declined (it was offered and not
   accepted) within ``decline_days`` is not suggested again.
2. **Weekly cap**: at most ``max_attempts_per_week`` value attempts per customer in the
   last 7 days; past the cap no activity is suggested. A self-service contact is no
   attempt: digital content was shown, no agent pitched anything.
3. **Negative complaints**: no value attempt on a complaint whose live sentiment is at or
   below ``negative_sentiment_threshold``, unless ``allow_negative_complaints`` is set.
   Gartner found value enhancement least likely to land on complaints; on an angry
   complaint it reads as selling instead of fixing.

Everything is plain data: the caller turns its store into ``PastContact`` rows, this
module summarises them and says what is blocked and why. Every rule that fires adds
one reason string, in the agent's language (English or Japanese).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from models.activities import VALUE_ACTIVITIES
from models.pools import SELF_SERVICE
from models.reasons import activity_name, language_of

WEEK_DAYS = 7.0


@dataclass(frozen=True)
class ContactPolicy:
    """The rule settings, and how each rule is turned off.

    - ``decline_days``: a declined activity is not suggested again for this many days;
      0 turns the rule off (negative values are refused).
    - ``max_attempts_per_week``: value attempts allowed per customer in 7 days; ``None``
      turns the cap off, while 0 is a cap of none: no value attempt at all (negative
      values are refused; ``service.config`` reads a negative setting as ``None``).
    - ``allow_negative_complaints``: True turns the complaint rule off.
    - ``negative_sentiment_threshold``: the complaint rule fires at or below it (-1..1; at
      -1 only a sentiment of exactly -1 fires it). ``complaint_issue_types`` are the
      issue types it applies to, in the lower case the API loads categories in.
    """

    decline_days: int = 14
    max_attempts_per_week: int | None = 2
    allow_negative_complaints: bool = False
    negative_sentiment_threshold: float = -0.3
    complaint_issue_types: frozenset[str] = frozenset({"complaint"})

    def __post_init__(self) -> None:
        if self.decline_days < 0:
            raise ValueError("decline_days must be >= 0")
        if self.max_attempts_per_week is not None and self.max_attempts_per_week < 0:
            raise ValueError("max_attempts_per_week must be >= 0 or None")
        if not -1.0 <= self.negative_sentiment_threshold <= 1.0:
            raise ValueError("negative_sentiment_threshold must be within -1..1")


@dataclass(frozen=True)
class PastContact:
    """One earlier contact of the customer, as far as the policy cares.

    ``activity`` is what was suggested (or, when an outcome says so, what was offered);
    ``offered``/``accepted`` are ``None`` while no outcome has been recorded; ``channel``
    is the contact's (None when unknown: counted as an assisted contact).
    """

    occurred_at: datetime
    activity: str
    offered: bool | None = None
    accepted: bool | None = None
    channel: str | None = None

    @property
    def is_attempt(self) -> bool:
        # A self-service contact is routed to digital content: no agent made an attempt,
        # and two visits to the help pages must not use up the agent's weekly cap.
        # A suggestion without an outcome yet counts as an attempt: the agent probably
        # made it, and under-counting would let a customer be pitched too often.
        return (
            self.activity in VALUE_ACTIVITIES
            and self.offered is not False
            and self.channel != SELF_SERVICE
        )

    @property
    def is_decline(self) -> bool:
        return self.activity in VALUE_ACTIVITIES and self.offered is True and self.accepted is False


@dataclass(frozen=True)
class HistorySummary:
    """What the rules read: days since each declined activity and the week's attempts."""

    declined_days_ago: Mapping[str, float] = field(default_factory=dict)
    attempts_last_7d: int = 0


@dataclass(frozen=True)
class PolicyResult:
    blocked_activities: frozenset[str]
    allow_attempt: bool
    reasons: list[str]


def summarize_history(contacts: Iterable[PastContact], now: datetime) -> HistorySummary:
    """Summarise earlier contacts (any order) as seen at ``now``; future rows are ignored."""
    declined: dict[str, float] = {}
    attempts = 0
    for contact in contacts:
        age_days = (now - contact.occurred_at).total_seconds() / 86400.0
        if age_days < 0:
            continue
        if contact.is_attempt and age_days <= WEEK_DAYS:
            attempts += 1
        if contact.is_decline:
            previous = declined.get(contact.activity)
            if previous is None or age_days < previous:
                declined[contact.activity] = age_days
    return HistorySummary(declined_days_ago=declined, attempts_last_7d=attempts)


# Each key is one sentence in both languages with the same fields (the desk reads a
# sentence back into its fields to write it again in the other language). Counts of one
# and a decline less than a day old have sentences of their own: not "1 day(s) ago",
# "0 days ago". Japanese: 辞退 as the desk's outcome button says it, 価値向上の提案 as
# every other reason says it, no space between a number and its unit.
_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "declined_today": "contact policy: “{activity}” was declined in the last 24 hours "
        "(not offered again within {limit} days)",
        "declined_one": "contact policy: “{activity}” was declined 1 day ago "
        "(not offered again within {limit} days)",
        "declined": "contact policy: “{activity}” was declined {days} days ago "
        "(not offered again within {limit} days)",
        "cap_one": "contact policy: 1 value attempt in the last 7 days (limit {limit} per week): "
        "no value attempt this time",
        "cap": "contact policy: {count} value attempts in the last 7 days (limit {limit} per "
        "week): no value attempt this time",
        "complaint": "contact policy: complaint with negative sentiment ({sentiment:+.2f}): "
        "resolve first, no value attempt",
    },
    "ja": {
        "declined_today": "コンタクトポリシー: 「{activity}」は24時間以内に辞退されています"
        "（{limit}日間は再提案しません）",
        "declined_one": "コンタクトポリシー: 「{activity}」は1日前に辞退されています"
        "（{limit}日間は再提案しません）",
        "declined": "コンタクトポリシー: 「{activity}」は{days}日前に辞退されています"
        "（{limit}日間は再提案しません）",
        "cap_one": "コンタクトポリシー: 直近7日間の価値向上の提案が1回（上限は週{limit}回）の"
        "ため、今回は提案しません",
        "cap": "コンタクトポリシー: 直近7日間の価値向上の提案が{count}回（上限は週{limit}回）の"
        "ため、今回は提案しません",
        "complaint": "コンタクトポリシー: ネガティブな感情の苦情（感情スコア {sentiment:+.2f}）"
        "のため、解決を優先し、価値向上の提案は行いません",
    },
}


def evaluate(
    policy: ContactPolicy,
    history: HistorySummary,
    *,
    issue_type: str | None = None,
    sentiment: float | None = None,
    language: str = "en",
) -> PolicyResult:
    """Apply the three rules; return blocked activities, whether any attempt is allowed,
    and one reason per rule that fired."""
    messages = _MESSAGES[language_of(language)]
    reasons: list[str] = []
    blocked: set[str] = set()
    allow = True

    if policy.decline_days > 0:
        for activity in VALUE_ACTIVITIES:  # fixed order keeps the reasons stable
            days = history.declined_days_ago.get(activity)
            if days is not None and days <= policy.decline_days:
                blocked.add(activity)
                whole_days = int(days)
                key = {0: "declined_today", 1: "declined_one"}.get(whole_days, "declined")
                reasons.append(
                    messages[key].format(
                        activity=activity_name(activity, language),
                        days=whole_days,
                        limit=policy.decline_days,
                    )
                )

    cap = policy.max_attempts_per_week
    if cap is not None and history.attempts_last_7d >= cap:
        allow = False
        count = history.attempts_last_7d
        key = "cap_one" if count == 1 else "cap"
        reasons.append(messages[key].format(count=count, limit=cap))

    if (
        not policy.allow_negative_complaints
        and issue_type in policy.complaint_issue_types
        and sentiment is not None
        and sentiment <= policy.negative_sentiment_threshold
    ):
        allow = False
        reasons.append(messages["complaint"].format(sentiment=sentiment))

    return PolicyResult(blocked_activities=frozenset(blocked), allow_attempt=allow, reasons=reasons)
