"""A customer's stored data: reading all of it (right of access) and erasing it (right to
deletion), by API and CLI."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner
from test_api_decisions import unreachable_url
from test_api_outcomes_events import make_decision

from service.db import customer_events, decisions, outcomes


def stored(engine, customer_id: str) -> tuple[int, int, int]:
    theirs = sa.select(decisions.c.decision_id).where(decisions.c.customer_id == customer_id)
    with engine.connect() as conn:
        return (
            conn.execute(sa.select(sa.func.count()).select_from(theirs.subquery())).scalar_one(),
            conn.execute(
                sa.select(sa.func.count()).where(outcomes.c.decision_id.in_(theirs))
            ).scalar_one(),
            conn.execute(
                sa.select(sa.func.count()).where(customer_events.c.customer_id == customer_id)
            ).scalar_one(),
        )


def test_erasure_deletes_one_customers_records_and_nobody_elses(app, client, keys, new_id):
    engine = app.extensions["vea"].engine
    gone, kept = new_id("c-"), new_id("c-")
    first = make_decision(client, keys["desktop"], new_id, customer_id=gone)
    make_decision(client, keys["desktop"], new_id, customer_id=gone)
    other = make_decision(client, keys["desktop"], new_id, customer_id=kept)
    for decision in (first, other):
        answer = client.post(
            f"/v1/decisions/{decision['decision_id']}/outcome",
            json={"offered": False},
            headers=keys["desktop"],
        )
        assert answer.status_code == 201
    for customer in (gone, kept):
        event = {"type": "upgraded", "value": 12.5}
        answer = client.post(
            f"/v1/customers/{customer}/events", json=event, headers=keys["desktop"]
        )
        assert answer.status_code == 201
    assert stored(engine, gone) == (2, 1, 1)

    for role in ("desktop", "engineer", "manager"):
        refused = client.delete(f"/v1/customers/{gone}", headers=keys[role])
        assert refused.status_code == 403, role
    assert stored(engine, gone) == (2, 1, 1)

    record = client.get(f"/v1/customers/{gone}", headers=keys["admin"])
    assert record.status_code == 200, record.json
    assert record.json["customer_id"] == gone
    assert [d["decision"]["decision_id"] for d in record.json["decisions"]] == [
        first["decision_id"],
        record.json["decisions"][1]["decision"]["decision_id"],
    ]
    assert record.json["decisions"][0]["decision"] == first
    assert record.json["decisions"][0]["outcome"]["offered"] is False
    assert record.json["decisions"][1]["outcome"] is None
    assert record.json["decisions"][0]["features"]["tenure_months"] == 4
    assert [(e["type"], e["value"]) for e in record.json["events"]] == [("upgraded", 12.5)]
    assert client.get(f"/v1/customers/{gone}", headers=keys["desktop"]).status_code == 403

    answer = client.delete(f"/v1/customers/{gone}", headers=keys["admin"])
    assert answer.status_code == 200, answer.json
    assert answer.json == {
        "customer_id": gone,
        "deleted": {"decisions": 2, "outcomes": 1, "surveys": 0, "events": 1},
    }
    assert stored(engine, gone) == (0, 0, 0)
    assert stored(engine, kept) == (1, 1, 1)
    empty = client.get(f"/v1/customers/{gone}", headers=keys["admin"]).json
    assert empty == {"customer_id": gone, "decisions": [], "events": []}

    again = client.delete(f"/v1/customers/{gone}", headers=keys["admin"])
    assert again.status_code == 200
    assert again.json["deleted"] == {"decisions": 0, "outcomes": 0, "surveys": 0, "events": 0}
    # The next contact starts without history: nothing is continued or counted.
    fresh = make_decision(client, keys["desktop"], new_id, customer_id=gone)
    assert fresh["continuation"] is None
    assert fresh["context"]["prior_contacts_30d"] == 0


def test_erasure_errors_use_the_designs_format(app, keys, new_id, tmp_path):
    from service.db import make_engine

    client = app.test_client()
    assert client.delete(f"/v1/customers/{new_id()}").status_code == 401
    too_long = client.delete("/v1/customers/" + "x" * 129, headers=keys["admin"])
    assert too_long.status_code == 422
    assert "customer_id" in too_long.json["error"]["fields"]

    ok = client.delete(f"/v1/customers/{new_id()}", headers=keys["admin"])  # key now cached
    assert ok.status_code == 200
    state = app.extensions["vea"]
    state.engine = make_engine(unreachable_url(str(state.engine.url), tmp_path))
    down = client.delete(f"/v1/customers/{new_id()}", headers=keys["admin"])
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.json["error"]["code"] == "unavailable"
    assert "nothing was erased" in down.json["error"]["message"]


def test_cli_erasure_asks_for_confirmation(app, client, keys, new_id, monkeypatch):
    from training.cli import cli

    engine = app.extensions["vea"].engine
    customer = new_id("c-")
    make_decision(client, keys["desktop"], new_id, customer_id=customer)
    env = {"VEA_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    runner = CliRunner()

    unconfirmed = runner.invoke(cli, ["db", "erase-customer", customer], env=env)
    assert unconfirmed.exit_code != 0 and "--yes" in unconfirmed.output
    assert stored(engine, customer) == (1, 0, 0)

    done = runner.invoke(cli, ["db", "erase-customer", customer, "--yes"], env=env)
    assert done.exit_code == 0, done.output
    assert "erased 1 decisions, 0 outcomes, 0 surveys and 0 events" in done.output
    assert stored(engine, customer) == (0, 0, 0)


def test_a_customer_id_with_a_slash_can_be_read_given_events_and_erased(app, client, keys):
    """An id such as "jp/0001" was stored by a decision but every customer route
    answered 404 "no endpoint": its events, access and erasure were out of reach."""
    engine = app.extensions["vea"].engine
    customer = "jp/0001/x"
    make_decision(client, keys["desktop"], lambda p="": p + "slash-1", customer_id=customer)
    for path in (customer.replace("/", "%2F"), customer):  # encoded or not
        event = client.post(
            f"/v1/customers/{path}/events", json={"type": "renewed"}, headers=keys["desktop"]
        )
        assert event.status_code == 201, event.json
    record = client.get(f"/v1/customers/{customer.replace('/', '%2F')}", headers=keys["admin"])
    assert record.status_code == 200, record.json
    assert record.json["customer_id"] == customer and len(record.json["decisions"]) == 1
    assert stored(engine, customer) == (1, 0, 2)
    erased = client.delete(f"/v1/customers/{customer}", headers=keys["admin"])
    assert erased.status_code == 200, erased.json
    assert stored(engine, customer) == (0, 0, 0)


def test_a_trailing_slash_erases_nobody_and_says_so(app, client, keys, new_id):
    """`DELETE /v1/customers/abc/` answered 200 with zeros, "erasing" a customer "abc/"
    while "abc" kept every record."""
    engine = app.extensions["vea"].engine
    customer = new_id("c-")
    make_decision(client, keys["desktop"], new_id, customer_id=customer)
    refused = client.delete(f"/v1/customers/{customer}/", headers=keys["admin"])
    assert refused.status_code == 404, refused.json
    message = refused.json["error"]["message"]
    assert message.endswith(f"without the trailing slash, /v1/customers/{customer}"), message
    # An empty part is no id either (and no redirect to another one).
    assert client.delete(f"/v1/customers/x//{customer}", headers=keys["admin"]).status_code in (
        404,
        405,
    )
    assert stored(engine, customer) == (1, 0, 0)
