"""`vea db prune` (data retention) and `vea db backup` (online SQLite copy; pg_dump of
PostgreSQL, on a real server)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from psycopg import sql as psycopg_sql
from sqlalchemy import make_url
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
        # It holds customer data: readable by its owner only, whatever the umask.
        assert out.stat().st_mode & 0o777 == 0o600
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


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql+psycopg://u:hidden@127.0.0.1:1/x", "cannot read the database"),
        ("sqlite:///{missing}", "run vea db upgrade first"),
    ],
)
def test_backup_refuses_what_it_cannot_copy(tmp_path, url, said):
    url = url.format(missing=tmp_path / "nowhere.db")
    answer = run({"VEA_DATABASE_URL": url}, "db", "backup", "--out", str(tmp_path / "b.db"))
    assert answer.exit_code == 1
    assert said in answer.output and "Traceback" not in answer.output
    assert "hidden" not in answer.output
    assert not (tmp_path / "b.db").exists()


def test_backup_help_says_what_it_does_on_each_backend():
    said = " ".join(run({}, "db", "backup", "--help").output.split())
    assert "SQLite: an online copy" in said
    assert "PostgreSQL: runs pg_dump, which must be on PATH" in said
    assert "vea db restore --from FILE" in said


# ----------------------------------------------------------------- PostgreSQL
def _superuser(postgres, database: str = "postgres"):
    import psycopg

    return psycopg.connect(
        f"host=127.0.0.1 port={postgres.port} user=postgres dbname={database}", autocommit=True
    )


@pytest.fixture
def pg_database(postgres):
    """A migrated PostgreSQL database of this test's own (a backup counts every row)."""
    name = f"vea_backup_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(name)
    upgrade(url)
    yield url
    with _superuser(postgres) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _restore(postgres, dump: Path) -> str:
    """The dump restored into a new database, as the README says; its URL."""
    name = f"vea_restored_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(name)
    subprocess.run(
        [
            shutil.which("pg_restore"),
            "--no-owner",
            "--exit-on-error",
            f"--dbname=host=127.0.0.1 port={postgres.port} user=postgres dbname={name}",
            str(dump),
        ],
        check=True,
        capture_output=True,
    )
    return url


@pytest.mark.postgres
def test_backup_of_postgresql_is_a_pg_dump_of_the_service_url(postgres, pg_database, tmp_path):
    """VEA_DATABASE_URL as the service takes it (postgresql+psycopg://): pg_dump is given
    what it means, and the dump restores with pg_restore."""
    assert pg_database.startswith("postgresql+psycopg://")
    live = make_engine(pg_database)
    try:
        create_key(live, "admin", "night shift")
    finally:
        live.dispose()
    env = {"VEA_DATABASE_URL": pg_database}
    out = tmp_path / "vea.dump"
    done = run(env, "db", "backup", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert "1 api_keys" in done.output and "0 decisions" in done.output
    again = run(env, "db", "backup", "--out", str(out))
    assert again.exit_code != 0 and "never overwrites" in again.output
    assert not list(tmp_path.glob(".vea.dump*.partial"))

    restored_url = _restore(postgres, out)
    restored = make_engine(restored_url)
    try:
        assert [key["label"] for key in list_keys(restored)] == ["night shift"]
    finally:
        restored.dispose()
    with _superuser(postgres) as conn:
        conn.execute(f'DROP DATABASE "{make_url(restored_url).database}" WITH (FORCE)')


@pytest.fixture
def password_role(postgres, pg_database):
    """A login role that must give its password (scram-sha-256 for it alone, whatever
    the rest of the test cluster trusts) and may read the tables, not yet the sequences."""
    role, password = f"vea_pw_{uuid.uuid4().hex[:8]}", "s3cret p@ss/wörd:%"
    database = make_url(pg_database).database
    hba = postgres.data / "pg_hba.conf"
    trusting = hba.read_text()
    with _superuser(postgres) as conn:
        conn.execute(
            psycopg_sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                psycopg_sql.Identifier(role), psycopg_sql.Literal(password)
            )
        )
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{trusting}")
        conn.execute("SELECT pg_reload_conf()")
    with _superuser(postgres, database) as conn:
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        yield role, password
    finally:
        hba.write_text(trusting)
        with _superuser(postgres, database) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"DROP OWNED BY {role}")
        with _superuser(postgres) as conn:
            conn.execute(f"DROP ROLE {role}")


@pytest.mark.postgres
def test_backup_gives_pg_dump_the_password_in_its_environment_only(
    postgres, pg_database, password_role, tmp_path
):
    """The password authenticates pg_dump but never is on its command line (``ps`` shows
    every user the command line). A pg_dump failure is one line, nothing written."""
    role, password = password_role
    database = make_url(pg_database).database
    url = f"postgresql://{role}:{quote(password, safe='')}@127.0.0.1:{postgres.port}/{database}"
    # The real pg_dump, behind a script that keeps the command line it was given.
    shim = tmp_path / "bin"
    shim.mkdir()
    argv_file = tmp_path / "argv"
    (shim / "pg_dump").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" >> {argv_file}\nexec {shutil.which("pg_dump")} "$@"\n'
    )
    (shim / "pg_dump").chmod(0o755)
    env = {"VEA_DATABASE_URL": url, "PATH": f"{shim}:{os.environ['PATH']}"}
    out = tmp_path / "vea.dump"

    refused = run(env, "db", "backup", "--out", str(out))  # no SELECT on the sequences yet
    assert refused.exit_code == 1
    assert "pg_dump failed, nothing was written" in refused.output
    assert "permission denied" in refused.output
    assert not out.exists() and not list(tmp_path.glob(".vea.dump*.partial"))

    with _superuser(postgres, database) as conn:
        conn.execute(f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    done = run(env, "db", "backup", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert out.stat().st_size > 0
    given = argv_file.read_text()
    assert "--format=custom" in given and f"user={role}" in given
    assert password not in given and quote(password, safe="") not in given
    assert password not in done.output


def _pg_dump_behind(tmp_path: Path, script: str) -> dict[str, str]:
    """PATH with a ``pg_dump`` of ``script`` (a shell script) in front."""
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "pg_dump").write_text(script)
    (shim / "pg_dump").chmod(0o755)
    return {"PATH": f"{shim}:{os.environ['PATH']}"}


@pytest.mark.postgres
def test_a_dump_outlasting_the_idle_in_transaction_timeout_is_whole(
    postgres, pg_database, tmp_path
):
    """The transaction holding the snapshot idles while pg_dump runs: a server that ends
    sessions idle in a transaction (hardened and managed servers do) ended it, and the
    backup failed every night once the dump took longer than that."""
    database = make_url(pg_database).database
    with _superuser(postgres) as conn:
        conn.execute(
            f"ALTER DATABASE \"{database}\" SET idle_in_transaction_session_timeout = '1s'"
        )
    slow = f'#!/bin/sh\nsleep 3\nexec {shutil.which("pg_dump")} "$@"\n'
    env = {"VEA_DATABASE_URL": pg_database, **_pg_dump_behind(tmp_path, slow)}
    out = tmp_path / "vea.dump"
    done = run(env, "db", "backup", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert out.stat().st_mode & 0o777 == 0o600
    restored_url = _restore(postgres, out)
    with _superuser(postgres) as conn:
        conn.execute(f'DROP DATABASE "{make_url(restored_url).database}" WITH (FORCE)')


@pytest.mark.postgres
def test_a_pg_dump_that_cannot_run_is_one_line(pg_database, tmp_path):
    broken = "#!/nonexistent/interpreter\n"
    env = {"VEA_DATABASE_URL": pg_database, **_pg_dump_behind(tmp_path, broken)}
    answer = run(env, "db", "backup", "--out", str(tmp_path / "vea.dump"))
    assert answer.exit_code == 1
    assert "cannot run" in answer.output and "Traceback" not in answer.output
    assert not list(tmp_path.glob("*vea.dump*"))


@pytest.mark.postgres
def test_backup_without_pg_dump_on_path_says_so(pg_database, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {"VEA_DATABASE_URL": pg_database, "PATH": str(empty)}
    answer = run(env, "db", "backup", "--out", str(tmp_path / "vea.dump"))
    assert answer.exit_code == 1
    assert "pg_dump is not on PATH" in answer.output and "Traceback" not in answer.output
    assert not (tmp_path / "vea.dump").exists()


def test_a_large_prune_commits_in_audited_chunks(own_app, new_id, monkeypatch):
    """A prune was one transaction: the first prune of a year of contacts held SQLite's
    write turn for seconds and live decisions waiting past the deadline went unstored.
    Now each chunk of PRUNE_CHUNK decisions (and events) is a transaction of its own,
    audited with its counts; the totals are the same, and a writer gets its turn
    between chunks."""
    from service import deletion
    from service.db import audit_events

    monkeypatch.setattr(deletion, "PRUNE_CHUNK", 3)
    monkeypatch.setattr(deletion, "BATCH", 2)  # chunks cut across the lock batches
    app, client = own_app, own_app.test_client()
    engine = app.extensions["vea"].engine
    desktop = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    old = [new_id("c-") for _ in range(7)]
    for customer in old:
        decision = make_decision(client, desktop, new_id, customer_id=customer)
        answer = client.post(
            f"/v1/decisions/{decision['decision_id']}/outcome",
            json={"offered": False},
            headers=desktop,
        )
        assert answer.status_code == 201
    for customer in old[:4]:
        event = client.post(
            f"/v1/customers/{customer}/events", json={"type": "renewed"}, headers=desktop
        )
        assert event.status_code == 201
    recent = new_id("c-")
    make_decision(client, desktop, new_id, customer_id=recent)
    long_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=400)
    with engine.begin() as conn:
        for table in (decisions, customer_events):
            conn.execute(
                table.update().where(table.c.customer_id.in_(old)).values(occurred_at=long_ago)
            )

    commits = []
    real_delete = deletion._delete

    def delete_and_write_between(*args, **kwargs):
        counts = real_delete(*args, **kwargs)
        commits.append(counts)
        # Another writer between two chunks: it gets its turn and is stored.
        make_decision(client, desktop, new_id, customer_id=recent)
        return counts

    monkeypatch.setattr(deletion, "_delete", delete_and_write_between)
    counts = deletion.prune_before(engine, datetime.now(UTC) - timedelta(days=200))

    assert counts == {"decisions": 7, "outcomes": 7, "surveys": 0, "events": 4}
    assert [c["decisions"] for c in commits] == [3, 3, 1]
    assert [c["events"] for c in commits] == [3, 1, 0]
    with engine.connect() as conn:
        audited = (
            conn.execute(
                sa.select(audit_events.c.details)
                .where(audit_events.c.action == "data.prune")
                .order_by(audit_events.c.id)
            )
            .scalars()
            .all()
        )
    assert audited[-3:] == commits
    assert all(count(engine, decisions, customer) == 0 for customer in old)
    assert count(engine, decisions, recent) == 4  # its own and the three between chunks
