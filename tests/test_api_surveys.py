"""Late survey answers (POST /v1/decisions/{id}/survey): stored once, added to the
outcome whichever comes first, never overwritten, and counted wherever outcomes are read
(the decision, the customer's data, the export, the value report), erased and pruned with
the decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from test_api_outcomes_events import CONTACT_TIME, make_decision

from service.db import outcomes, surveys

SURVEY = {
    "survey_id": "svy-1",
    "answered_at": "2025-03-02T08:00:00+09:00",
    "ves_confidence": 7,
    "ves_ability": 6,
    "csat": 5,
    "nps": 9,
    "ces": 2,
}
WRAP_UP = {"offered": True, "activity": "educate_usage", "handle_time_s": 300.0, "agent_id": "a-1"}


def _post(client, headers, decision_id, body, what="survey"):
    return client.post(f"/v1/decisions/{decision_id}/{what}", json=body, headers=headers)


def _counts(app, decision_id) -> tuple[int, int]:
    with app.extensions["vea"].engine.connect() as conn:
        return tuple(
            conn.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c.decision_id == decision_id)
            ).scalar_one()
            for t in (outcomes, surveys)
        )


def _metric(app, outcome: str) -> float:
    registry = app.extensions["vea"].metrics.registry
    return registry.get_sample_value("vea_surveys_total", {"outcome": outcome}) or 0.0


def test_a_survey_after_the_outcome_fills_it_and_a_replay_is_idempotent(app, client, keys, new_id):
    desk = keys["desktop"]
    decision = make_decision(client, desk, new_id, occurred_at=CONTACT_TIME)
    did = decision["decision_id"]
    outcome = _post(client, desk, did, WRAP_UP, "outcome")
    assert outcome.status_code == 201 and outcome.json["ve_success"] is None
    before = _metric(app, "recorded")

    first = _post(client, desk, did, SURVEY)
    assert first.status_code == 201, first.json
    assert first.json["outcome_recorded"] is True
    assert first.json["ve_success"] is True  # top-2-box on both items, derived late
    assert first.json["answered_at"] == "2025-03-01T23:00:00.000Z"
    assert first.json["survey_id"] == "svy-1" and first.json["nps"] == 9
    assert _metric(app, "recorded") == before + 1

    again = _post(client, desk, did, SURVEY)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    assert _metric(app, "recorded") == before + 1  # a replay is not counted
    # A subset of the stored answers is the same survey too.
    assert _post(client, desk, did, {"csat": 5}).status_code == 200

    stored = client.get(f"/v1/decisions/{did}", headers=desk).json
    assert stored["outcome"]["ves_confidence"] == 7 and stored["outcome"]["csat"] == 5
    assert stored["outcome"]["ve_success"] is True
    assert stored["outcome"]["handle_time_s"] == 300.0  # the agent's own answers stay
    assert stored["survey"] == first.json
    # The outcome's own retry still replays (its payload is what the agent sent).
    retry = _post(client, desk, did, WRAP_UP, "outcome")
    assert retry.status_code == 200 and retry.json["ves_ability"] == 6
    assert _counts(app, did) == (1, 1)


def test_a_survey_before_the_outcome_waits_and_counts_once_the_outcome_comes(
    app, client, keys, new_id
):
    desk = keys["desktop"]
    did = make_decision(client, desk, new_id, occurred_at=CONTACT_TIME)["decision_id"]
    before = _metric(app, "pending")
    early = _post(client, desk, did, {"ves_confidence": 3, "ves_ability": 7, "csat": 2})
    assert early.status_code == 201, early.json
    assert early.json["outcome_recorded"] is False and early.json["ve_success"] is None
    assert _metric(app, "pending") == before + 1
    stored = client.get(f"/v1/decisions/{did}", headers=desk).json
    assert stored["outcome"] is None and stored["survey"]["csat"] == 2  # visible anyway

    # The agent's outcome with an answer of its own (CES) and one the survey also gave.
    outcome = _post(client, desk, did, {**WRAP_UP, "ces": 4, "csat": 2}, "outcome")
    assert outcome.status_code == 201, outcome.json
    assert outcome.json["ves_confidence"] == 3 and outcome.json["ves_ability"] == 7
    assert outcome.json["csat"] == 2 and outcome.json["ces"] == 4
    assert outcome.json["ve_success"] is False  # 3 is not top-2-box
    again = _post(client, desk, did, {**WRAP_UP, "ces": 4, "csat": 2}, "outcome")
    assert again.status_code == 200 and again.json == outcome.json

    # More answers later: added; the outcome's CES is a stored answer too.
    late = _post(client, desk, did, {"nps": 10, "ces": 4})
    assert late.status_code == 201 and late.json["outcome_recorded"] is True
    assert late.json["nps"] == 10 and late.json["csat"] == 2
    record = client.get(f"/v1/decisions/{did}", headers=desk).json
    assert record["outcome"]["nps"] == 10 and record["outcome"]["ves_confidence"] == 3
    assert _counts(app, did) == (1, 1)


def test_an_explicit_ve_success_of_the_outcome_is_kept(client, keys, new_id):
    desk = keys["desktop"]
    did = make_decision(client, desk, new_id)["decision_id"]
    assert _post(client, desk, did, {**WRAP_UP, "ve_success": False}, "outcome").status_code == 201
    answer = _post(client, desk, did, {"ves_confidence": 7, "ves_ability": 7})
    assert answer.status_code == 201 and answer.json["ve_success"] is False


def test_a_different_answer_is_409_and_nothing_changes(app, client, keys, new_id):
    desk = keys["desktop"]
    did = make_decision(client, desk, new_id, occurred_at=CONTACT_TIME)["decision_id"]
    assert _post(client, desk, did, SURVEY).status_code == 201
    for changed in ({"ves_confidence": 2}, {"survey_id": "svy-2", "csat": 5},
                    {"answered_at": "2025-03-02T09:00:00+09:00", "nps": 9}):  # fmt: skip
        conflict = _post(client, desk, did, changed)
        assert conflict.status_code == 409, changed
        error = conflict.json["error"]
        assert error["code"] == "survey_conflict"
        assert set(error["fields"]) == {next(iter(changed))}
    # The outcome may not contradict the survey either, and is then not stored.
    refused = _post(client, desk, did, {**WRAP_UP, "csat": 1}, "outcome")
    assert refused.status_code == 409 and refused.json["error"]["fields"] == {
        "csat": ["5 is already recorded"]
    }
    assert _counts(app, did) == (0, 1)

    # Nor a survey the outcome's own answers contradict.
    other = make_decision(client, desk, new_id)["decision_id"]
    assert _post(client, desk, other, {**WRAP_UP, "ves_ability": 2}, "outcome").status_code == 201
    conflict = _post(client, desk, other, {"ves_ability": 6, "csat": 4})
    assert conflict.status_code == 409 and "ves_ability" in conflict.json["error"]["fields"]
    assert _counts(app, other) == (1, 0)
    stored = client.get(f"/v1/decisions/{other}", headers=desk).json
    assert stored["outcome"]["csat"] is None and stored["survey"] is None


def test_a_survey_of_an_unknown_decision_is_404(client, keys):
    answer = _post(client, keys["desktop"], "0" * 32, {"csat": 4})
    assert answer.status_code == 404
    assert answer.json["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "_schema"),
        ({"survey_id": "svy-9"}, "_schema"),
        ({"ves_confidence": None, "csat": None}, "_schema"),
        ({"ves_confidence": 0}, "ves_confidence"),
        ({"ves_ability": 8}, "ves_ability"),
        ({"csat": 6}, "csat"),
        ({"nps": 11}, "nps"),
        ({"nps": -1}, "nps"),
        ({"ces": 0}, "ces"),
        ({"csat": "5"}, "csat"),
        ({"csat": 4.5}, "csat"),
        ({"csat": True}, "csat"),
        ({"csat": 4, "answered_at": "2025-03-02T08:00:00"}, "answered_at"),  # no offset
        ({"csat": 4, "answered_at": "yesterday"}, "answered_at"),
        ({"csat": 4, "survey_id": ""}, "survey_id"),
        ({"csat": 4, "comment": "great"}, "comment"),
    ],
)
def test_invalid_surveys_are_422_naming_the_field(client, keys, new_id, body, field):
    did = make_decision(client, keys["desktop"], new_id)["decision_id"]
    answer = _post(client, keys["desktop"], did, body)
    assert answer.status_code == 422, answer.json
    assert field in answer.json["error"]["fields"], answer.json


def test_answered_at_lies_between_the_contact_and_now(app, client, keys, new_id):
    desk = keys["desktop"]
    did = make_decision(client, desk, new_id, occurred_at=CONTACT_TIME)["decision_id"]
    before_contact = _post(client, desk, did, {"csat": 4, "answered_at": "2025-02-28T00:00:00Z"})
    assert before_contact.status_code == 422
    assert before_contact.json["error"]["fields"] == {
        "answered_at": ["before the decision's contact"]
    }
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    ahead = _post(client, desk, did, {"csat": 4, "answered_at": future})
    assert ahead.status_code == 422 and "answered_at" in ahead.json["error"]["fields"]
    within_skew = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    assert _post(client, desk, did, {"csat": 4, "answered_at": within_skew}).status_code == 201
    assert _counts(app, did) == (0, 1)


def test_only_keys_that_record_outcomes_may_send_surveys(client, keys, new_id):
    did = make_decision(client, keys["desktop"], new_id)["decision_id"]
    for role in ("engineer", "manager"):
        assert _post(client, keys[role], did, {"csat": 4}).status_code == 403, role
    assert _post(client, {}, did, {"csat": 4}).status_code == 401
    assert _post(client, keys["admin"], did, {"csat": 4}).status_code == 201


def test_an_unreachable_database_answers_503_and_the_survey_is_not_stored(
    app, client, keys, new_id, tmp_path
):
    from test_api_decisions import unreachable_url

    from service.db import make_engine

    did = make_decision(client, keys["desktop"], new_id)["decision_id"]
    state = app.extensions["vea"]
    state.engine = make_engine(unreachable_url(str(state.engine.url), tmp_path))
    answer = _post(client, keys["desktop"], did, {"csat": 4})
    assert answer.status_code == 503, answer.json
    assert answer.headers["Retry-After"] == str(state.settings.retry_after_s)
    assert answer.json["error"]["message"] == (
        "database unavailable: the survey was not stored; retry later"
    )


def test_the_customers_data_holds_the_survey_and_erasure_deletes_it(app, client, keys, new_id):
    desk, admin = keys["desktop"], keys["admin"]
    customer = new_id("c-")
    answered = make_decision(client, desk, new_id, customer_id=customer)["decision_id"]
    waiting = make_decision(client, desk, new_id, customer_id=customer)["decision_id"]
    assert _post(client, desk, answered, WRAP_UP, "outcome").status_code == 201
    assert _post(client, desk, answered, {"ves_confidence": 6}).status_code == 201
    assert _post(client, desk, waiting, {"nps": 3}).status_code == 201  # no outcome ever

    record = client.get(f"/v1/customers/{customer}", headers=admin).json
    by_id = {d["decision"]["decision_id"]: d for d in record["decisions"]}
    assert by_id[answered]["survey"]["ves_confidence"] == 6
    assert by_id[answered]["outcome"]["ves_confidence"] == 6
    assert by_id[waiting]["survey"]["nps"] == 3 and by_id[waiting]["outcome"] is None

    erased = client.delete(f"/v1/customers/{customer}", headers=admin)
    assert erased.status_code == 200, erased.json
    assert erased.json["deleted"] == {"decisions": 2, "outcomes": 1, "surveys": 2, "events": 0}
    assert _counts(app, answered) == (0, 0) and _counts(app, waiting) == (0, 0)
    again = client.delete(f"/v1/customers/{customer}", headers=admin).json
    assert again["deleted"]["surveys"] == 0


def test_the_export_and_the_value_report_count_late_answers(
    app, client, keys, new_id, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from service.export import decision_frame, export_log
    from service.reports import value
    from training.cli import cli

    desk = keys["desktop"]
    agent = new_id("agent-")
    day = datetime(2021, 5, 4, 10, tzinfo=UTC)
    ids = []
    for i in range(4):
        decision = make_decision(client, desk, new_id, occurred_at=day.isoformat())
        ids.append(decision["decision_id"])
        offered = decision["suggested_activity"] != "none"
        wrap_up = {"offered": offered, "agent_id": agent, "handle_time_s": 100.0}
        if i < 2:  # the third's survey comes first, the fourth's agent never records one
            assert _post(client, desk, ids[-1], wrap_up, "outcome").status_code == 201
    late = [
        {"ves_confidence": 7, "ves_ability": 7, "csat": 5, "nps": 10},
        {"ves_confidence": 6, "ves_ability": 2, "csat": 3, "nps": 0},
        {"csat": 4},
        {"ves_confidence": 1, "ves_ability": 1, "csat": 1, "nps": 0},
    ]
    for did, answers in zip(ids, late, strict=True):
        assert _post(client, desk, did, answers).status_code == 201
    assert _post(client, desk, ids[2], wrap_up, "outcome").status_code == 201

    engine = app.extensions["vea"].engine
    start, end = day - timedelta(hours=1), day + timedelta(hours=1)
    frame = decision_frame(engine, start, end).set_index("decision_id")
    mine = frame.loc[ids[:3]]
    assert mine["ves_confidence"].tolist()[:2] == [7.0, 6.0]
    assert mine["csat"].tolist() == [5.0, 3.0, 4.0]
    assert mine["ve_success"].tolist()[:2] == [1.0, 0.0]
    assert not bool(frame.loc[ids[3], "has_outcome"])

    exported = export_log(engine, tmp_path / "log.csv", start, end)
    assert (exported.rows, exported.pending, exported.surveys_pending) == (3, 1, 1)
    monkeypatch.setenv("VEA_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    run = CliRunner().invoke(
        cli,
        ["export", "--out", str(tmp_path / "cli.csv"), "--since", "2021-05-04", "--until",
         "2021-05-05"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "1 of them have survey answers waiting for the agent's outcome" in run.output

    state = app.extensions["vea"]
    report = value(engine, state.settings, start, end)
    assert (report["pending"], report["surveys_pending"]) == (1, 1)
    printed = CliRunner().invoke(cli, ["report", "--from", "2021-05-04", "--to", "2021-05-05"])
    assert printed.exit_code == 0, printed.output
    assert "pending 1, 1 of them with survey answers waiting for it)" in printed.output
    groups = {g["group"]: g for g in report["by"]["agent_id"]}
    treated = [did for did, r in zip(ids[:3], mine["experiment_arm"], strict=True)
               if r == "treatment"]  # fmt: skip
    if treated:  # the agent's row counts the late answers of its treated contacts
        assert groups[agent]["csat_n"] == len(treated)
    # Every contact, by arm: the three outcomes with their late answers, not the fourth
    # (its survey waits for an outcome), none twice.
    arms = report["by"]["experiment_arm"]
    assert sum(g["n"] for g in arms) == 3
    assert sum(g["csat_n"] for g in arms) == 3
    assert sum(g["ves_n"] for g in arms) == 2
    assert sum(g["nps_n"] for g in arms) == 2


def test_an_outcome_and_a_survey_arriving_together_never_miss_each_other(app, keys, new_id):
    """Each write locks the decision: whichever commits second finds the other, so the
    outcome always ends with the survey's answers (and the survey's row is the only one)."""
    from concurrent.futures import ThreadPoolExecutor

    desk = keys["desktop"]
    ids = [make_decision(app.test_client(), desk, new_id)["decision_id"] for _ in range(12)]

    def send(job):
        did, what = job
        body = WRAP_UP if what == "outcome" else {"ves_confidence": 6, "ves_ability": 6}
        return _post(app.test_client(), desk, did, body, what).status_code

    jobs = [(did, what) for did in ids for what in ("outcome", "survey")]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert set(pool.map(send, jobs)) == {201}
    with app.extensions["vea"].engine.connect() as conn:
        rows = conn.execute(
            sa.select(outcomes.c.ves_confidence, outcomes.c.ve_success).where(
                outcomes.c.decision_id.in_(ids)
            )
        ).all()
    assert sorted(rows) == [(6, True)] * len(ids)
