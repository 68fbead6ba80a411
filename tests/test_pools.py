"""Pools config validation, the self-service catalogue and capacity-aware matching
(models.pools, models.matching): pure, no service."""

from __future__ import annotations

import pytest

from models.matching import Availability, RoutingRules, route
from models.pools import (
    DIGITAL_CONTENT,
    GENERAL,
    PoolError,
    load_catalogue,
    load_config,
    parse_config,
)
from service.config import PACKAGE_DIR


def config(**overrides):
    pools = [
        {
            "id": "value_education",
            "activities": ["educate_usage"],
            "members": ["a1", "a2"],
            "capacity": 2,
            "lift": {"educate_usage": 1.3},
        },
        {
            "id": "value_education_2",
            "activities": ["educate_usage", "validate_purchase"],
            "members": ["a3"],
            "lift": {"educate_usage": 1.1},
        },
        {
            "id": "value_enterprise",
            "activities": ["educate_usage"],
            "segments": ["enterprise"],
            "languages": ["ja"],
            "members": ["a4"],
            "lift": {"educate_usage": 1.6},
        },
        {"id": "general", "activities": []},
    ]
    return parse_config({"pools": overrides.get("pools", pools)})


ACTIVITIES = [
    {"activity": "educate_usage", "success_probability": 0.5, "expected_value": 7.6},
    {"activity": "validate_purchase", "success_probability": 0.3, "expected_value": 5.1},
    {"activity": "anticipate_needs", "success_probability": 0.2, "expected_value": 2.2},
    {"activity": "achieve_goals", "success_probability": 0.1, "expected_value": -1.0},
    {"activity": "advise_new_uses", "success_probability": 0.1, "expected_value": 0.0},
]
RULES = RoutingRules(max_wait_s=60.0, wait_cost_per_s=0.02)


def decide(cfg=None, *, activity="educate_usage", availability=None, rules=RULES, **contact):
    args = {"channel": "voice", "language": "en", "segment": "consumer", **contact}
    return route(
        cfg or config(),
        activity=activity,
        activities=ACTIVITIES,
        openness=0.4,
        availability=availability or {},
        rules=rules,
        catalogue=load_catalogue(),
        none_value=0.4,
        **args,
    )


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "pools, message",
    [
        ([{"id": "a", "activities": ["sell_more"], "members": ["x"]}], "unknown activities"),
        ([{"id": "a", "activities": ["educate_usage"]}], "empty pool"),
        ([{"id": "a", "activities": ["educate_usage"], "members": []}], "empty pool"),
        (
            [{"id": "a", "activities": ["educate_usage"], "members": ["x", "y", "x"]}],
            "duplicate agent 'x'",
        ),
        ([{"id": "a", "activities": ["educate_usage"], "members": ["x"]}], "missing the 'general'"),
        ([{"id": "general"}, {"id": "general"}], "duplicate pool id"),
        ([{"id": "general", "languages": ["ja"]}], "takes every contact"),
        ([{"id": "general", "colour": "red"}], "unknown keys"),
        ([{"id": "Bad Id"}], "id must be"),
        (
            [{"id": "a", "channels": ["fax"], "members": ["x"]}, {"id": "general"}],
            "unknown channels",
        ),
        (
            [{"id": "a", "channels": ["self_service"], "members": ["x"]}, {"id": "general"}],
            "digital content",
        ),
        (
            [{"id": "a", "members": ["x"], "capacity": 0}, {"id": "general"}],
            "capacity",
        ),
        (
            [{"id": "a", "members": ["x"], "lift": {"educate_usage": -1}}, {"id": "general"}],
            "lift.educate_usage",
        ),
        ([{"id": "a", "membership": "vibes"}, {"id": "general"}], "membership must be"),
    ],
)
def test_bad_pools_are_refused_with_clear_errors(pools, message):
    if not any(p.get("id") == "general" for p in pools) and "general" not in message:
        pools = [*pools, {"id": "general"}]
    with pytest.raises(PoolError, match=message):
        parse_config({"pools": pools})


def test_bad_top_level_and_yaml(tmp_path):
    with pytest.raises(PoolError, match="non-empty list"):
        parse_config({"pools": []})
    with pytest.raises(PoolError, match="mapping"):
        parse_config(["general"])
    broken = tmp_path / "pools.yaml"
    broken.write_text("pools: [\n")
    with pytest.raises(PoolError, match="not valid YAML"):
        load_config(broken)


def test_default_pools_file_and_round_trip():
    cfg = load_config(PACKAGE_DIR / "pools.default.yaml")
    assert cfg.general.id == GENERAL
    assert parse_config(cfg.to_dict()) == cfg
    enterprise = cfg.by_id()["value_enterprise"]
    assert enterprise.segments == {"enterprise", "small_business"}
    assert enterprise.membership == "proficiency" and enterprise.members == ()


def one_pool_with_lift(lift: float) -> dict:
    pool = {"id": "a", "activities": ["educate_usage"], "members": ["x"]}
    return {"pools": [{**pool, "lift": {"educate_usage": lift}}, {"id": "general"}]}


@pytest.mark.parametrize("lift", [0.0001, 0.12345, 1.0, 4.99996, 5.0])
def test_a_lift_the_parser_takes_reads_back_as_stored(lift):
    """A lift is stored with 4 decimals: what the parser takes must still parse then."""
    cfg = parse_config(one_pool_with_lift(lift))
    assert parse_config(cfg.to_dict()).by_id()["a"].lift["educate_usage"] == round(lift, 4)


@pytest.mark.parametrize("lift", [0.00004, 0.0, 5.00001])
def test_a_lift_stored_out_of_bounds_is_refused_with_its_bounds(lift):
    """0.00004 was taken (within (0, 5]) and stored as 0.0, which the parser refuses."""
    with pytest.raises(PoolError, match=r"lift\.educate_usage must be in \[0\.0001, 5\.0\]"):
        parse_config(one_pool_with_lift(lift))


def test_catalogue_has_ja_and_en_for_every_activity():
    catalogue = load_catalogue()
    assert catalogue.find("educate_usage", "ja").content_id.endswith("-ja")
    assert catalogue.find("educate_usage", "fr").language == "en"  # default language


# --------------------------------------------------------------------- routing
def test_best_pool_by_expected_value_with_ranked_fallbacks():
    answer = decide()
    assert answer["pool"] == "value_education"
    assert answer["fallbacks"] == ["value_education_2", GENERAL]
    values = [o["expected_value"] for o in answer["ranked"]]
    assert values == sorted(values, reverse=True)
    assert [o["pool"] for o in answer["ranked"]] == [
        "value_education",
        "value_education_2",
        GENERAL,
    ]
    assert answer["activity"] == "educate_usage" and "lift 1.30" in answer["reason"]


def test_segment_and_language_restrict_pools():
    answer = decide(segment="enterprise", language="ja")
    assert answer["pool"] == "value_enterprise"
    # Enterprise customer speaking English: the ja-only enterprise pool is not offered.
    answer = decide(segment="enterprise", language="en")
    assert "value_enterprise" not in [o["pool"] for o in answer["ranked"]]


def test_pool_over_the_wait_limit_falls_back_to_the_next():
    full = {"value_education": Availability(agents_free=0, queue_length=5)}  # 5+1 x 420 / 2
    answer = decide(availability=full)
    assert answer["pool"] == "value_education_2"
    assert "value_education over the 60 s wait limit" in answer["reason"]
    assert answer["ranked"][-1]["within_limit"] is False  # 1,260 s wait: ranked last


def test_all_value_pools_full_downgrade_to_a_lighter_activity_in_general():
    busy = {
        "value_education": Availability(expected_wait_s=300),
        "value_education_2": Availability(expected_wait_s=90),
        "general": Availability(expected_wait_s=45),  # a queue in general too
    }
    answer = decide(availability=busy)
    assert answer["pool"] == GENERAL and answer["fallbacks"] == []
    # validate_purchase takes 45 s extra against education's 120 s, and still pays.
    assert answer["activity"] == "validate_purchase"
    assert "does not wait longer" in answer["reason"]


def test_all_value_pools_full_and_general_free_keeps_the_activity():
    busy = {
        "value_education": Availability(expected_wait_s=300),
        "value_education_2": Availability(expected_wait_s=90),
        "general": Availability(agents_free=4),
    }
    answer = decide(availability=busy)
    assert answer["pool"] == GENERAL and answer["activity"] == "educate_usage"
    assert "free (or nearly)" in answer["reason"]


def test_no_lighter_activity_that_pays_means_none():
    busy = {
        "value_education": Availability(expected_wait_s=300),
        "value_education_2": Availability(expected_wait_s=300),
        "general": Availability(expected_wait_s=40),
    }
    # No activity lighter than education (120 s) beats none's 0.4.
    activities = [
        {**a, "expected_value": min(a["expected_value"], 0.1)} if i else a
        for i, a in enumerate(ACTIVITIES)
    ]
    answer = route(
        config(),
        activity="educate_usage",
        activities=activities,
        openness=0.4,
        channel="voice",
        language="en",
        segment="consumer",
        availability=busy,
        rules=RULES,
        none_value=0.4,
    )
    assert answer["pool"] == GENERAL and answer["activity"] == "none"
    assert "no value attempt" in answer["reason"]


def test_general_busy_too_means_no_value_attempt():
    busy = {p: Availability(expected_wait_s=600) for p in ("value_education", "general")}
    busy["value_education_2"] = Availability(expected_wait_s=600)
    answer = decide(availability=busy)
    assert answer["pool"] == GENERAL and answer["activity"] == "none"


def test_stale_availability_is_ignored():
    stale = {"value_education": Availability(expected_wait_s=900, stale=True)}
    answer = decide(availability=stale)
    assert answer["pool"] == "value_education"
    assert answer["ranked"][0]["availability"] == "stale"
    assert answer["expected_wait_s"] is None and "stale" in answer["reason"]


def test_waiting_cost_can_outweigh_proficiency():
    # Lift 1.3 against an idle 1.1 pool is worth 0.5 x 0.2 x 20 = 2.0; at 0.05 per second
    # a 30 s wait (1.5) is worth paying, a 55 s wait (2.75) is not (abandonment ignored).
    rules = RoutingRules(max_wait_s=60.0, wait_cost_per_s=0.05, patience_s=None)
    idle = Availability(agents_free=3)
    waiting = {"value_education": Availability(expected_wait_s=30), "value_education_2": idle}
    assert decide(availability=waiting, rules=rules)["pool"] == "value_education"
    slow = {"value_education": Availability(expected_wait_s=55), "value_education_2": idle}
    assert decide(availability=slow, rules=rules)["pool"] == "value_education_2"


def test_customers_who_may_hang_up_while_waiting_are_priced_in():
    # With a 3-minute mean patience, 30 s of waiting loses 1 - exp(-30/180) = 15% of the
    # pool's value (about 2.0 of its 13.0) on top of the wait cost (1.5): more than the
    # lift is worth (2.0), so the idle pool wins; 5 s loses 2.7% (0.36 + 0.25): worth it.
    rules = RoutingRules(max_wait_s=60.0, wait_cost_per_s=0.05, patience_s=180.0)
    idle = Availability(agents_free=3)
    waiting = {"value_education": Availability(expected_wait_s=30), "value_education_2": idle}
    answer = decide(availability=waiting, rules=rules)
    assert answer["pool"] == "value_education_2"
    ranked = {o["pool"]: o["expected_value"] for o in answer["ranked"]}
    assert ranked["value_education"] < ranked["value_education_2"]
    short = {"value_education": Availability(expected_wait_s=5), "value_education_2": idle}
    assert decide(availability=short, rules=rules)["pool"] == "value_education"
    # An unknown or zero wait costs nothing.
    assert decide(availability={}, rules=rules)["pool"] == "value_education"


def test_language_with_no_pool_goes_to_general():
    cfg = config(
        pools=[
            {
                "id": "ja_only",
                "activities": ["educate_usage"],
                "languages": ["ja"],
                "members": ["x"],
            },
            {"id": "general"},
        ]
    )
    answer = decide(cfg, language="en")
    assert answer["pool"] == GENERAL and answer["activity"] == "educate_usage"
    assert "no value pool" in answer["reason"]


def test_pool_without_qualified_members_is_not_routed_to():
    cfg = load_config(PACKAGE_DIR / "pools.default.yaml")
    answer = decide(cfg)
    assert answer["pool"] == GENERAL and answer["activity"] == "educate_usage"


def test_self_service_gets_content_in_the_customer_language():
    answer = decide(channel="self_service", language="ja")
    assert answer["pool"] == DIGITAL_CONTENT
    assert answer["content"]["id"] == "ss-educate-usage-ja" and answer["content"]["title"]
    # The reason names the content as the customer sees it, by its title, not its id.
    assert f"「{answer['content']['title']}」" in answer["reason"], answer["reason"]
    assert "ss-educate-usage-ja" not in answer["reason"]
    assert decide(channel="self_service", activity="none")["content"]["id"].startswith(
        "ss-help-center"
    )


def test_none_goes_to_general_and_reasons_in_japanese():
    assert decide(activity="none")["pool"] == GENERAL
    answer = decide(language="ja")
    assert any(ord(ch) > 0x3000 for ch in answer["reason"])


def test_japanese_reasons_name_the_activity_and_the_value_unit():
    from models.reasons import ACTIVITY_NAMES

    answer = decide(language="ja")
    name = ACTIVITY_NAMES["ja"]["educate_usage"]
    assert f"「{name}」" in answer["reason"] and "educate_usage" not in answer["reason"]
    assert "金額換算" in answer["reason"]
    busy = {
        "value_education": Availability(expected_wait_s=300),
        "value_education_2": Availability(expected_wait_s=90),
        "general": Availability(expected_wait_s=45),
    }
    downgraded = decide(availability=busy, language="ja")["reason"]
    assert "「" in downgraded and "validate_purchase" not in downgraded


def test_english_reasons_name_the_activity_too():
    """An agent reads the activity's name in English as in Japanese, never the API's id
    (the id stays in the route's ``activity``)."""
    from models.activities import VALUE_ACTIVITIES
    from models.reasons import ACTIVITY_NAMES

    names = ACTIVITY_NAMES["en"]
    answer = decide()
    assert f"“{names['educate_usage']}”" in answer["reason"]
    assert answer["activity"] == "educate_usage"
    busy = {
        "value_education": Availability(expected_wait_s=300),
        "value_education_2": Availability(expected_wait_s=90),
        "general": Availability(expected_wait_s=45),
    }
    free = {**busy, "general": Availability(expected_wait_s=5)}
    nobody = config(pools=[{"id": "general", "activities": []}])
    reasons = [
        answer["reason"],
        decide(availability=busy)["reason"],  # downgraded to a lighter activity
        decide(availability=free)["reason"],  # general is free: kept
        decide(nobody)["reason"],  # no value pool at all
        decide(channel="self_service")["reason"],
    ]
    assert f"instead of “{names['educate_usage']}”" in reasons[1]
    for reason in reasons:
        assert not any(a in reason for a in VALUE_ACTIVITIES), reason
        assert any(name in reason for name in names.values()), reason


def test_a_holdout_customer_is_told_apart_from_the_models_none():
    """The control group's `none` says it is the experiment's randomized control group,
    so an agent does not read it as the model choosing not to attempt."""
    model_none = decide(activity="none")["reason"]
    assert model_none == "no value attempt: effortless resolution"
    for channel in ("voice", "self_service"):
        english = decide(activity="none", channel=channel, holdout=True)["reason"]
        assert "randomized control group (holdout)" in english, english
        assert english != model_none
        japanese = decide(activity="none", channel=channel, language="ja", holdout=True)
        assert "対照群" in japanese["reason"] and "ランダム" in japanese["reason"]
    assert decide(activity="none", holdout=True)["pool"] == GENERAL  # only the words differ
