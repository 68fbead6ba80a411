"""Upgrade day and disaster recovery, as an operator lives them.

* A retry sent across an upgrade is a replay: an outcome, event or survey stored by a
  release that kept microseconds is the same as the retry the API now reads to the
  millisecond (it was a 409).
* A database migrated by a newer release (a rolled-back deploy): `vea db upgrade` says
  so and changes nothing; `vea serve` and `make run` start on it (as /readyz allows)
  instead of stopping on Alembic's traceback.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from service.db import customer_events, outcomes, surveys, upgrade
from tests.conftest import free_port


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


# ------------------------------------------------------- a database newer than the code
ROOT = Path(__file__).resolve().parent.parent
NEWER = "0999"  # a revision no release of this code has


def _newer_database(tmp_path: Path) -> str:
    """A SQLite database a newer release migrated: head, then a revision and a table this
    code does not know."""
    path = tmp_path / "newer.db"
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (NEWER,))
        conn.execute("CREATE TABLE from_the_future (id INTEGER PRIMARY KEY)")
    return f"sqlite:///{path}"


def test_vea_db_upgrade_on_a_newer_database_says_so_and_changes_nothing(tmp_path):
    from service.cli import db

    url = _newer_database(tmp_path)
    result = CliRunner().invoke(db, ["upgrade"], env={"VEA_DATABASE_URL": url})
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    said = " ".join(result.output.split())
    assert f"revision {NEWER}, newer than this release's migrations" in said
    assert "nothing was changed" in said
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(NEWER,)]


def test_vea_db_upgrade_says_where_it_came_from(tmp_path):
    from service.cli import db

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0005")
    result = CliRunner().invoke(db, ["upgrade"], env={"VEA_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "(from 0005)" in result.output
    again = CliRunner().invoke(db, ["upgrade"], env={"VEA_DATABASE_URL": url})
    assert "(up to date)" in again.output


def test_make_run_starts_on_a_newer_database_with_a_warning(tmp_path, registry_dir, monkeypatch):
    from service import bootstrap
    from service.config import Settings

    url = _newer_database(tmp_path)
    monkeypatch.chdir(tmp_path)  # whatever it writes stays in the test's directory
    settings = Settings.from_env(overrides={"database_url": url, "registry": str(registry_dir)})
    message = bootstrap.prepare(settings)  # the registry has a champion: nothing to train
    assert f"revision {NEWER}, newer than this release's migrations" in message
    assert "serving it as it is" in message


def test_vea_serve_starts_on_a_newer_database(tmp_path, registry_dir):
    """Auto-migration (the default) on a database a newer release migrated: the service
    starts, says why in its log and in /readyz, and leaves the schema alone."""
    url = _newer_database(tmp_path)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VEA_")},
        "VEA_DATABASE_URL": url,
        "VEA_REGISTRY": str(registry_dir),
        "VEA_COMPILE_CACHE": "",
        "VEA_BIND": f"127.0.0.1:{port}",
        "VEA_WORKERS": "1",
    }
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = None
        deadline = time.monotonic() + 60
        while ready is None and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    ready = r.read().decode()
            except OSError:
                time.sleep(0.2)
        assert ready is not None, log.read_text()[-3000:]
        assert f"schema revision {NEWER} (newer than this code's" in ready
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    output = log.read_text()
    assert "Traceback" not in output
    assert f"revision {NEWER}, newer than this release's migrations" in output
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(NEWER,)]
