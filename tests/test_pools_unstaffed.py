"""A pool the platform reports with ``agents_staffed: 0`` (nobody logged in: a night
shift, a closed site) is unstaffed: never routed to nor a fallback, and the reason says so
in English and Japanese; a report that leaves the field out keeps the wait estimate from
the pool's capacity (models.matching), and `vea pools show` tells the two apart."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from models.matching import Availability, RoutingRules, expected_wait, route
from models.pools import GENERAL, parse_config
from service.web import desk
from training.cli import cli

RULES = RoutingRules(max_wait_s=60.0, mean_handle_s=420.0)
NOBODY = Availability(agents_staffed=0)
CONFIG = parse_config(
    {
        "pools": [
            {
                "id": "stars",
                "name": {"en": "Stars", "ja": "スター"},
                "activities": ["educate_usage", "validate_purchase"],
                "members": ["a1", "a2"],
                "capacity": 2,
                "lift": {"educate_usage": 1.4},
            },
            {
                "id": "proven",
                "activities": ["educate_usage"],
                "members": ["a3"],
                "lift": {"educate_usage": 1.2},
            },
            {"id": "general"},
        ]
    }
)
ACTIVITIES = [
    {"activity": "educate_usage", "success_probability": 0.5, "expected_value": 7.6},
    {"activity": "validate_purchase", "success_probability": 0.3, "expected_value": 5.1},
]


def decide(availability, *, reason_language="en", activity="educate_usage", config=CONFIG):
    return route(
        config,
        activity=activity,
        activities=ACTIVITIES,
        openness=0.4,
        channel="voice",
        language="en",
        segment="consumer",
        availability=availability,
        rules=RULES,
        reason_language=reason_language,
    )


def option(answer, pool):
    return next(o for o in answer["ranked"] if o["pool"] == pool)


def test_the_best_pool_reporting_nobody_staffed_is_not_routed_to_nor_a_fallback():
    assert decide({})["pool"] == "stars"  # the best pool when nothing is reported
    answer = decide({"stars": NOBODY})
    assert answer["pool"] == "proven" and answer["activity"] == "educate_usage"
    assert answer["fallbacks"] == [GENERAL]
    stars = option(answer, "stars")
    assert stars["availability"] == "unstaffed" and stars["within_limit"] is False
    assert stars["expected_value"] is None and stars["expected_wait_s"] is None
    assert answer["ranked"][-1]["pool"] == "stars"  # valued last: nobody answers there
    assert answer["reason"].endswith("; Stars: no agent logged in (the platform reports 0 staffed)")


def test_the_reason_says_it_in_japanese():
    answer = decide({"stars": NOBODY}, reason_language="ja")
    assert answer["reason"].endswith(
        "; スターはログイン中のエージェントが0人（プラットフォームの報告）"
    )


def test_a_report_without_the_field_keeps_the_estimate_from_capacity():
    # Nothing said about who is logged in: two agents (the pool's capacity) share the queue.
    queued = Availability(agents_free=0, queue_length=1)
    pool = CONFIG.by_id()["stars"]
    assert expected_wait(pool, queued, RULES) == pytest.approx(420.0)
    assert option(decide({"stars": queued}), "stars")["availability"] == "fresh"
    free = Availability(agents_free=1)
    assert decide({"stars": free})["pool"] == "stars"


def test_nobody_staffed_outweighs_the_rest_of_the_report():
    # The platform's own wait or a free count cannot make a queue nobody answers move.
    told = Availability(expected_wait_s=5.0, agents_free=0, agents_staffed=0)
    assert expected_wait(CONFIG.by_id()["stars"], told, RULES) == float("inf")
    assert decide({"stars": told})["pool"] == "proven"


def test_an_expired_report_of_nobody_staffed_says_nothing():
    stale = Availability(agents_staffed=0, stale=True)
    answer = decide({"stars": stale})
    assert answer["pool"] == "stars" and option(answer, "stars")["availability"] == "stale"


def test_every_value_pool_unstaffed_falls_back_to_general_saying_why():
    answer = decide({"stars": NOBODY, "proven": NOBODY})
    assert answer["pool"] == GENERAL and answer["activity"] == "educate_usage"
    assert answer["reason"] == (
        "no value pool can take the contact now: general pool, which is free (or nearly), "
        "with “Educate on better usage”; Stars, proven: no agent logged in (the platform "
        "reports 0 staffed)"
    )
    assert "over the 60 s wait limit" not in answer["reason"]  # not what happened
    ja = decide({"stars": NOBODY, "proven": NOBODY}, reason_language="ja")["reason"]
    assert ja.startswith("対応できる価値向上プールがないため、すぐ対応できる「general」プールで")
    assert ja.endswith("; スター、provenはログイン中のエージェントが0人（プラットフォームの報告）")


def test_unstaffed_and_full_value_pools_with_a_queue_in_general_downgrade():
    answer = decide(
        {
            "stars": NOBODY,
            "proven": Availability(expected_wait_s=300.0),
            GENERAL: Availability(expected_wait_s=45.0),
        }
    )
    assert answer["pool"] == GENERAL and answer["activity"] == "validate_purchase"
    assert answer["reason"].startswith("no value pool can take the contact now: general pool ")
    assert answer["reason"].endswith(
        "; Stars: no agent logged in (the platform reports 0 staffed)"
        "; proven over the 60 s wait limit"
    )


def test_general_unstaffed_is_no_fallback_and_said():
    answer = decide({GENERAL: NOBODY})
    assert answer["pool"] == "stars" and answer["fallbacks"] == ["proven"]
    assert answer["reason"].endswith(
        "; general: no agent logged in (the platform reports 0 staffed)"
    )


def test_nobody_staffed_anywhere_means_no_value_attempt():
    answer = decide({"stars": NOBODY, "proven": NOBODY, GENERAL: NOBODY})
    assert answer["pool"] == GENERAL and answer["activity"] == "none"
    assert answer["fallbacks"] == [] and answer["expected_wait_s"] is None
    assert answer["reason"].startswith(
        "no agent logged in to the general pool (the platform reports 0 staffed): no value "
        "attempt; Stars, proven: no agent logged in"
    )
    ja = decide({GENERAL: NOBODY}, reason_language="ja", activity="none")
    assert ja["reason"] == (
        "価値向上の提案なし: 手間なく解決; generalはログイン中のエージェントが0人（プラットフォームの報告）"
    )
    assert ja["ranked"][0]["availability"] == "unstaffed" and ja["expected_wait_s"] is None


@pytest.mark.parametrize(
    "availability",
    [
        {"stars": NOBODY},
        {"stars": NOBODY, "proven": NOBODY},
        {"stars": NOBODY, "proven": Availability(expected_wait_s=300.0)},
        {"stars": NOBODY, "proven": NOBODY, GENERAL: NOBODY},
    ],
)
def test_the_desk_writes_each_reason_again_in_the_other_language(availability):
    english = decide(availability)["reason"]
    japanese = decide(availability, reason_language="ja")["reason"]
    pools = desk.pool_lookup(CONFIG)
    assert desk.in_language(english, "ja", "en", pools) == japanese
    assert desk.in_language(japanese, "en", "ja", pools) == english


# ---------------------------------------------------------------- vea pools show
def test_show_tells_nobody_staffed_from_not_reported(tmp_path):
    from service import pools as use_cases
    from service.db import make_engine

    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db", "VEA_AVAILABILITY_TTL_S": "120"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    engine = make_engine(env["VEA_DATABASE_URL"])
    try:
        use_cases.save_config(engine, CONFIG)
        for pool_id, body in (
            ("stars", {"agents_free": 0, "agents_staffed": 0}),
            ("proven", {"agents_free": 0, "queue_length": 1}),
        ):
            use_cases.report_availability(engine, CONFIG, pool_id, body, 120)
    finally:
        engine.dispose()
    shown = runner.invoke(cli, ["pools", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[0]: line for line in shown.stdout.splitlines() if line.startswith("  ")}
    assert "free 0, staffed 0: nobody staffed: not routed to, nor a fallback" in lines["stars"]
    # Left out: said so, and the wait read from the pool's one member.
    assert "free 0, queue 1, staffed not reported: expected wait 840 s" in lines["proven"]


def test_pool_exploration_never_draws_an_unstaffed_pool():
    # With a wide margin every pool within the limit is a candidate: stars, nobody
    # logged in, is not one of them.
    rules = RoutingRules(max_wait_s=60.0, explore_margin=50.0)
    for n in range(40):
        answer = route(
            CONFIG,
            activity="educate_usage",
            activities=ACTIVITIES,
            openness=0.4,
            channel="voice",
            language="en",
            segment="consumer",
            availability={"stars": NOBODY},
            rules=rules,
            decision_id=f"d-{n}",
        )
        assert "stars" not in answer["pool_probabilities"] and answer["pool"] != "stars"
        assert "stars" not in answer["fallbacks"]
