"""Value and drift reports: the pure computation, the API (roles, bad parameters, empty
periods) and `vea report`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from models.value_report import ValueSettings, difference, value_report

DAY = "2019-07-01"
PERIOD = {"from": "2019-07-01", "to": "2019-07-02"}


def test_difference_interval_covers_a_known_uplift():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(200):
        t = (rng.random(800) < 0.35).astype(float)
        c = (rng.random(800) < 0.30).astype(float)
        d = difference(t, c)
        covered += d["ci_low"] <= 0.05 <= d["ci_high"]
    assert 0.9 <= covered / 200 <= 0.99


def _customers(rng, n_customers, p, spread):
    """Contacts of ``n_customers`` customers who share a success offset: correlated."""
    cust = np.repeat(np.arange(n_customers), 1 + rng.poisson(2, n_customers))
    u = rng.uniform(-spread, spread, n_customers)[cust]
    return (rng.random(cust.size) < p + u).astype(float), cust


def test_difference_is_cluster_robust_and_covers_with_few_customers():
    """Customers with several correlated contacts: with only 8 customers per arm the
    customer-level Welch t interval still covers the true uplift of 0.1 about 95% of the
    time, and (with enough customers for t and normal quantiles to agree) it is wider than
    an interval that treats contacts as independent."""
    rng = np.random.default_rng(3)
    reps, covered = 2000, 0
    for _ in range(reps):
        yt, ct = _customers(rng, 8, 0.4, 0.25)
        yc, cc = _customers(rng, 8, 0.3, 0.25)
        covered += (d := difference(yt, yc, ct, cc + 1000))["ci_low"] <= 0.1 <= d["ci_high"]
    assert 0.93 <= covered / reps <= 0.975
    ratios = []
    for _ in range(200):
        yt, ct = _customers(rng, 100, 0.4, 0.3)
        yc, cc = _customers(rng, 100, 0.3, 0.3)
        by_customer, by_contact = difference(yt, yc, ct, cc + 1000), difference(yt, yc)
        assert by_customer["value"] == pytest.approx(by_contact["value"])
        ratios.append(
            (by_customer["ci_high"] - by_customer["ci_low"])
            / (by_contact["ci_high"] - by_contact["ci_low"])
        )
    assert np.mean(ratios) > 1.1 and min(ratios) > 1.0


def test_value_report_groups_uplift_roi_and_declared_measures():
    n = 6
    cols = {
        "decision_id": [f"d{i}" for i in range(n)],
        "has_outcome": [True] * 5 + [False],
        "experiment_arm": ["treatment"] * 3 + ["holdout"] * 3,
        "activity": ["educate_usage", "none", "educate_usage", "none", "none", "none"],
        "ve_success": [1, 0, 1, 0, 0, None],
        "ves_confidence": [7, 3, 6, 4, 2, None],
        "ves_ability": [7, 3, 7, 2, 4, None],
        "offered": [1, 0, 1, 0, 0, None],
        "accepted": [1, 0, 0, 0, 0, None],
        "handle_time_s": [300, 200, 320, 210, 190, None],
        "csat": [5, 3, 4, 3, 2, None],
        "retained_60d": [1, 1, 1, 0, 1, None],
    }
    settings = ValueSettings(200.0, 0.02, ("ve_success",), "2019-06-30")
    report = value_report(cols, settings, ("2019-07-01T00:00:00", None))
    assert report["decisions"] == 6 and report["pending"] == 1
    by_activity = {g["group"]: g for g in report["by"]["activity"]}
    assert by_activity["educate_usage"]["success_rate"] == 1.0
    assert by_activity["educate_usage"]["acceptance"] == 0.5
    assert by_activity["educate_usage"]["ves"] == pytest.approx((7 + 7 + 6 + 7) / 4)
    assert report["by"]["agent_id"][0]["group"] == "(unknown)"
    success = report["uplift"]["ve_success"]
    assert success["value"] == pytest.approx(2 / 3)
    assert success["pre_declared"] is True
    assert report["uplift"]["retained_60d"]["pre_declared"] is False
    assert report["success_measures"]["pre_declared"] is True
    roi = report["roi"]
    assert roi["treated_contacts"] == 3 and roi["value"] is not None


# --------------------------------------------------------------------------- API
@pytest.fixture
def report_app(make_app):
    return make_app(
        holdout_share=0.5,
        success_measures="ve_success,retained_60d",
        success_measures_declared_at="2019-06-01",
    )


@pytest.fixture
def headers(report_app):
    from service.auth import create_key

    engine = report_app.extensions["vea"].engine
    return {
        role: {"Authorization": f"Bearer {create_key(engine, role)[1]}"}
        for role in ("desktop", "engineer")
    }


def _serve(client, headers, new_id, count=40):
    rng = np.random.default_rng(1)
    for _ in range(count):
        body = {
            "interaction_id": new_id("i-"),
            "customer": {"customer_id": new_id("c-"), "tenure_months": 2, "segment": "premium"},
            "contact": {
                "channel": "chat",
                "issue_type": "inquiry",
                "occurred_at": f"{DAY}T10:00:00+00:00",
            },
        }
        answer = client.post("/v1/decisions", json=body, headers=headers).json
        treated = answer["experiment_arm"] == "treatment"
        success = bool(rng.random() < (0.7 if treated else 0.2))
        offered = answer["suggested_activity"] != "none"
        outcome = {
            "offered": offered,
            "accepted": offered and success,
            "ve_success": success,
            "ves_confidence": 7 if success else 3,
            "ves_ability": 6 if success else 4,
            "handle_time_s": 300.0 if treated else 240.0,
            "agent_id": "agent-1",
        }
        r = client.post(
            f"/v1/decisions/{answer['decision_id']}/outcome", json=outcome, headers=headers
        )
        assert r.status_code == 201, r.json


def test_value_report_endpoint(report_app, headers, new_id):
    client = report_app.test_client()
    _serve(client, headers["desktop"], new_id)
    assert (
        client.get("/v1/reports/value", query_string=PERIOD, headers=headers["desktop"]).status_code
        == 403
    )
    response = client.get("/v1/reports/value", query_string=PERIOD, headers=headers["engineer"])
    assert response.status_code == 200, response.json
    report = response.json
    assert report["decisions"] == 40
    arms = {g["group"]: g["n"] for g in report["by"]["experiment_arm"]}
    assert set(arms) == {"treatment", "holdout"}
    uplift = report["uplift"]["ve_success"]
    assert uplift["value"] > 0 and uplift["ci_low"] < uplift["value"] < uplift["ci_high"]
    assert uplift["pre_declared"] is True
    assert report["uplift"]["ves"]["declared"] is False
    assert report["roi"]["handle_time"]["value"] == pytest.approx(60.0)
    assert {"activity", "segment", "issue_type", "channel", "pool_id", "agent_id"} <= set(
        report["by"]
    )


@pytest.mark.parametrize(
    "query",
    [
        {"from": "yesterday"},
        {"to": "2019-13-45"},
        {"from": "2019-07-02", "to": "2019-07-01"},
        {"from": "2019-07-01", "to": "2019-07-01"},
        {"unknown": "1"},
    ],
)
def test_bad_report_parameters_are_422(report_app, headers, query):
    client = report_app.test_client()
    for path in ("/v1/reports/value", "/v1/reports/drift"):
        response = client.get(path, query_string=query, headers=headers["engineer"])
        assert response.status_code == 422, (path, query, response.json)
        assert "error" in response.json


def test_empty_period_reports_zeros(report_app, headers):
    client = report_app.test_client()
    response = client.get(
        "/v1/reports/value",
        query_string={"from": "1990-01-01", "to": "1990-01-02"},
        headers=headers["engineer"],
    )
    assert response.status_code == 200, response.json
    report = response.json
    assert report["decisions"] == 0 and report["overall"]["n"] == 0
    assert report["uplift"]["ve_success"]["value"] is None
    drift = client.get(
        "/v1/reports/drift",
        query_string={"from": "1990-01-01", "to": "1990-01-02"},
        headers=headers["engineer"],
    )
    assert drift.status_code == 200, drift.json
    assert all(f["level"] == "no_data" for f in drift.json["features"])


def test_drift_report_and_gauges(report_app, headers, new_id):
    client = report_app.test_client()
    _serve(client, headers["desktop"], new_id, count=20)
    response = client.get("/v1/reports/drift", query_string=PERIOD, headers=headers["engineer"])
    assert response.status_code == 200, response.json
    report = response.json
    assert report["has_reference"] is True
    psi = {f["feature"]: f for f in report["features"]}
    # Every live contact is a chat: far from the training mix of channels.
    assert psi["channel"]["psi"] > 0.25 and psi["channel"]["drifted"] is True
    assert [b["band"] for b in report["calibration"]] == ["low", "medium", "high"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'vea_feature_psi{feature="channel"}' in metrics


def test_cli_report(report_app, headers, database_url, monkeypatch, new_id):
    from training.cli import cli

    _serve(report_app.test_client(), headers["desktop"], new_id, count=10)
    monkeypatch.setenv("VEA_DATABASE_URL", database_url)
    monkeypatch.setenv("VEA_SUCCESS_MEASURES_DECLARED_AT", "2019-06-01")
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "--from", "2019-07-01", "--to", "2019-07-02", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["decisions"] >= 10
    assert report["success_measures"]["pre_declared"] is True
    text = runner.invoke(cli, ["report", "--from", "2019-07-01", "--to", "2019-07-02"])
    assert text.exit_code == 0 and "uplift treated - holdout" in text.output
    bad = runner.invoke(cli, ["report", "--from", "2019-07-02", "--to", "2019-07-01"])
    assert bad.exit_code != 0
