"""`vea evaluate --routing` checks its log as every other command does: it read the file
without the loader, so a ve_success of 7 was valued, an unknown activity dropped without
a word, a pool_propensity of 0 or 5 stopped it naming no row, and an empty one was taken
as 1 (a pool drawn among several valued as if routing had never explored)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from training.cli import cli

POOLS = {
    "pools": [
        {"id": "edu_a", "activities": ["educate_usage"], "members": ["a1"],
         "lift": {"educate_usage": 1.3}},
        {"id": "general"},
    ]
}  # fmt: skip


def routed_log(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    activity = np.where(rng.random(n) < 0.6, "educate_usage", "none")
    to_a = (activity == "educate_usage") & (rng.random(n) < 0.7)
    return pd.DataFrame(
        {
            "interaction_id": [f"i{i}" for i in range(n)],
            "customer_id": [f"c{i // 2}" for i in range(n)],
            "channel": "voice",
            "language": "en",
            "segment": "consumer",
            "issue_type": "billing",
            "activity": activity,
            "propensity": np.where(activity == "educate_usage", 0.6, 0.4),
            "pool_id": np.where(to_a, "edu_a", "general"),
            "pool_propensity": np.where(activity == "none", 1.0, np.where(to_a, 0.7, 0.3)),
            "ve_success": (rng.random(n) < 0.3).astype(int),
        }
    )


def routing(tmp_path, frame: pd.DataFrame):
    (tmp_path / "pools.json").write_text(json.dumps(POOLS))
    frame.to_csv(tmp_path / "log.csv", index=False)
    args = ["evaluate", "--data", tmp_path / "log.csv", "--pools", tmp_path / "pools.json"]
    args += ["--bootstrap", "50", "--routing", "best-proficiency", "--json", tmp_path / "r.json"]
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_a_good_log_is_valued(tmp_path):
    result = routing(tmp_path, routed_log())
    assert result.exit_code == 0, result.output
    answer = json.loads((tmp_path / "r.json").read_text())
    assert answer["rows_evaluated"] == 400 and answer["estimates"]["dr"]["n"] == 400


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("ve_success", 7, "row 8, field ve_success: must be 0 or 1 (got 7)"),
        ("activity", "bogus", "row 8, field activity: unknown activity"),
        ("propensity", -1, "row 8, field propensity: must be > 0 (got -1)"),
        ("pool_propensity", 0, "row 8, field pool_propensity: must be > 0 (got 0)"),
        ("pool_propensity", 5, "row 8, field pool_propensity: must be <= 1 (got 5)"),
        ("pool_propensity", "lots", "row 8, field pool_propensity: not a number (got 'lots')"),
        ("pool_propensity", None, "row 8, field pool_propensity: missing"),
    ],
)
def test_a_bad_row_is_refused_naming_it(tmp_path, field, value, message):
    frame = routed_log().astype({field: object})
    frame.loc[7, field] = value
    result = routing(tmp_path, frame)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert not (tmp_path / "r.json").exists()


def test_a_pool_propensity_whose_weight_overflows_is_refused_naming_the_row(tmp_path):
    frame = routed_log()
    frame.loc[7, "pool_propensity"] = 1e-300
    result = routing(tmp_path, frame)
    assert result.exit_code == 1, result.output
    assert "row 8, field pool_propensity: too small to value a policy with" in result.output
