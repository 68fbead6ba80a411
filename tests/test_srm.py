"""Sample ratio mismatch: the customers seen per arm against the configured holdout share."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from models.exploration import holdout_arm
from models.value_report import ValueSettings, chi_square_gof, sample_ratio, value_report

SHARE, EXPERIMENT = 0.1, "srm-test"


def test_chi_square_matches_scipy():
    stat, p = chi_square_gof((880, 120), (900, 100))
    want = chisquare([880, 120], [900, 100])
    assert stat == pytest.approx(want.statistic) and p == pytest.approx(want.pvalue)
    # By hand: 20^2/900 + 20^2/100 = 4.444..., p = P(chi2_1 > 4.444) ~ 0.035.
    assert stat == pytest.approx(400 / 900 + 400 / 100)
    assert p == pytest.approx(0.0350, abs=5e-4)


def _log(n_customers: int, keep_holdout: float, contacts: int = 3) -> dict[str, list]:
    """Decisions of ``n_customers`` assigned by the service's hash; only ``keep_holdout``
    of the holdout customers' contacts are stored (a desk dropping them)."""
    rng = np.random.default_rng(7)
    cols: dict[str, list] = {"decision_id": [], "customer_id": [], "experiment_arm": []}
    for i in range(n_customers):
        customer = f"c-{i}"
        arm = holdout_arm(customer, SHARE, EXPERIMENT)
        for j in range(contacts):
            if arm == "holdout" and rng.random() >= keep_holdout:
                continue
            cols["decision_id"].append(f"d-{i}-{j}")
            cols["customer_id"].append(customer)
            cols["experiment_arm"].append(arm)
    n = len(cols["decision_id"])
    cols["has_outcome"] = [True] * n
    cols["ve_success"] = [1.0] * n
    return cols


SETTINGS = ValueSettings(holdout_share=SHARE, experiment=EXPERIMENT)


def test_a_balanced_holdout_has_no_mismatch():
    report = value_report(_log(4000, keep_holdout=1.0), SETTINGS)
    srm = report["srm"]
    assert srm["tested"] and not srm["mismatch"] and srm["p_value"] > 0.001
    assert srm["both_arms_customers"] == 0
    assert srm["observed_share"] == pytest.approx(SHARE, abs=0.02)
    assert report["uplift_trustworthy"] is True and report["uplift_note"] is None
    assert "no sample ratio mismatch" in srm["message"]


def test_dropped_holdout_decisions_are_flagged():
    # 70% of the holdout customers' contacts lost: with three contacts each, about a
    # third of those customers vanish entirely, and the holdout shrinks below its share.
    report = value_report(_log(4000, keep_holdout=0.3), SETTINGS)
    srm = report["srm"]
    assert srm["tested"] and srm["mismatch"] and srm["p_value"] < 0.001
    assert srm["observed_share"] < SHARE
    assert report["uplift_trustworthy"] is False and "sample ratio" in report["uplift_note"]
    assert "VEA_HOLDOUT_SHARE" in srm["message"]
    # The uplift keeps its figures.
    assert report["uplift"]["ve_success"]["units_holdout"] == srm["holdout_customers"]


def test_no_holdout_or_too_few_customers_is_said_not_tested():
    none = sample_ratio(np.array(["a", "b"]), np.array(["treatment"] * 2), 0.0, EXPERIMENT)
    assert not none["tested"] and not none["mismatch"] and "no holdout" in none["message"]
    few = sample_ratio(np.array(["a", "b", "c"]), np.array(["treatment"] * 3), 0.1, EXPERIMENT)
    assert not few["tested"] and few["p_value"] is None and "too few" in few["message"]


def test_a_customer_in_both_arms_is_counted_and_flagged():
    customers = np.array([f"c{i}" for i in range(100)] + ["c0"])
    arms = np.array(["holdout" if i < 50 else "treatment" for i in range(100)] + ["treatment"])
    srm = sample_ratio(customers, arms, 0.5, EXPERIMENT)
    assert srm["both_arms_customers"] == 1 and srm["mismatch"]
    assert srm["holdout_customers"] == 49 and srm["treated_customers"] == 50
    assert "both arms" in srm["message"]


# ---------------------------------------------------------- API, dashboard and CLI
SRM_DAY = "2019-03-14"
SRM_PERIOD = {"from": "2019-03-14", "to": "2019-03-15"}


def _decide(client, headers, new_id, count):
    for _ in range(count):
        body = {
            "interaction_id": new_id("i-"),
            "customer": {"customer_id": new_id("c-"), "tenure_months": 2, "segment": "premium"},
            "contact": {
                "channel": "chat",
                "issue_type": "inquiry",
                "occurred_at": f"{SRM_DAY}T10:00:00+00:00",
            },
        }
        assert client.post("/v1/decisions", json=body, headers=headers).status_code == 201


def test_api_dashboard_and_cli_warn_of_a_sample_ratio_mismatch(
    make_app, new_id, database_url, monkeypatch
):
    """Decisions taken with half the customers held out, reported by a service configured
    for 10% (as when the share changed): the report, the page (English and Japanese) and
    `vea report` flag it."""
    from click.testing import CliRunner

    from service.auth import create_key
    from tests.test_pages import log_in
    from training.cli import cli

    deciding = make_app(holdout_share=0.5)
    desk = create_key(deciding.extensions["vea"].engine, "desktop")[1]
    _decide(deciding.test_client(), {"Authorization": f"Bearer {desk}"}, new_id, 60)

    reporting = make_app(holdout_share=0.1)
    engine = reporting.extensions["vea"].engine
    client = reporting.test_client()
    engineer = {"Authorization": f"Bearer {create_key(engine, 'engineer')[1]}"}
    answer = client.get("/v1/reports/value", query_string=SRM_PERIOD, headers=engineer)
    assert answer.status_code == 200, answer.json
    srm = answer.json["srm"]
    assert srm["configured_share"] == 0.1 and srm["tested"] and srm["mismatch"]
    assert srm["p_value"] < 0.001 and srm["holdout_customers"] >= 10
    assert answer.json["uplift_trustworthy"] is False

    log_in(client, create_key(engine, "manager")[1])
    page = client.get("/dashboard", query_string=SRM_PERIOD).get_data(as_text=True)
    assert 'id="srm-warning"' in page and "Sample ratio mismatch" in page
    japanese = client.get("/dashboard", query_string={**SRM_PERIOD, "lang": "ja"})
    assert "サンプル比率の不一致" in japanese.get_data(as_text=True)

    monkeypatch.setenv("VEA_DATABASE_URL", database_url)
    monkeypatch.setenv("VEA_HOLDOUT_SHARE", "0.1")
    text = CliRunner().invoke(
        cli, ["report", "--from", SRM_PERIOD["from"], "--to", SRM_PERIOD["to"]]
    )
    assert text.exit_code == 0, text.output
    assert "WARNING: sample ratio mismatch" in text.output


def test_dashboard_shows_a_quiet_line_when_the_split_holds(make_app, new_id):
    from service.auth import create_key
    from tests.test_pages import log_in

    app = make_app(holdout_share=0.5)
    engine = app.extensions["vea"].engine
    client = app.test_client()
    desk = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    _decide(client, desk, new_id, 40)
    log_in(client, create_key(engine, "manager")[1])
    # Every decision of this period (here and in the test above) was taken at 50%.
    page = client.get("/dashboard", query_string=SRM_PERIOD).get_data(as_text=True)
    assert 'id="srm-ok"' in page and "no mismatch" in page
    assert 'id="srm-warning"' not in page
