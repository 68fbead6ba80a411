"""Horizontal serving: two gunicorn instances (2 sync workers each) on two ports sharing
one PostgreSQL behave as one service. The same ``interaction_id`` gives one stored
decision whichever instance answers (also when both race); an outcome repeated through
the other instance is a replay or a 409 and is never counted twice; contact policies
see the contacts made through either instance; the value report is the same from both
and counts the traffic of both."""

from __future__ import annotations

import contextlib
import shutil
import threading
import uuid

import pytest
import requests
import sqlalchemy as sa

from models.reasons import activity_name
from tests.test_faults import running_service

pytestmark = pytest.mark.postgres
DAY = "2019-07-01"  # the report test's contacts happen on this day, and only they do
PERIOD = {"from": DAY, "to": "2019-07-02"}


@pytest.fixture(scope="module")
def pair(postgres, trained_registry, tmp_path_factory):
    """Instances A and B on one fresh database, with desktop and admin keys."""
    root = tmp_path_factory.mktemp("horizontal")
    registry = root / "registry"
    shutil.copytree(trained_registry, registry, ignore=shutil.ignore_patterns(".lock"))
    url = postgres.create_database(f"vea_horizontal_{uuid.uuid4().hex[:8]}")
    (root / "a").mkdir()
    (root / "b").mkdir()
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(running_service(url, registry, root / "a"))
        b = stack.enter_context(running_service(url, registry, root / "b"))
        assert a["base"] != b["base"]
        yield {"a": a["base"], "b": b["base"], "desktop": a["desktop"], "admin": a["admin"],
               "url": url}  # fmt: skip


def body(customer: str | None = None, **contact) -> dict:
    return {
        "interaction_id": f"i-{uuid.uuid4().hex}",
        "customer": {
            "customer_id": customer or f"c-{uuid.uuid4().hex}",
            "segment": "consumer",
            "tenure_months": 2.0,
            "switching_effort": "high",
        },
        "contact": {"channel": "chat", "issue_type": "inquiry", "language": "en", **contact},
    }


def decide(pair, instance: str, payload: dict) -> requests.Response:
    return requests.post(
        f"{pair[instance]}/v1/decisions", json=payload, headers=pair["desktop"], timeout=10
    )


def outcome(pair, instance: str, decision_id: str, payload: dict) -> requests.Response:
    return requests.post(
        f"{pair[instance]}/v1/decisions/{decision_id}/outcome",
        json=payload,
        headers=pair["desktop"],
        timeout=10,
    )


def count(url: str, table: str, column: str, value: str) -> int:
    from service import db

    engine = sa.create_engine(url)
    try:
        t = getattr(db, table)
        with engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c[column] == value)
            ).scalar_one()
    finally:
        engine.dispose()


def test_same_interaction_id_on_both_instances_is_one_decision(pair):
    payload = body()
    first = decide(pair, "a", payload)
    again = decide(pair, "b", payload)
    assert first.status_code == 201, first.text
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert count(pair["url"], "decisions", "interaction_id", payload["interaction_id"]) == 1
    # the same id for another customer is a conflict on the other instance too
    other = {**payload, "customer": {**payload["customer"], "customer_id": "c-someone-else"}}
    assert decide(pair, "b", other).status_code == 409


def race(call, *arguments: tuple) -> list[requests.Response]:
    """``call(*args)`` for each argument tuple at the same moment, one thread each."""
    barrier = threading.Barrier(len(arguments))
    answers: list = [None] * len(arguments)

    def run(i: int) -> None:
        barrier.wait()
        answers[i] = call(*arguments[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(arguments))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return answers


def test_racing_instances_store_one_decision_and_one_outcome(pair):
    for _ in range(8):
        payload = body()
        one, two = race(decide, (pair, "a", payload), (pair, "b", payload))
        assert sorted([one.status_code, two.status_code]) == [200, 201], (one.text, two.text)
        assert one.json()["decision_id"] == two.json()["decision_id"]
        decision_id = one.json()["decision_id"]
        assert count(pair["url"], "decisions", "interaction_id", payload["interaction_id"]) == 1

        result = {"offered": True, "accepted": True, "ves_confidence": 7, "ves_ability": 6}
        one, two = race(outcome, (pair, "a", decision_id, result), (pair, "b", decision_id, result))
        assert sorted([one.status_code, two.status_code]) == [200, 201], (one.text, two.text)
        assert one.json() == two.json()
        assert count(pair["url"], "outcomes", "decision_id", decision_id) == 1


def test_outcome_repeated_through_the_other_instance(pair):
    decision = decide(pair, "a", body()).json()
    sent = {"offered": True, "accepted": False, "ves_confidence": 3, "ves_ability": 4}
    stored = outcome(pair, "a", decision["decision_id"], sent)
    assert stored.status_code == 201, stored.text
    replay = outcome(pair, "b", decision["decision_id"], sent)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == stored.json()
    different = outcome(pair, "b", decision["decision_id"], {**sent, "accepted": True})
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "outcome_exists"
    assert count(pair["url"], "outcomes", "decision_id", decision["decision_id"]) == 1


def test_a_decline_recorded_via_a_blocks_the_activity_via_b(pair):
    customer = f"c-{uuid.uuid4().hex}"
    first = decide(pair, "a", body(customer)).json()
    declined = first["suggested_activity"]
    assert declined != "none"
    recorded = outcome(pair, "a", first["decision_id"], {"offered": True, "accepted": False})
    assert recorded.status_code == 201, recorded.text
    second = decide(pair, "b", body(customer)).json()
    assert second["contact_policy"]["blocked_activities"] == [declined]
    assert second["suggested_activity"] != declined
    named = f"“{activity_name(declined, 'en')}” was declined"
    assert any(named in r for r in second["reasons"]), second["reasons"]


def test_weekly_attempt_cap_counts_attempts_made_through_both(pair):
    """The default cap is 2 attempts a week: one through A and one through B use it up."""
    customer = f"c-{uuid.uuid4().hex}"
    via_a = decide(pair, "a", body(customer)).json()
    via_b = decide(pair, "b", body(customer)).json()
    assert via_a["suggested_activity"] != "none" and via_b["suggested_activity"] != "none"
    for instance in ("a", "b"):
        capped = decide(pair, instance, body(customer)).json()
        assert capped["suggested_activity"] == "none", instance
        assert capped["contact_policy"]["allow_attempt"] is False
        assert any("limit 2 per week" in r for r in capped["reasons"]), capped["reasons"]


def test_value_report_is_the_same_from_both_and_counts_both(pair):
    sent = {"a": 0, "b": 0}
    for n in range(20):
        instance, other = ("a", "b") if n % 2 == 0 else ("b", "a")
        payload = body(occurred_at=f"{DAY}T10:{n:02d}:00+00:00")
        decision = decide(pair, instance, payload)
        assert decision.status_code == 201, decision.text
        sent[instance] += 1
        result = {
            "offered": decision.json()["suggested_activity"] != "none",
            "accepted": n % 3 == 0,
            "ves_confidence": 1 + n % 7,
            "ves_ability": 7 - n % 7,
            "handle_time_s": 200.0 + n,
            "agent_id": f"agent-{instance}",
        }
        decision_id = decision.json()["decision_id"]
        # the outcome goes through the other instance, then again through the first one
        assert outcome(pair, other, decision_id, result).status_code == 201
        assert outcome(pair, instance, decision_id, result).status_code == 200
    assert sent == {"a": 10, "b": 10}

    reports = [
        requests.get(
            f"{pair[i]}/v1/reports/value", params=PERIOD, headers=pair["admin"], timeout=30
        )
        for i in ("a", "b")
    ]
    assert all(r.status_code == 200 for r in reports), [r.text for r in reports]
    from_a, from_b = (r.json() for r in reports)
    assert from_a == from_b
    assert from_a["decisions"] == 20
    assert from_a["with_outcome"] == 20 and from_a["pending"] == 0  # replays not counted
    agents = {g["group"]: g["n"] for g in from_a["by"]["agent_id"]}
    assert agents == {"agent-a": 10, "agent-b": 10}
