"""How many agents a queue's wait is shared among (models.matching.wait_capacity): the
platform's staffed count (0 when it reports nobody), else the pool's capacity, else its
members, else 1; and the routes that follow from it. Pure, no service."""

from __future__ import annotations

import pytest

from models.matching import Availability, RoutingRules, expected_wait, route, wait_capacity
from models.pools import GENERAL, parse_config

RULES = RoutingRules(max_wait_s=60.0, mean_handle_s=420.0)
NO_AGENT_FREE = Availability(agents_free=0)


def pools(*entries):
    config = parse_config({"pools": [*entries, {"id": "general"}]})
    return config.by_id()


STATIC = {"id": "static", "activities": ["educate_usage"], "members": ["a1", "a2", "a3"]}
SIZED = {**STATIC, "id": "sized", "capacity": 2}
PROFICIENCY = {
    "id": "proven",
    "activities": ["educate_usage"],
    "membership": "proficiency",
    "members": ["a1", "a2", "a3", "a4"],
}


@pytest.mark.parametrize(
    "pool, status, agents",
    [
        # The platform's count of agents logged in comes first.
        ("sized", Availability(agents_free=0, agents_staffed=30), 30),
        ("static", Availability(agents_free=0, agents_staffed=7), 7),
        (GENERAL, Availability(agents_free=0, agents_staffed=30), 30),
        # 0 staffed is nobody logged in: no agent (routing never sends a contact there).
        ("sized", Availability(agents_free=0, agents_staffed=0), 0),
        (GENERAL, Availability(agents_free=0, agents_staffed=0), 0),
        # Not reported: the pool's configured capacity...
        ("sized", Availability(agents_free=0), 2),
        # ...else its listed members (static or proficiency)...
        ("static", NO_AGENT_FREE, 3),
        ("proven", NO_AGENT_FREE, 4),
        ("static", None, 3),
        # ...else one agent: general lists none.
        (GENERAL, NO_AGENT_FREE, 1),
        (GENERAL, None, 1),
        # An expired report says nothing, its staffed count neither.
        ("sized", Availability(agents_free=0, agents_staffed=30, stale=True), 2),
    ],
)
def test_capacity_order(pool, status, agents):
    assert wait_capacity(pools(STATIC, SIZED, PROFICIENCY)[pool], status) == agents


def test_general_with_staffed_agents_waits_one_handle_time_shared_among_them():
    general = pools()[GENERAL]
    assert expected_wait(general, NO_AGENT_FREE, RULES) == 420.0
    staffed = Availability(agents_free=0, agents_staffed=30)
    assert expected_wait(general, staffed, RULES) == pytest.approx(14.0)
    queued = Availability(agents_free=0, queue_length=29, agents_staffed=30)
    assert expected_wait(general, queued, RULES) == pytest.approx(420.0)


def test_the_platforms_own_wait_and_a_free_agent_still_come_first():
    general = pools()[GENERAL]
    told = Availability(agents_free=0, expected_wait_s=90.0, agents_staffed=30)
    assert expected_wait(general, told, RULES) == 90.0
    free = Availability(agents_free=2, queue_length=10, agents_staffed=30)
    assert expected_wait(general, free, RULES) == 0.0
    assert expected_wait(general, Availability(agents_staffed=30), RULES) is None


def test_a_static_pool_without_capacity_shares_its_queue_among_its_members():
    static = pools(STATIC)["static"]
    assert expected_wait(static, Availability(queue_length=2), RULES) == pytest.approx(420.0)


ACTIVITIES = [{"activity": "educate_usage", "success_probability": 0.5, "expected_value": 7.6}]


def general_route(status: Availability) -> dict:
    return route(
        parse_config({"pools": [{"id": "general"}]}),
        activity="educate_usage",
        activities=ACTIVITIES,
        openness=0.4,
        channel="voice",
        language="en",
        segment="consumer",
        availability={GENERAL: status},
        rules=RULES,
    )


def test_a_staffed_general_pool_with_no_agent_free_keeps_the_value_attempt():
    # Read as one agent, no agent free is a 420 s wait: no value attempt anywhere.
    alone = general_route(NO_AGENT_FREE)
    assert alone["activity"] == "none" and alone["expected_wait_s"] == 420.0
    assert "over the 60 s wait limit" in alone["reason"]
    # Thirty agents logged in: the next one frees up in 14 s, the attempt goes ahead.
    staffed = general_route(Availability(agents_free=0, agents_staffed=30))
    assert staffed["pool"] == GENERAL and staffed["activity"] == "educate_usage"
    assert staffed["expected_wait_s"] == 14.0
    assert "expected wait 14 s" in staffed["reason"]
