"""The erasure ledger: an erasure survives a restored backup (`vea db reapply-erasures`
erases the customer again), the ledger holds no customer id, an erasure without its
ledger line is refused, and concurrent erasures each leave a whole line."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from test_api_outcomes_events import make_decision
from test_customer_data import stored
from test_db_maintenance import _restore, _superuser

from service import audit
from service.auth import create_key
from service.config import Settings
from service.db import audit_events, decisions, make_engine, sqlite_file
from service.deletion import forget_customer, reapply_erasures
from service.erasure_ledger import KEY_NAME, ErasureLedger, LedgerError
from training.cli import cli


def vea(env: dict[str, str], *argv: str):
    return CliRunner().invoke(cli, list(argv), env=env, catch_exceptions=False)


def headers(engine, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(engine, role)[1]}"}


def outcome_and_event(client, key, decision, customer_id) -> None:
    answer = client.post(
        f"/v1/decisions/{decision['decision_id']}/outcome", json={"offered": False}, headers=key
    )
    assert answer.status_code == 201, answer.json
    answer = client.post(
        f"/v1/customers/{customer_id}/events", json={"type": "renewed"}, headers=key
    )
    assert answer.status_code == 201, answer.json


@pytest.fixture
def default_ledger(monkeypatch) -> None:
    """The ledger where a fresh install keeps it (the suite's conftest moves it away)."""
    monkeypatch.delenv("VEA_ERASURE_LEDGER", raising=False)


def test_an_erasure_after_a_backup_is_done_again_after_the_restore(
    default_ledger, own_app, new_id, tmp_path, request
):
    """Restoring a backup (as the README says) brought back the customers erased after
    it was taken, and nothing could redo their erasure."""
    app, client = own_app, own_app.test_client()
    state = app.extensions["vea"]
    engine = state.engine
    url = engine.url.render_as_string(hide_password=False)
    desktop, admin = headers(engine, "desktop"), headers(engine, "admin")
    # The CLI finds the ledger the service writes: beside the registry, by default.
    env = {"VEA_DATABASE_URL": url, "VEA_REGISTRY": state.settings.registry}
    ledger_file = Path(state.settings.registry).parent / "erasures" / "ledger.jsonl"
    assert state.settings.erasure_ledger_path() == ledger_file

    by_api, by_cli, kept, returned = (new_id(f"c-{n}-") for n in ("api", "cli", "kept", "back"))
    for customer in (by_api, by_cli, kept, returned):
        outcome_and_event(
            client, desktop, make_decision(client, desktop, new_id, customer), customer
        )
    make_decision(client, desktop, new_id, by_api)
    # Erased before the backup, then a new contact: a new record, which must stay.
    assert client.delete(f"/v1/customers/{returned}", headers=admin).status_code == 200
    make_decision(client, desktop, new_id, returned)
    assert stored(engine, returned) == (1, 0, 0)

    backup = tmp_path / "backup.db"
    done = vea(env, "db", "backup", "--out", str(backup))
    assert done.exit_code == 0, done.output

    erased = client.delete(f"/v1/customers/{by_api}", headers=admin)
    assert erased.status_code == 200, erased.json
    assert erased.json["deleted"] == {"decisions": 2, "outcomes": 1, "surveys": 0, "events": 1}
    done = vea(env, "db", "erase-customer", by_cli, "--yes")
    assert done.exit_code == 0, done.output
    assert stored(engine, by_api) == stored(engine, by_cli) == (0, 0, 0)

    # The restore, as the README says.
    state.close()
    if state.checkpointer is not None:
        state.checkpointer.join(10)  # its connection closed: the service is stopped
    if url.startswith("sqlite"):
        database = Path(sqlite_file(url))
        shutil.copyfile(backup, database)
        for suffix in ("-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        restored_url = url
    else:
        restored_url = _restore(request.getfixturevalue("postgres"), backup)
    env["VEA_DATABASE_URL"] = restored_url
    restored = make_engine(restored_url)
    try:
        assert stored(restored, by_api) == (2, 1, 1)  # back from the backup
        assert stored(restored, by_cli) == (1, 1, 1)

        dry = vea(env, "db", "reapply-erasures")
        assert dry.exit_code == 0, dry.output
        assert f"dry run: 2 stored customers match (3 erasures in the ledger {ledger_file})" in (
            dry.output
        )
        assert "--yes" in dry.output
        assert stored(restored, by_api) == (2, 1, 1)  # a dry run deletes nothing

        done = vea(env, "db", "reapply-erasures", "--yes")
        assert done.exit_code == 0, done.output
        assert (
            "erased again 2 customers: 3 decisions, 2 outcomes, 0 surveys and 2 events"
            in done.output
        )
        assert stored(restored, by_api) == stored(restored, by_cli) == (0, 0, 0)
        assert stored(restored, kept) == (1, 1, 1)
        assert stored(restored, returned) == (1, 0, 0)  # stored after its erasure: kept

        again = vea(env, "db", "reapply-erasures", "--yes")
        assert "erased again 0 customers" in again.output
        with restored.connect() as conn:
            events = conn.execute(
                sa.select(audit_events.c.target, audit_events.c.details).where(
                    audit_events.c.action == "customer.erase",
                    audit_events.c.target == "erasure-ledger",
                )
            ).all()
        assert len(events) == 2 and all(target == "erasure-ledger" for target, _ in events)
    finally:
        restored.dispose()
        if not restored_url.startswith("sqlite"):
            with _superuser(request.getfixturevalue("postgres")) as conn:
                conn.execute(f'DROP DATABASE "{sa.make_url(restored_url).database}" WITH (FORCE)')

    # The ledger holds keyed hashes, never an id; it and its key are private.
    text = ledger_file.read_text()
    for customer in (by_api, by_cli, returned):
        assert customer not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [sorted(line) for line in lines] == [["at", "customer", "deleted", "key", "v"]] * 3
    assert all(len(line["customer"]) == 64 for line in lines)
    assert lines[1]["deleted"] == {"decisions": 2, "outcomes": 1, "surveys": 0, "events": 1}
    assert (ledger_file.stat().st_mode & 0o777) == 0o600
    assert (ledger_file.parent / KEY_NAME).stat().st_mode & 0o777 == 0o600


def test_an_erasure_is_refused_without_its_ledger_line(make_app, own_url, new_id, tmp_path):
    """Nothing is deleted when the ledger line cannot be written: 503 + Retry-After from
    the API, one Error line from the CLI."""
    ledger_file = tmp_path / "erasures" / "ledger.jsonl"
    blocker = tmp_path / "not-a-directory"
    app = make_app(database_url=own_url, erasure_ledger=str(ledger_file))
    blocked = make_app(database_url=own_url, erasure_ledger=str(blocker / "ledger.jsonl"))
    blocker.write_text("")  # after the start, which would have refused it
    client = app.test_client()
    engine = app.extensions["vea"].engine
    desktop, admin = headers(engine, "desktop"), headers(engine, "admin")
    customer = new_id("c-")
    outcome_and_event(client, desktop, make_decision(client, desktop, new_id, customer), customer)
    env = {
        "VEA_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "VEA_ERASURE_LEDGER": str(ledger_file),
    }

    # The key exists, the ledger cannot be opened: the rows were deleted, then rolled back.
    ErasureLedger(ledger_file).prepare()
    ledger_file.mkdir()
    refused = client.delete(f"/v1/customers/{customer}", headers=admin)
    assert refused.status_code == 503, refused.json
    assert refused.headers["Retry-After"] == str(app.extensions["vea"].settings.retry_after_s)
    assert refused.json["error"]["code"] == "unavailable"
    assert "erasure ledger" in refused.json["error"]["message"]
    assert "nothing was erased" in refused.json["error"]["message"]
    assert stored(engine, customer) == (1, 1, 1)
    ledger_file.rmdir()

    # The ledger's directory is not one (the key cannot even be read): refused at once.
    refused = blocked.test_client().delete(f"/v1/customers/{customer}", headers=admin)
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert stored(engine, customer) == (1, 1, 1)

    # The ledger has lines but its key was lost: a new key would match none of them.
    (ledger_file.parent / KEY_NAME).rename(tmp_path / "saved.key")
    ledger_file.write_text('{"v":1}\n')
    done = vea(env, "db", "erase-customer", customer, "--yes")
    assert done.exit_code == 1
    assert done.output.count("\n") == 1 and done.output.startswith("Error: ")
    assert "key" in done.output and "nothing was erased" in done.output
    assert customer not in done.output
    assert stored(engine, customer) == (1, 1, 1)
    reapply = vea(env, "db", "reapply-erasures")
    assert reapply.exit_code == 1 and "key" in reapply.output

    # The key back: the erasure goes through.
    (tmp_path / "saved.key").rename(ledger_file.parent / KEY_NAME)
    ledger_file.unlink()
    assert client.delete(f"/v1/customers/{customer}", headers=admin).status_code == 200
    assert stored(engine, customer) == (0, 0, 0)


def test_concurrent_erasures_each_write_one_whole_line(new_id, tmp_path):
    """Two threads erasing at once on a fresh ledger: one key, two whole lines."""
    from service.db import upgrade

    url = f"sqlite:///{tmp_path / 'own.db'}"
    upgrade(url)
    engine = make_engine(url)
    ledger = ErasureLedger(tmp_path / "erasures" / "ledger.jsonl")
    customers = [new_id("c-"), new_id("c-")]
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def erase(customer_id: str) -> None:
        try:
            start.wait()
            forget_customer(engine, customer_id, ledger=ErasureLedger(ledger.path))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    threads = [threading.Thread(target=erase, args=(c,)) for c in customers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert failures == []
    lines = ledger.path.read_text().splitlines()
    assert len(lines) == 2
    reading = ledger.read()
    assert reading.torn == 0
    assert {entry.customer for entry in reading.entries} == {reading.hasher(c) for c in customers}


def _append_many(path: str, worker: int, count: int) -> None:
    append = ErasureLedger(path).prepare()
    for n in range(count):
        append(f"customer-{worker}-{n}", {"decisions": n, "outcomes": 0, "surveys": 0, "events": 0})


def test_processes_appending_at_once_leave_whole_lines(tmp_path):
    """gunicorn's workers are processes: their lines never interleave."""
    path = str(tmp_path / "ledger.jsonl")
    ErasureLedger(path).prepare()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(path, w, 200)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    reading = ErasureLedger(path).read()
    assert reading.torn == 0 and len(reading.entries) == 400
    hashes = {entry.customer for entry in reading.entries}
    assert hashes == {reading.hasher(f"customer-{w}-{n}") for w in range(2) for n in range(200)}


def test_a_fragment_of_a_failed_write_is_left_out(tmp_path):
    """A write cut short (disk full) left a fragment; the next line, appended after it,
    is still read, and the fragment (its erasure was refused) is counted apart."""
    ledger = ErasureLedger(tmp_path / "ledger.jsonl")
    append = ledger.prepare()
    append("first", {"decisions": 1})
    whole = ledger.path.read_bytes()
    ledger.path.write_bytes(whole + whole[:30])  # a fragment without its newline
    append("second", {"decisions": 2})
    reading = ledger.read()
    assert reading.torn == 1
    assert [e.customer for e in reading.entries] == [
        reading.hasher("first"),
        reading.hasher("second"),
    ]


def test_a_line_under_another_key_stops_the_reapply(sqlite_url, tmp_path):
    """A key replaced (lost, then made anew) would silently match nobody: refused."""
    ledger = ErasureLedger(tmp_path / "ledger.jsonl")
    ledger.prepare()("someone", {"decisions": 0})
    ledger.key_path.write_text("ab" * 32 + "\n")
    engine = make_engine(sqlite_url)
    try:
        with pytest.raises(LedgerError, match="another key"):
            reapply_erasures(engine, [ledger], apply=True, actor=audit.SYSTEM_ACTOR)
    finally:
        engine.dispose()


def test_reapply_without_a_ledger_says_so(sqlite_url, tmp_path):
    missing = tmp_path / "nowhere" / "ledger.jsonl"
    done = vea(
        {"VEA_DATABASE_URL": sqlite_url, "VEA_ERASURE_LEDGER": str(missing)},
        "db",
        "reapply-erasures",
        "--yes",
    )
    assert done.exit_code == 1
    assert done.output.startswith(f"Error: no erasure ledger at {missing}")


def test_the_ledger_setting(tmp_path):
    assert Settings().erasure_ledger_path() == Path("var/erasures/ledger.jsonl")
    registry = tmp_path / "data" / "registry"
    assert Settings.from_env({"VEA_REGISTRY": str(registry)}).erasure_ledger_path() == (
        tmp_path / "data" / "erasures" / "ledger.jsonl"
    )
    given = tmp_path / "ledger.jsonl"
    assert Settings.from_env({"VEA_ERASURE_LEDGER": str(given)}).erasure_ledger_path() == given
    with pytest.raises(ValueError, match="VEA_ERASURE_LEDGER: .* is a directory"):
        Settings.from_env({"VEA_ERASURE_LEDGER": str(tmp_path)})
    with pytest.raises(ValueError, match="VEA_ERASURE_LEDGER: blank"):
        Settings.from_env({"VEA_ERASURE_LEDGER": " "})


def test_the_line_covers_a_row_stored_by_a_host_whose_clock_runs_ahead(
    make_app, own_url, new_id, tmp_path
):
    """The line's time was the erasing host's clock: a contact another host stored with
    its clock an hour ahead was erased, yet newer than the line, so a replay after a
    restore kept it and the erased customer came back."""
    ledger_file = tmp_path / "erasures" / "ledger.jsonl"
    app = make_app(database_url=own_url, erasure_ledger=str(ledger_file))
    client, engine = app.test_client(), app.extensions["vea"].engine
    desktop, admin = headers(engine, "desktop"), headers(engine, "admin")
    customer = new_id("c-")
    decision = make_decision(client, desktop, new_id, customer)
    ahead = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(
            decisions.update()
            .where(decisions.c.decision_id == decision["decision_id"])
            .values(created_at=ahead)
        )
    assert client.delete(f"/v1/customers/{customer}", headers=admin).status_code == 200
    (entry,) = ErasureLedger(ledger_file).read().entries
    assert entry.at >= ahead, (entry.at, ahead)


def test_an_erasure_from_another_directory_is_refused_not_lost(
    default_ledger, own_url, make_app, new_id, tmp_path, monkeypatch
):
    """The default ledger path is relative to the current directory: `vea db
    erase-customer` run from a home directory wrote a new ledger there, and the next
    restore's reapply-erasures, run from the service's directory, brought the customer
    back. A database that recorded erasures does not start a second ledger."""
    service_dir, home = tmp_path / "srv", tmp_path / "home"
    service_dir.mkdir()
    home.mkdir()
    env = {"VEA_DATABASE_URL": own_url}  # VEA_REGISTRY at its default: var/registry
    app = make_app(database_url=own_url)
    client, engine = app.test_client(), app.extensions["vea"].engine
    desktop = headers(engine, "desktop")
    first, second = new_id("c-"), new_id("c-")
    for customer in (first, second):
        make_decision(client, desktop, new_id, customer)

    monkeypatch.chdir(service_dir)
    done = vea(env, "db", "erase-customer", first, "--yes")
    assert done.exit_code == 0, done.output
    assert "var/erasures/ledger.jsonl" in done.output  # says where it was recorded

    monkeypatch.chdir(home)
    refused = vea(env, "db", "erase-customer", second, "--yes")
    assert refused.exit_code == 1
    assert refused.output.startswith("Error: ") and "nothing was erased" in refused.output
    assert "VEA_ERASURE_LEDGER" in refused.output and "--new-ledger" in refused.output
    assert second not in refused.output
    assert stored(engine, second) == (1, 0, 0)
    assert not (home / "var").exists()  # no second key, no second ledger

    monkeypatch.chdir(service_dir)
    assert vea(env, "db", "erase-customer", second, "--yes").exit_code == 0
    assert stored(engine, second) == (0, 0, 0)

    # The ledger lost for good: a new one only when asked for.
    shutil.rmtree(service_dir / "var" / "erasures")
    third = new_id("c-")
    make_decision(client, desktop, new_id, third)
    assert vea(env, "db", "erase-customer", third, "--yes").exit_code == 1
    done = vea(env, "db", "erase-customer", third, "--yes", "--new-ledger")
    assert done.exit_code == 0, done.output
    assert stored(engine, third) == (0, 0, 0)
    (entry,) = ErasureLedger(service_dir / "var" / "erasures" / "ledger.jsonl").read().entries


def test_the_api_says_an_erasure_elsewhere_is_not_a_retry(make_app, own_url, new_id, tmp_path):
    """A service given another ledger than the one the database's erasures went to (or a
    database erased before ledgers existed) answered 503 "retry later" forever."""
    first = make_app(database_url=own_url, erasure_ledger=str(tmp_path / "a" / "l.jsonl"))
    other = make_app(database_url=own_url, erasure_ledger=str(tmp_path / "b" / "l.jsonl"))
    engine = first.extensions["vea"].engine
    desktop, admin = headers(engine, "desktop"), headers(engine, "admin")
    client = first.test_client()
    erased, kept = new_id("c-"), new_id("c-")
    for customer in (erased, kept):
        make_decision(client, desktop, new_id, customer)
    assert client.delete(f"/v1/customers/{erased}", headers=admin).status_code == 200

    refused = other.test_client().delete(f"/v1/customers/{kept}", headers=admin)
    assert refused.status_code == 409, refused.json
    assert refused.json["error"]["code"] == "erasure_ledger_elsewhere"
    assert "Retry-After" not in refused.headers
    assert stored(engine, kept) == (1, 0, 0)
