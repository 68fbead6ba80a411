"""Sample ratio mismatch: the customers seen per arm against the configured holdout share."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy.stats import chisquare

from models.exploration import holdout_arm
from models.value_report import (
    ValueSettings,
    assignment_draws,
    chi_square_gof,
    sample_ratio,
    value_report,
)

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
    # Without the experiment the arms cannot be checked against the hash: the configured
    # share is all there is, and one share never puts a customer in both arms.
    customers = np.array([f"c{i}" for i in range(100)] + ["c0"])
    arms = np.array(["holdout" if i < 50 else "treatment" for i in range(100)] + ["treatment"])
    srm = sample_ratio(customers, arms, 0.5, None)
    assert srm["both_arms_customers"] == 1 and srm["mismatch"]
    assert srm["holdout_customers"] == 49 and srm["treated_customers"] == 50
    assert "both arms" in srm["message"] and srm["share_source"] == "configured"
    assert srm["assigned_otherwise"] is None and "VEA_EXPERIMENT unknown" in srm["message"]


# ------------------------------------------------- the share in force, from the decisions
def _timed(*runs: tuple[float, range, str], experiment: str = EXPERIMENT, keep: float = 1.0):
    """Decisions of each run's customers (``range``) assigned by the service's hash at
    that run's share, one a second from the run's start (ISO, UTC); ``keep``: the share
    of holdout decisions stored (a desk dropping the rest)."""
    rng = np.random.default_rng(11)
    cols: dict[str, list] = {"decision_id": [], "customer_id": [], "experiment_arm": [],
                             "occurred_at": []}  # fmt: skip
    for share, customers, start in runs:
        begin = datetime.fromisoformat(start)
        for k, i in enumerate(customers):
            arm = holdout_arm(f"c-{i}", share, experiment)
            if arm == "holdout" and rng.random() >= keep:
                continue
            cols["decision_id"].append(f"d-{start}-{i}")
            cols["customer_id"].append(f"c-{i}")
            cols["experiment_arm"].append(arm)
            cols["occurred_at"].append((begin + timedelta(seconds=k)).isoformat())
    n = len(cols["decision_id"])
    cols["has_outcome"] = [True] * n
    cols["ve_success"] = [1.0] * n
    return cols


def test_assignment_draws_are_the_services_hash():
    """The report re-draws each customer's assignment: it must be the one holdout_arm
    uses, or every share read from the decisions would be wrong."""
    customers = [f"c-{i}" for i in range(2000)]
    draws = assignment_draws(customers, EXPERIMENT)
    for share in (0.05, 0.1, 0.5):
        assert [holdout_arm(c, share, EXPERIMENT) == "holdout" for c in customers] == list(
            draws < share
        )


def test_a_split_that_matches_the_configured_share_says_so():
    srm = value_report(_timed((SHARE, range(3000), "2026-03-01T10:00:00")), SETTINGS)["srm"]
    assert srm["share_source"] == "configured" and srm["assigned_otherwise"] == 0
    assert srm["share_changes"] == 0 and srm["expected_share"] == pytest.approx(SHARE)
    assert not srm["mismatch"] and "Every decision is in the arm" in srm["message"]
    assert srm["min_expected"] == 5


def test_a_period_run_under_another_share_is_tested_against_that_share():
    """Decisions taken at 50% and reported under 10% (the share changed after the period):
    the check compared with 10% and cried mismatch; the decisions' arms show 50% was in
    force, and the split is right."""
    report = value_report(_timed((0.5, range(3000), "2026-03-01T10:00:00")), SETTINGS)
    srm = report["srm"]
    assert srm["share_source"] == "decisions" and srm["share_changes"] == 0
    assert srm["assigned_otherwise"] > 1000
    (run,) = srm["share_history"]
    assert run["share_low"] < run["share"] <= run["share_high"]
    assert run["share"] == pytest.approx(0.5, abs=0.002) and run["decisions"] == 3000
    assert srm["expected_share"] == pytest.approx(0.5, abs=0.002)
    assert srm["tested"] and not srm["mismatch"] and srm["p_value"] > 0.001
    assert "not the configured 10.0%" in srm["message"]
    assert report["uplift_trustworthy"] is True
    # The experiment is over (share 0 now): the period is still tested against its share.
    ended = sample_ratio(
        np.array(report_customers := [f"c-{i}" for i in range(3000)]),
        np.array([holdout_arm(c, 0.2, EXPERIMENT) for c in report_customers]),
        0.0,
        EXPERIMENT,
    )
    assert ended["tested"] and not ended["mismatch"]
    assert ended["expected_share"] == pytest.approx(0.2, abs=0.002)


def test_a_share_changed_during_the_period_is_found_dated_and_flags_the_uplift():
    """10% in the morning, 30% from noon; 1,000 customers call on both sides, so about
    200 are in both arms, as the shares expect. The change is dated between the last
    decision only 10% explains and the first only 30% explains, the split is tested
    against the shares in force (it holds), and the uplift is flagged: the arms mix
    splits."""
    cols = _timed(
        (0.1, range(0, 2000), "2026-03-01T10:00:00"),
        (0.3, range(1000, 4000), "2026-03-01T12:00:00"),
    )
    report = value_report(cols, ValueSettings(holdout_share=0.3, experiment=EXPERIMENT))
    srm = report["srm"]
    assert srm["share_source"] == "decisions" and srm["share_changes"] == 1
    before, after = srm["share_history"]
    assert before["share"] == pytest.approx(0.1, abs=0.005) and after["share"] == 0.3
    assert before["changed_after"] is None
    assert after["changed_after"] < "2026-03-01T12:00:00" <= after["from"]
    assert after["from"].endswith("Z") and after["changed_after"].endswith("Z")  # as the API
    assert after["from"] < "2026-03-01T12:01:00"  # found within a minute of traffic
    assert srm["both_arms_expected"] == pytest.approx(200, rel=0.1)
    assert srm["both_arms_customers"] == pytest.approx(200, rel=0.2)
    assert srm["tested"] and srm["p_value"] > 0.001 and srm["mismatch"]
    assert "changed 1 time" in srm["message"] and "changed after" in srm["message"]
    assert report["uplift_trustworthy"] is False
    assert "share changed" in report["uplift_note"]
    # The same period with most holdout decisions lost: the shares in force still show,
    # and the split against them fails.
    dropped = value_report(
        _timed(
            (0.1, range(0, 2000), "2026-03-01T10:00:00"),
            (0.3, range(1000, 4000), "2026-03-01T12:00:00"),
            keep=0.4,
        ),  # fmt: skip
        ValueSettings(holdout_share=0.3, experiment=EXPERIMENT),
    )["srm"]
    assert dropped["share_changes"] == 1 and dropped["p_value"] < 0.001
    assert dropped["message"].startswith("sample ratio mismatch")


def test_one_wrongly_logged_arm_is_flagged():
    cols = _timed((SHARE, range(3000), "2026-03-01T10:00:00"))
    held = cols["experiment_arm"].index("holdout", 1500)
    cols["experiment_arm"][held] = "treatment"
    srm = value_report(cols, SETTINGS)["srm"]
    assert srm["assigned_otherwise"] == 1 and srm["mismatch"]
    assert "logged wrongly" in srm["message"]


def test_arms_of_another_experiment_fall_back_to_the_configured_share():
    """A period assigned under another VEA_EXPERIMENT (salt): its arms do not follow this
    experiment's hash, no share is read from them, and the configured one is used."""
    cols = _timed((SHARE, range(3000), "2026-03-01T10:00:00"), experiment="an-older-one")
    srm = value_report(cols, SETTINGS)["srm"]
    assert srm["share_source"] == "unchecked" and srm["share_history"] is None
    assert srm["assigned_otherwise"] > 300 and srm["expected_share"] == pytest.approx(SHARE)
    assert srm["tested"] and not srm["mismatch"]
    assert "another experiment" in srm["message"]


# ---------------------------------------------------------- API, dashboard and CLI
SRM_DAY = "2019-03-14"
SRM_PERIOD = {"from": "2019-03-14", "to": "2019-03-15"}


def _decide(client, headers, new_id, count, at=f"{SRM_DAY}T10:00:00"):
    """``count`` new customers' decisions, one a second from ``at`` (UTC)."""
    begin = datetime.fromisoformat(at)
    for k in range(count):
        moment = (begin + timedelta(seconds=k)).isoformat()
        body = {
            "interaction_id": new_id("i-"),
            "customer": {"customer_id": new_id("c-"), "tenure_months": 2, "segment": "premium"},
            "contact": {"channel": "chat", "issue_type": "inquiry", "occurred_at": moment + "Z"},
        }
        assert client.post("/v1/decisions", json=body, headers=headers).status_code == 201


CHANGE_DAY = "2019-03-21"  # this test's own day (the database is shared)


def test_api_dashboard_and_cli_warn_of_a_share_changed_in_the_period(
    make_app, new_id, database_url, monkeypatch
):
    """Decisions taken with half the customers held out in the morning and 10% in the
    afternoon, reported by a service configured for 10%: the morning alone is the split
    of its own share (it was a false mismatch against the configured one); the whole day
    mixes two splits, and the report, the page (English and Japanese) and `vea report`
    flag it."""
    from click.testing import CliRunner

    from service.auth import create_key
    from tests.test_pages import log_in
    from training.cli import cli

    morning = make_app(holdout_share=0.5)
    desk = create_key(morning.extensions["vea"].engine, "desktop")[1]
    _decide(morning.test_client(), {"Authorization": f"Bearer {desk}"}, new_id, 60,
            at=f"{CHANGE_DAY}T10:00:00")  # fmt: skip

    reporting = make_app(holdout_share=0.1)
    engine = reporting.extensions["vea"].engine
    client = reporting.test_client()
    engineer = {"Authorization": f"Bearer {create_key(engine, 'engineer')[1]}"}
    before = {"from": f"{CHANGE_DAY}T00:00:00Z", "to": f"{CHANGE_DAY}T12:00:00Z"}
    answer = client.get("/v1/reports/value", query_string=before, headers=engineer)
    assert answer.status_code == 200, answer.json
    srm = answer.json["srm"]
    assert srm["configured_share"] == 0.1 and srm["tested"] and not srm["mismatch"]
    assert "not the configured 10.0%" in srm["message"]
    assert answer.json["uplift_trustworthy"] is True
    # The answer carries what the check read from the decisions (the schema keeps it).
    assert srm["share_source"] == "decisions" and srm["share_changes"] == 0
    assert 0.3 < srm["expected_share"] < 0.7 and srm["assigned_otherwise"] > 0
    assert srm["min_expected"] == 5 and srm["both_arms_expected"] == 0
    (run,) = srm["share_history"]
    assert run["decisions"] == 60 and run["changed_after"] is None
    assert run["from"].startswith(f"{CHANGE_DAY}T10:00:00")
    assert run["share_low"] < run["share"] <= run["share_high"]

    desk = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    _decide(client, desk, new_id, 60, at=f"{CHANGE_DAY}T14:00:00")
    day = {"from": CHANGE_DAY, "to": "2019-03-22"}
    answer = client.get("/v1/reports/value", query_string=day, headers=engineer)
    srm = answer.json["srm"]
    assert srm["mismatch"] and "changed 1 time" in srm["message"]
    assert f"{CHANGE_DAY}T14:00:" in srm["message"]  # the afternoon's run
    assert answer.json["uplift_trustworthy"] is False
    assert srm["share_changes"] == 1 and len(srm["share_history"]) == 2
    assert srm["share_history"][1]["from"].startswith(f"{CHANGE_DAY}T14:00:")
    assert srm["share_history"][1]["changed_after"] < srm["share_history"][1]["from"]

    log_in(client, create_key(engine, "manager")[1])
    # The whole day: the share changed, said as such (nothing is broken: no mismatch
    # text that blames the assignment or the logging), with when.
    page = client.get("/dashboard", query_string=day).get_data(as_text=True)
    said = re.search(r'id="srm-share-changed">(.*?)</p>', page, re.S).group(1)
    assert f"The holdout share changed during the period (on {CHANGE_DAY} 14:00 UTC)" in said
    assert "report each side of the change separately" in said
    assert 'id="srm-warning"' not in page and "Sample ratio mismatch" not in page
    japanese = client.get("/dashboard", query_string={**day, "lang": "ja"})
    japanese = japanese.get_data(as_text=True)
    assert f"期間中に対照群の割合が変更されました（{CHANGE_DAY} 14:00 UTC）" in japanese
    assert "サンプル比率の不一致" not in japanese

    monkeypatch.setenv("VEA_DATABASE_URL", database_url)
    monkeypatch.setenv("VEA_HOLDOUT_SHARE", "0.1")
    text = CliRunner().invoke(cli, ["report", "--from", day["from"], "--to", day["to"]])
    assert text.exit_code == 0, text.output
    assert "WARNING:" in text.output and "changed 1 time" in text.output
    # The share expected and each run, with the times to split the period at.
    assert "expected holdout share" in text.output and "read from the decisions" in text.output
    assert "share changes in the period 1" in text.output
    assert re.search(
        rf"\n    10\.0% from {CHANGE_DAY}T14:00:\S+ to .* \(changed after ", text.output
    )


def test_dashboard_shows_a_quiet_line_when_the_split_holds(make_app, new_id):
    from service.auth import create_key
    from tests.test_pages import log_in

    app = make_app(holdout_share=0.5)
    engine = app.extensions["vea"].engine
    client = app.test_client()
    desk = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    _decide(client, desk, new_id, 40)
    log_in(client, create_key(engine, "manager")[1])
    # Every decision of this period was taken at 50%.
    page = client.get("/dashboard", query_string=SRM_PERIOD).get_data(as_text=True)
    assert 'id="srm-ok"' in page and "no mismatch" in page
    assert 'id="srm-warning"' not in page


ENDED_DAY = "2019-03-28"  # this test's own day


def test_dashboard_checks_a_period_reported_after_the_holdout_ended(make_app, new_id):
    """Decisions taken with half the customers held out, reported once the holdout has
    ended (VEA_HOLDOUT_SHARE 0): the page still shows the split against the share the
    period ran under (it showed nothing: the line hung on the configured share)."""
    from service.auth import create_key
    from tests.test_pages import log_in

    during = make_app(holdout_share=0.5)
    desk = create_key(during.extensions["vea"].engine, "desktop")[1]
    _decide(during.test_client(), {"Authorization": f"Bearer {desk}"}, new_id, 40,
            at=f"{ENDED_DAY}T10:00:00")  # fmt: skip
    after = make_app(holdout_share=0.0)
    client = after.test_client()
    log_in(client, create_key(after.extensions["vea"].engine, "manager")[1])
    query = {"from": ENDED_DAY, "to": ENDED_DAY}
    page = client.get("/dashboard", query_string=query).get_data(as_text=True)
    said = re.search(r'id="srm-ok"><small>(.*?)</small>', page, re.S).group(1)
    # The share read from 40 customers' arms: about 50% (exact to about 1/40).
    expected = float(re.search(r"expected ([\d.]+)%", said).group(1))
    assert "no mismatch" in said and 25 < expected < 75
    japanese = client.get("/dashboard", query_string={**query, "lang": "ja"})
    assert 'id="srm-ok"' in japanese.get_data(as_text=True)
    assert "想定 " in japanese.get_data(as_text=True)
