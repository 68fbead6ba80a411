"""The `general` pool takes every contact and every agent answers it (the last fallback):
the dashboard and `vea pools show` say so instead of "0 members", in both languages; the
CSV keeps ids (membership `all_agents`, no member count)."""

from __future__ import annotations

import csv
import io

from click.testing import CliRunner

from tests.test_pages import _cells, log_in, raw_key
from training.cli import cli


def _pool_cells(page: str, column: str) -> dict[str, str]:
    return dict(zip(_cells(page, "pools", "id"), _cells(page, "pools", column), strict=True))


def test_the_dashboard_says_every_agent_answers_general(app, keys):
    manager = app.test_client()
    log_in(manager, raw_key(keys["manager"]))
    english = manager.get("/dashboard?period=all&lang=en").get_data(as_text=True)
    members, membership = _pool_cells(english, "members"), _pool_cells(english, "membership")
    assert members["general"] == "all agents"
    assert membership["general"] == "every agent (last fallback)"
    # The other pools keep their counts, their membership named.
    assert membership["value_growth"] == "proven agents (pool rebuild)"
    assert members["value_growth"].isdigit()
    japanese = manager.get("/dashboard?period=all&lang=ja").get_data(as_text=True)
    assert _pool_cells(japanese, "members")["general"] == "全員"
    assert _pool_cells(japanese, "membership")["general"] == "全担当者（最後の受け皿）"
    rows = csv.DictReader(io.StringIO(manager.get("/dashboard/pools.csv?lang=ja").text))
    by_id = {row["id"]: row for row in rows}
    assert (by_id["general"]["membership"], by_id["general"]["members"]) == ("all_agents", "")
    assert by_id["value_growth"]["membership"] == "proficiency"
    assert by_id["value_growth"]["members"].isdigit()


def test_vea_pools_show_says_every_agent_answers_general(tmp_path):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    shown = runner.invoke(cli, ["pools", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    (general,) = [line for line in shown.stdout.splitlines() if line.split()[:1] == ["general"]]
    assert "0 members" not in general
    assert "all_agents" in general and "every agent (the last fallback)" in general
    growth = next(line for line in shown.stdout.splitlines() if "value_growth" in line)
    assert "proficiency" in growth and " members" in growth
