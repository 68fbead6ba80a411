"""Erasure and pruning need no privilege beyond reading and writing the service's tables:
not PostgreSQL's TEMP (production roles often lack it; the deletion used to keep its ids
in a temporary table), on a real server with a role granted only table privileges. And
a deletion larger than one batch deletes and counts every row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import suite_app
from test_api_outcomes_events import make_decision
from test_deletion_races import OLD_CONTACT, PRUNE_CUTOFF, race, stored

from service import deletion
from service.auth import create_key
from service.db import upgrade
from training.cli import cli


def _superuser(postgres, database: str) -> psycopg.Connection:
    return psycopg.connect(
        f"host=127.0.0.1 port={postgres.port} user=postgres dbname={database}", autocommit=True
    )


@pytest.fixture
def table_privileges_only(postgres) -> Iterator[str]:
    """A migrated database and the URL of a login role that may only SELECT, INSERT,
    UPDATE and DELETE its tables (and use its sequences): no TEMP, no CREATE."""
    name, role = f"vea_notemp_{uuid.uuid4().hex[:8]}", f"vea_app_{uuid.uuid4().hex[:8]}"
    upgrade(postgres.create_database(name))
    with _superuser(postgres, name) as conn:
        for statement in (
            f'REVOKE TEMPORARY ON DATABASE "{name}" FROM PUBLIC',
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            f"CREATE ROLE {role} LOGIN",
            f'GRANT CONNECT ON DATABASE "{name}" TO {role}',
            f"GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
        ):
            conn.execute(statement)
    try:
        yield f"postgresql+psycopg://{role}@127.0.0.1:{postgres.port}/{name}"
    finally:
        with _superuser(postgres, "postgres") as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute(f"DROP ROLE {role}")


def _contact(client, desk: dict[str, str], new_id, customer: str, **given) -> None:
    decision = make_decision(client, desk, new_id, customer_id=customer, **given)
    for write, body in (("outcome", {"offered": False}), ("survey", {"csat": 4})):
        answer = client.post(
            f"/v1/decisions/{decision['decision_id']}/{write}", json=body, headers=desk
        )
        assert answer.status_code == 201, answer.json
    event = client.post(f"/v1/customers/{customer}/events", json={"type": "renewed"}, headers=desk)
    assert event.status_code == 201, event.json


@pytest.mark.postgres
def test_a_role_without_the_temp_privilege_erases_and_prunes(
    table_privileges_only, registry_dir, compile_cache, new_id
):
    app = suite_app(table_privileges_only, registry_dir, compile_cache)
    try:
        engine = app.extensions["vea"].engine
        with engine.connect() as conn:
            may_temp = conn.execute(
                sa.text("SELECT has_database_privilege(current_database(), 'TEMP')")
            ).scalar_one()
        assert may_temp is False  # the premise: this role cannot create a temporary table
        client = app.test_client()
        desk = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
        admin = {"Authorization": f"Bearer {create_key(engine, 'admin')[1]}"}
        gone, kept = new_id("c-"), new_id("c-")
        for customer in (gone, kept):
            _contact(client, desk, new_id, customer)

        answer = client.delete(f"/v1/customers/{gone}", headers=admin)
        assert answer.status_code == 200, answer.json
        assert answer.json["deleted"] == {"decisions": 1, "outcomes": 1, "surveys": 1, "events": 1}
        assert stored(engine, gone) == dict.fromkeys(
            ("decisions", "outcomes", "surveys", "events"), 0
        )
        assert stored(engine, kept) == {"decisions": 1, "outcomes": 1, "surveys": 1, "events": 1}

        old = new_id("c-")
        _contact(client, desk, new_id, old, occurred_at=OLD_CONTACT)
        cutoff = (datetime.now(UTC) - timedelta(days=365 * 3)).strftime("%Y-%m-%d")
        pruned = CliRunner().invoke(
            cli,
            ["db", "prune", "--before", cutoff, "--yes"],
            env={"VEA_DATABASE_URL": table_privileges_only},
            catch_exceptions=False,
        )
        assert pruned.exit_code == 0, pruned.output
        assert "deleted 1 decisions, 1 outcomes, 1 surveys" in pruned.output
        assert stored(engine, old)["decisions"] == 0
        assert stored(engine, kept)["decisions"] == 1
    finally:
        app.extensions["vea"].close()


def test_a_deletion_of_several_batches_deletes_and_counts_every_row(own_app, new_id, monkeypatch):
    monkeypatch.setattr(deletion, "BATCH", 2)
    engine = own_app.extensions["vea"].engine
    client = own_app.test_client()
    desk = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    customer, other = new_id("c-"), new_id("c-")
    for _ in range(5):
        _contact(client, desk, new_id, customer)
    _contact(client, desk, new_id, other)

    deleted = deletion.forget_customer(engine, customer)

    assert deleted == {"decisions": 5, "outcomes": 5, "surveys": 5, "events": 5}
    assert stored(engine, customer) == dict.fromkeys(deleted, 0)
    assert stored(engine, other) == {"decisions": 1, "outcomes": 1, "surveys": 1, "events": 1}


def test_an_erasure_during_a_prune_of_several_batches_takes_turns(own_app, new_id, monkeypatch):
    """Batch after batch, each deletion locks in id order: an erasure started while a
    prune holds some of the customer's decisions waits for them instead of deadlocking,
    and between them every row goes and is counted once."""
    monkeypatch.setattr(deletion, "BATCH", 1)
    engine = own_app.extensions["vea"].engine
    client = own_app.test_client()
    desk = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    customer, other = new_id("c-"), new_id("c-")
    for who, contacts in ((customer, 3), (other, 2)):
        for _ in range(contacts):
            _contact(client, desk, new_id, who, occurred_at=OLD_CONTACT)

    pruned, erased = race(
        engine,
        lambda: deletion.prune_before(engine, PRUNE_CUTOFF),
        "DELETE FROM DECISIONS",
        lambda: deletion.forget_customer(engine, customer),
    )

    for table in ("decisions", "outcomes", "surveys"):
        assert pruned[table] + erased[table] == 5, (table, pruned, erased)
    assert erased["events"] == 3  # the events are of today: the prune keeps them
    assert stored(engine, customer) == dict.fromkeys(pruned, 0)
    assert stored(engine, other) == {"decisions": 0, "outcomes": 0, "surveys": 0, "events": 2}
