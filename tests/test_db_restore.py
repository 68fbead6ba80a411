"""``vea db restore``: a backup put back in one command, never under a running service,
never losing the database it replaces, and never bringing back an erased customer."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from test_api_outcomes_events import make_decision

from service.auth import create_key
from service.db import audit_events, decisions, make_engine, upgrade
from tests.conftest import suite_app
from training.cli import cli


def run(env: dict[str, str], *argv: str):
    return CliRunner().invoke(cli, list(argv), env=env, catch_exceptions=False)


def customers_in(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(decisions.c.customer_id, sa.func.count()).group_by(
                    decisions.c.customer_id
                )
            )
            return dict(rows.all())
    finally:
        engine.dispose()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path, registry_dir, compile_cache):
    """A SQLite database with an erasure ledger, an app serving it, an admin and a
    desktop key; the CLI's environment for it."""
    url = f"sqlite:///{tmp_path / 'vea.db'}"
    upgrade(url)
    ledger = tmp_path / "erasures" / "ledger.jsonl"
    app = suite_app(url, registry_dir, compile_cache, erasure_ledger=str(ledger))
    engine = app.extensions["vea"].engine
    headers = {
        role: {"Authorization": f"Bearer {create_key(engine, role)[1]}"}
        for role in ("admin", "desktop")
    }
    env = {"VEA_DATABASE_URL": url, "VEA_ERASURE_LEDGER": str(ledger)}

    def serve():
        return suite_app(url, registry_dir, compile_cache, erasure_ledger=str(ledger))

    yield app, headers, env, url, serve
    app.extensions["vea"].close()


def test_a_restore_brings_the_backup_back_keeps_what_it_replaced_and_erases_again(
    served, tmp_path, new_id
):
    app, headers, env, url, serve = served
    client = app.test_client()
    for customer in ("c-kept", "c-erased"):
        make_decision(client, headers["desktop"], new_id, customer_id=customer)
    backup = tmp_path / "nightly.db"
    assert run(env, "db", "backup", "--out", str(backup)).exit_code == 0
    make_decision(client, headers["desktop"], new_id, customer_id="c-after")
    assert client.delete("/v1/customers/c-erased", headers=headers["admin"]).status_code == 200
    app.extensions["vea"].close()  # the service stopped

    done = run(env, "db", "restore", "--from", str(backup), "--yes")

    assert done.exit_code == 0, done.output
    assert "erased again 1 customers" in done.output
    # The backup's contents, without the customer erased after it was taken.
    assert customers_in(url) == {"c-kept": 1}
    # The database it replaced is kept whole beside it: the decision made after the
    # backup is there.
    (aside,) = tmp_path.glob("vea.db.before-restore-*")
    assert aside.name in done.output
    assert customers_in(f"sqlite:///{aside}") == {"c-kept": 1, "c-after": 1}
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            actions = conn.execute(sa.select(audit_events.c.action, audit_events.c.target))
            assert ("data.restore", "nightly.db") in actions.all()
    finally:
        engine.dispose()
    # Served again as it is.
    again = serve()
    try:
        make_decision(again.test_client(), headers["desktop"], new_id, customer_id="c-new")
    finally:
        again.extensions["vea"].close()
    assert customers_in(url) == {"c-kept": 1, "c-new": 1}


def test_a_restore_is_refused_while_a_service_has_the_database_open(served, tmp_path, new_id):
    app, headers, env, url, serve = served
    make_decision(app.test_client(), headers["desktop"], new_id, customer_id="c-before")
    backup = tmp_path / "nightly.db"
    assert run(env, "db", "backup", "--out", str(backup)).exit_code == 0
    make_decision(app.test_client(), headers["desktop"], new_id, customer_id="c-after")

    refused = run(env, "db", "restore", "--from", str(backup), "--yes")

    assert refused.exit_code == 1
    assert "a vea service has" in refused.output and "stop it first" in refused.output
    assert "nothing was changed" in refused.output
    # (The file's bytes may change meanwhile: the service's checkpointer copies its WAL in.)
    assert customers_in(url) == {"c-before": 1, "c-after": 1}
    assert not list(tmp_path.glob("vea.db.before-restore-*"))
    assert not list(tmp_path.glob(".vea.db*"))  # no partial copy left
    make_decision(app.test_client(), headers["desktop"], new_id)  # still serving


def _not_a_database(backup: Path) -> None:
    backup.write_text("interaction_id,customer_id\n")


def _damaged(backup: Path) -> None:
    data = bytearray(backup.read_bytes())
    page = 4096 * 3  # a page of the tables, past the header
    data[page : page + 512] = b"\xff" * 512
    backup.write_bytes(bytes(data))


def _newer(backup: Path) -> None:
    with sqlite3.connect(backup) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.close()


def _foreign(backup: Path) -> None:
    backup.unlink()
    with sqlite3.connect(backup) as conn:
        conn.execute("CREATE TABLE contacts (id INTEGER)")
    conn.close()


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (_not_a_database, "is not a vea SQLite backup"),
        (_damaged, "failed its integrity check"),
        (_newer, "newer than this release's"),
        (_foreign, "holds no vea database"),
        (Path.unlink, "no backup at"),
    ],
    ids=["not-a-database", "damaged", "newer", "foreign", "missing"],
)
def test_a_backup_that_cannot_be_restored_changes_nothing(served, tmp_path, new_id, spoil, said):
    app, headers, env, url, serve = served
    for _ in range(40):  # a few pages of decisions
        make_decision(app.test_client(), headers["desktop"], new_id)
    backup = tmp_path / "nightly.db"
    assert run(env, "db", "backup", "--out", str(backup)).exit_code == 0
    app.extensions["vea"].close()
    spoil(backup)
    before = digest(tmp_path / "vea.db")

    refused = run(env, "db", "restore", "--from", str(backup), "--yes")

    assert refused.exit_code == 1, refused.output
    assert said in refused.output and "nothing was changed" in refused.output
    assert refused.output.count("\n") == 1  # one line, no traceback
    assert digest(tmp_path / "vea.db") == before
    assert not list(tmp_path.glob("vea.db.before-restore-*"))
    assert not list(tmp_path.glob(".vea.db*"))


def test_a_restore_asks_for_confirmation_and_without_a_terminal_changes_nothing(served, tmp_path):
    app, _headers, env, url, _serve = served
    backup = tmp_path / "nightly.db"
    assert run(env, "db", "backup", "--out", str(backup)).exit_code == 0
    app.extensions["vea"].close()
    before = digest(tmp_path / "vea.db")

    refused = run(env, "db", "restore", "--from", str(backup))

    assert refused.exit_code == 2 and "--yes" in refused.output
    assert digest(tmp_path / "vea.db") == before


# ----------------------------------------------------------------- PostgreSQL
@pytest.mark.postgres
def test_postgresql_restores_into_an_empty_database_only(postgres, tmp_path):
    source = postgres.create_database(f"vea_source_{uuid.uuid4().hex[:8]}")
    upgrade(source)
    engine = make_engine(source)
    try:
        create_key(engine, "admin", "night shift")
    finally:
        engine.dispose()
    dump = tmp_path / "vea.dump"
    assert run({"VEA_DATABASE_URL": source}, "db", "backup", "--out", str(dump)).exit_code == 0
    ledger = tmp_path / "no-ledger.jsonl"

    refused = run(
        {"VEA_DATABASE_URL": source, "VEA_ERASURE_LEDGER": str(ledger)},
        *("db", "restore", "--from", str(dump), "--yes"),
    )
    assert refused.exit_code == 1
    assert "already holds vea's tables" in refused.output
    assert "nothing was changed" in refused.output

    empty = postgres.create_database(f"vea_restored_{uuid.uuid4().hex[:8]}")
    done = run(
        {"VEA_DATABASE_URL": empty, "VEA_ERASURE_LEDGER": str(ledger)},
        *("db", "restore", "--from", str(dump), "--yes"),
    )
    assert done.exit_code == 0, done.output
    assert "1 api_keys" in done.output and "no erasure ledger at" in done.output
    engine = make_engine(empty)
    try:
        with engine.connect() as conn:
            labels = conn.execute(sa.text("SELECT label FROM api_keys")).scalars().all()
            restores = conn.execute(
                sa.select(sa.func.count()).where(audit_events.c.action == "data.restore")
            ).scalar_one()
    finally:
        engine.dispose()
    assert labels == ["night shift"] and restores == 1
