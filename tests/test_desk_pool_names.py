"""Pools by display name where an agent reads them: the route's reasons name pools in the
reason's language (the id when the config has no name), the decision's route carries
``pool_name``, and the desk names the route's pool in its own language, also when it
rewrites a reason made in the other language."""

from __future__ import annotations

import re
import time

import pytest

from models.matching import Availability, RoutingRules, pool_names, route
from models.pools import parse_config
from service.web import desk
from tests.test_desk_languages import _route_text
from tests.test_pages import _decision_id, desk_client, desk_url  # noqa: F401 - a fixture

NAMED = {
    "pools": [
        {
            "id": "edu",
            "name": {"en": "Better usage", "ja": "使い方のご案内"},
            "activities": ["educate_usage"],
            "members": ["a1"],
            "lift": {"educate_usage": 1.3},
        },
        {
            "id": "edu2",
            "name": {"en": "Usage, second line", "ja": "使い方（二次）"},
            "activities": ["educate_usage"],
            "members": ["a2"],
            "lift": {"educate_usage": 1.1},
        },
        {"id": "plain", "activities": ["educate_usage"], "members": ["a3"]},
        {"id": "general", "name": {"en": "All agents", "ja": "全員"}},
    ]
}
ACTIVITIES = [
    {"activity": "educate_usage", "success_probability": 0.5, "expected_value": 7.6},
    {"activity": "validate_purchase", "success_probability": 0.3, "expected_value": 5.1},
]
RULES = RoutingRules(max_wait_s=60.0)


def _route(config, language: str, availability=None, rules=RULES, **kwargs) -> dict:
    return route(
        config,
        activity=kwargs.pop("activity", "educate_usage"),
        activities=ACTIVITIES,
        openness=0.4,
        channel="voice",
        language=language,
        segment="consumer",
        availability=availability or {},
        rules=rules,
        **kwargs,
    )


# ----------------------------------------------------------------- reasons
@pytest.mark.parametrize(
    ("language", "chosen", "full", "general", "general_pool"),
    [("en", "Better usage", "Usage, second line, plain", "All agents", "All agents pool"),
     ("ja", "使い方のご案内", "使い方（二次）、plain", "全員", "「全員」プール")],
)  # fmt: skip
def test_route_reasons_name_pools_by_display_name(language, chosen, full, general, general_pool):
    config = parse_config(NAMED)
    answer = _route(config, language)
    assert answer["pool"] == "edu" and answer["pool_name"] == chosen
    assert answer["reason"].lstrip("「").startswith(chosen), answer["reason"]
    busy = {p: Availability(expected_wait_s=600) for p in ("edu2", "plain")}
    answer = _route(config, language, busy)
    assert full in answer["reason"], answer["reason"]  # "... over the 60 s wait limit"
    everyone_busy = {**busy, "edu": Availability(expected_wait_s=600)}
    answer = _route(config, language, everyone_busy)
    assert answer["pool"] == "general" and answer["pool_name"] == general
    assert general_pool in answer["reason"], answer["reason"]
    assert "general" not in answer["reason"], answer["reason"]


def test_a_config_without_names_keeps_naming_pools_by_id():
    config = parse_config({"pools": [{**p, "name": None} for p in NAMED["pools"]]})
    answer = _route(config, "ja")
    assert answer["pool_name"] == "edu" and answer["reason"].startswith("「edu」プール")
    answer = _route(config, "en", activity="none")
    assert answer["pool_name"] == "general"


def test_a_drawn_pool_is_named_and_self_service_has_no_pool_name():
    config = parse_config(NAMED)
    rules = RoutingRules(max_wait_s=60.0, explore_margin=50.0)
    answer = _route(config, "en", rules=rules, decision_id="d-1")
    assert (
        "pool drawn among near-equal pools (Better usage, Usage, second line, plain"
        in (answer["reason"])
    )
    assert answer["pool_name"] == pool_names(config, "en")[answer["pool"]]
    content = route(
        config, activity="educate_usage", activities=ACTIVITIES, openness=0.4,
        channel="self_service", language="en", segment=None, availability={}, rules=RULES,
    )  # fmt: skip
    assert content["pool"] == "digital_content" and content["pool_name"] is None


def test_pool_names_are_built_once_per_config():
    """The serving path only looks names up (a decision costs ~650 us)."""
    config = parse_config(NAMED)
    assert pool_names(config, "ja") is pool_names(config, "ja")
    other = parse_config(NAMED)
    assert pool_names(other, "ja") == pool_names(config, "ja")
    assert pool_names(other, "ja") is not pool_names(config, "ja")
    start = time.perf_counter()
    for _ in range(10_000):
        pool_names(config, "en")
    assert (time.perf_counter() - start) / 10_000 < 5e-6  # a dict lookup, not a rebuild


# ------------------------------------------------------------ the desk rewrites
def test_the_desk_names_pools_again_in_its_language():
    config = parse_config(NAMED)
    pools = desk.pool_lookup(config)
    busy = {p: Availability(expected_wait_s=600) for p in ("edu2", "plain")}
    english = _route(config, "en", busy)["reason"]
    japanese = _route(config, "ja", busy)["reason"]
    assert desk.in_language(english, "ja", "en", pools) == japanese
    assert desk.in_language(japanese, "en", "ja", pools) == english
    everyone_busy = {**busy, "edu": Availability(expected_wait_s=600)}
    english = _route(config, "en", everyone_busy)["reason"]
    assert (
        desk.in_language(english, "ja", "en", pools)
        == (_route(config, "ja", everyone_busy)["reason"])
    )
    # A reason stored before pools had names names them by id: by name now.
    old = "edu: highest expected value for “Educate on better usage” (1.00; proficiency lift "
    old += "1.30; wait unknown)"
    assert desk.in_language(old, "en", "en", pools).startswith("Better usage: highest")
    # A pool the config no longer has is kept as written.
    gone = old.replace("edu:", "retired:")
    assert desk.in_language(gone, "ja", "en", pools).startswith("「retired」プール")


def test_the_desk_shows_the_pool_by_name_in_its_language(desk_client):  # noqa: F811
    page = desk_client.get(desk_url(issue_type="how_to", sentiment="0.5") + "&lang=ja")
    text = page.get_data(as_text=True)
    assert 'data-quiet="false"' in text, "the contact must get a suggestion"
    shown = _route_text(text)
    # The default pools: general is 一般窓口 in Japanese, its id small beside it.
    assert re.search(r'<strong class="pool-name" data-pool="general">一般窓口</strong>', text)
    # The id is read as English on the Japanese page (its own lang: WCAG 3.1.2).
    assert '<small class="muted pool-id" lang="en">general</small>' in text
    assert "general pool" not in shown and "「一般窓口」プール" in shown, shown
    english = desk_client.get(f"/desk?decision_id={_decision_id(text)}&lang=en")
    shown = _route_text(english.get_data(as_text=True))
    assert "General" in shown and "一般窓口" not in shown, shown
