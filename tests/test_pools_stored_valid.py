"""No writer stores a pools config the routers would refuse to read.

Every router re-reads the stored config with ``parse_config``; one it refuses leaves it on
its last good config, silently. ``PUT /v1/pools``, ``POST /v1/pools/rebuild`` and
``vea pools rebuild`` each get a clear error instead, and the stored config stays as it was.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from models.pools import MIN_LIFT, PoolError, parse_config
from service import pools as use_cases
from service.db import decisions, outcomes, utcnow
from training.cli import cli

# The model was all but sure of every contact (p = 0.9999) and the agent failed them all:
# the rebuilt lift of a pool with this agent rounds to 0.0, which no reader accepts.
SURE = 0.9999
ATTEMPTS = 30


def static_pools(agent: str, lift: float = 1.3) -> dict:
    return {
        "pools": [
            {"id": "edu_pool", "activities": ["educate_usage"], "members": [agent],
             "lift": {"educate_usage": lift}},
            {"id": "general"},
        ]
    }  # fmt: skip


def stored_config(engine) -> dict | None:
    row = use_cases.stored(engine)
    return None if row is None else row["config"]


# ------------------------------------------------------------------------ the use case
def test_save_config_refuses_what_the_routers_would_refuse(pools_from_the_file):
    engine = pools_from_the_file
    good = parse_config(static_pools("agent-1"))
    use_cases.save_config(engine, good, actor="test")
    # Made in code, as a rebuild makes its config, not parsed: what no reader takes.
    edu = good.by_id()["edu_pool"]
    bad = good.with_pools([replace(edu, lift={"educate_usage": 0.0}), good.general])
    with pytest.raises(PoolError, match=r"pool 'edu_pool': lift\.educate_usage"):
        use_cases.save_config(engine, bad, actor="test")
    assert stored_config(engine) == good.to_dict()


# ------------------------------------------------------------------------------ API
def test_put_pools_refuses_a_config_stored_unreadable(client, keys, pools_from_the_file):
    admin = keys["admin"]
    assert client.put("/v1/pools", json=static_pools("agent-1"), headers=admin).status_code == 200
    before = client.get("/v1/pools", headers=admin).json

    # Within the schema's (0, 5], but stored with 4 decimals it would read 0.0.
    refused = client.put("/v1/pools", json=static_pools("agent-1", lift=0.00004), headers=admin)
    assert refused.status_code == 422, refused.json
    error = refused.json["error"]
    assert "pool 'edu_pool': lift.educate_usage" in error["message"]
    assert error["fields"] == {"pools": [error["message"]]}
    assert client.get("/v1/pools", headers=admin).json == before


@pytest.fixture
def sure_failures(app, new_id):
    """An agent who failed ``ATTEMPTS`` stored contacts the model was sure of (removed
    afterwards: the API suite shares its database)."""
    engine = app.extensions["vea"].engine
    agent = new_id("sure-fail-")
    ids = [new_id() for _ in range(ATTEMPTS)]
    now = utcnow()
    answer = {"activities": [{"activity": "educate_usage", "success_probability": SURE}]}
    with engine.begin() as conn:
        conn.execute(
            decisions.insert(),
            [
                {"decision_id": i, "interaction_id": new_id("i-"), "customer_id": new_id("c-"),
                 "occurred_at": now, "created_at": now, "features": {},
                 "suggested_activity": "educate_usage", "propensity": 1.0,
                 "model_version": "test", "openness": 0.5, "response": answer}
                for i in ids
            ],
        )  # fmt: skip
        conn.execute(
            outcomes.insert(),
            [
                {"decision_id": i, "activity": "educate_usage", "offered": True,
                 "ve_success": False, "agent_id": agent, "occurred_at": now,
                 "recorded_at": now, "payload": {}}
                for i in ids
            ],
        )  # fmt: skip
    yield agent
    with engine.begin() as conn:
        conn.execute(outcomes.delete().where(outcomes.c.decision_id.in_(ids)))
        conn.execute(decisions.delete().where(decisions.c.decision_id.in_(ids)))


def test_a_hopeless_static_member_gets_the_least_lift_a_config_holds(
    client, keys, pools_from_the_file, sure_failures
):
    """The rebuild's measured lift rounds to 0.0, which no reader accepts: it is stored as
    MIN_LIFT instead of stopping every rebuild of the pools."""
    admin = keys["admin"]
    stored = client.put("/v1/pools", json=static_pools(sure_failures), headers=admin)
    assert stored.status_code == 200, stored.json

    rebuilt = client.post("/v1/pools/rebuild", json={"min_contacts": 1}, headers=admin)
    assert rebuilt.status_code == 200, rebuilt.json
    (edu,) = [
        p for p in client.get("/v1/pools", headers=admin).json["pools"] if p["id"] == "edu_pool"
    ]
    assert edu["lift"] == {"educate_usage": MIN_LIFT}


# ------------------------------------------------------------------------------ CLI
def cli_env(tmp_path, pools: dict) -> dict[str, str]:
    pools_file = tmp_path / "pools.yaml"
    pools_file.write_text(yaml.safe_dump(pools))
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db", "VEA_POOLS": str(pools_file)}
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    return env


def log_file(tmp_path, rows: list[tuple[str, bool, float]]):
    """A log of educate_usage attempts: (agent, success, the model's probability)."""
    path = tmp_path / "log.csv"
    pd.DataFrame(
        {
            "agent_id": [agent for agent, _, _ in rows],
            "activity": "educate_usage",
            "ve_success": [int(success) for _, success, _ in rows],
            "p": [p for _, _, p in rows],
        }
    ).to_csv(path, index=False)
    return path


def test_vea_pools_rebuild_stores_the_least_lift_for_a_hopeless_member(tmp_path):
    env = cli_env(tmp_path, static_pools("sure-fail"))
    log = log_file(tmp_path, [("sure-fail", False, SURE)] * ATTEMPTS)
    base = ["pools", "rebuild", "--log", str(log), "--prob-column", "p", "--min-contacts", "1"]
    result = CliRunner().invoke(cli, base, env=env)
    assert result.exit_code == 0, result.output
    assert "edu_pool: lift educate_usage" in result.stdout
    shown = CliRunner().invoke(cli, ["pools", "show", "--json"], env=env)
    (edu,) = [p for p in json.loads(shown.stdout)["pools"] if p["id"] == "edu_pool"]
    assert edu["lift"] == {"educate_usage": MIN_LIFT}


def test_vea_pools_rebuild_refuses_a_member_the_routers_would_refuse(tmp_path):
    """An agent id longer than a pool's members may be (128) is refused as the log is read
    (it is no agent_id the outcome endpoint takes either): nothing written."""
    pools = {
        "pools": [
            {"id": "edu_pool", "activities": ["educate_usage"], "membership": "proficiency"},
            {"id": "general"},
        ]
    }
    env = cli_env(tmp_path, pools)
    star = "s" * 129
    rows = [(star, True, 0.3)] * 40
    rows += [(f"plain-{k % 10}", False, 0.3) for k in range(10 * 40)]
    log = log_file(tmp_path, rows)
    runner = CliRunner()
    out = tmp_path / "rebuilt.yaml"
    base = ["pools", "rebuild", "--log", str(log), "--prob-column", "p", "--min-contacts", "1"]
    for extra in ([], ["--out", str(out)], ["--dry-run"]):
        result = runner.invoke(cli, [*base, *extra], env=env)
        assert result.exit_code == 1, result.output
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert f"{log}: row 1, column agent_id: must be 1-128 characters" in line
    assert not out.exists()
    assert "pools from the file" in runner.invoke(cli, ["pools", "show"], env=env).stdout
