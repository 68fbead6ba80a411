"""The Prometheus alerting rules shipped in ``ops/prometheus``: valid for a real
``promtool`` (Debian's ``prometheus`` package), their unit tests pass, and every metric,
label and label value they read is one the service exports (a renamed metric or label
would otherwise leave an alert silently empty)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from service import metrics as service_metrics
from service.metrics import Metrics

RULES_DIR = Path(__file__).resolve().parents[1] / "ops" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
# Labels Prometheus adds at scrape time (and the histogram's own), not the service.
SCRAPE_LABELS = {"instance", "job", "le", "pid"}
SELECTOR = re.compile(r"\b(vea_[a-z0-9_]+)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not found (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def exported_series() -> dict[str, set[str]]:
    """Each sample name the service writes to /metrics, with its label names."""
    series: dict[str, set[str]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, Counter):
            suffixes = ["_total"]
        elif isinstance(metric, Histogram):
            suffixes = ["_bucket", "_count", "_sum"]
        elif isinstance(metric, Gauge):
            suffixes = [""]
        else:
            continue
        for suffix in suffixes:
            series[metric._name + suffix] = set(metric._labelnames)
    return series


def label_values(app) -> dict[str, set[str]]:
    """The values the service gives each fixed-set label."""
    return {
        "reason": set(service_metrics.DEGRADED_REASONS),
        "verdict": set(service_metrics.SHADOW_VERDICTS),
        "outcome": set(service_metrics.SURVEY_OUTCOME_STATES),
        "method": set(service_metrics.HTTP_METHODS),
        "endpoint": {rule.rule for rule in app.url_map.iter_rules()},
    }


def test_promtool_checks_the_rules_and_runs_their_unit_tests():
    tool = promtool()
    checked = subprocess.run(
        [tool, "check", "rules", RULES.name], cwd=RULES_DIR, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(expressions())} rules found" in checked.stdout
    tested = subprocess.run(
        [tool, "test", "rules", "alerts_test.yml"],
        cwd=RULES_DIR,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test():
    tests = yaml.safe_load((RULES_DIR / "alerts_test.yml").read_text(encoding="utf-8"))
    tested = {
        case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", [])
    }
    assert {name for name, _ in expressions()} <= tested


def unknown_reads(rules: list[tuple[str, str]], app) -> list[str]:
    """What the rules' expressions read that the service does not export."""
    series = exported_series()
    values = label_values(app)
    problems = []
    for alert, expr in rules:
        used = SELECTOR.findall(expr)
        for name, matchers in used:
            if name not in series:
                problems.append(f"{alert}: {name} is not exported")
                continue
            for label, operator, value in MATCHER.findall(matchers):
                if label not in series[name] | SCRAPE_LABELS:
                    problems.append(f"{alert}: {name} has no label {label}")
                elif label in values:
                    wanted = value.split("|") if operator == "=~" else [value]
                    unknown = sorted(set(wanted) - values[label])
                    if unknown:
                        problems.append(f"{alert}: {label} is never {unknown}")
        labels = set().union(*(series.get(name, set()) for name, _ in used)) | SCRAPE_LABELS
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                if label not in labels:
                    problems.append(f"{alert}: groups by {label}, which no series has")
    return problems


def test_rules_read_only_what_the_service_exports(app):
    assert unknown_reads(expressions(), app) == []


def test_the_check_finds_a_misspelt_metric_label_or_value(app):
    """The check above can fail."""
    rules = [
        ("A", "rate(vea_outcome_total[5m]) > 0"),
        ("B", 'rate(vea_degraded_decisions_total{cause="no_model"}[5m]) > 0'),
        ("C", 'rate(vea_degraded_decisions_total{reason=~"no_model|db"}[5m]) > 0'),
        ("D", 'rate(vea_http_requests_total{endpoint="/v1/decision"}[5m]) > 0'),
        ("E", "sum by (pool) (rate(vea_decisions_total[5m])) > 0"),
    ]
    assert unknown_reads(rules, app) == [
        "A: vea_outcome_total is not exported",
        "B: vea_degraded_decisions_total has no label cause",
        "C: reason is never ['db']",
        "D: endpoint is never ['/v1/decision']",
        "E: groups by pool, which no series has",
    ]
