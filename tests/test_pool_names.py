"""Pools may have a display name per language (`name: {en: ..., ja: ...}`): validated
like the rest of the config, answered by the API, shown by the dashboard (pools table and
results by pool) and `vea pools show`; a config without names keeps working and shows
ids."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

from models.pools import PoolError, load_config, parse_config
from service.config import PACKAGE_DIR
from tests.test_pages import _cells, log_in, raw_key
from tests.test_pools_general import _pool_cells, _values
from training.cli import cli

NAMED = {
    "pools": [
        {
            "id": "edu",
            "name": {"en": "Better usage", "ja": "使い方のご案内"},
            "activities": ["educate_usage"],
            "members": ["agent-1"],
        },
        {"id": "growth", "activities": ["advise_new_uses"], "members": ["agent-2"]},
        {"id": "general", "name": {"ja": "一般窓口"}},
    ]
}


# -------------------------------------------------------------------- models
def test_a_name_is_read_in_the_readers_language_else_english_else_the_id():
    pools = parse_config(NAMED).by_id()
    assert pools["edu"].display_name("ja") == "使い方のご案内"
    assert pools["edu"].display_name("ja-JP") == "使い方のご案内"  # by the primary language
    assert pools["edu"].display_name("en") == "Better usage"
    assert pools["edu"].display_name("fr") == "Better usage"
    assert pools["edu"].display_name(None) == "Better usage"
    assert pools["general"].display_name("en") == "general"  # no English name: the id
    assert pools["growth"].display_name("ja") == "growth"  # no name at all: the id
    stored = parse_config(NAMED).to_dict()
    assert stored["pools"][0]["name"] == {"en": "Better usage", "ja": "使い方のご案内"}
    assert "name" not in stored["pools"][1]
    assert parse_config(stored) == parse_config(NAMED)


def test_the_default_pools_are_named_in_both_languages():
    for pool in load_config(PACKAGE_DIR / "pools.default.yaml").pools:
        assert set(pool.name) == {"en", "ja"}, pool.id


@pytest.mark.parametrize(
    "name, message",
    [
        ("Better usage", "name must map languages to names"),
        ({}, "name must map languages to names"),
        ({"EN": "x"}, "'EN' is not a language code"),
        ({"en-US": "x"}, "'en-US' is not a language code"),
        ({"en": ""}, "name.en must be one line of 1-80 characters"),
        ({"en": "   "}, "name.en must be one line"),
        ({"en": "x" * 81}, "name.en must be one line"),
        ({"en": "two\nlines"}, "name.en must be one line"),
        ({"en": 3}, "name.en must be one line"),
        ({"ja": "教育; 案内"}, "name.ja must not contain '; '"),
    ],
)
def test_a_bad_name_is_refused_with_the_pool_named(name, message):
    pools = [{"id": "edu", "name": name, "members": ["a"]}, {"id": "general"}]
    with pytest.raises(PoolError) as refused:
        parse_config({"pools": pools})
    assert str(refused.value).startswith("pool 'edu': ")
    assert message in str(refused.value)


# ----------------------------------------------------------------------- API
def test_the_api_stores_and_answers_names(client, keys, pools_from_the_file):
    put = client.put("/v1/pools", json=NAMED, headers=keys["admin"])
    assert put.status_code == 200, put.get_json()
    pools = {p["id"]: p for p in client.get("/v1/pools", headers=keys["manager"]).json["pools"]}
    assert pools["edu"]["name"] == {"en": "Better usage", "ja": "使い方のご案内"}
    assert pools["general"]["name"] == {"ja": "一般窓口"}
    assert "name" not in pools["growth"]  # a config without names keeps working

    bad = {"pools": [{**NAMED["pools"][0], "name": {"en": "a\tb"}}, {"id": "general"}]}
    refused = client.put("/v1/pools", json=bad, headers=keys["admin"])
    assert refused.status_code == 422
    assert "pool 'edu': name.en" in refused.get_json()["error"]["message"]
    wrong_key = {"pools": [{**NAMED["pools"][0], "name": {"English": "x"}}, {"id": "general"}]}
    refused = client.put("/v1/pools", json=wrong_key, headers=keys["admin"])
    assert refused.status_code == 422 and "pools" in refused.get_json()["error"]["fields"]
    long = {"pools": [{**NAMED["pools"][0], "name": {"en": "x" * 81}}, {"id": "general"}]}
    assert client.put("/v1/pools", json=long, headers=keys["admin"]).status_code == 422


def test_the_openapi_document_has_the_name(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    for schema in ("Pool", "PoolAnswer"):
        name = schemas[schema]["properties"]["name"]
        assert name["type"] == "object"
        assert name["additionalProperties"]["type"] == "string"


# ----------------------------------------------------------------- dashboard
def test_the_dashboard_shows_pools_by_name(app, client, keys, pools_from_the_file, new_id):
    assert client.put("/v1/pools", json=NAMED, headers=keys["admin"]).status_code == 200
    # A treated contact routed to general, so the results by pool have a row for it.
    decision = client.post(
        "/v1/decisions",
        json={
            "interaction_id": new_id("names-"),
            "customer": {"customer_id": new_id("c-"), "tenure_months": 3},
            "contact": {"channel": "voice", "issue_type": "inquiry", "language": "ja"},
        },
        headers=keys["desktop"],
    ).get_json()
    outcome = client.post(
        f"/v1/decisions/{decision['decision_id']}/outcome",
        json={"offered": False, "handle_time_s": 200, "agent_id": "agent-9"},
        headers=keys["desktop"],
    )
    assert outcome.status_code in (200, 201), outcome.get_json()
    pool = decision["route"]["pool"]

    manager = app.test_client()
    log_in(manager, raw_key(keys["manager"]))
    english = manager.get("/dashboard?period=all&lang=en").get_data(as_text=True)
    shown = _pool_cells(english, "id")
    assert shown["edu"] == "Better usage (edu)"
    assert shown["growth"] == "growth"  # no name: the id
    assert shown["general"] == "general"  # no English name: the id
    japanese = manager.get("/dashboard?period=all&lang=ja").get_data(as_text=True)
    shown = _pool_cells(japanese, "id")
    assert shown["edu"] == "使い方のご案内（edu）"
    assert shown["general"] == "一般窓口（general）"
    # Results by pool name the pool (the CSV keeps the id).
    ids, cells = _values(japanese, "by_pool_id", "group"), _cells(japanese, "by_pool_id", "group")
    groups = dict(zip(ids, cells, strict=True))
    expected = {"general": "一般窓口", "edu": "使い方のご案内", "growth": "growth"}
    assert groups[pool] == expected.get(pool, pool)

    pools = manager.get("/dashboard/pools.csv?lang=ja").get_data().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(pools)))
    assert [row["id"] for row in rows] == ["edu", "growth", "general"]
    by_pool = (
        manager.get("/dashboard/by_pool_id.csv?period=all&lang=ja").get_data().decode("utf-8-sig")
    )
    assert pool in {row["group"] for row in csv.DictReader(io.StringIO(by_pool))}


# ----------------------------------------------------------------------- CLI
def test_vea_pools_show_prints_the_names(tmp_path):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    shown = runner.invoke(cli, ["pools", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    growth = next(line for line in shown.stdout.splitlines() if "value_growth" in line)
    assert growth.split()[0] == "value_growth"
    assert growth.endswith("name: Needs and new uses / ニーズ先回り・新しい使い方")
