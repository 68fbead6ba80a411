"""Exploration and the randomized holdout: pure functions, then through the API."""

from __future__ import annotations

import pytest

from models.exploration import (
    HOLDOUT,
    TREATMENT,
    ExplorationConfig,
    candidates,
    distribution,
    draw,
    holdout_arm,
    holdout_draw,
    uniform_from,
)

VALUES = {"none": 0.0, "validate_purchase": 3.0, "educate_usage": 1.0, "advise_new_uses": -2.0}


@pytest.mark.parametrize(
    "config",
    [
        ExplorationConfig("epsilon", epsilon=0.2, floor=0.0),
        ExplorationConfig("epsilon", epsilon=0.0, floor=0.05),
        ExplorationConfig("softmax", temperature=1.0, floor=0.02),
        ExplorationConfig("softmax", temperature=0.05, floor=0.03),
    ],
)
def test_distribution_sums_to_one_respects_floor_and_favours_the_best(config):
    dist = distribution(VALUES, "validate_purchase", config)
    assert set(dist) == set(VALUES)
    assert sum(dist.values()) == pytest.approx(1.0)
    assert min(dist.values()) >= config.floor - 1e-12
    assert max(dist, key=dist.get) == "validate_purchase"


def test_epsilon_greedy_masses():
    dist = distribution(VALUES, "validate_purchase", ExplorationConfig("epsilon", 0.2, floor=0))
    assert dist["validate_purchase"] == pytest.approx(0.8 + 0.05)
    assert dist["none"] == pytest.approx(0.05)


def test_no_exploration_is_deterministic_with_propensity_one():
    chosen = draw("d-1", VALUES, "validate_purchase", ExplorationConfig("none"))
    assert (chosen.action, chosen.propensity) == ("validate_purchase", 1.0)


def test_draw_is_deterministic_per_decision_and_propensity_is_the_mass():
    config = ExplorationConfig("softmax", temperature=2.0, floor=0.05)
    counts: dict[str, int] = {}
    n = 4000
    for i in range(n):
        first = draw(f"decision-{i}", VALUES, "validate_purchase", config)
        again = draw(f"decision-{i}", VALUES, "validate_purchase", config)
        assert first == again
        assert first.propensity == first.distribution[first.action]
        counts[first.action] = counts.get(first.action, 0) + 1
    dist = distribution(VALUES, "validate_purchase", config)
    for action, p in dist.items():  # the hash behaves like a uniform
        assert counts.get(action, 0) / n == pytest.approx(p, abs=0.03)


def test_blocked_unlearned_and_disallowed_actions_are_never_candidates():
    ev = {"validate_purchase": 3.0, "educate_usage": None, "achieve_goals": 1.0}
    allowed = candidates(ev, 0.0, blocked={"achieve_goals"})
    assert set(allowed) == {"none", "validate_purchase"}
    assert candidates(ev, 0.0, allow_attempt=False) == {"none": 0.0}
    config = ExplorationConfig("epsilon", epsilon=1.0, floor=0.1)
    seen = {draw(f"x{i}", allowed, "validate_purchase", config).action for i in range(300)}
    assert seen == {"none", "validate_purchase"}


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ExplorationConfig("greedy")
    with pytest.raises(ValueError):
        ExplorationConfig("softmax", temperature=0.0)
    with pytest.raises(ValueError):
        ExplorationConfig("epsilon", floor=0.5)
    with pytest.raises(ValueError):
        holdout_arm("c", 1.0, "e")


def test_holdout_share_is_within_tolerance_and_stable_per_customer():
    n = 20_000
    arms = [holdout_arm(f"cust-{i}", 0.1, "exp-a") for i in range(n)]
    share = arms.count(HOLDOUT) / n
    assert share == pytest.approx(0.1, abs=0.01)
    assert all(holdout_arm(f"cust-{i}", 0.1, "exp-a") == arms[i] for i in range(0, n, 97))
    # Another experiment name reshuffles the arms.
    other = [holdout_arm(f"cust-{i}", 0.1, "exp-b") for i in range(2000)]
    assert other != arms[:2000]
    assert holdout_arm("cust-1", 0.0, "exp-a") == TREATMENT


def test_the_holdout_draw_is_the_number_a_customer_is_held_out_by():
    """One function writes the holdout's salt: the arm is the draw against the share (the
    value report re-draws the same number), and the draws are those of every stored
    decision (pinned: a faster hash read must not move a customer or a decision)."""
    for i in range(2000):
        u = holdout_draw(f"cust-{i}", "exp-a")
        assert 0.0 <= u < 1.0
        for share in (0.05, 0.5):
            assert (holdout_arm(f"cust-{i}", share, "exp-a") == HOLDOUT) == (u < share)
    assert holdout_draw("cust-1", "exp-a") == 0.9110153113851804
    assert uniform_from("d-1", "explore") == 0.8937555339306387
    assert uniform_from("d-1", "route") == 0.5770423463493558


# --------------------------------------------------------------------------- API
def _decide(client, headers, new_id, customer_id, **contact):
    body = {
        "interaction_id": new_id("i-"),
        "customer": {"customer_id": customer_id, "tenure_months": 3, "segment": "premium"},
        "contact": {"channel": "chat", "issue_type": "inquiry", **contact},
    }
    response = client.post("/v1/decisions", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def test_api_answers_and_stores_arm_and_propensity(make_app, new_id):
    import sqlalchemy as sa

    from service.auth import create_key
    from service.db import decisions

    app = make_app(exploration="epsilon", epsilon=0.5, propensity_floor=0.02, holdout_share=0.3)
    client = app.test_client()
    engine = app.extensions["vea"].engine
    headers = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    answers = [_decide(client, headers, new_id, new_id("c-")) for _ in range(40)]
    arms = {a["experiment_arm"] for a in answers}
    assert arms == {"treatment", "holdout"}
    for answer in answers:
        assert 0.0 < answer["propensity"] <= 1.0
        assert len(answer["activities"]) == 5  # the full model ranking stays
        if answer["experiment_arm"] == "holdout":
            assert answer["suggested_activity"] == "none"
            assert answer["propensity"] == 1.0
        else:
            assert answer["propensity"] < 1.0  # epsilon 0.5 over several candidates
    with engine.connect() as conn:
        stored = {
            r.decision_id: r
            for r in conn.execute(
                sa.select(decisions).where(
                    decisions.c.decision_id.in_([a["decision_id"] for a in answers])
                )
            )
        }
    for answer in answers:
        row = stored[answer["decision_id"]]
        assert row.experiment_arm == answer["experiment_arm"]
        assert row.propensity == answer["propensity"]
        assert row.suggested_activity == answer["suggested_activity"]
    # A customer stays in their arm.
    holdout = next(a for a in answers if a["experiment_arm"] == "holdout")
    customer = stored[holdout["decision_id"]].customer_id
    assert _decide(client, headers, new_id, customer)["experiment_arm"] == "holdout"


def test_exploration_never_serves_a_blocked_activity(make_app, new_id):
    from service.auth import create_key

    app = make_app(exploration="epsilon", epsilon=1.0, propensity_floor=0.1)
    client = app.test_client()
    engine = app.extensions["vea"].engine
    headers = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    for _ in range(15):
        # An angry complaint: the contact policy allows no attempt.
        answer = _decide(
            client, headers, new_id, new_id("c-"), issue_type="complaint", sentiment=-0.9
        )
        assert answer["contact_policy"]["allow_attempt"] is False
        assert answer["suggested_activity"] == "none"
        assert answer["propensity"] == 1.0


def test_bad_exploration_setting_fails_at_start(make_app):
    with pytest.raises(ValueError):
        make_app(exploration="sometimes")
