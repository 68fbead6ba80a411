"""What the desk says in the states an agent meets on a shift: the database down, a
holdout customer, a degraded answer, an outcome recorded earlier."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.test_api_decisions import unreachable_url
from tests.test_pages import _decision_id, desk_client, desk_url, log_in, raw_key  # noqa: F401


def _break_database(app, tmp_path) -> None:
    from service.db import make_engine

    state = app.extensions["vea"]
    state.engine = make_engine(unreachable_url(str(state.engine.url), tmp_path))


def test_database_down_the_desk_still_shows_its_hint_and_says_why(app, desk_client, tmp_path):  # noqa: F811
    earlier = _decision_id(desk_client.get(desk_url() + "&lang=ja").get_data(as_text=True))
    _break_database(app, tmp_path)

    page = desk_client.get(desk_url() + "&lang=ja")
    text = page.get_data(as_text=True)
    assert page.status_code == 200, text[-600:]  # was a 500
    assert 'id="degraded-note"' in text and 'id="unstored-note"' in text
    assert "保存されていない" in text
    assert 'id="outcome"' not in text  # no buttons for a decision that was not stored

    reopened = desk_client.get(f"/desk?decision_id={earlier}&lang=ja")
    assert reopened.status_code == 503 and reopened.headers["Retry-After"]
    body = reopened.get_data(as_text=True)
    assert "データベースに接続できません" in body and "不完全" not in body

    # A desktop posting the details: shown at once, not redirected to a decision id
    # that cannot be opened.
    params = dict(p.split("=", 1) for p in desk_url().split("?", 1)[1].split("&"))
    posted = desk_client.post("/desk?lang=ja", data=params)
    assert posted.status_code == 200, posted.headers.get("Location")
    assert 'id="unstored-note"' in posted.get_data(as_text=True)

    outcome = desk_client.post(
        "/desk/outcome",
        headers={"X-CSRF-Token": desk_client.csrf},
        json={"decision_id": earlier, "status": "skipped"},
    )
    assert outcome.status_code == 503 and outcome.headers["Retry-After"]  # was a 500
    assert outcome.get_json()["error"]["code"] == "unavailable"


def test_a_holdout_customer_is_marked_as_the_control_group(make_app, keys):
    app = make_app(holdout_share=0.999)
    client = app.test_client()
    log_in(client, raw_key(keys["desktop"]))
    text = client.get(desk_url() + "&lang=ja").get_data(as_text=True)
    assert 'data-quiet="true"' in text
    assert 'id="holdout-note"' in text and "対照群" in text  # was not shown at all


def test_a_degraded_answer_is_marked_even_when_it_suggests_nothing(app, desk_client):  # noqa: F811
    manager = app.extensions["vea"].models

    class Broken:  # a model failing at predict time (as in test_api_decisions)
        version = "broken"

        def decide(self, *args, **kwargs):
            raise RuntimeError("model unavailable")

    manager._decider = Broken()
    manager._checked_at = float("inf")
    text = desk_client.get(
        desk_url(issue_type="complaint", sentiment="-0.8") + "&lang=en"
    ).get_data(as_text=True)
    assert 'data-quiet="true"' in text
    assert 'id="degraded-note"' in text and "Degraded answer" in text


def test_a_reopened_desk_shows_the_outcome_recorded_earlier(desk_client):  # noqa: F811
    url = desk_url(issue_type="how_to", sentiment="0.5")
    page = desk_client.get(url + "&lang=en").get_data(as_text=True)
    decision_id = _decision_id(page)
    assert 'data-recorded="false"' in page and 'id="recorded"' not in page
    shown = re.search(r'data-shown-activity="([a-z_]+)"', page).group(1)
    answer = desk_client.post(
        "/desk/outcome",
        headers={"X-CSRF-Token": desk_client.csrf},
        json={
            "decision_id": decision_id,
            "status": "accepted",
            "shown_activity": shown,
            "ves_confidence": 6,
            "ves_ability": 7,
        },
    )
    assert answer.status_code == 201
    again = desk_client.get(url + "&lang=ja").get_data(as_text=True)
    assert 'data-recorded="true"' in again
    recorded = re.search(r'id="recorded"[^>]*>(.*?)</p>', again, re.S).group(1)
    assert "記録済み: 受け入れ、VES 6 / 7" in recorded
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[\d:.]+Z">[^<]+ UTC</time>', recorded)
    # The disabled form shows what was recorded: the button and both VES answers.
    assert re.search(r'data-status="accepted" aria-pressed="true"', again)
    assert again.count('aria-pressed="true"') == 1
    assert re.search(r'name="ves_confidence" value="6" checked', again)
    assert re.search(r'name="ves_ability" value="7" checked', again)


def test_the_earlier_contact_reads_in_japanese_and_relative_to_this_contact(desk_client):  # noqa: F811
    customer = f"c-earlier-{uuid.uuid4().hex}"
    desk_client.get(desk_url(customer_id=customer, channel="chat", issue_type="how_to"))
    page = desk_client.get(
        desk_url(customer_id=customer, channel="voice", issue_type="how_to", sentiment="0.5")
        + "&lang=ja"
    ).get_data(as_text=True)
    if 'id="resolve"' in page:
        pytest.skip("this model answers the contact quietly: nothing else is shown")
    earlier = re.search(r'id="earlier">(.*?)</section>', page, re.S).group(1)
    assert "チャット" in earlier and "使い方" in earlier, earlier  # not chat, how_to
    assert "このお問い合わせの直前" in earlier, earlier  # was "0 分前": before now?


def test_a_refused_decision_is_explained_in_the_page_language(desk_client):  # noqa: F811
    url = desk_url()
    assert desk_client.get(url).status_code == 200
    taken = desk_client.get(
        re.sub(r"customer_id=\w+", "customer_id=someone-else", url) + "&lang=ja"
    )
    assert taken.status_code == 409
    text = taken.get_data(as_text=True)
    assert "別のお客様にすでに使われています" in text and "already used" not in text


def test_shortcut_keys_are_announced_not_read_as_part_of_the_name(desk_client):  # noqa: F811
    page = desk_client.get(desk_url(issue_type="how_to", sentiment="0.5") + "&lang=en")
    text = page.get_data(as_text=True)
    assert 'data-quiet="false"' in text
    for status, key in (("offered", "O"), ("accepted", "A"), ("declined", "D"), ("skipped", "S")):
        button = re.search(rf'<button [^>]*data-status="{status}"[^>]*>(.*?)</button>', text)
        assert f'aria-keyshortcuts="{key}"' in button.group(0)
        assert f'<kbd aria-hidden="true">{key}</kbd>' in button.group(1)  # name: "Accepted"
    assert re.search(r'id="record" aria-keyshortcuts="Enter"', text)


def test_a_malformed_desk_link_is_explained_in_japanese(desk_client):  # noqa: F811
    missing = desk_client.get("/desk?channel=chat&lang=ja")
    assert missing.status_code == 400
    assert "不足: お問い合わせID（interaction_id）、顧客ID（customer_id）" in missing.get_data(
        as_text=True
    )
    bad = desk_client.get(desk_url(tenure_months="two", prior_contacts_30d="1.5") + "&lang=ja")
    text = bad.get_data(as_text=True)
    assert "購入後の月数（tenure_months）: 数値ではありません" in text
    assert "過去30日の問い合わせ件数（prior_contacts_30d）: 整数ではありません" in text


def test_an_unknown_decision_says_what_to_do(desk_client):  # noqa: F811
    page = desk_client.get("/desk?decision_id=deadbeef&lang=ja")
    assert page.status_code == 404
    text = page.get_data(as_text=True)
    assert "<h1>該当する判定がありません</h1>" in text and "開き直してください" in text
    assert "不完全" not in text  # not "this desk link is incomplete or malformed"
