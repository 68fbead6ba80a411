"""How long ago the earlier contact was: "just now" under a minute, hours and days for
long gaps (the continuation window is a day by default and may be longer), in the
decision's note and on the desk's earlier-contact card, by one rule (models.elapsed)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from models import elapsed
from service.web import desk
from tests.test_api_decisions import decision_body
from tests.test_pages import desk_client, desk_url  # noqa: F401 - a fixture


@pytest.mark.parametrize(
    ("seconds", "en", "ja"),
    [
        (-5, "just now", "先ほど"),  # clocks a little apart
        (0, "just now", "先ほど"),
        (59.9, "just now", "先ほど"),
        (60, "1 min ago", "1分前"),
        (59 * 60 + 59, "59 min ago", "59分前"),
        (3600, "1 h ago", "1時間前"),
        (3 * 3600 + 1800, "3 h ago", "3時間前"),
        (86399, "23 h ago", "23時間前"),
        (86400, "1 day ago", "1日前"),
        (2 * 86400 + 3600, "2 days ago", "2日前"),
    ],
)
def test_the_unit_follows_the_gap(seconds, en, ja):
    # Japanese writes no space between a number and its unit (was "3 時間前").
    assert elapsed.say(seconds, elapsed.AGO["en"]) == en
    assert elapsed.say(seconds, elapsed.AGO["ja"]) == ja


def _note(answer: dict) -> str:
    notes = [r for r in answer["reasons"] if "continues" in r or "続き" in r]
    assert len(notes) == 1, answer["reasons"]
    return notes[0]


def test_the_continuation_note_says_just_now_hours_and_days(make_app, new_id):
    from service.auth import create_key

    app = make_app(continuation_window_min=3 * 1440)
    client = app.test_client()
    headers = {"Authorization": "Bearer " + create_key(app.extensions["vea"].engine, "desktop")[1]}
    now = datetime.now(UTC)
    for gap, language, said in [
        (timedelta(0), "en", "continues a chat contact made just now (issue: inquiry)"),
        (timedelta(0), "ja", "先ほどのチャットでのお問い合わせの続きです（種別: 質問）"),
        (timedelta(hours=3, minutes=5), "en", "continues a chat contact made 3 h ago"),
        (timedelta(hours=3, minutes=5), "ja", "3時間前のチャットでのお問い合わせの続きです"),
        (timedelta(days=2, hours=1), "en", "continues a chat contact made 2 days ago"),
        (timedelta(days=2, hours=1), "ja", "2日前のチャットでのお問い合わせの続きです"),
    ]:
        customer = new_id("c-")
        first = decision_body(new_id, customer, occurred_at=(now - gap).isoformat())
        assert client.post("/v1/decisions", json=first, headers=headers).status_code == 201
        second = decision_body(new_id, customer, channel="voice", language=language)
        answer = client.post("/v1/decisions", json=second, headers=headers).json
        assert _note(answer).startswith(said), (gap, _note(answer))


def test_the_desk_rewrites_the_note_in_the_other_language():
    english = "continues a chat contact made 3 h ago (issue: how-to)"
    japanese = "3時間前のチャットでのお問い合わせの続きです（種別: 使い方）"
    assert desk.in_language(english, "ja", "en") == japanese
    assert desk.in_language(japanese, "en", "ja") == english
    assert desk.in_language("continues a voice contact made just now (issue: billing)", "ja") == (
        "先ほどの電話でのお問い合わせの続きです（種別: 請求）"
    )
    assert desk.in_language("2日前のチャットでのお問い合わせの続きです（種別: 請求）", "en") == (
        "continues a chat contact made 2 days ago (issue: billing)"
    )


@pytest.mark.parametrize(
    ("language", "said"), [("en", "3 h before this contact"), ("ja", "このお問い合わせの3時間前")]
)
def test_the_desks_earlier_card_counts_hours_before_this_contact(desk_client, language, said):  # noqa: F811
    card = _earlier_card(desk_client, language, timedelta(hours=3, minutes=10))
    assert said in card, card


def _earlier_card(
    client, language: str, earlier_ago: timedelta, this_ago: timedelta | None = None
) -> str:
    """The desk's earlier-contact card for a voice contact (``this_ago`` before now, or
    at the request) continuing a chat ``earlier_ago`` before now."""
    customer = f"c-earlier-{uuid.uuid4().hex}"
    earlier = quote((datetime.now(UTC) - earlier_ago).isoformat())
    client.get(desk_url(customer_id=customer, issue_type="how_to", occurred_at=earlier))
    when = (
        {}
        if this_ago is None
        else {"occurred_at": quote((datetime.now(UTC) - this_ago).isoformat())}
    )
    page = client.get(
        desk_url(
            customer_id=customer, channel="voice", issue_type="how_to", sentiment="0.5", **when
        )
        + f"&lang={language}"
    ).get_data(as_text=True)
    if 'id="resolve"' in page:
        pytest.skip("this model answers the contact quietly: nothing else is shown")
    return re.search(r'id="earlier">(.*?)</section>', page, re.S).group(1)


@pytest.mark.parametrize(
    ("language", "said"), [("en", "3 h before this contact"), ("ja", "このお問い合わせの3時間前")]
)
def test_the_earlier_card_counts_to_this_contacts_time_not_to_the_request(
    desk_client,  # noqa: F811
    language,
    said,
):
    """A desk opened two hours after its contact (a queued call, a late link): the card
    said 5 h, the time from the earlier contact to the request."""
    card = _earlier_card(
        desk_client, language, timedelta(hours=5, minutes=10), this_ago=timedelta(hours=2)
    )
    assert said in card, card


def test_the_earlier_card_shows_the_outcome_recorded_since(desk_client, keys, app):  # noqa: F811
    """The card showed the earlier contact's outcome as it stood when this contact was
    decided (usually none yet): an agent reopening the desk after the chat agent had
    recorded "accepted" still read "no outcome"."""
    import sqlalchemy as sa

    from service.db import decisions

    customer = f"c-earlier-{uuid.uuid4().hex}"
    earlier_at = quote((datetime.now(UTC) - timedelta(minutes=30)).isoformat())
    desk_client.get(desk_url(customer_id=customer, issue_type="how_to", occurred_at=earlier_at))
    this_contact = desk_url(
        customer_id=customer, channel="voice", issue_type="how_to", sentiment="0.5"
    )

    def card() -> str:
        page = desk_client.get(this_contact).get_data(as_text=True)
        if 'id="resolve"' in page:
            pytest.skip("this model answers the contact quietly: nothing else is shown")
        return re.search(r'id="earlier">(.*?)</section>', page, re.S).group(1)

    assert "none recorded" in card()
    with app.extensions["vea"].engine.connect() as conn:
        earlier_id = (
            conn.execute(
                sa.select(decisions.c.decision_id)
                .where(decisions.c.customer_id == customer)
                .order_by(decisions.c.occurred_at)
            )
            .scalars()
            .first()
        )
    recorded = desk_client.post(
        f"/v1/decisions/{earlier_id}/outcome",
        json={"offered": True, "accepted": True, "ves_confidence": 6, "ves_ability": 5},
        headers=keys["desktop"],
    )
    assert recorded.status_code == 201, recorded.json
    shown = card()
    assert "accepted" in shown.lower() and "VES 6 / 5" in shown, shown
