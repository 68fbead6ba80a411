"""The desk in the other language than a decision was made in: the route reason and the
decision's notes are shown in the desk's language, never left out."""

from __future__ import annotations

import html
import re
import uuid

import pytest

from service.web import desk
from tests.test_pages import _decision_id, desk_client, desk_url  # noqa: F401 - a fixture

ROUTE = re.compile(r'<section class="card route" id="route">(.*?)</section>', re.S)
REASONS = re.compile(r'<ul class="reasons">(.*?)</ul>', re.S)


def _route_text(page: str) -> str:
    found = ROUTE.search(page)
    assert found, "the page shows no route"
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))


def _reasons(page: str) -> list[str]:
    found = REASONS.search(page)
    return (
        [html.unescape(r) for r in re.findall(r"<li>(.*?)</li>", found.group(1))] if found else []
    )


def _japanese(text: str) -> bool:
    return any(ord(ch) > 0x2E80 for ch in text)


@pytest.mark.parametrize(("first", "then"), [("en", "ja"), ("ja", "en")])
def test_the_route_reason_is_shown_in_the_desks_language(desk_client, first, then):  # noqa: F811
    page = desk_client.get(desk_url(issue_type="how_to", sentiment="0.5") + f"&lang={first}")
    text = page.get_data(as_text=True)
    assert 'data-quiet="false"' in text, "the contact must get a suggestion"
    made = _route_text(text)
    decision_id = _decision_id(text)
    other = desk_client.get(f"/desk?decision_id={decision_id}&lang={then}").get_data(as_text=True)
    shown = _route_text(other)
    reason = shown.split("·", 1)[1].strip() if "·" in shown else ""
    assert reason, f"no route reason shown in {then}: {shown!r} (made in {first}: {made!r})"
    assert _japanese(reason) == (then == "ja"), reason
    assert not reason.startswith(desk._ORIGINAL[then])  # the product can phrase it


def test_every_template_reads_back_into_the_other_language():
    from models import elapsed, matching, reasons

    values = {
        "content": "c-1", "title": "Getting started", "activity": "validate_purchase", "original": "advise_new_uses",
        "best": "educate_usage", "pool": "value-a", "pools": "value-a, value-b", "ev": 12.34,
        "lift": 1.5, "limit": 60, "seconds": 12, "margin": 0.5, "p": 0.25, "channel": "chat",
        "minutes": 5, "issue": "billing", "days": 3, "count": 2, "sentiment": -0.5,
        "base": 0.4, "tenure": 12, "n": 3,
    }  # fmt: skip
    names = reasons.ACTIVITY_NAMES["ja"]
    phrases = {
        language: {"wait": matching._TEXT[language]["wait"].format(seconds=12),
                   "ago": elapsed.AGO[language]["hours"].format(n=3)}
        for language in ("en", "ja")
    }  # fmt: skip
    for table in desk._TEMPLATE_TABLES:
        for key, template in table["en"].items():
            english = template.format(**values, **phrases["en"])
            japanese = desk.in_language(english, "ja", "en")
            assert _japanese(japanese) and not japanese.startswith("（原文）"), (key, japanese)
            # Japanese names every activity by name, so it reads back to itself.
            # ... and every channel and issue type by its Japanese word.
            named = {k: names.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
            named |= {k: reasons.category_name(values[k], "ja") for k in ("channel", "issue")}
            made = table["ja"][key].format(**named, **phrases["ja"])
            back = desk.in_language(made, "en", "ja")
            assert not _japanese(back) and not back.startswith("(original)"), (key, back)
            assert desk.in_language(back, "ja", "en") == made, key


def test_joined_route_reasons_are_written_again_part_by_part():
    from models import matching

    text = matching._TEXT["en"]
    english = "; ".join(
        (
            text["drawn"].format(pools="a, b", margin=0.5, pool="a", p=0.5),
            text["chosen"].format(
                pool="a",
                activity=matching._said("validate_purchase", "en"),
                ev=12.0,
                lift=1.2,
                wait=text["wait"].format(seconds=3),
            ),
            text["over_limit"].format(pools="b", limit=60),
        )
    )
    japanese = desk.in_language(english, "ja", "en")
    assert japanese.count("; ") == 2 and "「購入判断の肯定」" in japanese
    assert "予想待ち時間3秒" in japanese and "bは待ち時間の上限60秒を超過" in japanese
    assert desk.in_language(desk.in_language(japanese, "en", "ja"), "ja", "en") == japanese
    # A sentence no template knows is shown as written, marked as the original.
    assert desk.in_language("a new wording", "ja", "en") == "（原文）a new wording"
    assert desk.in_language("a new wording", "en", "en") == "a new wording"


def test_a_recent_decline_is_explained_in_the_other_language(desk_client):  # noqa: F811
    customer = f"c-decline-{uuid.uuid4().hex}"
    first = desk_client.get(
        desk_url(customer_id=customer, issue_type="how_to", sentiment="0.5") + "&lang=en"
    ).get_data(as_text=True)
    shown = re.search(r'data-shown-activity="([a-z_]+)"', first).group(1)
    assert shown != "none"
    declined = desk_client.post(
        "/desk/outcome",
        headers={"X-CSRF-Token": desk_client.csrf},
        json={"decision_id": _decision_id(first), "status": "declined", "shown_activity": shown},
    )
    assert declined.status_code == 201, declined.get_json()
    again = desk_client.get(
        desk_url(customer_id=customer, issue_type="how_to", sentiment="0.5") + "&lang=en"
    ).get_data(as_text=True)
    english = [r for r in _reasons(again) if r.startswith("contact policy")]
    if 'data-quiet="true"' in again:
        pytest.skip("the second contact got no suggestion: nothing to explain")
    assert english, _reasons(again)
    japanese = desk_client.get(f"/desk?decision_id={_decision_id(again)}&lang=ja")
    notes = [r for r in _reasons(japanese.get_data(as_text=True)) if "コンタクトポリシー" in r]
    assert notes and all("辞退されています" in n for n in notes), _reasons(
        japanese.get_data(as_text=True)
    )


def test_japanese_notes_name_activities_by_name():
    from models import contact_policy

    made = contact_policy._MESSAGES["ja"]["declined"].format(
        activity="validate_purchase", days=0, limit=14
    )
    shown = desk.in_language(made, "ja", "ja")
    assert "validate_purchase" not in shown and "購入判断の肯定" in shown, shown
    assert desk.in_language("自由な文", "ja", "ja") == "自由な文"


def test_unusual_templates_cannot_break_the_desk():
    # A field said twice (a compile error would stop the service from starting) ...
    pattern = desk._compile("{pool} full; {pool} waits {seconds:.0f} s")
    assert pattern.fullmatch("a full; a waits 12 s") and not pattern.fullmatch(
        "a full; b waits 1 s"
    )
    # ... and a wording whose other language lacks a field is not paired (KeyError).
    assert desk._fields("{a} over {limit:.0f} s") == {"a", "limit"}


def test_notes_name_activities_as_the_routing_reasons_do_in_english_too():
    from models import contact_policy, matching

    made = contact_policy._MESSAGES["en"]["declined"].format(
        activity="validate_purchase", days=0, limit=14
    )
    named = matching._said("validate_purchase", "en")
    assert desk.in_language(made, "en", "en") == made.replace("validate_purchase", named)
    assert desk.in_language("free text", "en", "en") == "free text"


def _suggested_reasons(result: dict) -> list[str]:
    item = next(a for a in result["activities"] if a["activity"] == result["suggested_activity"])
    return item["reasons"]


def _explained_differently(desk_client, old, new):  # noqa: F811
    """A decision (made in English by ``old``) that ``new`` would explain with other
    reasons, and ``old``'s Japanese reasons for it; None when no candidate differs."""
    for tenure, segment, issue in [
        ("30", "premium", "inquiry"), ("30", "consumer", "how_to"), ("2", "consumer", "inquiry"),
        ("2", "premium", "inquiry"), ("30", "premium", "how_to"), ("2", "consumer", "how_to"),
    ]:  # fmt: skip
        page = desk_client.get(
            desk_url(tenure_months=tenure, segment=segment, issue_type=issue, sentiment="0.5")
            + "&lang=en"
        ).get_data(as_text=True)
        if 'data-quiet="true"' in page:
            continue
        answer, features = desk.stored_decision(_decision_id(page))
        seen = {k: v for k, v in features.items() if not k.startswith("_")}
        policy = {"blocked_activities": frozenset(), "allow_attempt": True}
        said = old.decide(seen, language="ja", **policy)
        if said["suggested_activity"] != answer["suggested_activity"]:
            continue  # explored: still fine, but this test wants the plain case
        if _suggested_reasons(said) != _suggested_reasons(
            new.decide(seen, language="ja", **policy)
        ):
            return answer, _suggested_reasons(said)
    return None


def test_a_switch_after_a_promote_keeps_the_deciding_models_reasons(app, desk_client, registry_dir):  # noqa: F811
    from models.registry import Registry
    from service.serving import build_decider

    registry = Registry(registry_dir)
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    with app.app_context():
        found = _explained_differently(
            desk_client, build_decider(registry, first), build_decider(registry, other)
        )
        if found is None:
            pytest.skip("the two test models explain every candidate contact alike")
        answer, japanese = found
        assert answer["model_version"] == first
        registry.promote(other)
        app.extensions["vea"].models.refresh(force=True)
        assert app.extensions["vea"].models.version == other
    page = desk_client.get(f"/desk?decision_id={answer['decision_id']}&lang=ja")
    shown = _reasons(page.get_data(as_text=True))
    # The same facts as the English page said, in Japanese: the first model's words.
    assert shown[: len(japanese)] == japanese, (shown, japanese)
    assert not any(r.startswith("（原文）") for r in shown[: len(japanese)]), shown


def test_a_switch_after_the_deciding_model_is_gone_still_shows_its_reasons(
    app,
    desk_client,  # noqa: F811
    registry_dir,
):
    import shutil

    from models.registry import Registry

    registry = Registry(registry_dir)
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    page = desk_client.get(
        desk_url(issue_type="how_to", sentiment="0.5", tenure_months="30") + "&lang=en"
    ).get_data(as_text=True)
    if 'data-quiet="true"' in page:
        pytest.skip("the contact got no suggestion: nothing to explain")
    english = _reasons(page)
    registry.promote(other)
    app.extensions["vea"].models.refresh(force=True)
    shutil.rmtree(registry.path_of(first))  # pruned: it cannot say them again
    answer = desk_client.get(f"/desk?decision_id={_decision_id(page)}&lang=ja")
    assert answer.status_code == 200
    shown = _reasons(answer.get_data(as_text=True))
    # Never left out, never another model's: the features it named are said again.
    assert len(shown) == len(english), (shown, english)
    assert all(_japanese(r) and not r.startswith("（原文）") for r in shown), (shown, english)


@pytest.mark.parametrize(("given", "switch"), [("ja", "en"), ("en", "ja")])
def test_the_switch_works_on_a_desk_link_that_names_a_language(desk_client, given, switch):  # noqa: F811
    """The desktop may open the desk with lang=; the switch must still change the page
    (it went back to the same lang=, which wins over the switch's cookie)."""
    url = desk_url(issue_type="how_to") + f"&lang={given}&agent_id=a-1"
    page = desk_client.get(url).get_data(as_text=True)
    assert f'<html lang="{given}"' in page
    link = html.unescape(re.search(rf'<a href="([^"]+)"[^>]*data-lang="{switch}"', page).group(1))
    back = desk_client.get(link)
    assert back.status_code == 302
    switched = desk_client.get(back.headers["Location"]).get_data(as_text=True)
    assert f'<html lang="{switch}"' in switched
    assert _decision_id(switched) == _decision_id(page)  # the same contact
    assert 'data-agent-id="a-1"' in switched  # and the rest of the link kept
    # ... also on the 400 page of a bad link.
    bad = desk_client.get(desk_url(channel="fax") + f"&lang={given}").get_data(as_text=True)
    link = html.unescape(re.search(rf'<a href="([^"]+)"[^>]*data-lang="{switch}"', bad).group(1))
    shown = desk_client.get(desk_client.get(link).headers["Location"])
    assert shown.status_code == 400 and f'<html lang="{switch}"' in shown.get_data(as_text=True)
