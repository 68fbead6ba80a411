"""Upgrade day and disaster recovery, as an operator lives them.

* A retry sent across an upgrade is a replay: an outcome, event or survey stored by a
  release that kept microseconds is the same as the retry the API now reads to the
  millisecond (it was a 409).
"""

from __future__ import annotations

import sqlalchemy as sa

from service.db import customer_events, outcomes, surveys


def _decide(client, headers, customer: str, interaction: str) -> str:
    answer = client.post(
        "/v1/decisions",
        json={
            "interaction_id": interaction,
            "customer": {"customer_id": customer, "tenure_months": 4},
            "contact": {"channel": "voice", "issue_type": "inquiry", "language": "en"},
        },
        headers=headers,
    )
    assert answer.status_code == 201, answer.json
    return answer.json["decision_id"]


# ------------------------------------------------------- retries across an upgrade
def test_retries_stored_by_a_release_that_kept_microseconds_are_replays(app, client, keys, new_id):
    engine = app.extensions["vea"].engine
    desktop, admin = keys["desktop"], keys["admin"]
    customer = new_id("ops-ms-")
    decision_id = _decide(client, desktop, customer, new_id("ops-ms-i-"))
    sent_at = "2026-11-27T10:14:27.675700Z"  # what the desktop sent, microseconds and all
    outcome = {"offered": False, "handle_time_s": 240, "occurred_at": sent_at}
    event = {"event_id": new_id("ev-"), "type": "renewed", "occurred_at": sent_at}
    survey = {"survey_id": new_id("svy-"), "ves_confidence": 6, "answered_at": sent_at}
    sent = {
        f"/v1/decisions/{decision_id}/outcome": outcome,
        f"/v1/customers/{customer}/events": event,
        f"/v1/decisions/{decision_id}/survey": survey,
    }
    try:
        for path, body in sent.items():
            assert client.post(path, json=body, headers=desktop).status_code == 201, path
        # As the release before the millisecond change stored them.
        kept = "2026-11-27T10:14:27.675700+00:00"
        with engine.begin() as conn:
            for table, where in (
                (outcomes, outcomes.c.decision_id == decision_id),
                (customer_events, customer_events.c.customer_id == customer),
            ):
                payload = conn.execute(sa.select(table.c.payload).where(where)).scalar_one()
                conn.execute(
                    table.update().where(where).values(payload={**payload, "occurred_at": kept})
                )
            conn.execute(
                surveys.update()
                .where(surveys.c.decision_id == decision_id)
                .values(answered_at=_naive(kept))
            )

        # The desktop's retry queue sends the same bodies again after the upgrade.
        for path, body in sent.items():
            again = client.post(path, json=body, headers=desktop)
            assert again.status_code == 200, (path, again.json)
            assert again.headers["Idempotent-Replayed"] == "true"
        # Another time is still another answer.
        other = {**outcome, "occurred_at": "2026-11-27T10:14:28.000Z"}
        path = f"/v1/decisions/{decision_id}/outcome"
        assert client.post(path, json=other, headers=desktop).status_code == 409
    finally:
        assert client.delete(f"/v1/customers/{customer}", headers=admin).status_code == 200


def _naive(text: str):
    from datetime import datetime

    from service.db import to_naive_utc

    return to_naive_utc(datetime.fromisoformat(text))
