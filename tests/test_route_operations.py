"""Routing as a contact-center manager relies on it (models.matching): what the
platform's availability reports mean, the reasons a route gives, its fallbacks."""

from __future__ import annotations

from models.matching import Availability, RoutingRules, route
from models.pools import GENERAL, parse_config

ALL = ["validate_purchase", "anticipate_needs", "achieve_goals", "educate_usage", "advise_new_uses"]
POOLS = {
    "pools": [
        {
            "id": "stars",
            "name": {"en": "Star agents", "ja": "スター"},
            "activities": ALL,
            "members": ["a1", "a2"],
            "capacity": 2,
            "lift": {a: 1.5 for a in ALL},
        },
        {
            "id": "proven",
            "activities": ALL,
            "membership": "proficiency",
            "members": ["a3", "a4", "a5"],
            "capacity": 3,
            "lift": {a: 1.3 for a in ALL},
        },
        {"id": "general", "name": {"en": "General", "ja": "一般"}},
    ]
}
ACTIVITIES = [
    {"activity": "validate_purchase", "success_probability": 0.5, "expected_value": 9.0},
    {"activity": "educate_usage", "success_probability": 0.4, "expected_value": 5.6},
]


def decide(availability, *, pools=POOLS, rules=None, language="en", p=0.5, **kw):
    activities = [{**ACTIVITIES[0], "success_probability": p}, *ACTIVITIES[1:]]
    return route(
        parse_config(pools),
        activity="validate_purchase",
        activities=activities,
        openness=0.5,
        channel="voice",
        language=language,
        segment="consumer",
        availability=availability,
        rules=rules or RoutingRules(),
        **kw,
    )


def test_a_pool_reporting_no_agent_free_is_not_valued_as_free():
    # The platform says only "no agent free" (no queue length): the contact waits for one
    # of the two stars to finish (420 s / 2), over the 60 s limit.
    answer = decide({"stars": Availability(agents_free=0)})
    stars = next(o for o in answer["ranked"] if o["pool"] == "stars")
    assert stars["expected_wait_s"] == 210.0 and stars["within_limit"] is False
    assert answer["pool"] == "proven" and "stars" not in answer["fallbacks"]
    assert "Star agents over the 60 s wait limit" in answer["reason"]


def test_general_worth_more_than_waiting_for_value_pools_says_so():
    # Both value pools answer within the limit but late enough that general, free now,
    # is worth more: the reason must not claim that no value pool serves the contact.
    waits = {"stars": Availability(expected_wait_s=58), "proven": Availability(expected_wait_s=59)}
    for language, named in (("en", "Star agents, proven"), ("ja", "スター、proven")):
        answer = decide(waits, reason_language=language, p=0.7)
        assert answer["pool"] == GENERAL and answer["activity"] == "validate_purchase"
        assert [o["pool"] for o in answer["ranked"]] == [GENERAL, "stars", "proven"]
        assert "no value pool" not in answer["reason"] and "実績のある" not in answer["reason"]
        assert named in answer["reason"], answer["reason"]
    english = decide(waits, p=0.7)["reason"]
    assert english.startswith("General: highest expected value for “Validate the purchase”")
    assert "lower expected value for this contact" in english


def test_general_alone_serving_the_contact_still_says_no_value_pool_does():
    only_general = {"pools": [{"id": "general"}]}
    answer = decide({}, pools=only_general)
    assert answer["reason"].startswith("no value pool with qualified agents serves")


def test_a_drawn_pool_never_lists_itself_as_fallback_nor_claims_to_be_the_best():
    rules = RoutingRules(explore_margin=10.0, explore_floor=0.1)
    seen = set()
    for i in range(300):
        answer = decide({}, rules=rules, decision_id=f"d-{i}", p=0.7)
        pool, fallbacks = answer["pool"], answer["fallbacks"]
        seen.add(pool)
        assert pool not in fallbacks and len(set(fallbacks)) == len(fallbacks), answer
        best = answer["ranked"][0]["pool"]
        assert ("highest expected value" in answer["reason"]) == (pool == best), answer
        if pool == GENERAL:
            assert fallbacks == []  # every agent answers general: nothing to fall back to
        else:
            assert fallbacks[-1] == GENERAL
    assert seen == {"stars", "proven", GENERAL}


def test_general_over_the_wait_limit_never_takes_a_contact_a_pool_within_it_can():
    # A static pool whose members are below average at the activity (lift 0.3) is free;
    # general has 70 s of queue. General is worth more on paper, but only to a customer
    # who waits past the limit: the free pool takes the contact, with the activity.
    pools = {
        "pools": [
            {
                "id": "weak",
                "activities": ["validate_purchase"],
                "members": ["a1"],
                "lift": {"validate_purchase": 0.3},
            },
            {"id": "general"},
        ]
    }
    answer = decide({GENERAL: Availability(expected_wait_s=70)}, pools=pools)
    assert [o["pool"] for o in answer["ranked"]] == [GENERAL, "weak"]
    assert answer["pool"] == "weak" and answer["activity"] == "validate_purchase"
    assert answer["expected_wait_s"] is None and answer["fallbacks"] == [GENERAL]
    assert answer["reason"].endswith("; general over the 60 s wait limit"), answer["reason"]


def test_fallbacks_stop_at_general_when_general_is_worth_more():
    # Stars are free; proven answers in 59 s, worth less than general answering now. If
    # the stars are taken, the customer should go to general, not wait for proven.
    answer = decide({"proven": Availability(expected_wait_s=59)}, p=0.7)
    assert [o["pool"] for o in answer["ranked"]] == ["stars", GENERAL, "proven"]
    assert answer["pool"] == "stars" and answer["fallbacks"] == [GENERAL]
    # Worth more than general, proven is the first fallback.
    answer = decide({"proven": Availability(expected_wait_s=5)}, p=0.7)
    assert answer["pool"] == "stars" and answer["fallbacks"] == ["proven", GENERAL]
