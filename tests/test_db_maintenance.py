"""`vea db prune` (data retention) and `vea db backup` (online SQLite copy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from test_api_outcomes_events import make_decision

from service.auth import create_key, list_keys
from service.db import customer_events, decisions, make_engine, upgrade
from training.cli import cli


def run(env: dict[str, str], *argv: str):
    return CliRunner().invoke(cli, list(argv), env=env, catch_exceptions=False)


def count(engine, table, customer_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(table.c.customer_id == customer_id)
        ).scalar_one()


def test_prune_deletes_only_what_happened_before_the_cutoff(own_app, new_id):
    app, client = own_app, own_app.test_client()
    keys = {
        "desktop": {
            "Authorization": f"Bearer {create_key(app.extensions['vea'].engine, 'desktop')[1]}"
        }
    }
    engine = app.extensions["vea"].engine
    env = {"VEA_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    old, recent = new_id("c-"), new_id("c-")
    for customer in (old, recent):
        decision = make_decision(client, keys["desktop"], new_id, customer_id=customer)
        answer = client.post(
            f"/v1/decisions/{decision['decision_id']}/outcome",
            json={"offered": False},
            headers=keys["desktop"],
        )
        assert answer.status_code == 201
        event = client.post(
            f"/v1/customers/{customer}/events", json={"type": "renewed"}, headers=keys["desktop"]
        )
        assert event.status_code == 201
    long_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=400)
    with engine.begin() as conn:
        for table in (decisions, customer_events):
            conn.execute(
                table.update().where(table.c.customer_id == old).values(occurred_at=long_ago)
            )

    too_recent = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%d")
    refused = run(env, "db", "prune", "--before", too_recent, "--yes")
    assert refused.exit_code != 0 and "at least 90 days ago" in refused.output
    unconfirmed = run(env, "db", "prune", "--before", "2000-01-01")
    assert unconfirmed.exit_code != 0 and "--yes" in unconfirmed.output
    assert count(engine, decisions, old) == 1

    cutoff = (datetime.now(UTC) - timedelta(days=200)).strftime("%Y-%m-%d")
    done = run(env, "db", "prune", "--before", cutoff, "--yes")
    assert done.exit_code == 0, done.output
    assert "deleted 1 decisions, 1 outcomes, 0 surveys and 1 events" in done.output
    assert count(engine, decisions, old) == 0 and count(engine, customer_events, old) == 0
    assert count(engine, decisions, recent) == 1 and count(engine, customer_events, recent) == 1


def test_prune_deletes_the_surveys_of_old_decisions(own_app, new_id):
    """Survey answers go with their decision, with or without an outcome."""
    from service.db import surveys

    app, client = own_app, own_app.test_client()
    engine = app.extensions["vea"].engine
    desk = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    env = {"VEA_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    old = make_decision(client, desk, new_id, occurred_at="2020-01-02T10:00:00+00:00")
    young = make_decision(client, desk, new_id)
    for decision in (old, young):
        answer = client.post(
            f"/v1/decisions/{decision['decision_id']}/survey", json={"csat": 3}, headers=desk
        )
        assert answer.status_code == 201, answer.json

    done = run(env, "db", "prune", "--before", "2020-01-03", "--yes")
    assert done.exit_code == 0, done.output
    assert "deleted 1 decisions, 0 outcomes, 1 surveys and 0 events" in done.output
    with engine.connect() as conn:
        left = conn.execute(sa.select(surveys.c.decision_id)).scalars().all()
    assert left == [young["decision_id"]]


def test_backup_copies_a_live_sqlite_database_whole(tmp_path):
    url = f"sqlite:///{tmp_path / 'vea.db'}"
    upgrade(url)
    live = make_engine(url)  # stays open: the newest rows are still in the WAL
    try:
        create_key(live, "admin", "night shift")
        env = {"VEA_DATABASE_URL": url}
        out = tmp_path / "copy.db"
        done = run(env, "db", "backup", "--out", str(out))
        assert done.exit_code == 0, done.output
        assert "1 api_keys" in done.output and "0 decisions" in done.output
        assert "0 surveys" in done.output
        create_key(live, "desktop")  # after the backup: not in the copy

        again = run(env, "db", "backup", "--out", str(out))
        assert again.exit_code != 0 and "never overwrites" in again.output
    finally:
        live.dispose()
    restored = make_engine(f"sqlite:///{out}")
    try:
        assert [key["label"] for key in list_keys(restored)] == ["night shift"]
    finally:
        restored.dispose()
    assert not list(tmp_path.glob(".copy.db*.partial"))


def test_backup_never_replaces_a_file_that_appeared_while_it_copied(tmp_path, monkeypatch):
    """The destination is checked before the copy starts; a file created there meanwhile
    (another backup, a copy made by hand) is kept, and the finished copy is not left."""
    from service import backup

    url = f"sqlite:///{tmp_path / 'vea.db'}"
    upgrade(url)
    out = tmp_path / "copy.db"
    connect = backup.sqlite3.connect

    def connect_and_meanwhile(target, *args, **kwargs):
        if str(target).endswith(".partial"):  # the copy starts: someone writes `out`
            out.write_text("someone else's file")
        return connect(target, *args, **kwargs)

    monkeypatch.setattr(backup.sqlite3, "connect", connect_and_meanwhile)
    with pytest.raises(ValueError, match="never overwrites"):
        backup.backup_sqlite(url, out)
    assert out.read_text() == "someone else's file"
    assert not list(tmp_path.glob(".copy.db*.partial"))


def test_backup_of_a_database_before_migration_0009_counts_what_it_has(tmp_path):
    url = f"sqlite:///{tmp_path / 'older.db'}"
    upgrade(url, "0008")
    done = run({"VEA_DATABASE_URL": url}, "db", "backup", "--out", str(tmp_path / "copy.db"))
    assert done.exit_code == 0, done.output
    assert "0 decisions" in done.output and "surveys" not in done.output


@pytest.mark.parametrize("url", ["postgresql+psycopg://u@127.0.0.1:1/x", "sqlite:///{missing}"])
def test_backup_refuses_what_it_cannot_copy(tmp_path, url):
    url = url.format(missing=tmp_path / "nowhere.db")
    answer = run({"VEA_DATABASE_URL": url}, "db", "backup", "--out", str(tmp_path / "b.db"))
    assert answer.exit_code != 0
    assert "pg_dump" in answer.output or "run vea db upgrade first" in answer.output
    assert not (tmp_path / "b.db").exists()
