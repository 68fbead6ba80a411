"""What an agent reads in a decision's reasons: a holdout customer's route says it is the
experiment's randomized control group (not the model choosing not to attempt), and
English reasons name activities as Japanese ones do, never by their API id."""

from __future__ import annotations

import pytest

from models.activities import VALUE_ACTIVITIES
from models.reasons import ACTIVITY_NAMES
from tests.test_api_decisions import decision_body


def _decide(client, keys, new_id, language: str) -> dict:
    body = decision_body(new_id, language=language)
    response = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert response.status_code == 201, response.json
    return response.json


@pytest.mark.parametrize(
    ("language", "words"),
    [("en", "randomized control group (holdout)"), ("ja", "対照群（ランダム割付")],
)
def test_a_holdout_route_names_the_control_group(make_app, keys, new_id, language, words):
    client = make_app(holdout_share=0.5).test_client()
    arms: dict[str, dict] = {}
    for _ in range(200):
        answer = _decide(client, keys, new_id, language)
        arms.setdefault(answer["experiment_arm"], answer)
        if len(arms) == 2:
            break
    holdout, treated = arms["holdout"], arms["treatment"]
    assert holdout["suggested_activity"] == "none"
    assert words in holdout["route"]["reason"], holdout["route"]
    assert words not in treated["route"]["reason"], treated["route"]


def test_english_reasons_name_the_activity(make_app, keys, new_id):
    """Exploration serves another activity than the best now and then: its reason and the
    route's name both activities, in English and Japanese."""
    client = make_app(exploration="epsilon", epsilon=0.9).test_client()
    seen = {"en": False, "ja": False}
    for _ in range(60):
        for language in seen:
            answer = _decide(client, keys, new_id, language)
            texts = [answer["route"]["reason"], *answer["reasons"]]
            for text in texts:
                assert not any(a in text for a in VALUE_ACTIVITIES), (language, text)
            served = answer["suggested_activity"]
            if served != "none":
                assert ACTIVITY_NAMES[language][served] in answer["route"]["reason"]
            explored = [t for t in answer["reasons"] if "探索" in t or "exploring" in t]
            if explored:
                seen[language] = True
                names = [n for n in ACTIVITY_NAMES[language].values() if n in explored[0]]
                assert ACTIVITY_NAMES[language][served] in names and len(names) == 2, explored
        if all(seen.values()):
            break
    assert all(seen.values()), seen
