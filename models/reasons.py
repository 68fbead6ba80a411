"""Readable reasons from LightGBM feature contributions, in Japanese and English."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from models.schema import primary_language

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "channel": "channel: {v}",
        "issue_type": "issue type: {v}",
        "segment": "segment: {v}",
        "persona": "persona: {v}",
        "switching_effort": "switching effort: {v}",
        "language": "language: {v}",
        "tenure_months": "{v} months since purchase",
        "tenure_months_one": "1 month since purchase",
        "tenure_months_new": "less than a month since purchase",
        "prior_contacts_30d": "{v:.0f} contacts in the last 30 days",
        "prior_contacts_30d_one": "1 contact in the last 30 days",
        "prior_contacts_30d_none": "no contacts in the last 30 days",
        "sentiment": "sentiment {v:+.1f}",
        "_other": "{name}: {v}",
        "_missing": "{name}: unknown",
    },
    "ja": {
        "channel": "チャネル: {v}",
        "issue_type": "問い合わせ種別: {v}",
        "segment": "セグメント: {v}",
        "persona": "ペルソナ: {v}",
        "switching_effort": "乗り換えの手間: {v}",
        "language": "言語: {v}",
        "tenure_months": "購入後{v}か月",
        "tenure_months_new": "購入後1か月未満",
        "prior_contacts_30d": "過去30日の問い合わせ{v:.0f}件",
        "prior_contacts_30d_none": "過去30日の問い合わせなし",
        "sentiment": "感情スコア {v:+.1f}",
        "_other": "{name}: {v}",
        "_missing": "{name}: 不明",
    },
}
# A feature as a reason names it when its value is unknown ("time since purchase:
# unknown", not "tenure_months unknown"); a feature not listed is named by its column.
FEATURE_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "channel": "channel",
        "issue_type": "issue type",
        "segment": "segment",
        "persona": "persona",
        "switching_effort": "switching effort",
        "language": "language",
        "tenure_months": "time since purchase",
        "prior_contacts_30d": "contacts in the last 30 days",
        "sentiment": "sentiment",
    },
    "ja": {
        "channel": "チャネル",
        "issue_type": "問い合わせ種別",
        "segment": "セグメント",
        "persona": "ペルソナ",
        "switching_effort": "乗り換えの手間",
        "language": "言語",
        "tenure_months": "購入後の月数",
        "prior_contacts_30d": "過去30日の問い合わせ件数",
        "sentiment": "感情スコア",
    },
}
VALUES_JA: dict[str, str] = {
    "voice": "電話",
    "chat": "チャット",
    "email": "メール",
    "messaging": "メッセージ",
    "self_service": "セルフサービス",
    # Not 問い合わせ: every contact is one ("問い合わせ種別: 問い合わせ" says nothing).
    "inquiry": "質問",
    "how_to": "使い方",
    "billing": "請求",
    "technical": "技術的な問題",
    "order_change": "注文変更",
    "complaint": "苦情",
    "cancellation": "解約",
    "consumer": "個人",
    "premium": "プレミアム",
    "small_business": "中小企業",
    "enterprise": "大企業",
    "low": "低い",
    "high": "高い",
    # The simulator's personas (training/simulate.py); a deployment's own are said as
    # they are written.
    "pragmatist": "実用重視",
    "enthusiast": "熱心なファン",
    "novice": "初心者",
    "skeptic": "慎重派",
}
# English says a category's id as words where the id is not one ("how_to" reads
# "how-to"); the others are already words.
VALUES_EN: dict[str, str] = {
    "how_to": "how-to",
    "order_change": "order change",
    "small_business": "small business",
    "self_service": "self-service",
}
_VALUES = {"en": VALUES_EN, "ja": VALUES_JA}
# The customer's language as a reason says it (言語: 日本語, not 言語: ja), by the primary
# subtag; a language not listed is said by its tag.
LANGUAGE_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "ja": "Japanese",
        "en": "English",
        "zh": "Chinese",
        "ko": "Korean",
        "es": "Spanish",
        "pt": "Portuguese",
        "fr": "French",
        "de": "German",
        "vi": "Vietnamese",
        "th": "Thai",
        "id": "Indonesian",
        "tl": "Tagalog",
    },
    "ja": {
        "ja": "日本語",
        "en": "英語",
        "zh": "中国語",
        "ko": "韓国語",
        "es": "スペイン語",
        "pt": "ポルトガル語",
        "fr": "フランス語",
        "de": "ドイツ語",
        "vi": "ベトナム語",
        "th": "タイ語",
        "id": "インドネシア語",
        "tl": "タガログ語",
    },
}


# How a sentence lists several things ("a, b"; 「a、b」). A desk splits a routing reason's
# list of pools on it to name each pool again in the other language.
LIST_SEPARATOR = {"en": ", ", "ja": "、"}


def listed(items: Iterable[str], language: str | None) -> str:
    """``items`` as a list in a sentence in ``language``."""
    return LIST_SEPARATOR[language_of(language)].join(items)


def language_of(language: str | None) -> str:
    """``ja`` for a Japanese tag (ja, ja-JP), else ``en``: the primary subtag decides, so
    ``jam`` (Jamaican Creole) is not read as Japanese."""
    return "ja" if primary_language(language or "") == "ja" else "en"


# Activities by name in each language (the pages use them too): reasons an agent or a
# manager reads name the activity, not its id.
ACTIVITY_NAMES = {
    "en": {
        "validate_purchase": "Validate the purchase",
        "anticipate_needs": "Anticipate needs",
        "achieve_goals": "Help achieve goals",
        "educate_usage": "Educate on better usage",
        "advise_new_uses": "Advise on new uses",
        "none": "Resolve effortlessly",
    },
    "ja": {
        "validate_purchase": "購入判断の肯定",
        "anticipate_needs": "ニーズの先回り",
        "achieve_goals": "目的達成の支援",
        "educate_usage": "より良い使い方のご案内",
        "advise_new_uses": "新しい使い方のご提案",
        "none": "手間なく解決",
    },
}


def activity_name(activity: str, language: str | None) -> str:
    """An activity as a reason names it: by its name in the reason's language (an agent
    reads "Advise on new uses", not ``advise_new_uses``; the id stays in ``activity``).
    An id without a name is said as it is."""
    return ACTIVITY_NAMES[language_of(language)].get(activity, activity)


def category_name(value: str | None, language: str | None) -> str:
    """A category (channel, issue type, segment) as a sentence says it: in Japanese by
    its Japanese word (チャット, not chat), in English in words (how-to, not how_to); "?"
    when unknown."""
    if not value:
        return "?"
    return _VALUES[language_of(language)].get(value, value)


# The id behind a category's word in either language, to write a sentence again in the
# other one.
CATEGORY_IDS: dict[str, str] = {
    word: value for words in (VALUES_JA, VALUES_EN) for value, word in words.items()
}


def describe(name: str, value: Any, language: str) -> str:
    """One phrase naming a feature and its value for this contact."""
    lang = language_of(language)
    labels = LABELS[lang]
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if missing:
        return labels["_missing"].format(name=FEATURE_NAMES[lang].get(name, name))
    template = labels.get(name, labels["_other"])
    if name == "prior_contacts_30d" and value == 0:
        template = labels["prior_contacts_30d_none"]  # not "0 contacts" / 問い合わせ0件
    if name == "prior_contacts_30d" and value == 1 and lang == "en":
        template = labels["prior_contacts_30d_one"]
    if name == "tenure_months" and isinstance(value, int | float):
        if value < 1:  # "less than a month", not "0 months" / 購入後0か月
            return labels["tenure_months_new"]
        # Months to one decimal, a whole number without it: "2 months", not "2.0 months".
        value = f"{value:.1f}".removesuffix(".0")
        if value == "1" and lang == "en":
            template = labels["tenure_months_one"]
    if isinstance(value, str):
        if name == "language":
            value = LANGUAGE_NAMES[lang].get(primary_language(value), value)
        else:
            value = _VALUES[lang].get(value, value)
    try:
        return template.format(v=value, name=name)
    except (ValueError, TypeError):
        return labels["_other"].format(name=name, v=value)


PHRASE_CACHE_SIZE = 4096


@lru_cache(maxsize=PHRASE_CACHE_SIZE)  # bounded: request values are caller-controlled
def _describe_exact(name: str, value: str | int, language: str) -> str:
    return describe(name, value, language)


def describe_cached(name: str, value: Any, language: str) -> str:
    """``describe``, remembering the phrases of values of exactly ``str`` or ``int``.

    A serving decision would otherwise format the same few categories again and again.
    Floats are left out on purpose: 0.0 and -0.0 are equal keys that print differently,
    NaN never finds itself, and continuous values rarely repeat.
    """
    kind = type(value)
    if kind is str or kind is int:
        return _describe_exact(name, value, language)
    return describe(name, value, language)
