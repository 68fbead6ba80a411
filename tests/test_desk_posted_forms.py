"""A desktop that posts the interaction to the desk (instead of a link with the details
in its query string)."""

from __future__ import annotations

import uuid

from tests.test_pages import desk_client  # noqa: F401 - a fixture


def _form(**overrides: str) -> dict[str, str]:
    return {
        "interaction_id": uuid.uuid4().hex,
        "customer_id": uuid.uuid4().hex,
        "channel": "voice",
        "issue_type": "how_to",
        "agent_id": "agent-posted",
        **overrides,
    }


def test_a_form_posted_to_a_desk_link_that_names_a_language_opens_in_it(desk_client):  # noqa: F811
    """The post's redirect to the decision dropped the link's lang=: the desk opened in
    the browser's language."""
    headers = {"Accept-Language": "en-US,en;q=0.9"}
    answer = desk_client.post("/desk?lang=ja", data=_form(), headers=headers)
    assert answer.status_code == 302
    page = desk_client.get(answer.headers["Location"], headers=headers)
    assert page.status_code == 200
    assert '<html lang="ja">' in page.get_data(as_text=True)
