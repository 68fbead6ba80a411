"""The desk shows every suggestion the stored decision made.

The stored decision is the logged policy: its activity and propensity are what the value
report counts as suggested (an agent's offer rate) and what export and retraining learn
from. The desk used to show only "Resolve effortlessly" for a decision suggesting an
activity on a low-openness, complaint or negative-sentiment contact, and recorded the
agent's "skipped" for an activity the agent never saw. It now shows the suggestion with
a caution saying why to resolve first; only a decision suggesting nothing is quiet.
"""

from __future__ import annotations

import html
import re

import pytest

from service.web.desk import DESK_LABELS
from tests.test_pages import _decision_id, desk_url, log_in, misread_fragments

# Contacts the session's trained model answers with an activity although the old desk
# hid it (low openness, a calm complaint, an upset customer on another issue), and one
# the contact policy rules out (an upset complaint: the decision itself says none).
CONTACTS = {
    "calm complaint": {"issue_type": "complaint", "sentiment": "0.5"},
    "upset customer": {"issue_type": "how_to", "sentiment": "-0.5", "tenure_months": "3"},
    "low openness": {
        "issue_type": "technical",
        "segment": "consumer",
        "tenure_months": "40",
        "channel": "voice",
        "prior_contacts_30d": "6",
        "sentiment": "-0.2",
    },
    "low openness, billing": {
        "issue_type": "billing",
        "segment": "consumer",
        "tenure_months": "120",
        "channel": "voice",
        "prior_contacts_30d": "6",
        "sentiment": "-0.2",
    },
    "upset complaint": {"issue_type": "complaint", "sentiment": "-0.8"},
}
CAUTION = re.compile(r'<p class="note" id="caution" role="note">(.*?)</p>', re.S)


def _stored(app, decision_id: str) -> dict:
    from service.web.desk import stored_decision

    with app.app_context():
        answer, _features = stored_decision(decision_id)
    return answer


@pytest.fixture
def desk(make_app):
    app = make_app()
    from service.auth import create_key

    client = app.test_client()
    client.csrf = log_in(client, create_key(app.extensions["vea"].engine, "desktop")[1])
    return app, client


@pytest.mark.parametrize("language", ["en", "ja"])
def test_the_desk_shows_every_suggestion_the_decision_made(desk, language):
    app, client = desk
    own = DESK_LABELS[language]
    cautioned: set[str] = set()
    for name, contact in CONTACTS.items():
        page = client.get(desk_url(**contact) + f"&lang={language}").get_data(as_text=True)
        answer = _stored(app, _decision_id(page))
        suggested = answer["suggested_activity"]
        if suggested == "none":
            assert 'data-quiet="true"' in page and 'id="resolve"' in page, name
            assert 'id="suggestion"' not in page and 'id="caution"' not in page, name
            continue
        # The agent sees what the dashboard will count as suggested, with the buttons.
        assert 'data-quiet="false"' in page, f"{name}: the suggestion {suggested} is hidden"
        assert 'id="resolve"' not in page, name
        assert f'data-activity="{suggested}"' in page, name
        assert f'data-shown-activity="{suggested}"' in page, name
        assert 'data-status="offered"' in page and 'data-status="skipped"' in page, name
        caution = CAUTION.search(page)
        assert caution, f"{name}: shown without its caution"
        said = html.unescape(caution.group(1))
        expected = {
            "caution_low": answer["openness"]["band"] == "low",
            "caution_complaint": contact.get("issue_type") == "complaint",
            "caution_upset": float(contact.get("sentiment", 0)) <= -0.3,
        }
        for key, applies in expected.items():
            assert (own[key] in said) == applies, (name, key, said)
            if applies:
                cautioned.add(key)
        assert own["caution"].split("{reasons}")[0] in said, said
        if language == "ja":
            assert not misread_fragments(page), misread_fragments(page)
    # Each of the old desk's three hiding rules met a suggestion here.
    assert cautioned == {"caution_low", "caution_complaint", "caution_upset"}, cautioned


def test_a_suggestion_without_a_reason_for_care_has_no_caution(desk):
    _app, client = desk
    page = client.get(desk_url(issue_type="how_to", sentiment="0.5") + "&lang=en")
    text = page.get_data(as_text=True)
    assert 'data-quiet="false"' in text and 'id="caution"' not in text


def test_what_the_agent_records_on_a_cautioned_suggestion_is_stored_as_said(desk):
    """The buttons of a cautioned suggestion record what the agent did about it: an offer
    the customer declined (the old desk allowed only "skipped" there)."""
    app, client = desk
    page = client.get(desk_url(**CONTACTS["calm complaint"]) + "&lang=en").get_data(as_text=True)
    decision_id = _decision_id(page)
    suggested = _stored(app, decision_id)["suggested_activity"]
    assert suggested != "none" and 'id="caution"' in page
    answer = client.post(
        "/desk/outcome",
        headers={"X-CSRF-Token": client.csrf},
        json={"decision_id": decision_id, "status": "declined", "shown_activity": suggested},
    )
    assert answer.status_code == 201, answer.get_json()
    stored = answer.get_json()
    assert (stored["activity"], stored["offered"], stored["accepted"]) == (suggested, True, False)
