"""The drift gauges describe the live traffic (``service.drift_monitor``): the decisions of
the last VEA_DRIFT_WINDOW_H hours, computed with the drift report's code when /metrics
is read and the values are older than the refresh interval, absent below the minimum
sample, one computation for all the workers, whoever looks at reports."""

from __future__ import annotations

import fcntl
import os
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from service import drift_monitor
from service.db import utcnow
from service.drift_monitor import MIN_DECISIONS, MIN_OUTCOMES, REFRESH_S, DriftMonitor
from service.metrics import CALIBRATION_GAP, FEATURE_PSI
from tests.conftest import free_port
from tests.test_e2e_gunicorn import ROOT, start_gunicorn, stop

# A period of its own, away from the window: what a manager might look at.
OLD_PERIOD = {"from": "2019-07-01", "to": "2019-07-02"}


@pytest.fixture
def build(make_app, own_url):
    """Apps on a database of the test's own, where the window counts every recent decision
    (several: workers of one master when they share ``shared_state_dir``)."""
    return lambda **overrides: make_app(database_url=own_url, **overrides)


@pytest.fixture
def clock(monkeypatch):
    """The monitor's clock, moved forward by ``clock.advance(seconds)``."""

    class Clock:
        offset = timedelta(0)

        def advance(self, seconds: float) -> None:
            self.offset += timedelta(seconds=seconds)

    moved = Clock()
    monkeypatch.setattr(drift_monitor, "utcnow", lambda: utcnow() + moved.offset)
    return moved


@pytest.fixture
def computations(monkeypatch) -> list[object]:
    """One entry per drift computation the monitors ran."""
    done: list[object] = []
    compute = DriftMonitor._compute

    def counted(self, now):
        done.append(now)
        return compute(self, now)

    monkeypatch.setattr(DriftMonitor, "_compute", counted)
    return done


def keys_of(app) -> dict[str, dict[str, str]]:
    from service.auth import create_key

    engine = app.extensions["vea"].engine
    return {
        role: {"Authorization": f"Bearer {create_key(engine, role)[1]}"}
        for role in ("desktop", "engineer")
    }


def decide(client, headers, count: int, channel: str = "chat", occurred_at: str | None = None):
    """``count`` decisions of one kind of contact (all chats: far from the training mix),
    each with its outcome when vea suggested an activity."""
    for i in range(count):
        contact = {"channel": channel, "issue_type": "inquiry"}
        if occurred_at:
            contact["occurred_at"] = occurred_at
        body = {
            "interaction_id": uuid.uuid4().hex,
            "customer": {"customer_id": uuid.uuid4().hex, "tenure_months": 2, "segment": "premium"},
            "contact": contact,
        }
        answer = client.post("/v1/decisions", json=body, headers=headers)
        assert answer.status_code == 201, answer.json
        if answer.json["suggested_activity"] == "none":
            continue
        success = i % 3 == 0
        outcome = {"offered": True, "accepted": success, "ve_success": success}
        decision = answer.json["decision_id"]
        done = client.post(f"/v1/decisions/{decision}/outcome", json=outcome, headers=headers)
        assert done.status_code == 201, done.json


def drift_series(client) -> dict[tuple[str, str], float]:
    """The drift samples /metrics shows, by (metric, label value). Read as a server does
    (``buffered``: the answer is consumed and closed, so a refresh it arranged runs)."""
    response = client.get("/metrics", buffered=True)
    assert response.status_code == 200
    return parse(response.get_data(as_text=True))


def parse(text: str) -> dict[tuple[str, str], float]:
    series = {}
    for family in text_string_to_metric_families(text):
        if family.name in (FEATURE_PSI, CALIBRATION_GAP):
            for sample in family.samples:
                series[(sample.name, *sample.labels.values())] = sample.value
    return series


def window_report(client, headers) -> dict:
    """The drift report of the gauges' window (24 hours before now, open-ended)."""
    start = (utcnow() - timedelta(hours=24)).isoformat(timespec="seconds") + "Z"
    response = client.get("/v1/reports/drift", query_string={"from": start}, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def expected_series(report: dict) -> dict[tuple[str, str], float]:
    """What the gauges must show for a report of their window."""
    series = {}
    if report["decisions"] >= MIN_DECISIONS:
        for item in report["features"]:
            series[(FEATURE_PSI, item["feature"])] = item["psi"]
    for band in report["calibration"]:
        if band["n"] >= MIN_OUTCOMES:
            series[(CALIBRATION_GAP, band["band"])] = band["gap"]
    return series


def test_few_decisions_export_no_drift_series(build, clock):
    """A few contacts far off the training mix: the report says drifted, the gauges stay
    absent (not zero), however often /metrics is read or reports are asked for."""
    app = build()
    client, headers = app.test_client(), keys_of(app)
    decide(client, headers["desktop"], 20)
    report = window_report(client, headers["engineer"])
    assert {f["feature"]: f["drifted"] for f in report["features"]}["channel"] is True
    assert (
        client.get(
            "/v1/reports/drift", query_string=OLD_PERIOD, headers=headers["engineer"]
        ).status_code
        == 200
    )
    for _ in range(2):
        assert drift_series(client) == {}
        clock.advance(REFRESH_S)
    text = client.get("/metrics").get_data(as_text=True)
    assert f"# TYPE {FEATURE_PSI} gauge" in text  # declared, without any series


def test_enough_decisions_export_the_reports_values_for_the_window(build):
    app = build()
    client, headers = app.test_client(), keys_of(app)
    decide(client, headers["desktop"], MIN_DECISIONS)
    assert drift_series(client) == {}  # this scrape arranged the first computation
    shown = drift_series(client)

    report = window_report(client, headers["engineer"])
    expected = expected_series(report)
    assert shown == pytest.approx(expected, rel=1e-12)
    assert shown[(FEATURE_PSI, "channel")] > report["threshold"]  # every contact a chat
    # The calibration of a band with enough outcomes, none for the others.
    assert any(name == CALIBRATION_GAP for name, _ in shown), report["calibration"]
    assert len([n for n, _ in shown if n == CALIBRATION_GAP]) < len(report["calibration"])


def test_a_busy_window_is_read_from_its_latest_decisions(build, monkeypatch):
    """A busy centre's day read whole took 4-7 s and +420 MB in a serving worker (100k
    decisions), past gunicorn's timeout for a week's window: at most the latest
    MAX_DECISIONS are read, here the 210 voice contacts of the last hour and none of the
    chats of two hours before."""
    monkeypatch.setattr(drift_monitor, "MAX_DECISIONS", MIN_DECISIONS + 10)
    app = build()
    client, headers = app.test_client(), keys_of(app)
    earlier = (utcnow() - timedelta(hours=2)).isoformat(timespec="seconds") + "Z"
    decide(client, headers["desktop"], 150, channel="chat", occurred_at=earlier)
    decide(client, headers["desktop"], MIN_DECISIONS + 10, channel="voice")
    drift_series(client)
    shown = drift_series(client)

    start = (utcnow() - timedelta(hours=1)).isoformat(timespec="seconds") + "Z"
    response = client.get(
        "/v1/reports/drift", query_string={"from": start}, headers=headers["engineer"]
    )
    latest = response.json
    assert latest["decisions"] == MIN_DECISIONS + 10
    assert shown == pytest.approx(expected_series(latest), rel=1e-12)
    assert window_report(client, headers["engineer"])["decisions"] == 150 + MIN_DECISIONS + 10


def test_a_report_for_another_period_changes_nothing(build):
    """The auditor's case: a report for a period of two contacts, then one of an empty
    period: /metrics goes on showing the window's values."""
    app = build()
    client, headers = app.test_client(), keys_of(app)
    decide(client, headers["desktop"], MIN_DECISIONS)
    decide(client, headers["desktop"], 2, channel="voice", occurred_at="2019-07-01T10:00:00Z")
    drift_series(client)
    before = drift_series(client)
    assert before

    other = client.get("/v1/reports/drift", query_string=OLD_PERIOD, headers=headers["engineer"])
    assert other.status_code == 200 and other.json["decisions"] == 2
    assert drift_series(client) == before
    empty = {"from": "1990-01-01", "to": "1990-01-02"}
    assert (
        client.get("/v1/reports/drift", query_string=empty, headers=headers["engineer"]).status_code
        == 200
    )
    assert drift_series(client) == before


def test_the_refresh_interval_is_honoured_and_stale_series_go(build, clock, computations):
    app = build()
    client, headers = app.test_client(), keys_of(app)
    decide(client, headers["desktop"], MIN_DECISIONS)
    drift_series(client)
    first = drift_series(client)
    assert first and len(computations) == 1

    # The traffic turns to voice calls: within the interval the gauges keep their values.
    decide(client, headers["desktop"], MIN_DECISIONS, channel="voice")
    clock.advance(REFRESH_S - 5)
    for _ in range(3):
        assert drift_series(client) == first
    assert len(computations) == 1

    clock.advance(10)
    assert drift_series(client) == first  # this scrape arranged the refresh
    assert len(computations) == 2
    second = drift_series(client)
    assert second[(FEATURE_PSI, "channel")] != first[(FEATURE_PSI, "channel")]
    assert second == pytest.approx(expected_series(window_report(client, headers["engineer"])))

    # A day later every decision has left the window: the series are gone, not frozen.
    clock.advance(25 * 3600)
    drift_series(client)
    assert drift_series(client) == {}
    assert len(computations) == 3


def test_a_window_of_zero_computes_nothing(build, computations):
    app = build(drift_window_h=0)
    client, headers = app.test_client(), keys_of(app)
    decide(client, headers["desktop"], MIN_DECISIONS)
    for _ in range(2):
        assert drift_series(client) == {}
    assert computations == []


def test_workers_show_one_computation(build, clock, computations, tmp_path):
    """Two workers of one master (apps sharing the state directory): one computes, both
    show its values; while one holds the lock the other does not compute."""
    shared = tmp_path / "shared"
    shared.mkdir()
    first, second = build(shared_state_dir=str(shared)), build(shared_state_dir=str(shared))
    one, other = first.test_client(), second.test_client()
    headers = keys_of(first)
    decide(one, headers["desktop"], MIN_DECISIONS)

    drift_series(one)
    shown = drift_series(other)
    assert shown and len(computations) == 1
    assert drift_series(one) == shown

    clock.advance(REFRESH_S)
    fd = os.open(shared / drift_monitor.LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a worker computing
        assert drift_series(other) == shown
        assert len(computations) == 1
    finally:
        os.close(fd)
    drift_series(other)
    assert len(computations) == 2
    assert drift_series(one) == drift_series(other) == shown  # the same traffic


def test_a_database_error_keeps_the_last_values_and_logs_once(
    build, clock, monkeypatch, captured_logs
):
    app = build()
    client, headers = app.test_client(), keys_of(app)
    decide(client, headers["desktop"], MIN_DECISIONS)
    drift_series(client)
    shown = drift_series(client)
    assert shown

    def down(*args, **kwargs):
        raise OperationalError("SELECT ...", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(drift_monitor.reports, "drift", down)
    for _ in range(3):
        clock.advance(REFRESH_S)
        assert drift_series(client) == shown  # /metrics answers, with the last values
    logged = [line for line in captured_logs.getvalue().splitlines() if "drift gauges" in line]
    assert len(logged) == 1 and "ConnectionRefusedError" in logged[0], logged
    assert "SELECT" not in logged[0]

    monkeypatch.undo()
    clock.advance(REFRESH_S)
    drift_series(client)
    assert drift_series(client) == shown
    assert "refreshed again" in captured_logs.getvalue()


def test_gunicorn_workers_show_one_computation(registry_dir, tmp_path):
    """Under gunicorn (2 workers, prometheus_client's multiprocess directory): every
    scrape, whichever worker answers, shows the window's values, and a report for another
    period changes nothing."""
    from click.testing import CliRunner

    from service.cli import keys as keys_group

    (tmp_path / "prom").mkdir()
    (tmp_path / "shared").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}",
        "VEA_REGISTRY": str(registry_dir),
        "VEA_ACCESS_LOG": "0",
        "VEA_THREADS": "1",
        "VEA_RATE_LIMIT_PER_S": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "VEA_SHARED_STATE_DIR": str(tmp_path / "shared"),
    }
    env.pop("VEA_AUTO_MIGRATE", None)  # the master migrates
    proc = start_gunicorn(env, port := free_port(), 2, tmp_path / "gunicorn.log")
    try:
        created = CliRunner().invoke(keys_group, ["create", "--role", "admin"], env=env)
        assert created.exit_code == 0, created.output
        key = created.stdout.strip().splitlines()[-1]
        base, admin = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
        session = requests.Session()
        decide(HttpClient(session, base), admin, MIN_DECISIONS)

        def scrape() -> dict[tuple[str, str], float]:
            # A new connection each time: either worker may answer.
            answer = requests.get(f"{base}/metrics", timeout=30)
            assert answer.status_code == 200
            return parse(answer.text)

        shown = {}
        for _ in range(20):
            shown = scrape()
            if shown:
                break
        start = (utcnow() - timedelta(hours=24)).isoformat(timespec="seconds") + "Z"
        report = session.get(
            f"{base}/v1/reports/drift", params={"from": start}, headers=admin, timeout=60
        ).json()
        assert shown == pytest.approx(expected_series(report), rel=1e-12)
        old = session.get(f"{base}/v1/reports/drift", params=OLD_PERIOD, headers=admin, timeout=60)
        assert old.status_code == 200
        for _ in range(6):
            assert scrape() == shown
        assert (Path(tmp_path / "shared") / drift_monitor.FILE_NAME).is_file()
    finally:
        stop(proc)


class HttpClient:
    """``decide``'s client over HTTP (the answers' ``status_code`` and ``json``)."""

    def __init__(self, session: requests.Session, base: str) -> None:
        self.session, self.base = session, base

    def post(self, path: str, json: dict, headers: dict) -> SimpleNamespace:
        answer = self.session.post(self.base + path, json=json, headers=headers, timeout=10)
        return SimpleNamespace(status_code=answer.status_code, json=answer.json())
