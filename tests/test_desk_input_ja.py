"""The desk's 400 page in Japanese: the field by its Japanese label (its parameter beside
it) and the problem in Japanese, never marshmallow's English message alone."""

from __future__ import annotations

import html
import re

import marshmallow as ma
import pytest
from marshmallow import fields, validate

from service.web import desk
from tests.test_pages import desk_client, desk_url  # noqa: F401 - a fixture


def _problems(page: str) -> list[str]:
    found = re.search(r'id="desk-problem">(.*?)</section>', page, re.S)
    assert found, "no problem card"
    return [html.unescape(m) for m in re.findall(r"<li>(.*?)</li>", found.group(1))]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"channel": "fax"}, "チャネル（channel）: voice, chat, email, messaging, "
         "self_service のいずれかを指定してください"),
        ({"sentiment": "7"}, "感情スコア（sentiment）: -1.0 以上、1.0 以下の値にしてください"),
        ({"tenure_months": "-1"}, "購入後の月数（tenure_months）: 0 以上、1200.0 以下の値にしてください"),
        ({"tenure_months": "soon"}, "購入後の月数（tenure_months）: 数値ではありません"),
        ({"prior_contacts_30d": "1.5"}, "過去30日の問い合わせ件数（prior_contacts_30d）: 整数ではありません"),
        ({"interaction_id": "x" * 200}, "お問い合わせID（interaction_id）: 1〜128 文字にしてください"),
        ({"occurred_at": "yesterday"}, "お問い合わせ日時（occurred_at）: 日時として読み取れません"),
        ({"occurred_at": "2026-04-01T10:30:00"}, "お問い合わせ日時（occurred_at）: タイムゾーン付き"),
        ({"occurred_at": "1900-01-01T00:00:00Z"}, "1970年から2199年までの日時にしてください"),
        ({"switching_effort": "medium"}, "乗り換えの手間（switching_effort）: low, high のいずれか"),
        ({"customer_language": "x!"}, "お客様の言語（customer_language）: ja、en、ja-JP のような"),
        ({"customer_id": "a%00b"}, "制御文字（NUL、改行コードなど）は使えません"),
        ({"agent_id": "a" * 129}, "エージェントID（agent_id）: 1〜128 文字にしてください"),
        ({"interaction_id": None, "channel": None}, "不足: お問い合わせID（interaction_id）、チャネル（channel）"),
    ],
)  # fmt: skip
def test_the_japanese_desk_names_the_field_and_the_problem_in_japanese(
    desk_client,  # noqa: F811
    overrides,
    expected,
):
    answer = desk_client.get(desk_url(**overrides) + "&lang=ja")
    assert answer.status_code == 400
    problems = _problems(answer.get_data(as_text=True))
    assert any(p.startswith(expected) or expected in p for p in problems), problems
    for line in problems:  # no English sentence left: marshmallow's start with a capital
        assert not re.search(r"[A-Z][a-z]+ [a-z]+", line), line


def test_the_english_desk_names_the_customers_language_as_the_link_does(desk_client):  # noqa: F811
    problems = _problems(desk_client.get(desk_url(customer_language="x!") + "&lang=en").text)
    assert problems == ["customer_language: a language tag such as ja, en or ja-JP (BCP 47)"]
    # A message about the whole request names no field ("_schema" meant nothing to anyone).
    problems = _problems(desk_client.get(desk_url(customer_id="a%00b") + "&lang=en").text)
    assert problems == ["strings must not contain control characters (NUL, carriage return, ...)"]


def _message(field: fields.Field, value: object) -> str:
    try:
        field.deserialize(value)
    except ma.ValidationError as exc:
        return exc.messages[0]
    raise AssertionError(f"{field!r} took {value!r}")


def test_marshmallows_standard_messages_read_in_japanese():
    messages = {
        _message(fields.String(required=True), ma.missing): "指定が必要です",
        _message(fields.String(), None): "空にはできません",
        _message(fields.String(), 5): "文字列ではありません",
        _message(fields.Integer(), "x"): "整数ではありません",
        _message(fields.Float(), "x"): "数値ではありません",
        _message(fields.Float(allow_nan=False), "nan"): "NaN や無限大は指定できません",
        _message(fields.Boolean(), "x"): "true か false を指定してください",
        _message(fields.DateTime(), "x"): "日時として読み取れません（例: 2026-04-01T10:30:00+09:00）",
        _message(fields.String(validate=validate.OneOf(["a", "b"])), "c"): "a, b のいずれかを指定してください",
        _message(fields.String(validate=validate.Length(min=2)), "a"): "2 文字以上にしてください",
        _message(fields.String(validate=validate.Length(max=2)), "abc"): "2 文字以下にしてください",
        _message(fields.String(validate=validate.Length(equal=2)), "abc"): "2 文字にしてください",
        _message(fields.Integer(validate=validate.Range(min=1)), 0): "1 以上の値にしてください",
        _message(fields.Integer(validate=validate.Range(min=1, min_inclusive=False)), 0):
            "1 より大きい値にしてください",
        _message(fields.Integer(validate=validate.Range(max=7)), 9): "7 以下の値にしてください",
        _message(fields.Integer(validate=validate.Range(max=7, max_inclusive=False)), 9):
            "7 未満の値にしてください",
        _message(fields.Integer(validate=validate.Range(1, 7)), 9): "1 以上、7 以下の値にしてください",
        _message(fields.Integer(validate=validate.Range(0, 7, min_inclusive=False)), 0):
            "0 より大きく、7 以下の値にしてください",
        _message(fields.Integer(validate=validate.Range(1, 7, max_inclusive=False)), 9):
            "1 以上、7 未満の値にしてください",
        fields.Field.default_error_messages["validator_failed"]: "値が正しくありません",
    }  # fmt: skip
    for english, japanese in messages.items():
        assert desk.validation_text(english, "ja") == japanese, english
        assert desk.validation_text(english, "en") == english


def test_a_message_the_desk_does_not_know_is_shown_as_written_behind_a_japanese_lead_in():
    assert desk.validation_text("must be odd", "ja") == "値を確認してください（原文）: must be odd"
    assert desk.problem_lines({"contact": {"sentiment": ["must be odd"]}}, "ja") == [
        "感情スコア（sentiment）: 値を確認してください（原文）: must be odd"
    ]
    # A field the desk has no label for is named as it is.
    assert desk.problem_lines({"extra": ["Unknown field."]}, "ja") == [
        "extra: この項目は使えません"
    ]
