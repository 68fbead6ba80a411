"""The desk's words agree with each other: a key's line names each button as the button
does, in English and in Japanese."""

from __future__ import annotations

import pytest

from service.web.content import LABELS

STATUS_KEYS = {"offered": "O", "accepted": "A", "declined": "D", "skipped": "S"}


@pytest.mark.parametrize("language", ["en", "ja"])
def test_the_keys_line_names_the_buttons_as_they_read(language):
    """The Japanese button said 提案した where the keys line said O 提案, and the line wrote
    the VES range 1–7 where the VES heading wrote 1〜7."""
    labels = LABELS[language]
    line = labels["shortcuts"].lower()
    for status, key in STATUS_KEYS.items():
        assert f"{key} {labels[status]}".lower() in line, status
    scale = "1〜7" if language == "ja" else "1–7"
    assert scale in labels["ves"] and f"{scale} VES" in labels["shortcuts"]


def test_what_vea_suggests_is_never_called_what_the_agent_offered():
    """推奨 is vea's suggestion (as on the dashboard), 提案 the agent's offer (the O
    button): the earlier-contact line said 提案: {activity} for what vea suggested."""
    labels = LABELS["ja"]
    assert "推奨" in labels["suggested"] and "推奨: {activity}" in labels["earlier_line"]
    assert "提案" not in labels["earlier_line"] and labels["offered"] == "提案"


def test_a_japanese_desk_reads_the_japanese_default_before_an_english_only_track(monkeypatch):
    from service.web import content

    tracks = {
        "tracks": {
            "educate_usage": {
                "how_to": {"en": "English only"},
                "default": {"en": "Default", "ja": "既定のトーク例"},
            }
        },
        "resolve": {"en": "Resolve it."},
    }
    monkeypatch.setattr(content, "talk_tracks", lambda: tracks)
    assert content.talk_track("educate_usage", "how_to", "ja") == "既定のトーク例"
    assert content.talk_track("educate_usage", "how_to", "en") == "English only"
    # No Japanese anywhere: English rather than nothing.
    tracks["tracks"]["educate_usage"]["default"].pop("ja")
    assert content.talk_track("educate_usage", "how_to", "ja") == "English only"
    assert content.talk_track("advise_new_uses", None, "ja") is None
    # A resolve text without Japanese: the Japanese hint of `none`, not the English text.
    assert content.resolve_text("ja").startswith("手間なく解決")
    assert content.resolve_text("en") == "Resolve it."


def test_an_edited_hint_is_shown_in_the_desks_language():
    """A decision made in English before the hints file changed, opened on a Japanese
    desk: the stored English hint was shown as it was."""
    from models.fallback import hints
    from service.web import desk

    item = {"activity": "educate_usage", "hint": "An older English hint."}
    assert desk._hint(item, "en", "ja", {}) == hints()["ja"]["educate_usage"]
    assert desk._hint(item, "en", "en", {}) == "An older English hint."
