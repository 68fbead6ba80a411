"""Late rewards: customer events joined to the decisions they follow (retention windows,
upgrades), idempotent on event id, kept when they arrive out of order or before any
decision; offered vs accepted kept apart."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

T0 = datetime(2020, 1, 1, 9, 0, 0)
LATER = datetime(2021, 6, 1)  # every window has closed
WINDOWS = {"retained_30d": 30, "retained_60d": 60, "retained_90d": 90}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _decide(client, headers, new_id, customer, at=T0):
    body = {
        "interaction_id": new_id("i-"),
        "customer": {"customer_id": customer, "tenure_months": 3},
        "contact": {"channel": "voice", "issue_type": "how_to", "occurred_at": _iso(at)},
    }
    response = client.post("/v1/decisions", json=body, headers=headers)
    assert response.status_code == 201, response.json
    answer = response.json
    outcome = {"offered": False, "ve_success": True, "occurred_at": _iso(at)}
    r = client.post(f"/v1/decisions/{answer['decision_id']}/outcome", json=outcome, headers=headers)
    assert r.status_code == 201, r.json
    return answer


def _event(client, headers, customer, kind, at, event_id=None):
    body = {"type": kind, "occurred_at": _iso(at)}
    if event_id:
        body["event_id"] = event_id
    return client.post(f"/v1/customers/{customer}/events", json=body, headers=headers)


def _frame(app, now, customer_prefix):
    from service.export import decision_frame

    frame = decision_frame(app.extensions["vea"].engine, now=now)
    return frame[frame["customer_id"].str.startswith(customer_prefix)].set_index("customer_id")


@pytest.mark.parametrize(("window", "days"), list(WINDOWS.items()))
def test_churn_inside_at_the_edge_of_and_after_each_window(app, client, keys, new_id, window, days):
    headers = keys["desktop"]
    prefix = new_id("c-")
    cases = {
        "inside": T0 + timedelta(days=days - 1),  # churned within: not retained
        "edge": T0 + timedelta(days=days),  # exactly at the end: still within
        "after": T0 + timedelta(days=days, seconds=1),  # just after: retained
    }
    for name, at in cases.items():
        _decide(client, headers, new_id, f"{prefix}-{name}")
        assert _event(client, headers, f"{prefix}-{name}", "churned", at).status_code == 201
    frame = _frame(app, LATER, prefix)
    assert frame.loc[f"{prefix}-inside", window] == 0.0
    assert frame.loc[f"{prefix}-edge", window] == 0.0
    assert frame.loc[f"{prefix}-after", window] == 1.0
    # While the window is open the value stays empty, for a churn inside it too: a
    # recent period must not hold its churners and none of the customers who stay.
    during = _frame(app, cases["inside"] + timedelta(hours=1), prefix)
    assert np.isnan(during.loc[f"{prefix}-after", window])
    assert np.isnan(during.loc[f"{prefix}-inside", window])


def test_renewal_after_the_window_and_upgrade_within_it(app, client, keys, new_id):
    headers = keys["desktop"]
    prefix = new_id("c-")
    _decide(client, headers, new_id, f"{prefix}-r")
    _decide(client, headers, new_id, f"{prefix}-u")
    _event(client, headers, f"{prefix}-r", "renewed", T0 + timedelta(days=31))
    _event(client, headers, f"{prefix}-u", "upgraded", T0 + timedelta(days=20))
    # Now is day 40: the 30-day window closed; the renewal after it says retained.
    frame = _frame(app, T0 + timedelta(days=40), prefix)
    assert frame.loc[f"{prefix}-r", "retained_30d"] == 1.0
    assert np.isnan(frame.loc[f"{prefix}-r", "retained_60d"])  # still open
    # 90 days not over yet: neither the upgrade nor its absence is reported.
    assert np.isnan(frame.loc[f"{prefix}-u", "upgraded"])
    assert np.isnan(frame.loc[f"{prefix}-r", "upgraded"])
    later = _frame(app, LATER, prefix)
    assert later.loc[f"{prefix}-u", "upgraded"] == 1.0
    assert later.loc[f"{prefix}-r", "upgraded"] == 0.0


def test_a_duplicate_event_is_stored_once_and_joined_once(app, client, keys, new_id):
    from service.db import customer_events

    headers = keys["desktop"]
    customer = new_id("c-")
    _decide(client, headers, new_id, customer)
    at = T0 + timedelta(days=10)
    first = _event(client, headers, customer, "churned", at, event_id="crm-7")
    again = _event(client, headers, customer, "churned", at, event_id="crm-7")
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json == first.json
    assert first.json["follows_decisions"] == 1
    engine = app.extensions["vea"].engine
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(sa.func.count())
            .select_from(customer_events)
            .where(customer_events.c.customer_id == customer)
        ).scalar_one()
    assert stored == 1
    clash = _event(client, headers, customer, "renewed", at, event_id="crm-7")
    assert clash.status_code == 409
    assert _frame(app, LATER, customer).loc[customer, "retained_30d"] == 0.0


def test_events_before_any_decision_or_out_of_order_are_kept_and_joined(app, client, keys, new_id):
    headers = keys["desktop"]
    prefix = new_id("c-")
    # No decision at all for this customer: a clear answer, and the event is kept.
    lonely = _event(client, headers, f"{prefix}-none", "churned", T0)
    assert lonely.status_code == 201
    assert lonely.json["follows_decisions"] == 0 and lonely.json["id"] > 0
    # An event that precedes the customer's only decision is not joined to it.
    early = f"{prefix}-early"
    _event(client, headers, early, "churned", T0 - timedelta(days=3))
    _decide(client, headers, new_id, early)
    # Out of order: the churn arrives before the decision it follows is recorded.
    late = f"{prefix}-late"
    before = _event(client, headers, late, "churned", T0 + timedelta(days=5))
    assert before.status_code == 201 and before.json["follows_decisions"] == 0
    _decide(client, headers, new_id, late)
    frame = _frame(app, LATER, prefix)
    assert frame.loc[early, "retained_30d"] == 1.0
    assert frame.loc[late, "retained_30d"] == 0.0
    assert f"{prefix}-none" not in frame.index


def test_a_window_still_open_is_empty_in_the_export(app, client, keys, new_id, tmp_path):
    from service.export import export_log
    from training.loading import load_log

    headers = keys["desktop"]
    prefix = new_id("c-")
    recent = datetime(2020, 3, 1, 9, 0, 0)
    for i in range(3):
        _decide(client, headers, new_id, f"{prefix}-{i}", at=recent)
    _event(client, headers, f"{prefix}-0", "churned", recent + timedelta(days=2))
    out = tmp_path / "log.parquet"
    result = export_log(
        app.extensions["vea"].engine,
        out,
        since=recent,
        until=recent + timedelta(days=1),
        now=recent + timedelta(days=45),
    )
    assert result.rows == 3
    log = load_log(out).set_index("customer_id")
    assert log.loc[f"{prefix}-0", "retained_30d"] == 0.0
    assert log.loc[f"{prefix}-1", "retained_30d"] == 1.0  # closed without a churn
    for window in ("retained_60d", "retained_90d"):
        for customer in (f"{prefix}-0", f"{prefix}-1"):  # open: empty, churn or not
            assert pd.isna(log.loc[customer, window])
    assert pd.isna(log.loc[f"{prefix}-1", "upgraded"])


def test_an_outcome_offered_but_not_accepted(app, client, keys, new_id):
    from models.schema import parse_reward
    from service.reports import value
    from training.fit import apply_reward

    headers = keys["desktop"]
    customer = new_id("c-")
    body = {
        "interaction_id": new_id("i-"),
        "customer": {"customer_id": customer, "tenure_months": 3},
        "contact": {"channel": "voice", "issue_type": "how_to", "occurred_at": _iso(T0)},
    }
    answer = client.post("/v1/decisions", json=body, headers=headers).json
    outcome = {
        "activity": "educate_usage",
        "offered": True,
        "accepted": False,
        "ve_success": False,
        "agent_id": f"agent-{customer}",
    }
    r = client.post(f"/v1/decisions/{answer['decision_id']}/outcome", json=outcome, headers=headers)
    assert r.status_code == 201, r.json
    assert r.json["offered"] is True and r.json["accepted"] is False
    row = _frame(app, LATER, customer).loc[customer]
    assert row["offered"] == 1.0 and row["accepted"] == 0.0
    assert row["delivered_activity"] == "educate_usage"
    labelled, left_out = apply_reward(
        _frame(app, LATER, customer).reset_index(), parse_reward("accepted")
    )
    assert left_out == 0 and labelled["ve_success"].tolist() == [0.0]
    st = app.extensions["vea"]
    report = value(st.engine, st.settings, T0, T0 + timedelta(days=1))
    [agent] = [g for g in report["by"]["agent_id"] if g["group"] == f"agent-{customer}"]
    assert agent["offered"] == (1 if answer["suggested_activity"] != "none" else 0)
    assert agent["accepted"] == 0 and agent["acceptance"] == 0.0
