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


def test_roi_counts_retention_once_per_customer():
    """Treated customers call four times each, holdout customers once: retention is a
    customer's, so the total is the per-customer difference x the treated customers (it
    was counted per contact, four times over), and per contact that total spread over
    the treated contacts."""
    rng = np.random.default_rng(5)
    cols: dict[str, list] = {name: [] for name in ("decision_id", "customer_id",
        "experiment_arm", "retained_60d", "handle_time_s", "occurred_at")}  # fmt: skip
    for arm, customers, contacts, retained in (
        ("treatment", 200, 4, 0.9),
        ("holdout", 200, 1, 0.7),
    ):
        for c in range(customers):
            stays = float(rng.random() < retained)
            for k in range(contacts):
                cols["decision_id"].append(f"{arm}-{c}-{k}")
                cols["customer_id"].append(f"{arm}-{c}")
                cols["experiment_arm"].append(arm)
                # Later contacts' windows are still open: only the first one is known.
                cols["retained_60d"].append(stays if k == 0 else None)
                cols["handle_time_s"].append(100.0)
                cols["occurred_at"].append(f"2026-01-0{k + 1}T10:00:00")
    settings = ValueSettings(value_of_retention=200.0, cost_per_second=0.5)
    roi = value_report(cols, settings)["roi"]
    per_customer = roi["per_customer"]
    t = np.mean([cols["retained_60d"][i] for i in range(0, 800, 4)])
    h = np.mean(cols["retained_60d"][800:])
    # Value per customer: 200 x retained - 0.5 x 100 s x contacts.
    assert per_customer["treated"] == pytest.approx(200 * t - 200)
    assert per_customer["holdout"] == pytest.approx(200 * h - 50)
    difference_per_customer = 200 * (t - h) - 150
    assert per_customer["value"] == pytest.approx(difference_per_customer)
    assert roi["treated_customers"] == 200 and roi["treated_contacts"] == 800
    assert roi["total"] == pytest.approx(difference_per_customer * 200)
    assert roi["value"] == pytest.approx(roi["total"] / 800)
    assert roi["total_ci_low"] < roi["total"] < roi["total_ci_high"]
    assert roi["enough_data"] and per_customer["units_treated"] == 200
    # The per-contact row reads as the difference it shows: both arms on the treated
    # contacts' scale (the holdout's per-customer value over 4 contacts, not its own 1;
    # it read -5 vs 90 beside -27.5 per contact).
    assert roi["treated"] == pytest.approx(per_customer["treated"] * 200 / 800)
    assert roi["holdout"] == pytest.approx(per_customer["holdout"] * 200 / 800)
    assert roi["treated"] - roi["holdout"] == pytest.approx(roi["value"])


def test_without_treated_contacts_the_per_contact_row_is_not_a_zero():
    """Holdout contacts only: per treated contact there is nothing to scale to, so each
    arm's value there is unknown (the holdout's read 0.0 beside its per-customer 100)."""
    cols = {
        "decision_id": ["h-1", "h-2"],
        "customer_id": ["h-1", "h-2"],
        "experiment_arm": ["holdout", "holdout"],
        "retained_60d": [1.0, 1.0],
        "handle_time_s": [100.0, 100.0],
        "occurred_at": ["2026-01-01T10:00:00", "2026-01-02T10:00:00"],
    }
    settings = ValueSettings(value_of_retention=200.0, cost_per_second=0.5)
    roi = value_report(cols, settings)["roi"]
    assert roi["per_customer"]["holdout"] == pytest.approx(150.0)
    assert roi["holdout"] is None and roi["treated"] is None and roi["value"] is None
    assert roi["treated_contacts"] == 0


def test_too_few_customers_give_no_interval_and_say_so():
    """Two customers per arm who all succeeded: the difference is shown, but no interval
    (it was a zero-width [1, 1]), and the units behind it are customers."""
    cols = {
        "decision_id": [f"d{i}" for i in range(6)],
        "customer_id": ["a", "a", "b", "c", "d", "d"],
        "experiment_arm": ["treatment"] * 3 + ["holdout"] * 3,
        "ve_success": [1, 1, 1, 0, 0, 0],
    }
    report = value_report(cols, ValueSettings())
    success = report["uplift"]["ve_success"]
    assert success["value"] == 1.0 and success["enough_data"] is False
    assert success["ci_low"] is None and success["ci_high"] is None
    assert (success["n_treated"], success["units_treated"]) == (3, 2)
    assert report["min_customers"] == 10
    rng = np.random.default_rng(2)
    many = {
        "decision_id": [f"d{i}" for i in range(40)],
        "customer_id": [f"c{i}" for i in range(40)],
        "experiment_arm": ["treatment"] * 20 + ["holdout"] * 20,
        "ve_success": (rng.random(40) < 0.5).astype(float).tolist(),
    }
    enough = value_report(many, ValueSettings())["uplift"]["ve_success"]
    assert enough["enough_data"] is True and enough["ci_low"] < enough["ci_high"]


@pytest.mark.parametrize(
    ("declared_at", "start", "expected"),
    [
        # 08:00 in Tokyo is 23:00 UTC the day before: before a period starting 23:30 UTC.
        ("2026-10-01T08:00:00+09:00", "2026-09-30T23:30:00", True),
        ("2026-09-30T20:00:00-05:00", "2026-10-01T00:30:00", False),  # 01:00 UTC
        ("2026-09-30", "2026-09-30T00:00:00", True),
        ("2026-10-02", None, False),  # after the period's first decision (1 October)
        ("2026-09-15", None, True),  # no start: before the first decision
    ],
)
def test_declared_measures_compare_instants(declared_at, start, expected):
    cols = {
        "decision_id": ["d1", "d2"],
        "experiment_arm": ["treatment", "holdout"],
        "occurred_at": ["2026-10-01T10:00:00", "2026-10-03T10:00:00"],
    }
    settings = ValueSettings(declared_measures=("ve_success",), declared_at=declared_at)
    report = value_report(cols, settings, (start, None))
    assert report["success_measures"]["pre_declared"] is expected


def test_declared_measures_in_an_open_period_without_decisions_are_not_called_missing():
    empty = {"decision_id": [], "experiment_arm": [], "occurred_at": []}
    settings = ValueSettings(declared_measures=("ve_success",), declared_at="2026-09-15")
    measures = value_report(empty, settings, (None, None))["success_measures"]
    assert measures["pre_declared"] is False
    assert measures["note"] == "measures declared; the period has no decisions yet"
    undeclared = value_report(empty, ValueSettings(), (None, None))["success_measures"]
    assert undeclared["note"].startswith("no measures were declared")


def test_a_declared_at_that_is_no_date_is_refused_at_start():
    from service.config import Settings

    with pytest.raises(ValueError, match="DECLARED_AT: declared_at .last spring. is not an ISO"):
        Settings.from_env({"VEA_SUCCESS_MEASURES_DECLARED_AT": "last spring"})


def test_a_misspelt_success_measure_is_refused_at_start():
    """It was reported as declared while the measure meant went undeclared."""
    from service.config import Settings

    with pytest.raises(ValueError, match="VEA_SUCCESS_MEASURES: unknown success measure 'bogus'"):
        Settings.from_env({"VEA_SUCCESS_MEASURES": "ve_success,bogus"})
    assert Settings.from_env(
        {"VEA_SUCCESS_MEASURES": " ve_success, ,reward"}
    ).declared_measures() == (
        "ve_success",
        "reward",
    )


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
    # One agent per call: the database is shared by the tests, and an agent id reused
    # across them piles up attempts until `pools rebuild` qualifies it elsewhere.
    agent = new_id("agent-")
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
            "agent_id": agent,
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


def test_report_periods_say_they_are_utc(report_app, headers):
    """The period the reports answer with is marked UTC as every other time in the API:
    a start asked for at 09:00 in Tokyo is midnight UTC, and says so."""
    client = report_app.test_client()
    asked = {"from": "1990-01-01T09:00:00+09:00", "to": "1990-01-02"}
    for path in ("/v1/reports/value", "/v1/reports/drift"):
        response = client.get(path, query_string=asked, headers=headers["engineer"])
        assert response.status_code == 200, response.json
        assert response.json["period"] == {
            "from": "1990-01-01T00:00:00.000Z",
            "to": "1990-01-02T00:00:00.000Z",
        }


def test_drift_report(report_app, headers, new_id):
    """The report for a period (the gauges of live traffic: tests/test_drift_gauges.py)."""
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
    lines = text.output.splitlines()
    start = lines.index("uplift treated - holdout (95% CI):") + 1
    uplift_rows = [line.split()[0] for line in lines[start:] if line.startswith("  ")]
    # The default reward is the success rate: its row would say ve_success again.
    assert uplift_rows[:3] == ["ve_success", "retained_60d", "ves"] and "reward" not in uplift_rows
    bad = runner.invoke(cli, ["report", "--from", "2019-07-02", "--to", "2019-07-01"])
    assert bad.exit_code != 0
    period = ["report", "--from", "2019-07-01", "--to", "2019-07-02"]
    named = runner.invoke(cli, [*period, "--reward", "accepted"])
    assert named.exit_code == 0, named.output
    assert "reward: accepted" in named.output and "offers by" in named.output
    weighted = runner.invoke(
        cli, [*period, "--json", "--reward", "weighted", "--reward-weights", "ve_success=1"]
    )
    assert weighted.exit_code == 0 and json.loads(weighted.output)["reward"]["name"] == "weighted"
    unknown = runner.invoke(cli, [*period, "--reward", "happiness"])
    assert unknown.exit_code != 0 and "happiness" in unknown.output
    bad_weights = runner.invoke(cli, [*period, "--reward", "weighted", "--reward-weights", "x=1"])
    assert bad_weights.exit_code != 0 and "x" in bad_weights.output


# ------------------------------------------------------ rewards, offers and shadows
def test_offers_per_agent_and_pool_and_the_named_reward():
    from models.schema import parse_reward

    cols = {
        "decision_id": [f"d{i}" for i in range(7)],
        "has_outcome": [True] * 6 + [False],
        "customer_id": [f"c{i}" for i in range(7)],
        "activity": ["educate_usage"] * 4 + ["none", "achieve_goals", "educate_usage"],
        "agent_id": ["a1", "a1", "a1", "a2", "a2", "a2", None],
        "pool_id": ["p1", "p1", "p2", "p2", "p2", "p2", None],
        "offered": [1, 1, 0, 1, 0, 0, None],
        "accepted": [1, 0, None, None, None, None, None],
        "ve_success": [1, 0, 0, 1, 0, 0, None],
        "retained_60d": [1, None, 1, 0, 1, 1, None],
    }
    report = value_report(cols, ValueSettings(reward=parse_reward("retained_60d")))
    agents = {g["group"]: g for g in report["by"]["agent_id"]}
    assert (agents["a1"]["suggested"], agents["a1"]["offered"], agents["a1"]["accepted"]) == (
        3,
        2,
        1,
    )
    assert agents["a1"]["offer_rate"] == pytest.approx(2 / 3)
    assert agents["a1"]["acceptance"] == pytest.approx(0.5)  # when offered
    # a2: the `none` suggestion is not a suggestion to offer; one of two offered.
    assert (agents["a2"]["suggested"], agents["a2"]["offered"]) == (2, 1)
    assert agents["a2"]["acceptance"] is None  # offered, answer not reported
    pools = {g["group"]: g for g in report["by"]["pool_id"]}
    assert (pools["p1"]["suggested"], pools["p1"]["offered"], pools["p1"]["accepted"]) == (2, 2, 1)
    # The reward is named, reported where known, and the open window counted.
    assert report["reward"]["name"] == "retained_60d"
    assert report["reward"]["known"] == 5 and report["reward"]["unknown"] == 1
    assert report["overall"]["reward"] == pytest.approx(4 / 5)
    assert "reward" in report["uplift"]
    default = value_report(cols, ValueSettings())
    assert default["reward"]["name"] == "ve_success"
    assert default["overall"]["reward"] == default["overall"]["success_rate"]
    weighted = value_report(
        cols, ValueSettings(reward=parse_reward("weighted", "ve_success=1,accepted=1"))
    )
    # accepted: offered without an answer is unknown, not offered counts as 0.
    assert weighted["reward"]["known"] == 5


def _shadow_log(rng, n, shadow_gain):
    """Uniform logging over 3 actions, champion always 1, shadow always 2; the shadow's
    activity is truly worth ``shadow_gain`` more. q is a deliberately poor guess."""
    k = 6
    logged = rng.integers(0, 3, n)
    customers = rng.integers(0, n // 3, n)
    base = rng.normal(0, 1, n // 3)[customers]
    means = np.array([0.0, 1.0, 1.0 + shadow_gain])
    rewards = means[logged] + base + rng.normal(0, 1, n)
    q = np.zeros((n, k))
    q[:, :3] = 0.5
    supported = np.zeros((n, k), dtype=bool)
    supported[:, :3] = True
    return dict(
        rewards=rewards,
        logged=logged,
        propensity=np.full(n, 1 / 3),
        champion=np.full(n, 1),
        shadow=np.full(n, 2),
        q=q,
        supported=supported,
        customers=customers,
    )


def test_shadow_comparison_ranks_and_covers_the_true_difference():
    from models.value_report import shadow_comparison

    rng = np.random.default_rng(11)
    better = shadow_comparison(**_shadow_log(rng, 3000, 0.5))
    assert better["would_pass_gate"] is True and better["improvement"]["ci_low"] > 0
    assert better["shadow_value"]["value"] > better["champion_value"]["value"]
    assert better["unsupported"] == 0.0 and better["agreement"] == 0.0
    worse = shadow_comparison(**_shadow_log(rng, 3000, -0.5))
    assert worse["would_pass_gate"] is False and worse["improvement"]["ci_high"] < 0
    assert "worse" in worse["verdict"]
    covered = 0
    for _ in range(100):
        gain = shadow_comparison(**_shadow_log(rng, 600, 0.2))["improvement"]
        covered += gain["ci_low"] <= 0.2 <= gain["ci_high"]
    assert covered >= 88
    # A shadow whose choice logging never makes: unsupported, cannot judge.
    log = _shadow_log(rng, 600, 0.5)
    log["shadow"] = np.full(600, 4)
    blind = shadow_comparison(**log)
    assert blind["unsupported"] == 1.0 and blind["would_pass_gate"] is False
    assert "cannot judge" in blind["verdict"]


def test_value_report_reward_query_and_shadow_section(make_app, registry_dir, new_id):
    from models.registry import Registry
    from service.auth import create_key

    registry = Registry(registry_dir)
    shadow = next(v for v in registry.version_ids() if v != registry.champion())
    registry.set_shadow(shadow)
    app = make_app(exploration="epsilon", epsilon=0.5, holdout_share=0.2)
    engine = app.extensions["vea"].engine
    desk = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    eng = {"Authorization": f"Bearer {create_key(engine, 'engineer')[1]}"}
    client = app.test_client()
    day = "2019-08-01"
    rng = np.random.default_rng(2)
    treated = 0
    for _ in range(60):
        body = {
            "interaction_id": new_id("i-"),
            "customer": {"customer_id": new_id("c-"), "tenure_months": 9},
            "contact": {
                "channel": "voice",
                "issue_type": "how_to",
                "occurred_at": f"{day}T09:00:00+00:00",
            },
        }
        answer = client.post("/v1/decisions", json=body, headers=desk).json
        treated += answer["experiment_arm"] == "treatment"
        offered = answer["suggested_activity"] != "none"
        outcome = {
            "offered": offered,
            "accepted": bool(offered and rng.random() < 0.5),
            "ve_success": bool(rng.random() < 0.4),
            "agent_id": "agent-9",
        }
        r = client.post(
            f"/v1/decisions/{answer['decision_id']}/outcome", json=outcome, headers=desk
        )
        assert r.status_code == 201, r.json
    period = {"from": day, "to": "2019-08-02"}
    report = client.get("/v1/reports/value", query_string=period, headers=eng).json
    assert report["reward"]["name"] == "ve_success"
    section = report["shadow"]
    assert "vea evaluate --shadow" in section["description"]
    assert section["measures"] == "the suggestion (intent to treat)"
    [comparison] = section["comparisons"]
    # The treated contacts only: the holdout gets none whatever either policy chooses.
    assert comparison["shadow_version"] == shadow and comparison["rows"] == treated < 60
    assert comparison["champion_versions"] == [registry.champion()]
    assert comparison["improvement"]["ci_low"] is not None
    assert 0.0 <= comparison["unsupported"] <= 1.0
    assert isinstance(comparison["would_pass_gate"], bool)
    agent = report["by"]["agent_id"][0]
    assert agent["suggested"] >= agent["offered"] >= agent["accepted"]

    weighted = client.get(
        "/v1/reports/value",
        query_string={**period, "reward": "weighted", "reward_weights": "ve_success=1,accepted=3"},
        headers=eng,
    )
    assert weighted.status_code == 200, weighted.json
    assert weighted.json["reward"]["weights"] == {"ve_success": 1.0, "accepted": 3.0}
    for bad in ({"reward": "weighted", "reward_weights": "accepted=many"}, {"reward": "vibes"}):
        response = client.get("/v1/reports/value", query_string={**period, **bad}, headers=eng)
        assert response.status_code == 422, response.json
    registry.clear_shadow()


def test_net_promoter_score():
    from models.value_report import _net_promoter

    assert _net_promoter(np.array([10, 9, 3, 7, np.nan])) == pytest.approx(25.0)
    assert _net_promoter(np.array([np.nan])) is None
    assert _net_promoter(np.array([0.0, 6.0])) == pytest.approx(-100.0)


# ------------------------------------------- offers, the holdout and the dashboard
def test_offer_counts_add_up_and_offers_to_the_holdout_are_flagged():
    """Offers count on suggestions only, so accepted <= offered <= suggested in every
    group; an offer the agent made to a holdout customer is counted apart and warned
    about (it contaminates the control group)."""
    cols = {
        "decision_id": [f"d{i}" for i in range(6)],
        "has_outcome": [True] * 6,
        "customer_id": ["c1", "c2", "c3", "h1", "h2", "h3"],
        "experiment_arm": ["treatment"] * 3 + ["holdout"] * 3,
        "activity": ["educate_usage", "educate_usage", "none", "none", "none", "none"],
        "agent_id": ["a1"] * 6,
        "offered": [1, 0, 1, 1, 1, 0],
        "accepted": [1, None, 1, 1, 1, None],
    }
    report = value_report(cols, ValueSettings())
    for rows in report["by"].values():
        for g in rows:
            assert g["accepted"] <= g["offered"] <= g["suggested"], g
    holdout = {g["group"]: g for g in report["by"]["experiment_arm"]}["holdout"]
    assert (holdout["suggested"], holdout["offered"], holdout["accepted"]) == (0, 0, 0)
    assert holdout["acceptance"] is None and holdout["offered_unsuggested"] == 2
    agent = report["by"]["agent_id"][0]
    assert (agent["suggested"], agent["offered"], agent["accepted"]) == (2, 1, 1)
    assert agent["acceptance"] == 1.0 and agent["offered_unsuggested"] == 1  # treated only
    offers = report["holdout_offers"]
    assert (offers["contacts"], offers["holdout_contacts"], offers["customers"]) == (2, 3, 2)
    assert offers["share"] == pytest.approx(2 / 3) and "contaminated" in offers["warning"]
    clean = value_report({**cols, "offered": [1, 0, 1, 0, 0, 0]}, ValueSettings())
    assert clean["holdout_offers"]["contacts"] == 0 and clean["holdout_offers"]["warning"] is None


def _serve_with_holdout_offers(client, headers, new_id, count=30):
    """Decisions with outcomes (VES, CSAT, NPS, CES) in both arms; the first two holdout
    contacts get a value offer anyway."""
    holdout_offers, agent = 0, new_id("agent-")
    for i in range(count):
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
        offered = answer["suggested_activity"] != "none"
        outcome = {
            "offered": offered,
            "accepted": offered,
            "ves_confidence": 6,
            "ves_ability": 6,
            "handle_time_s": 250.0,
            "csat": 4,
            "nps": 9 if i % 3 else 3,
            "ces": 2,
            "agent_id": agent,
        }
        if answer["experiment_arm"] == "holdout" and holdout_offers < 2:
            outcome.update(activity="educate_usage", offered=True, accepted=True)
            holdout_offers += 1
        r = client.post(
            f"/v1/decisions/{answer['decision_id']}/outcome", json=outcome, headers=headers
        )
        assert r.status_code == 201, r.json
    assert holdout_offers == 2


@pytest.fixture
def manager(report_app, headers, new_id):
    """A logged-in manager on a period with holdout offers."""
    from service.auth import create_key
    from tests.test_pages import log_in

    client = report_app.test_client()
    _serve_with_holdout_offers(client, headers["desktop"], new_id)
    log_in(client, create_key(report_app.extensions["vea"].engine, "manager")[1])
    return client


def test_cli_and_dashboard_show_offer_counts_and_warn_of_holdout_offers(
    manager, database_url, monkeypatch
):
    import csv
    import io

    from training.cli import cli

    monkeypatch.setenv("VEA_DATABASE_URL", database_url)
    text = CliRunner().invoke(cli, ["report", "--from", PERIOD["from"], "--to", PERIOD["to"]])
    assert text.exit_code == 0, text.output
    assert "WARNING: 2 of" in text.output and "contaminated" in text.output
    agent_line = next(line for line in text.output.splitlines() if "agent-" in line)
    assert "suggested" in agent_line and "offered" in agent_line and "%" in agent_line
    page = manager.get("/dashboard", query_string=PERIOD).get_data(as_text=True)
    assert 'id="holdout-offers"' in page and "contaminated" in page
    answer = manager.get("/dashboard/by_agent_id.csv", query_string=PERIOD)
    header = next(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert {"suggested", "offered", "offer_rate", "accepted", "acceptance"} <= set(header)
    assert "offered_rate" not in header
    assert "offered when suggested" in page and "accepted when offered" in page


def test_groups_cover_the_treated_arms_compare_guardrails_and_count_answers():
    """By activity, agent...: treated contacts only (the holdout's 'none' is not the model
    choosing none); by arm: every contact; CSAT, NPS, CES, handle time and upgrades
    treated vs holdout with intervals; every mean with the answers behind it."""
    rng = np.random.default_rng(2)
    n = 400
    arm = np.where(np.arange(n) % 2 == 0, "treatment", "holdout")
    treated = arm == "treatment"
    nps = rng.integers(0, 11, n).astype(float)
    nps[rng.random(n) < 0.5] = np.nan
    cols = {
        "decision_id": [f"d{i}" for i in range(n)],
        "has_outcome": [True] * n,
        "customer_id": [f"c{i % 150}" for i in range(n)],
        "experiment_arm": arm.tolist(),
        "activity": np.where(treated & (np.arange(n) % 4 == 0), "educate_usage", "none").tolist(),
        "agent_id": ["a1"] * n,
        "offered": np.where(treated & (np.arange(n) % 4 == 0), 1, 0).tolist(),
        "nps": [None if np.isnan(v) else v for v in nps],
        "csat": np.where(treated, 4.0, 3.0).tolist(),
        "handle_time_s": np.where(treated, 300.0, 240.0).tolist(),
        "ve_success": [None if i % 3 else 1 for i in range(n)],
    }
    report = value_report(cols, ValueSettings())
    agent = report["by"]["agent_id"][0]
    assert agent["n"] == treated.sum() and "treated contacts only" in report["by_note"]
    by_activity = {g["group"]: g for g in report["by"]["activity"]}
    assert by_activity["none"]["n"] == treated.sum() - by_activity["educate_usage"]["n"]
    arms = {g["group"]: g for g in report["by"]["experiment_arm"]}
    assert arms["holdout"]["n"] == (~treated).sum()
    answered = ~np.isnan(nps)
    assert agent["nps_n"] == (answered & treated).sum()
    assert agent["success_n"] == sum(1 for i in np.flatnonzero(treated) if i % 3 == 0)
    assert agent["csat_n"] == agent["handle_time_n"] == treated.sum() and agent["ces_n"] == 0
    compare = report["treated_vs_holdout"]
    assert set(compare) == {"csat", "nps", "ces", "handle_time_s", "upgraded"}
    assert compare["csat"]["value"] == pytest.approx(1.0)
    assert compare["handle_time_s"]["value"] == pytest.approx(60.0)
    nps_t = nps[treated & answered]
    nps_c = nps[~treated & answered]

    def score(x):
        return 100 * ((x >= 9).mean() - (x <= 6).mean())

    assert compare["nps"]["treated"] == pytest.approx(agent["nps"])
    assert compare["nps"]["value"] == pytest.approx(score(nps_t) - score(nps_c))
    low, high = compare["nps"]["ci_low"], compare["nps"]["ci_high"]
    assert low < compare["nps"]["value"] < high
    assert compare["ces"]["value"] is None and compare["upgraded"]["value"] is None


def test_cli_and_dashboard_show_treated_vs_holdout_and_answer_counts(
    manager, database_url, monkeypatch
):
    import csv
    import io

    from training.cli import cli

    monkeypatch.setenv("VEA_DATABASE_URL", database_url)
    text = CliRunner().invoke(cli, ["report", "--from", PERIOD["from"], "--to", PERIOD["to"]])
    assert text.exit_code == 0, text.output
    assert "period 2019-07-01T00:00:00.000Z to 2019-07-02T00:00:00.000Z (UTC" in text.output
    assert "NPS " in text.output and "CES " in text.output
    assert "treated vs holdout" in text.output
    for measure in ("csat", "nps", "ces", "handle_time_s"):
        assert any(line.strip().startswith(measure) for line in text.output.splitlines())
    page = manager.get("/dashboard", query_string=PERIOD).get_data(as_text=True)
    assert 'id="table-treated_vs_holdout"' in page and 'id="table-by_experiment_arm"' in page
    assert "Treated contacts only" in page
    assert "†" in page  # a few dozen contacts: every group rate rests on few answers
    answer = manager.get("/dashboard/by_agent_id.csv", query_string=PERIOD)
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert {"ves_n", "success_n", "nps_n", "ces_n", "csat_n"} <= set(rows[0])
    assert int(rows[0]["nps_n"]) <= int(rows[0]["n"])
    trend = manager.get("/dashboard/trend.csv", query_string=PERIOD).get_data(as_text=True)
    assert "ves_n" in trend.splitlines()[0]
    compare = manager.get("/dashboard/treated_vs_holdout.csv", query_string=PERIOD)
    measures = [
        r["measure"] for r in csv.DictReader(io.StringIO(compare.get_data().decode("utf-8-sig")))
    ]
    assert measures == ["csat", "nps", "ces", "handle_time_s", "upgraded"]
