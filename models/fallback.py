"""The rule-based decision used in degraded mode (no champion model, a bundle that fails
verification, or a model error).

It answers in exactly the shape of ``Decider.decide`` so callers never branch on it.
The rules encode the product's domain facts (design section 1), deliberately cautious
because nothing was learned from data:

* **Openness** starts from the issue type: inquiry and how-to contacts are the most
  open to value enhancement, complaints and cancellations the least (Gartner). Negative
  live sentiment lowers it, positive sentiment raises it a little.
* **Activity fit** follows time since purchase: right after purchase validating the
  decision fits best; in the first year helping achieve goals and educating on usage;
  long-tenured customers are best served by new uses and anticipated needs.
* **Success probability** of an activity = openness x fit.
* **Expected value** = p x value_of_success - extra handle time x cost per second
  (``models.economics``). An activity is suggested only when openness is not low, an
  attempt is allowed, the activity is not blocked, and its expected value is positive;
  otherwise ``none`` (plain effortless resolution).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from models.activities import NONE, VALUE_ACTIVITIES
from models.economics import Economics
from models.reasons import activity_name, category_name, language_of

FALLBACK_VERSION = "fallback-rules-1"

# Probability that a value conversation lands, by issue type (before activity fit).
ISSUE_OPENNESS: dict[str, float] = {
    "inquiry": 0.55,
    "how_to": 0.50,
    "order_change": 0.40,
    "technical": 0.35,
    "billing": 0.30,
    "cancellation": 0.20,
    "complaint": 0.12,
}
DEFAULT_OPENNESS = 0.35  # unknown or missing issue type
SELF_SERVICE_FACTOR = 0.8  # digital content lands less often than a conversation

# Bands of the openness score: the same cut points as the trained model's answer
# (models.decision.DEFAULT_BANDS).
LOW_BAND_BELOW = 0.25
HIGH_BAND_FROM = 0.45

# Fit of each activity by tenure bucket (months since purchase).
_TENURE_FIT: list[tuple[float, dict[str, float]]] = [
    (
        3.0,
        {
            "validate_purchase": 1.0,
            "achieve_goals": 0.8,
            "educate_usage": 0.7,
            "anticipate_needs": 0.5,
            "advise_new_uses": 0.4,
        },
    ),
    (
        12.0,
        {
            "achieve_goals": 1.0,
            "educate_usage": 0.9,
            "anticipate_needs": 0.7,
            "validate_purchase": 0.5,
            "advise_new_uses": 0.7,
        },
    ),
    (
        float("inf"),
        {
            "advise_new_uses": 1.0,
            "anticipate_needs": 0.9,
            "educate_usage": 0.7,
            "achieve_goals": 0.6,
            "validate_purchase": 0.3,
        },
    ),
]
_UNKNOWN_TENURE_FIT = {a: 0.6 for a in VALUE_ACTIVITIES}


@lru_cache(maxsize=1)
def hints() -> dict[str, dict[str, str]]:
    """The agent-facing one-liners, shared with the trained model (models/content)."""
    text = resources.files("models").joinpath("content/hints.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


# One sentence per key in both languages, with the same fields (the desk reads a sentence
# back into its fields to write it again in the other language): a tenure under a month
# and of one month have sentences of their own ("1 months", "0 か月" otherwise). Japanese
# uses the desk's terms: 受容度, 感情スコア, 価値向上活動, 価値向上の提案. Openness and
# chances are out of 100, as the desk shows the openness score (not 0.55 beside 55/100).
_REASONS: dict[str, dict[str, str]] = {
    "en": {
        "degraded": "rule-based fallback (model unavailable)",
        # Before "issue", which would read "unknown" as an issue type's name.
        "issue_unknown": "issue type unknown: base openness {base:.0f}/100",
        "issue": "issue type {issue}: base openness {base:.0f}/100",
        "sentiment": "sentiment {sentiment:+.2f}",
        "tenure_new": "less than a month since purchase: “{activity}” fits best",
        "tenure_one": "1 month since purchase: “{activity}” fits best",
        "tenure": "{tenure:.0f} months since purchase: “{activity}” fits best",
        "low": "openness is low: resolve effortlessly",
        "no_attempt": "contact policy allows no value attempt",
        "no_value": "no value activity pays for its extra handle time",
        "blocked": "blocked by contact policy",
        "ev": "expected value {ev:+.2f} (chance of success {p:.0f}%)",
    },
    "ja": {
        "degraded": "ルールベースの代替判定（モデル利用不可）",
        "issue_unknown": "問い合わせ種別が不明: 基本の受容度 {base:.0f}/100",
        "issue": "問い合わせ種別 {issue}: 基本の受容度 {base:.0f}/100",
        "sentiment": "感情スコア {sentiment:+.2f}",
        "tenure_new": "購入後1か月未満: 「{activity}」が適しています",
        "tenure_one": "購入後1か月: 「{activity}」が適しています",
        "tenure": "購入後{tenure:.0f}か月: 「{activity}」が適しています",
        "low": "受容度が低いため、手間なく解決を優先します",
        "no_attempt": "コンタクトポリシーにより価値向上の提案は行いません",
        "no_value": "延びる対応時間に見合う価値向上活動がありません",
        "blocked": "コンタクトポリシーにより除外",
        "ev": "期待価値 {ev:+.2f}（成功の見込み {p:.0f}%）",
    },
}


def band(score: float) -> str:
    if score < LOW_BAND_BELOW:
        return "low"
    return "high" if score >= HIGH_BAND_FROM else "medium"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN counts as missing


def decide_fallback(
    features: Mapping[str, Any],
    *,
    language: str = "en",
    blocked_activities: Collection[str] = (),
    allow_attempt: bool = True,
    economics: Economics | None = None,
) -> dict:
    """Decide from the rules above; same output as ``Decider.decide``."""
    econ = economics or Economics()
    table = hints()
    lang = language_of(language)
    lang = lang if lang in table and lang in _REASONS else "en"
    text = _REASONS[lang]
    issue = features.get("issue_type")
    base = ISSUE_OPENNESS.get(str(issue), DEFAULT_OPENNESS) if issue else DEFAULT_OPENNESS
    score = base
    said_issue = (
        text["issue"].format(issue=category_name(str(issue), lang), base=base * 100)
        if issue
        else text["issue_unknown"].format(base=base * 100)  # not "issue type ?"
    )
    reasons = [text["degraded"], said_issue]

    sentiment = _number(features.get("sentiment"))
    if sentiment is not None:
        sentiment = max(-1.0, min(1.0, sentiment))
        # Negative sentiment hurts more than positive sentiment helps.
        score *= 1.0 + (0.6 * sentiment if sentiment < 0 else 0.2 * sentiment)
        reasons.append(text["sentiment"].format(sentiment=sentiment))
    if features.get("channel") == "self_service":
        score *= SELF_SERVICE_FACTOR
    score = max(0.0, min(1.0, score))

    tenure = _number(features.get("tenure_months"))
    fit = _UNKNOWN_TENURE_FIT
    if tenure is not None and tenure >= 0:
        fit = next(table for limit, table in _TENURE_FIT if tenure < limit)
        best_fit = max(fit, key=fit.__getitem__)
        key = "tenure_new" if tenure < 1 else ("tenure_one" if round(tenure) == 1 else "tenure")
        reasons.append(text[key].format(tenure=tenure, activity=activity_name(best_fit, lang)))

    costs = dict(zip(VALUE_ACTIVITIES, econ.action_costs()[1:], strict=True))
    blocked = set(blocked_activities)
    activities = []
    for activity in VALUE_ACTIVITIES:
        p = round(score * fit[activity], 4)
        ev = round(p * econ.value_of_success - costs[activity], 4)
        item_reasons = [text["ev"].format(ev=ev, p=p * 100)]
        if activity in blocked:
            item_reasons.append(text["blocked"])
        activities.append(
            {
                "activity": activity,
                "success_probability": p,
                "expected_value": ev,
                "hint": table[lang][activity],
                "reasons": item_reasons,
            }
        )
    # Best first; blocked activities sink to the bottom so the list reads as advice.
    activities.sort(key=lambda a: (a["activity"] in blocked, -a["expected_value"]))

    level = band(score)
    attempt = allow_attempt and level != "low"
    suggested = NONE
    if level == "low":
        reasons.append(text["low"])
    elif not allow_attempt:
        reasons.append(text["no_attempt"])
    else:
        candidates = [a for a in activities if a["activity"] not in blocked]
        if candidates and candidates[0]["expected_value"] > 0:
            suggested = candidates[0]["activity"]
        else:
            attempt = False
            reasons.append(text["no_value"])

    return {
        "openness": {"score": round(score, 4), "band": level, "attempt": attempt},
        "activities": activities,
        "suggested_activity": suggested,
        "expected_value_none": 0.0,  # `none` adds no handle time and earns no value
        "reasons": reasons,
    }
