"""Routing as a contact-center manager relies on it (models.matching): what the
platform's availability reports mean, the reasons a route gives, its fallbacks."""

from __future__ import annotations

from models.matching import Availability, RoutingRules, route
from models.pools import parse_config

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


def decide(availability, *, pools=POOLS, rules=None, language="en", **kw):
    return route(
        parse_config(pools),
        activity="validate_purchase",
        activities=ACTIVITIES,
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
