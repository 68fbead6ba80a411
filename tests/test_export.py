"""`vea export`: stored decisions + outcomes + events as a valid canonical log."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner


def _decision(client, headers, new_id, customer_id, occurred_at):
    body = {
        "interaction_id": new_id("i-"),
        "customer": {
            "customer_id": customer_id,
            "tenure_months": 5,
            "segment": "consumer",
            "language": "ja",
        },
        "contact": {"channel": "voice", "issue_type": "how_to", "occurred_at": occurred_at},
        "features": {"plan": "gold"},
    }
    response = client.post("/v1/decisions", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def _export(monkeypatch, database_url, out, *args):
    from training.cli import cli

    monkeypatch.setenv("VEA_DATABASE_URL", database_url)
    return CliRunner().invoke(cli, ["export", "--out", str(out), *args])


def test_export_writes_a_valid_log_with_propensities_and_retention(
    make_app, database_url, monkeypatch, tmp_path, new_id
):
    from service.auth import create_key
    from training.loading import load_log

    app = make_app(exploration="softmax", propensity_floor=0.05, holdout_share=0.2)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_key(app.extensions['vea'].engine, 'desktop')[1]}"}
    marker = new_id("c-")
    answers = []
    for i in range(12):
        customer = f"{marker}-{i}"
        answer = _decision(client, headers, new_id, customer, "2020-02-03T09:00:00+00:00")
        answers.append(answer)
        if i < 9:  # three stay without an outcome
            outcome = {
                "offered": answer["suggested_activity"] != "none",
                "ves_confidence": 7,
                "ves_ability": 6 if i % 2 else 3,
                "handle_time_s": 200.0 + i,
                "agent_id": f"agent-{i % 3}",
                "csat": 4,
            }
            r = client.post(
                f"/v1/decisions/{answer['decision_id']}/outcome", json=outcome, headers=headers
            )
            assert r.status_code == 201, r.json
    # Customer 0 churns 10 days later: not retained at 30/60 days.
    r = client.post(
        f"/v1/customers/{marker}-0/events",
        json={"type": "churned", "occurred_at": "2020-02-13T00:00:00+00:00"},
        headers=headers,
    )
    assert r.status_code == 201, r.json

    out = tmp_path / "log.parquet"
    result = _export(
        monkeypatch, database_url, out, "--since", "2020-02-03", "--until", "2020-02-04"
    )
    assert result.exit_code == 0, result.output
    assert "exported 9 decisions" in result.output
    assert "3 decisions in the period have no outcome yet" in result.output

    log = load_log(out)  # the training loader's validation accepts it
    assert len(log) == 9
    by_decision = {a["decision_id"]: a for a in answers}
    for row in log.itertuples():
        answer = by_decision[row.decision_id]
        assert row.activity == answer["suggested_activity"]
        assert row.propensity == answer["propensity"]
        assert row.experiment_arm == answer["experiment_arm"]
        assert row.model_version == answer["model_version"]
        assert row.language == "ja" and row.segment == "consumer"
        assert row.plan == "gold"  # an extra feature travels along
    success = dict(zip(log["decision_id"], log["ve_success"], strict=True))
    assert success[answers[1]["decision_id"]] == 1.0  # 7 and 6: top-2-box on both
    assert success[answers[0]["decision_id"]] == 0.0
    first = log.set_index("decision_id").loc[answers[0]["decision_id"]]
    assert first["retained_30d"] == 0.0 and first["retained_60d"] == 0.0
    # The others' windows have closed without a churn: retained.
    assert log.set_index("decision_id").loc[answers[1]["decision_id"], "retained_60d"] == 1.0


def test_export_of_an_empty_period_writes_the_header_only(app, database_url, monkeypatch, tmp_path):
    out = tmp_path / "empty.csv"
    result = _export(monkeypatch, database_url, out, "--since", "2099-01-01")
    assert result.exit_code == 0, result.output
    assert "exported 0 decisions" in result.output
    assert "no decisions with outcomes in the period" in result.output
    frame = pd.read_csv(out)
    assert len(frame) == 0
    assert {"interaction_id", "activity", "propensity", "experiment_arm"} <= set(frame.columns)


def test_export_refuses_an_unknown_format(app, database_url, monkeypatch, tmp_path):
    result = _export(monkeypatch, database_url, tmp_path / "log.json")
    assert result.exit_code != 0
    assert "csv or .parquet" in result.output


def test_outcomes_without_ves_answers_are_exported_for_the_rewards_that_can_use_them(
    app, database_url, monkeypatch, tmp_path, new_id
):
    """Most contacts get no survey: their outcome (offered, accepted, handle time) must
    still reach training, with ve_success left empty (unknown), not be dropped."""
    from models.schema import LABEL, parse_reward
    from service.auth import create_key
    from training.fit import apply_reward
    from training.loading import load_log

    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_key(app.extensions['vea'].engine, 'desktop')[1]}"}
    marker = new_id("c-")
    for i in range(6):
        answer = _decision(client, headers, new_id, f"{marker}-{i}", "2020-03-05T09:00:00+00:00")
        offered = answer["suggested_activity"] != "none"
        outcome = {"offered": offered, "handle_time_s": 180.0, "agent_id": "agent-1"}
        if offered:
            outcome["accepted"] = i % 2 == 0
        if i < 3:
            outcome.update(ves_confidence=7, ves_ability=7)
        r = client.post(
            f"/v1/decisions/{answer['decision_id']}/outcome", json=outcome, headers=headers
        )
        assert r.status_code == 201, r.json

    out = tmp_path / "log.csv"
    result = _export(
        monkeypatch, database_url, out, "--since", "2020-03-05", "--until", "2020-03-06"
    )
    assert result.exit_code == 0, result.output
    assert "exported 6 decisions" in result.output
    assert "3 outcomes have no VES answers" in result.output
    log = load_log(out)
    assert len(log) == 6 and int(log[LABEL].isna().sum()) == 3
    default, left_out = apply_reward(log, None)
    assert len(default) == 3 and left_out == 3  # ve_success: unknown without the survey
    accepted, left_out = apply_reward(log, parse_reward("accepted"))
    assert len(accepted) == 6 and left_out == 0  # every outcome says whether it was taken up
