"""What pools are built from is held to the rules of the rest of vea: an offline log's
values (``vea pools rebuild --log``) to the canonical log's, agent ids (log rows and pool
members) to the outcome endpoint's."""

from __future__ import annotations

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
