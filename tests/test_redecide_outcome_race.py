"""An outcome and a re-decision of the same interaction arriving together. On
PostgreSQL the re-decision's UPDATE waited for the outcome's lock on the decision, then
checked "no outcome yet" in its statement's old snapshot and replaced the decision: the
outcome recorded one activity, the stored decision suggested another (6 of 40 rounds
over HTTP), corrupting the learning log. Now the re-decision locks the decision first
and looks for an outcome afterwards: whichever comes second sees the first."""

from __future__ import annotations

import threading
import uuid

import sqlalchemy as sa

from service.auth import create_key
from service.db import decisions, outcomes

ISSUES = ("complaint", "billing", "technical", "order_change", "cancellation", "how_to")


def _body(interaction_id: str, customer_id: str, issue: str, sentiment: float) -> dict:
    return {
        "interaction_id": interaction_id,
        "customer": {"customer_id": customer_id, "tenure_months": 7, "segment": "consumer"},
        "contact": {"channel": "chat", "issue_type": issue, "sentiment": sentiment},
    }


def test_an_outcome_racing_a_re_decision_records_what_is_stored(own_app):
    engine = own_app.extensions["vea"].engine
    desk = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    statuses: list[tuple[str, int]] = []
    decided: list[str] = []
    for round_ in range(30):
        interaction, customer = f"race-{uuid.uuid4().hex[:10]}", f"c-{uuid.uuid4().hex[:10]}"
        first = own_app.test_client().post(
            "/v1/decisions", json=_body(interaction, customer, "inquiry", 0.5), headers=desk
        )
        assert first.status_code == 201, first.json
        decision_id = first.json["decision_id"]
        decided.append(decision_id)
        start = threading.Barrier(4)

        def post(i, interaction=interaction, customer=customer, decision_id=decision_id,
                 start=start, round_=round_):  # fmt: skip
            client = own_app.test_client()
            start.wait()
            if i == 0:
                answer = client.post(
                    f"/v1/decisions/{decision_id}/outcome", json={"offered": False}, headers=desk
                )
                statuses.append(("outcome", answer.status_code))
            else:
                body = _body(
                    interaction, customer, ISSUES[(round_ + i) % 6], -0.9 if i == 1 else 0.5
                )
                answer = client.post("/v1/decisions", json=body, headers=desk)
                statuses.append(("decision", answer.status_code))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert all(code < 500 for _, code in statuses), statuses
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(decisions.c.decision_id, decisions.c.suggested_activity, outcomes.c.activity)
            .join(outcomes, outcomes.c.decision_id == decisions.c.decision_id)
            .where(decisions.c.decision_id.in_(decided))
        ).all()
    assert len(rows) == len(decided)
    mismatched = [r for r in rows if r.suggested_activity != r.activity]
    assert not mismatched, mismatched
