"""The `general` pool takes every contact and every agent answers it (the last fallback):
the API (`all_activities: true`, membership `all_agents`), the dashboard and `vea pools
show` say so instead of "a static pool of 0 members and no activities", in both
languages; the CSV keeps ids (`all_activities`, `all_agents`, no member count); configs
stored before read the same, and one contradicting it is refused."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from click.testing import CliRunner

from service.db import pool_config, utcnow
from tests.test_pages import _cells, log_in, raw_key
from training.cli import cli


def _values(page: str, table: str, column: str) -> list[str]:
    """The raw values (``data-value``: ids, as the API names them) of one column."""
    section = re.search(rf'id="table-{table}">(.*?)</section>', page, re.S).group(1)
    columns = re.findall(r'<th scope="col"[^>]*data-column="([^"]+)"', section)
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>")[1], re.S)
    index = columns.index(column)
    # The first cell is the row's header (th scope=row), the others data cells.
    cells = [re.findall(r'<(?:th|td)\b[^>]*data-value="([^"]*)"', r)[index] for r in rows]
    return [html.unescape(c) for c in cells]


def _pool_cells(page: str, column: str) -> dict[str, str]:
    """A column of the pools table as shown, by pool id (the id cell shows the name)."""
    return dict(zip(_values(page, "pools", "id"), _cells(page, "pools", column), strict=True))


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
    assert _pool_cells(japanese, "membership")["general"] == "全エージェント（最後の受け皿）"
    rows = csv.DictReader(
        io.StringIO(manager.get("/dashboard/pools.csv?lang=ja").get_data().decode("utf-8-sig"))
    )
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
    pools = shown.stdout.split("\navailability")[0]  # the pools, before their availability
    (general,) = [line for line in pools.splitlines() if line.split()[:1] == ["general"]]
    assert "0 members" not in general
    assert "all_agents" in general and "every agent (the last fallback)" in general
    growth = next(line for line in shown.stdout.splitlines() if "value_growth" in line)
    assert "proficiency" in growth and " members" in growth


# ------------------------------------------------------------------- the API
def _by_id(answer: dict) -> dict[str, dict]:
    return {p["id"]: p for p in answer["pools"]}


def test_the_api_says_general_takes_every_activity_and_every_agent(
    client, keys, pools_from_the_file
):
    pools = _by_id(client.get("/v1/pools", headers=keys["manager"]).get_json())
    general = pools["general"]
    assert general["all_activities"] is True and general["activities"] == []
    assert general["membership"] == "all_agents" and general["members"] == []
    assert pools["value_growth"]["all_activities"] is False
    assert pools["value_growth"]["membership"] == "proficiency"

    # What GET answers can be PUT back as it is, and reads the same afterwards.
    answer = client.get("/v1/pools", headers=keys["admin"]).get_json()
    put = client.put("/v1/pools", json={"pools": answer["pools"]}, headers=keys["admin"])
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["pools"] == answer["pools"]


def test_a_config_stored_before_reads_general_truthfully(client, keys, pools_from_the_file):
    # As earlier versions stored it: general `static`, no all_activities.
    old = {
        "pools": [
            {"id": "solo", "activities": ["educate_usage"], "membership": "static",
             "members": ["agent-1"]},
            {"id": "general", "activities": [], "membership": "static", "members": []},
        ]
    }  # fmt: skip
    with pools_from_the_file.begin() as conn:
        conn.execute(
            pool_config.insert().values(id=1, config=old, updated_at=utcnow(), updated_by="x")
        )
    answer = client.get("/v1/pools", headers=keys["manager"])
    assert answer.status_code == 200, answer.get_json()
    general = _by_id(answer.get_json())["general"]
    assert (general["membership"], general["all_activities"]) == ("all_agents", True)
    solo = _by_id(answer.get_json())["solo"]
    assert (solo["membership"], solo["all_activities"]) == ("static", False)
    # And the same old form is still accepted from a client.
    assert client.put("/v1/pools", json=old, headers=keys["admin"]).status_code == 200


@pytest.mark.parametrize(
    "pools, message",
    [
        ([{"id": "general", "members": ["agent-1"]}], "list no members"),
        ([{"id": "general", "activities": ["educate_usage"]}], "leave activities empty"),
        ([{"id": "general", "membership": "proficiency"}], "membership is all_agents"),
        ([{"id": "general", "all_activities": False}], "leave activities empty"),
        (
            [{"id": "a", "members": ["x"], "membership": "all_agents"}, {"id": "general"}],
            "only 'general' is answered by every agent",
        ),
        (
            [{"id": "a", "members": ["x"], "all_activities": True}, {"id": "general"}],
            "only 'general' takes every activity",
        ),
    ],
)
def test_a_config_contradicting_general_is_refused(
    client, keys, pools_from_the_file, pools, message
):
    answer = client.put("/v1/pools", json={"pools": pools}, headers=keys["admin"])
    assert answer.status_code == 422, answer.get_json()
    assert message in answer.get_json()["error"]["message"]


def test_the_openapi_document_says_it(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    answer = schemas["PoolAnswer"]
    assert {"all_activities", "membership"} <= set(answer["required"])
    assert answer["properties"]["all_activities"]["type"] == "boolean"
    assert "all_agents" in answer["properties"]["membership"]["enum"]


def test_the_dashboard_says_general_takes_all_activities(app, keys, pools_from_the_file):
    manager = app.test_client()
    log_in(manager, raw_key(keys["manager"]))
    english = manager.get("/dashboard?period=all&lang=en").get_data(as_text=True)
    activities = _pool_cells(english, "activities")
    assert activities["general"] == "all activities"
    assert activities["value_education"] == "Educate on better usage"
    japanese = manager.get("/dashboard?period=all&lang=ja").get_data(as_text=True)
    assert _pool_cells(japanese, "activities")["general"] == "すべての活動"
    # The CSV keeps ids: general's activities are `all_activities`, as its membership is
    # `all_agents`.
    rows = csv.DictReader(
        io.StringIO(manager.get("/dashboard/pools.csv?lang=en").get_data().decode("utf-8-sig"))
    )
    by_id = {row["id"]: row for row in rows}
    assert by_id["general"]["activities"] == "all_activities"
    assert by_id["value_education"]["activities"] == "educate_usage"
