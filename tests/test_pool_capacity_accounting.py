"""Contacts routed to a pool since its availability report count against it, on SQLite and
PostgreSQL: each takes one of the free agents the report gave, then joins the queue, until
the next report. The count holds across workers and instances (the stored decisions) and
within a worker between its refreshes (its own routes).

The waits are exact: 20 s mean handle time, one agent staffed, no wait cost and no
abandonment, so the pool with the lift takes every contact it can within the 60 s limit."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from models.activities import VALUE_ACTIVITIES
from models.matching import Availability, RoutingRules, expected_wait
from models.pools import Pool
from service import routing
from service.routing import PoolRouter

VALUE = list(VALUE_ACTIVITIES)
POOLS = {
    "pools": [
        {
            "id": "vip",
            "members": ["a1"],
            "activities": VALUE,
            "lift": dict.fromkeys(VALUE, 1.5),
            "capacity": 1,
        },
        {"id": "general", "capacity": 50},
    ]
}
ROUTING = {
    "routing_mean_handle_s": 20.0,
    "routing_wait_cost_per_s": 0.0,
    "routing_patience_s": 0.0,
    "routing_max_wait_s": 60.0,
    # Only the refreshes a test asks for (a PUT of availability forces one too).
    "pools_poll_s": 3600.0,
}
VIP_FREE = {"agents_free": 1, "queue_length": 0, "agents_staffed": 1}
GENERAL_FREE = {"agents_free": 10, "queue_length": 0, "agents_staffed": 50}


# ------------------------------------------------------------------- the model
RULES = RoutingRules(mean_handle_s=20.0)
VIP = Pool(id="vip", members=("a1",), capacity=3)


@pytest.mark.parametrize(
    "report, routed, wait",
    [
        ({"agents_free": 2}, 0, 0.0),
        ({"agents_free": 2}, 1, 0.0),  # one of the two agents is still free
        ({"agents_free": 2}, 2, 20.0 / 3),  # both taken: wait for one of three to finish
        ({"agents_free": 2}, 4, 3 * 20.0 / 3),  # two queued ahead
        ({"agents_free": 0, "queue_length": 2}, 1, 4 * 20.0 / 3),
        ({"agents_free": 0, "agents_staffed": 2}, 1, 2 * 20.0 / 2),  # staffed is the divisor
        ({"agents_free": 0, "expected_wait_s": 30.0}, 0, 30.0),
        ({"agents_free": 0, "expected_wait_s": 30.0}, 3, 30.0 + 3 * 20.0 / 3),
        ({"agents_free": 1, "expected_wait_s": 5.0}, 0, 5.0),
        ({"agents_free": 1, "expected_wait_s": 5.0}, 2, 5.0 + 2 * 20.0 / 3),
        # Without agents_free nobody knows who was free: the report is taken as is.
        ({"expected_wait_s": 30.0}, 5, 30.0),
        ({"queue_length": 1}, 5, 2 * 20.0 / 3),
        ({"agents_staffed": 2}, 5, None),
    ],
)
def test_routed_contacts_take_the_free_agents_then_queue(report, routed, wait):
    got = expected_wait(VIP, Availability(**report, routed_since=routed), RULES)
    assert got is None if wait is None else got == pytest.approx(wait)


@pytest.mark.parametrize(
    "status, wait",
    [
        (Availability(agents_staffed=0, agents_free=0, routed_since=9), float("inf")),
        (Availability(agents_free=1, stale=True, routed_since=9), None),
    ],
)
def test_unstaffed_and_stale_reports_are_as_before(status, wait):
    assert expected_wait(VIP, status, RULES) == wait


# ----------------------------------------------------------------- the service
@pytest.fixture
def instance(make_app, own_url):
    """Factory: an app (a worker or an instance of its own) on a database of the test's
    own, so counts see only its decisions."""
    return lambda: make_app(database_url=own_url, **ROUTING)


@pytest.fixture
def keys(instance) -> dict[str, dict[str, str]]:
    from service.auth import ROLES, create_key

    engine = instance().extensions["vea"].engine
    return {role: {"Authorization": f"Bearer {create_key(engine, role)[1]}"} for role in ROLES}


def body(interaction_id: str | None = None) -> dict:
    return {
        "interaction_id": interaction_id or f"i-{uuid.uuid4().hex}",
        "customer": {
            "customer_id": f"c-{uuid.uuid4().hex}",
            "segment": "consumer",
            "tenure_months": 30.0,
            "persona": "enthusiast",
        },
        "contact": {"channel": "voice", "issue_type": "inquiry", "language": "en"},
    }


def decide(app, keys, payload: dict | None = None) -> dict:
    response = app.test_client().post(
        "/v1/decisions", json=payload or body(), headers=keys["desktop"]
    )
    assert response.status_code in (200, 201), response.json
    return response.json


def waits(answer: dict) -> dict[str, float | None]:
    return {o["pool"]: o["expected_wait_s"] for o in answer["route"]["ranked"]}


def report(app, keys, pool: str, payload: dict) -> None:
    response = app.test_client().put(
        f"/v1/pools/{pool}/availability", json=payload, headers=keys["desktop"]
    )
    assert response.status_code == 200, response.json


@pytest.fixture
def staffed(instance, keys):
    """The first app, the pools stored and both reports posted (vip: one agent, free)."""
    app = instance()
    put = app.test_client().put("/v1/pools", json=POOLS, headers=keys["admin"])
    assert put.status_code == 200, put.json
    probe = decide(app, keys)
    if probe["route"]["activity"] == "none":
        pytest.skip("the test model suggested no value activity")
    report(app, keys, "vip", VIP_FREE)  # a report after the probe: the probe is not counted
    report(app, keys, "general", GENERAL_FREE)
    return app


def test_a_burst_takes_the_free_agent_then_queues_then_goes_elsewhere(staffed, keys):
    """Six contacts before the next report (at once, as the auditor sent them): the first
    takes vip's free agent, the next three queue (20, 40, 60 s), the last two would wait
    past 60 s and go to general. The report's one free agent took six contacts before."""
    answers: list[dict] = []
    threads = [
        threading.Thread(target=lambda: answers.append(decide(staffed, keys))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    routed = sorted(
        (a["route"]["pool"], a["route"]["expected_wait_s"], waits(a)["vip"]) for a in answers
    )
    assert routed == [
        ("general", 0.0, 80.0),
        ("general", 0.0, 80.0),
        ("vip", 0.0, 0.0),
        ("vip", 20.0, 20.0),
        ("vip", 40.0, 40.0),
        ("vip", 60.0, 60.0),
    ]
    for answer in answers:
        if answer["route"]["pool"] == "general":
            assert "over the 60 s wait limit" in answer["route"]["reason"]
            assert answer["route"]["activity"] == answer["suggested_activity"] != "none"
    # The stored decisions say the same after a refresh (what every other worker reads).
    staffed.extensions["vea"].pools.refresh(force=True)
    assert waits(decide(staffed, keys))["vip"] == 80.0


def test_a_new_report_resets_the_count(staffed, keys):
    assert [decide(staffed, keys)["route"]["expected_wait_s"] for _ in range(2)] == [0.0, 20.0]
    report(staffed, keys, "vip", VIP_FREE)  # the platform: the agent is free again
    answer = decide(staffed, keys)
    assert (answer["route"]["pool"], answer["route"]["expected_wait_s"]) == ("vip", 0.0)
    staffed.extensions["vea"].pools.refresh(force=True)  # the stored count agrees
    assert waits(decide(staffed, keys))["vip"] == 20.0


def test_instances_on_one_database_see_each_others_routes(staffed, instance, keys):
    """Two create_app on one database (two gunicorn workers, or two hosts): each counts
    what the other routed once it refreshes, and its own at once."""
    other = instance()
    assert decide(staffed, keys)["route"]["expected_wait_s"] == 0.0
    other.extensions["vea"].pools.refresh(force=True)
    first = decide(other, keys)
    assert (first["route"]["pool"], first["route"]["expected_wait_s"]) == ("vip", 20.0)
    assert waits(decide(other, keys))["vip"] == 40.0  # its own route, before any refresh
    staffed.extensions["vea"].pools.refresh(force=True)
    assert waits(decide(staffed, keys))["vip"] == 60.0  # one of its own, two of the other's


def test_a_replayed_decision_counts_once(staffed, keys):
    """A retry of the same interaction replays the stored decision: one contact, counted
    once (the stored count; a replay leaves no row)."""
    payload = body()
    first = decide(staffed, keys, payload)
    assert first["route"]["expected_wait_s"] == 0.0
    router = staffed.extensions["vea"].pools
    for _ in range(3):
        assert decide(staffed, keys, payload) == first
    router.refresh(force=True)
    assert waits(decide(staffed, keys))["vip"] == 20.0


def test_counts_stay_exact_as_decisions_settle(staffed, instance, keys, monkeypatch):
    """A refresh reads again only the decisions created since the last one's settle time
    (those before are counted once and kept): over refreshes as decisions settle, the
    count is every decision since the report, no more, no less. The decisions are another
    instance's, so each is counted from the database; the settle time is cut to 0.2 s."""
    monkeypatch.setattr(routing, "SETTLE_S", 0.2)
    other = instance()
    router = PoolRouter(
        staffed.extensions["vea"].settings, lambda: staffed.extensions["vea"].engine
    )
    router.refresh(force=True)
    assert router.routed["vip"].count == 0
    made = 0
    for step in range(3):
        for _ in range(2):
            decide(other, keys)
            made += 1
        router.refresh(force=True)
        assert counted(router) == made, step
        assert router.routed["vip"].recent + router.routed["general"].recent >= 2, step
        time.sleep(0.3)  # settled at the next refresh
    router.refresh(force=True)
    assert counted(router) == made
    assert router.routed["vip"].settled + router.routed["general"].settled == made


def counted(router: PoolRouter) -> int:
    return router.routed["vip"].count + router.routed["general"].count
