"""The dashboard reads the period's decisions once per page: with 100,000 decisions each
read takes seconds, and the value, trend and drift sections each made their own."""

from __future__ import annotations

import sqlalchemy as sa

from tests.test_pages import log_in, raw_key


def _post_contact(client, keys, new_id) -> None:
    body = {
        "interaction_id": new_id("i-"),
        "customer": {"customer_id": new_id("c-"), "tenure_months": 2},
        "contact": {"channel": "chat", "issue_type": "inquiry"},
    }
    decision = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert decision.status_code == 201, decision.json
    outcome = {"offered": False, "ves_confidence": 6, "ves_ability": 7, "handle_time_s": 200.0}
    answer = client.post(
        f"/v1/decisions/{decision.json['decision_id']}/outcome",
        json=outcome,
        headers=keys["desktop"],
    )
    assert answer.status_code == 201, answer.json


def _frame_reads(app, client, path: str):
    """The answer to GET ``path`` and how often it read the period's decisions
    (``service.export.decision_frame``: the decisions joined to their outcomes)."""
    from service.state import state

    with app.app_context():
        engine = state().engine
    reads = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if "FROM decisions LEFT OUTER JOIN outcomes" in " ".join(statement.split()):
            reads.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        answer = client.get(path)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_data().decode("utf-8-sig"), len(reads)  # a CSV starts with a byte order mark


def test_the_page_reads_the_decisions_once(app, client, keys, new_id):
    _post_contact(client, keys, new_id)
    log_in(client, raw_key(keys["manager"]))
    text, reads = _frame_reads(app, client, "/dashboard?period=all")
    # The three sections that read the decisions are all on the page.
    for marker in ('id="table-uplift"', 'id="table-trend"', 'id="table-drift"'):
        assert marker in text
    assert reads == 1


def test_a_download_computes_only_its_own_section(app, client, keys, new_id):
    _post_contact(client, keys, new_id)
    log_in(client, raw_key(keys["manager"]))
    text, reads = _frame_reads(app, client, "/dashboard/models.csv?period=all")
    assert text.startswith("version,") and reads == 0
    text, reads = _frame_reads(app, client, "/dashboard/calibration.csv?period=all")
    assert text.startswith("band,") and reads == 1
    text, reads = _frame_reads(app, client, "/dashboard/by_activity.csv?period=all")
    assert text.startswith("group,") and reads == 1
