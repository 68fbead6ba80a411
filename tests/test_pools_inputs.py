"""What pools are built from is held to the rules of the rest of vea: an offline log's
values (``vea pools rebuild --log``) to the canonical log's, agent ids (log rows and pool
members) to the outcome endpoint's."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from click.testing import CliRunner

from models.pools import PoolError
from service.pools import log_records
from training.cli import cli


def small_log(path, **columns):
    """Four attempts of two agents, with the model's probability in column ``pp``."""
    frame = pd.DataFrame(
        {
            "agent_id": ["agent-1", "agent-1", "agent-2", "agent-2"],
            "activity": ["educate_usage", "educate_usage", "achieve_goals", "none"],
            "ve_success": [1, 0, 1, 0],
            "offered": [1, 1, 1, 0],
            "pp": [0.4, 0.5, 0.6, 0.3],
        }
    )
    for name, values in columns.items():
        frame[name] = pd.Series(values, dtype=object)
    frame.to_csv(path, index=False)
    return path


def test_a_clean_log_is_read_with_empty_outcomes_left_out(tmp_path):
    path = small_log(tmp_path / "log.csv", ve_success=[1, None, 0, None])
    records = log_records(str(path), prob_column="pp")
    assert [(a, act, s, p) for a, act, s, p in records] == [
        ("agent-1", "educate_usage", 1.0, 0.4),
        ("agent-2", "achieve_goals", 0.0, 0.6),
    ]


@pytest.mark.parametrize(
    ("column", "values", "said"),
    [
        ("pp", [0.4, 1.7, 0.6, 0.3], "row 2, column pp: must be <= 1 (got 1.7)"),
        ("pp", [0.4, 0.5, -0.5, 0.3], "row 3, column pp: must be >= 0 (got -0.5)"),
        ("pp", ["abc", 0.5, 0.6, 0.3], "row 1, column pp: not a number (got 'abc')"),
        ("pp", [0.4, None, 0.6, 0.3], "row 2, column pp: missing"),
        ("ve_success", [1, 5, 1, 0], "row 2, column ve_success: must be 0 or 1 (got 5)"),
        ("ve_success", [1, 0, "yes", 0], "row 3, column ve_success: not a number (got 'yes')"),
        ("offered", [1, 1, 2, 0], "row 3, column offered: must be 0 or 1 (got 2)"),
        ("activity", ["educate_usage", "upsell", "none", "none"], "row 2, column activity"),
        ("agent_id", ["agent-1", " agent-1 ", "a", "b"], "row 2, column agent_id: must not"),
        ("agent_id", ["a\u200b", "a", "b", "c"], "row 1, column agent_id: must not contain"),
        ("agent_id", ["x" * 129, "a", "b", "c"], "row 1, column agent_id: must be 1-128"),
    ],
)
def test_a_bad_value_is_refused_naming_its_column_and_row(tmp_path, column, values, said):
    path = small_log(tmp_path / "log.csv", **{column: values})
    with pytest.raises(PoolError) as refused:
        log_records(str(path), prob_column="pp")
    assert said in str(refused.value)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_p_activity_columns_are_checked_where_they_are_read(tmp_path):
    from models.activities import VALUE_ACTIVITIES

    frame = pd.read_csv(small_log(tmp_path / "log.csv")).drop(columns="pp")
    for activity in VALUE_ACTIVITIES:
        frame[f"p_{activity}"] = 0.5
    frame.loc[3, "p_educate_usage"] = 9.0  # a `none` row: its columns are not read
    frame.to_parquet(tmp_path / "ok.parquet")
    assert len(log_records(str(tmp_path / "ok.parquet"))) == 3
    frame.loc[1, "p_educate_usage"] = 1.5
    frame.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(PoolError, match=r"row 2, column p_educate_usage: must be <= 1"):
        log_records(str(tmp_path / "bad.parquet"))


def test_the_rebuild_command_refuses_and_stores_nothing(tmp_path):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    path = small_log(tmp_path / "log.csv", pp=[0.4, 1.7, 0.6, 0.3])
    refused = runner.invoke(
        cli, ["pools", "rebuild", "--log", str(path), "--prob-column", "pp"], env=env
    )
    assert refused.exit_code == 1, refused.output
    lines = refused.output.strip().splitlines()
    assert lines == [f"Error: {path}: row 2, column pp: must be <= 1 (got 1.7)"]
    shown = runner.invoke(cli, ["pools", "show"], env=env)
    assert "pools from the file" in shown.stdout and "no proficiency" in shown.stdout


# ------------------------------------------------- vea evaluate --routing's pools config
def routed_log(path, n=2000, educate_share=0.5, seed=1):
    """A vea export's routing columns: educate_usage attempts routed to edu_a (70%) or
    general, the rest `none` to general."""
    import numpy as np

    rng = np.random.default_rng(seed)
    activity = np.where(rng.random(n) < educate_share, "educate_usage", "none")
    to_a = (activity == "educate_usage") & (rng.random(n) < 0.7)
    pd.DataFrame(
        {
            "customer_id": [f"c{i // 2}" for i in range(n)],
            "channel": "voice",
            "language": "en",
            "segment": "consumer",
            "issue_type": "inquiry",
            "activity": activity,
            "propensity": np.where(activity == "educate_usage", educate_share, 1 - educate_share),
            "pool_id": np.where(to_a, "edu_a", "general"),
            "pool_propensity": np.where(activity == "none", 1.0, np.where(to_a, 0.7, 0.3)),
            "ve_success": (rng.random(n) < np.where(to_a, 0.5, 0.3)).astype(int),
        }
    ).to_csv(path, index=False)
    return path


EDU_A = {
    "pools": [
        {"id": "edu_a", "activities": ["educate_usage"], "members": ["a1"],
         "lift": {"educate_usage": 1.3}},
        {"id": "general"},
    ]
}  # fmt: skip
OTHER = {"pools": [{"id": "other", "activities": ["achieve_goals"], "members": ["b"]},
                   {"id": "general"}]}  # fmt: skip


def routing_env(tmp_path, stored: dict | None):
    """VEA_POOLS names OTHER (not the log's pools); ``stored`` is PUT in the database."""
    import yaml

    from models.pools import parse_config
    from service.db import make_engine
    from service.pools import save_config

    (tmp_path / "pools.yaml").write_text(yaml.safe_dump(OTHER))
    env = {
        "VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db",
        "VEA_POOLS": str(tmp_path / "pools.yaml"),
    }
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    if stored is not None:
        engine = make_engine(env["VEA_DATABASE_URL"])
        save_config(engine, parse_config(stored))
        engine.dispose()
    return env


def evaluate_routing(tmp_path, env, *extra):
    import json

    out = tmp_path / "r.json"
    base = ["evaluate", "--data", str(tmp_path / "log.csv"), "--bootstrap", "50"]
    result = CliRunner().invoke(
        cli, [*base, "--routing", "best-proficiency", "--json", str(out), *extra], env=env
    )
    assert result.exit_code == 0, result.output
    return result, json.loads(out.read_text())


def test_routing_is_valued_with_the_config_the_service_routes_with(tmp_path):
    routed_log(tmp_path / "log.csv")
    env = routing_env(tmp_path, stored=EDU_A)
    shown = CliRunner().invoke(cli, ["pools", "show"], env=env)
    assert "pools from the database" in shown.stdout and "edu_a" in shown.stdout
    result, answer = evaluate_routing(tmp_path, env)
    assert answer["rows_dropped"] == 0 and answer["rows_evaluated"] == 2000
    assert answer["pools_config"].startswith("the service database")
    assert "warning" not in result.stderr


def test_rows_left_out_for_pools_not_in_the_config_are_warned_of(tmp_path):
    routed_log(tmp_path / "log.csv")
    env = routing_env(tmp_path, stored=None)  # nothing stored: the file's OTHER
    result, answer = evaluate_routing(tmp_path, env)
    assert answer["rows_dropped"] > 600
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "rows (" in line and "their pool is not in the pools config (edu_a " in line
    assert "--pools FILE" in line and str(tmp_path / "pools.yaml") in line
    (tmp_path / "edu_a.yaml").write_text(__import__("yaml").safe_dump(EDU_A))
    result, answer = evaluate_routing(tmp_path, env, "--pools", str(tmp_path / "edu_a.yaml"))
    assert answer["rows_dropped"] == 0 and "warning" not in result.stderr


def test_an_estimate_on_a_small_effective_sample_is_warned_of(tmp_path):
    routed_log(tmp_path / "log.csv", educate_share=0.04)
    env = routing_env(tmp_path, stored=EDU_A)
    result, answer = evaluate_routing(tmp_path, env, "--activity", "educate_usage")
    ess = answer["diagnostics"]["ess"]
    assert ess < 0.1 * answer["rows_evaluated"]
    assert f"effective sample size of {ess:.1f} of {answer['rows_evaluated']} rows" in (
        result.stderr
    )
    assert answer["warnings"] and "effective sample size" in answer["warnings"][-1]


# ------------------------------------------------------------ a pools file not in UTF-8
def test_a_pools_file_not_in_utf8_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes("pools:\n  - id: 一般\n".encode("shift_jis") + b"\xff\n")
    runner = CliRunner()
    for variable in ("VEA_POOLS", "VEA_SELF_SERVICE_CONTENT"):
        env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db", variable: str(bad)}
        shown = runner.invoke(cli, ["pools", "show"], env=env)
        assert shown.exit_code == 1, shown.output
        (line,) = shown.output.strip().splitlines()
        assert line.startswith(f"Error: {variable}: {bad}: not UTF-8 text (byte 0x"), line


# ------------------------------------------------------- pool members as outcome agent ids
@pytest.mark.parametrize(
    ("member", "said"),
    [
        (" a ", "must not begin or end with whitespace"),
        ("a\u200b", "must not contain invisible characters"),
        ("e\u0301", "must be in Unicode normalization form NFC"),
        ("a\rb", "must not contain control characters"),
    ],
)
def test_a_member_no_outcome_could_name_is_refused(client, keys, pools_from_the_file, member, said):
    from models.pools import parse_config

    config = {"pools": [{"id": "value_a", "activities": ["educate_usage"],
                         "members": ["agent-1", member]}, {"id": "general"}]}  # fmt: skip
    with pytest.raises(PoolError, match=re.escape(f"pool 'value_a': member {member!r}: {said}")):
        parse_config(config)
    put = client.put("/v1/pools", json=config, headers=keys["admin"])
    assert put.status_code == 422, put.json
    # The rule is the outcome endpoint's own: a plain member is taken.
    config["pools"][0]["members"][1] = "é"
    assert client.put("/v1/pools", json=config, headers=keys["admin"]).status_code == 200
