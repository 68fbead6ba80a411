"""Language tags (BCP 47) in pools, routing, reasons and training logs: validated as the
decision body's ``LanguageTag`` is, stored canonical, and matched on the primary
language subtag (a ja-JP customer is a Japanese speaker; ``jam`` is not Japanese)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from core_fixtures import simulated

from models.matching import RoutingRules, route
from models.pools import (
    GENERAL,
    Pool,
    PoolError,
    load_catalogue,
    load_config,
    parse_config,
)
from models.reasons import describe, language_of
from models.schema import primary_language
from training.loading import DataError, validate_log

LONG_TAG = "de-CH-1901-x-phonebk"  # 20 characters: valid, longer than the old limit of 16
TOO_LONG = "en-" + "-".join(["abcdefgh"] * 4)  # 38 characters


def pools(languages: list[str]) -> dict:
    return {
        "pools": [
            {
                "id": "lang_pool",
                "activities": ["educate_usage"],
                "languages": languages,
                "members": ["agent-1"],
            },
            {"id": GENERAL},
        ]
    }


# ------------------------------------------------------------ pools config (models)
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (["JA_jp"], {"ja-JP"}),
        (["JA", "en-us"], {"ja", "en-US"}),
        (["ja", "JA"], {"ja"}),
        ([LONG_TAG], {"de-CH-1901-x-phonebk"}),
    ],
)
def test_pool_languages_are_stored_canonical(given, stored):
    pool = parse_config(pools(given)).by_id()["lang_pool"]
    assert pool.languages == frozenset(stored)


@pytest.mark.parametrize("tag", ["日本語", "j", "ja jp", "ja-", "-ja", "ja-JP!", TOO_LONG])
def test_a_pool_language_that_is_no_tag_is_refused_naming_pool_and_field(tag):
    with pytest.raises(PoolError) as err:
        parse_config(pools(["en", tag]))
    message = str(err.value)
    assert "pool 'lang_pool': languages:" in message and repr(tag) in message
    assert "a language tag such as ja, en or ja-JP (BCP 47)" in message


def test_the_pools_file_refuses_a_bad_language_and_canonicalises_the_rest(tmp_path):
    path = tmp_path / "pools.yaml"
    path.write_text(
        "pools:\n"
        "  - id: ja_pool\n"
        "    activities: [educate_usage]\n"
        "    languages: [日本語]\n"
        "    members: [agent-1]\n"
        "  - id: general\n",
        encoding="utf-8",
    )
    with pytest.raises(PoolError, match=r"pools.yaml: pool 'ja_pool': languages: '日本語'"):
        load_config(path)
    path.write_text(path.read_text(encoding="utf-8").replace("日本語", "JA_jp"), "utf-8")
    config = load_config(path)
    assert config.by_id()["ja_pool"].languages == frozenset({"ja-JP"})
    assert config.to_dict()["pools"][0]["languages"] == ["ja-JP"]


# --------------------------------------------------------------------- matching
@pytest.mark.parametrize(
    ("pool_languages", "contact", "served"),
    [
        ({"ja"}, "ja", True),
        ({"ja"}, "JA", True),
        ({"ja"}, "ja-JP", True),
        ({"ja"}, "ja_jp", True),
        ({"ja-JP"}, "ja-JP", True),
        ({"ja-JP"}, "ja", True),  # a Japanese speaker
        ({"en"}, "en-US", True),
        ({"en-US"}, "en", True),
        ({"en-US"}, "en-GB", True),
        ({"ja"}, "jam", False),  # Jamaican Creole
        ({"jam"}, "ja", False),
        ({"ja"}, "en", False),
        ({"ja"}, None, False),  # a restricted pool takes no contact of unknown language
        (None, None, True),
        (None, "jam", True),
    ],
)
def test_pools_match_on_the_primary_language(pool_languages, contact, served):
    languages = frozenset(pool_languages) if pool_languages is not None else None
    pool = Pool(id="p", activities=frozenset({"educate_usage"}), languages=languages)
    assert pool.serves("educate_usage", "voice", contact, "consumer") is served


def test_a_ja_jp_contact_is_routed_to_the_ja_pool():
    config = parse_config(pools(["ja"]))
    answer = route(
        config,
        activity="educate_usage",
        activities=[{"activity": "educate_usage", "success_probability": 0.5}],
        openness=0.4,
        availability={},
        rules=RoutingRules(),
        catalogue=load_catalogue(),
        none_value=0.4,
        channel="voice",
        language="ja-JP",
        segment="consumer",
    )
    assert answer["pool"] == "lang_pool"


def test_self_service_content_falls_back_to_the_primary_language():
    catalogue = load_catalogue()
    assert catalogue.find("educate_usage", "ja-JP").language == "ja"
    assert catalogue.find("educate_usage", "jam").language == "en"
    assert catalogue.find("educate_usage", None).language == "en"


@pytest.mark.parametrize(
    ("tag", "primary"), [("ja", "ja"), ("JA", "ja"), ("ja_jp", "ja"), ("zh-Hant-TW", "zh")]
)
def test_primary_language(tag, primary):
    assert primary_language(tag) == primary


# ---------------------------------------------------------------------- reasons
@pytest.mark.parametrize(
    ("tag", "text"),
    [("ja", "ja"), ("JA", "ja"), ("ja-JP", "ja"), ("jam", "en"), ("en", "en"), (None, "en")],
)
def test_reasons_language_is_decided_by_the_primary_subtag(tag, text):
    assert language_of(tag) == text


def test_jamaican_creole_gets_english_hints():
    assert describe("channel", "voice", "jam") == "channel: voice"
    assert describe("channel", "voice", "ja-JP") == "チャネル: 電話"


# ---------------------------------------------------------------- training logs
def _log(languages: dict[int, object]) -> pd.DataFrame:
    frame = simulated()[0].head(20).copy()
    frame["language"] = frame["language"].astype(object)
    for row, value in languages.items():
        frame.loc[frame.index[row], "language"] = value
    return frame


def test_the_loader_refuses_a_language_the_api_refuses():
    with pytest.raises(DataError) as err:
        validate_log(_log({2: "日本語", 5: TOO_LONG, 7: "日本語"}))
    message = str(err.value)
    hint = "not a language tag such as ja, en or ja-JP (BCP 47)"
    assert f"row 3, field language: {hint} (got '日本語')" in message
    assert f"row 8, field language: {hint} (got '日本語')" in message
    assert f"row 6, field language: {hint} of at most 35 characters" in message


def test_the_loader_canonicalises_valid_languages_and_keeps_missing_ones():
    out = validate_log(_log({0: "JA_jp", 1: "EN", 2: None}))
    assert list(out["language"].iloc[:2]) == ["ja-JP", "en"]
    assert pd.isna(out["language"].iloc[2])


# -------------------------------------------------------------------------- API
def test_put_pools_refuses_a_bad_language_naming_pool_and_field(client, keys, pools_from_the_file):
    response = client.put("/v1/pools", json=pools(["日本語"]), headers=keys["admin"])
    assert response.status_code == 422, response.json
    assert response.json["error"]["fields"]["pools"]["0"]["languages"]["0"] == [
        "a language tag such as ja, en or ja-JP (BCP 47)"
    ]
    response = client.put("/v1/pools", json=pools([TOO_LONG]), headers=keys["admin"])
    assert response.status_code == 422, response.json


def test_put_pools_stores_languages_canonical_and_takes_long_tags(
    client, keys, pools_from_the_file
):
    response = client.put("/v1/pools", json=pools(["JA_jp", LONG_TAG]), headers=keys["admin"])
    assert response.status_code == 200, response.json
    stored = next(p for p in response.json["pools"] if p["id"] == "lang_pool")
    assert stored["languages"] == ["de-CH-1901-x-phonebk", "ja-JP"]
    got = client.get("/v1/pools", headers=keys["desktop"]).json
    assert next(p for p in got["pools"] if p["id"] == "lang_pool")["languages"] == [
        "de-CH-1901-x-phonebk",
        "ja-JP",
    ]


# ------------------------------------------------------------- pages (lang of parts)
MARKS = """{% from "_lang.html" import said, lang_attr with context %}{{ said(text) }}|{{ lang_attr(text) }}"""


@pytest.mark.parametrize(
    ("page", "text", "inline", "attribute"),
    [
        ("ja", "Let me show you", '<span lang="en">Let me show you</span>', ' lang="en"'),
        (
            "ja",
            "Front line（general）",
            '<span lang="en">Front line（general）</span>',
            ' lang="en"',
        ),
        ("ja", "night-owl", '<span lang="en">night-owl</span>', ' lang="en"'),
        ("ja", "一般窓口（general）", "一般窓口（general）", ""),  # Japanese, naming an id
        ("ja", "VES（1-7）", "VES（1-7）", ""),  # an acronym alone: read as letters
        ("ja", "2026-11-27 13:29 UTC", "2026-11-27 13:29 UTC", ""),
        ("ja", "（原文）a new wording", '（原文）<span lang="en">a new wording</span>', ""),
        ("ja", "<b>", '<span lang="en">&lt;b&gt;</span>', ' lang="en"'),  # still escaped
        (  # a desk validation line whose message no pattern reads
            "ja",
            "件数: 値を確認してください（原文）: Not a valid count.",
            '件数: 値を確認してください（原文）: <span lang="en">Not a valid count.</span>',
            "",
        ),
        ("en", "一般窓口", '<span lang="ja">一般窓口</span>', ' lang="ja"'),
        ("en", "(original) 新しい文言", '(original) <span lang="ja">新しい文言</span>', ""),
        ("en", "Front line (general)", "Front line (general)", ""),
        ("en", "Stars · 2", "Stars · 2", ""),
    ],
)
def test_text_in_the_other_language_carries_its_lang(app, page, text, inline, attribute):
    """service/templates/_lang.html: what the desk and the dashboard mark (WCAG 3.1.2)."""
    shown = app.jinja_env.from_string(MARKS).render(text=text, language=page)
    assert shown == f"{inline}|{attribute}"


def test_the_pages_know_the_untranslated_marker_the_code_writes():
    """A sentence shown as its original follows a marker (desk.in_language, the gate
    reasons): the template must know it to mark what follows it."""
    from service.web import content, desk

    template = (Path(__file__).parent.parent / "service/templates/_lang.html").read_text("utf-8")
    for language, marker in {**desk._ORIGINAL, **content.UNTRANSLATED}.items():
        assert f'"{language}": "{marker}"' in template
