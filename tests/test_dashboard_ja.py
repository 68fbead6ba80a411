"""The Japanese dashboard names the uplift measures, drift levels and the empty group in
Japanese; the English page and the CSV downloads keep the ids."""

from __future__ import annotations

from tests.test_pages import (  # noqa: F401 - fixtures
    _cells,
    _decision_id,
    desk_client,
    desk_url,
    log_in,
    raw_key,
)


def test_measures_levels_and_the_empty_group_read_japanese(app, desk_client, keys):  # noqa: F811
    from service.web import content

    for _ in range(3):  # no segment given: the by-segment table has an empty group
        page = desk_client.get(desk_url(segment="")).get_data(as_text=True)
        desk_client.post(
            "/desk/outcome",
            json={"decision_id": _decision_id(page), "status": "offered"},
            headers={"X-CSRF-Token": desk_client.csrf},
        )
    manager = app.test_client()
    log_in(manager, raw_key(keys["manager"]))
    japanese = manager.get("/dashboard?period=all&lang=ja").get_data(as_text=True)
    measures = _cells(japanese, "uplift", "measure")
    assert measures and set(measures) <= set(content.MEASURE_NAMES["ja"].values())
    levels = _cells(japanese, "drift", "level")
    assert levels and set(levels) <= set(content.DRIFT_LEVELS["ja"].values())
    assert "（不明）" in _cells(japanese, "by_segment", "group")
    # The English page names the measures too, and leaves out the reward's row while
    # it is the success rate again; the CSV keeps the ids.
    english = manager.get("/dashboard?period=all&lang=en").get_data(as_text=True)
    assert _cells(english, "uplift", "measure") == [
        "Value success rate",
        "Retained 60 days",
        "VES (1-7)",
    ]
    assert "(unknown)" in _cells(english, "by_segment", "group")
    uplift = manager.get("/dashboard/uplift.csv?period=all").get_data(as_text=True)
    assert "ve_success" in uplift and "\r\nreward," not in uplift
    csv = manager.get("/dashboard/by_segment.csv?period=all&lang=ja").get_data(as_text=True)
    assert "(unknown)" in csv


def test_a_difference_of_rates_reads_in_japanese_points():
    from service.web.dashboard import shown

    rate = {"measure": "ve_success"}
    # "pp" is English shorthand; the Japanese page says ポイント, the English one pp.
    assert shown("uplift", "value", 0.3164, "ja", rate) == "+31.6ポイント"
    assert shown("treated_vs_holdout", "ci_low", -0.027, "ja", {"measure": "upgraded"}) == (
        "-2.7ポイント"
    )
    assert shown("uplift", "value", 0.3164, "en", rate) == "+31.6 pp"
    assert shown("uplift", "treated", 0.364, "ja", rate) == "36.4%"


def test_the_pooled_headline_figures_say_they_include_the_control_group(app, client, keys):
    # The VES and success tiles pool both arms (the report's `overall`): beside the
    # treated arm's rate in the uplift table, unlabelled, they read as a contradiction.
    log_in(client, raw_key(keys["manager"]))
    english = client.get("/dashboard?lang=en").get_data(as_text=True)
    assert english.count("all contacts, control group included") == 2
    japanese = client.get("/dashboard?lang=ja").get_data(as_text=True)
    assert japanese.count("対照群を含む全件") == 2


def test_no_gate_decision_is_not_said_to_be_the_periods(app, client, keys):
    log_in(client, raw_key(keys["manager"]))
    page = client.get("/dashboard?period=7&lang=en").get_data(as_text=True)
    gates = page[page.index('id="table-gates"') :]
    assert "No retrain gate decision yet (they do not depend on the period)." in gates
    assert "No data in this period." not in gates
    japanese = client.get("/dashboard?period=7&lang=ja").get_data(as_text=True)
    assert "再学習ゲートの判定はまだありません" in japanese[japanese.index('id="table-gates"') :]


def test_segments_issue_types_channels_and_features_are_named():
    """The Japanese page showed the ids (consumer, how_to, chat, tenure_months) where the
    desk's reasons name them; the CSV keeps the ids."""
    from service.web.dashboard import shown

    assert shown("by_segment", "group", "consumer", "ja") == "個人"
    assert shown("by_issue_type", "group", "how_to", "ja") == "使い方"
    assert shown("by_issue_type", "group", "how_to", "en") == "how-to"
    assert shown("by_channel", "group", "chat", "ja") == "チャット"
    assert shown("by_segment", "group", "(unknown)", "ja") == "（不明）"
    assert shown("by_segment", "group", "our_own_segment", "ja") == "our_own_segment"
    assert shown("drift", "feature", "tenure_months", "ja") == "購入後の月数"
    assert shown("drift", "feature", "tenure_months", "en") == "time since purchase"
    assert shown("by_agent_id", "group", "how_to", "ja") == "how_to"  # an agent's id


def test_english_on_the_japanese_dashboard_is_marked_english(
    app,
    desk_client,  # noqa: F811
    keys,
    registry_dir,
    pools_from_the_file,
):
    """Agent ids, a deployment's own segment, a pool named only in English, model
    versions, a gate reason the page cannot translate: English a screen reader must read
    as English (lang="en"); the Japanese around them stays Japanese."""
    from models.registry import Registry
    from tests.test_pages import misread_fragments, parsed

    pools = {"pools": [{"id": "general", "name": {"en": "Front line"}}]}
    assert desk_client.put("/v1/pools", json=pools, headers=keys["admin"]).status_code == 200
    for _ in range(2):
        page = desk_client.get(desk_url(agent_id="night-owl", segment="our_own_segment"))
        desk_client.post(
            "/desk/outcome",
            json={
                "decision_id": _decision_id(page.get_data(as_text=True)),
                "status": "offered",
                "agent_id": "night-owl",
            },
            headers={"X-CSRF-Token": desk_client.csrf},
        )
    # One of the reasons test_pages records too: the gates table stays the same for it.
    untranslated = "a wording the page does not know"
    Registry(registry_dir).record({"event": "gate", "decision": "refuse", "reason": untranslated})
    manager = app.test_client()
    log_in(manager, raw_key(keys["manager"]))
    japanese = manager.get("/dashboard?period=all&lang=ja").get_data(as_text=True)
    texts = parsed(japanese).texts
    for shown in ("night-owl", "our_own_segment", "Front line（general）", untranslated):
        assert ("en", "th", shown) in texts or ("en", "span", shown) in texts, shown
    assert f'（原文）<span lang="en">{untranslated}</span>' in japanese
    assert misread_fragments(japanese) == []
    english = manager.get("/dashboard?period=all&lang=en").get_data(as_text=True)
    assert misread_fragments(english) == []
