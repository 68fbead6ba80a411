"""A rebuild keeps the lift a pool has where it measured nothing: too few outcomes are no
evidence against the lift an operator set (or an earlier rebuild measured). And a pool
whose lift makes it worth exactly what general is (lift 1) is said to be worth the same,
not less, in the route's reason."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from models.pools import parse_config
from models.proficiency import Proficiency, rebuild_pools
from training.cli import cli

STATIC = {
    "pools": [
        {
            "id": "value_a",
            "activities": ["educate_usage", "achieve_goals"],
            "members": ["lifts-a-1", "lifts-a-2"],
            "lift": {"educate_usage": 1.2, "achieve_goals": 1.15},
        },
        {
            "id": "value_b",
            "activities": ["validate_purchase"],
            "members": ["lifts-b-1"],
            "lift": {"validate_purchase": 1.15},
        },
        {"id": "general"},
    ]
}


def cell(agent, activity, contacts, estimate):
    return Proficiency(agent, activity, contacts, 0.0, 1.0, estimate, estimate, estimate)


def test_too_few_contacts_keep_the_configured_lift_and_say_so():
    config = parse_config(STATIC)
    proficiency = [
        cell("lifts-a-1", "educate_usage", 17, 0.52),  # below min_contacts: not measured
        cell("lifts-a-2", "achieve_goals", 40, 1.3),  # measured: replaces 1.15
    ]
    result = rebuild_pools(config, proficiency, min_contacts=30)
    lifts = {p.id: dict(p.lift) for p in result.config.pools}
    assert lifts["value_a"] == {"educate_usage": 1.2, "achieve_goals": 1.3}
    assert lifts["value_b"] == {"validate_purchase": 1.15}
    assert "value_a: lift educate_usage 1.20 kept (no member has 30 attempts at it yet)" in (
        result.changes
    )
    assert "value_a: lift achieve_goals 1.15 -> 1.30" in result.changes
    assert not any("-> -" in line for line in result.changes)


def test_the_api_rebuild_keeps_the_lifts_put(client, keys, pools_from_the_file):
    assert client.put("/v1/pools", json=STATIC, headers=keys["admin"]).status_code == 200
    done = client.post("/v1/pools/rebuild", json={}, headers=keys["admin"])
    assert done.status_code == 200, done.json
    assert done.json["stored"] is True
    assert "value_b: lift validate_purchase 1.15 kept" in " ".join(done.json["changes"])
    pools = {p["id"]: p for p in client.get("/v1/pools", headers=keys["admin"]).json["pools"]}
    assert pools["value_a"]["lift"] == {"achieve_goals": 1.15, "educate_usage": 1.2}
    assert pools["value_b"]["lift"] == {"validate_purchase": 1.15}


def test_vea_pools_rebuild_without_outcomes_stores_the_lifts_unchanged(tmp_path):
    pools_file = tmp_path / "pools.yaml"
    pools_file.write_text(yaml.safe_dump(STATIC))
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db", "VEA_POOLS": str(pools_file)}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    rebuilt = runner.invoke(cli, ["pools", "rebuild"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "value_a: lift educate_usage 1.20 kept" in rebuilt.stdout
    assert "-> -" not in rebuilt.stdout
    shown = json.loads(runner.invoke(cli, ["pools", "show", "--json"], env=env).stdout)
    assert shown["source"] == "database"
    lifts = {p["id"]: p.get("lift") for p in shown["pools"]}
    assert lifts["value_a"] == {"achieve_goals": 1.15, "educate_usage": 1.2}
    assert lifts["value_b"] == {"validate_purchase": 1.15}


@pytest.mark.parametrize(
    ("language", "same", "less"),
    [
        ("en", "p2: the same expected value for this contact", "p3: lower expected value"),
        ("ja", "p2はこの問い合わせでの期待価値が同じ", "p3はこの問い合わせでは期待価値が低い"),
    ],
)
def test_a_pool_tied_with_general_is_said_to_be_worth_the_same(language, same, less):
    from models.matching import RoutingRules, route

    config = parse_config(
        {
            "pools": [
                {"id": "general"},  # listed first: it takes the tie
                {"id": "p2", "activities": ["educate_usage"], "members": ["a"]},
                {"id": "p3", "activities": ["educate_usage"], "members": ["b"],
                 "lift": {"educate_usage": 0.9}},
            ]
        }
    )  # fmt: skip
    answer = route(
        config,
        activity="educate_usage",
        activities=[{"activity": "educate_usage", "success_probability": 0.3}],
        openness=0.5,
        channel="voice",
        language=language,
        segment="consumer",
        availability={},
        rules=RoutingRules(value_of_success=40.0),
    )
    values = {o["pool"]: o["expected_value"] for o in answer["ranked"]}
    assert answer["pool"] == "general" and values["p2"] == values["general"] > values["p3"]
    assert same in answer["reason"] and less in answer["reason"], answer["reason"]
    assert (
        "p2: lower" not in answer["reason"]
        and "p2は" + "この問い合わせでは" not in answer["reason"]
    )
