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
