"""The Grafana dashboard shipped in ``ops/grafana``: every query is valid PromQL for a
real ``promtool``, reads only what the service exports (the same check as the alerting
rules'), every metric the service exports is on it, and the alerts it names exist."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml
from test_ops_alerts import RULES, exported_series, promtool, unknown_reads

DASHBOARD = Path(__file__).resolve().parents[1] / "ops" / "grafana" / "vea.json"
# Grafana's variables, as Grafana fills them in before Prometheus sees a query.
VARIABLES = {"$__rate_interval": "5m", "$instance": ".*"}
FAMILY_SUFFIX = re.compile(r"_(bucket|count|sum)$")


def load() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with the variables filled in) for every query panel."""
    found = []
    for panel in load()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            found.append((panel["title"], expr))
    return found


def test_the_dashboard_is_importable_json_with_unique_panel_ids():
    dashboard = load()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"]
    for panel in dashboard["panels"]:
        assert panel["title"]
        if panel["type"] != "row":
            assert panel["description"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_promtool_parses_every_query(tmp_path):
    # promtool checks PromQL in rule files: each query becomes a recording rule.
    rules = [
        {"record": f"vea_dashboard:query_{i}", "expr": expr}
        for i, (_, expr) in enumerate(queries())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


def test_queries_read_only_what_the_service_exports(app):
    assert unknown_reads(queries(), app) == []


def test_every_exported_metric_has_a_panel():
    shown = {name for _, expr in queries() for name in re.findall(r"\bvea_[a-z0-9_]+", expr)}
    families = {FAMILY_SUFFIX.sub("", name) for name in exported_series()}
    missing = {
        family
        for family in families
        if not any(name == family or FAMILY_SUFFIX.sub("", name) == family for name in shown)
    }
    assert missing == set()


def test_every_alert_is_named_by_the_panel_that_draws_it():
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    }
    named = {
        name
        for panel in load()["panels"]
        for name in re.findall(r"\balert (Vea\w+)", panel.get("description", ""))
    }
    # Every alert is named where its figures are drawn, so the page explains what pages.
    assert named == alerts
