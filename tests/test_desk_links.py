"""How the desktop opens the desk: a link with the interaction's details in its query
string, or a form it posts with the same fields."""

from __future__ import annotations

import re
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


def test_a_link_with_several_problems_names_them_all(desk_client):  # noqa: F811
    """A word where a number belongs was told alone: the link's other problems (an
    unknown channel, a negative tenure) came one reload at a time."""
    from urllib.parse import urlencode

    query = _form(channel="fax", tenure_months="-3", sentiment="x", lang="en")
    answer = desk_client.get("/desk?" + urlencode(query))
    assert answer.status_code == 400
    problems = re.search(r"<ul>(.*?)</ul>", answer.get_data(as_text=True), re.S).group(1)
    assert problems.count("<li>") == 3, problems
    for name in ("sentiment", "channel", "tenure_months"):
        assert name in problems, name
