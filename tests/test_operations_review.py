"""Upgrade day and disaster recovery, as an operator lives them.

* A retry sent across an upgrade is a replay: an outcome, event or survey stored by a
  release that kept microseconds is the same as the retry the API now reads to the
  millisecond (it was a 409).
* A database migrated by a newer release (a rolled-back deploy): `vea db upgrade` says
  so and changes nothing; `vea serve` and `make run` start on it (as /readyz allows)
  instead of stopping on Alembic's traceback. One behind the code (not migrated yet):
  the API's 503 points to /readyz, which says to run `vea db upgrade`.
* A champion bundle damaged on disk under a serving worker is said in /readyz before a
  restarted worker answers degraded, and a bundle restored on disk serves again without
  a promotion or restart; `vea models list` shows a champion whose bundle is gone.
* Key rotation: a desktop still sending the revoked key does not lock the new key out of
  the address they share.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from service.auth import create_key, revoke_key
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
    # What the desktop sent, microseconds and all: just after the contact (a time before
    # it by more than the allowed clock skew is refused).
    moment = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=675700)
    sent_at = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
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
        kept = moment.isoformat()  # ...T10:14:27.675700+00:00
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
        later = (moment + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        other = {**outcome, "occurred_at": later}
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


def test_api_calls_on_a_schema_behind_the_code_point_to_readyz(make_app, tmp_path):
    """A release started with VEA_AUTO_MIGRATE=0 before `vea db upgrade`: the API's 503
    points to /readyz, which says to run it (it said only "database unavailable")."""
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    upgrade(url, "0005")
    client = make_app(database_url=url).test_client()
    answer = client.get("/v1/pools", headers={"Authorization": "Bearer vea_0123456789ab_x"})
    assert answer.status_code == 503, answer.json
    assert "not migrated (GET /readyz says which)" in answer.json["error"]["message"]
    ready = client.get("/readyz").json
    assert any("run `vea db upgrade`" in reason for reason in ready["reasons"])


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


# ------------------------------------------------------------- the champion on disk
def _manager(registry_dir: Path):
    from service.serving import ModelManager

    manager = ModelManager(registry_dir, poll_s=0.0)
    manager.refresh(force=True)
    return manager


def _decide_with(manager):
    return manager.decide(
        {"channel": "voice", "issue_type": "inquiry", "tenure_months": 3.0},
        language="en",
        blocked_activities=frozenset(),
        allow_attempt=True,
    )


def test_a_champion_damaged_on_disk_is_said_while_serving_and_restored_without_restart(
    registry_dir, tmp_path
):
    from models.registry import Registry

    champion = Registry(registry_dir).champion()
    ranker = registry_dir / "versions" / champion / "ranker.txt"
    good = tmp_path / "ranker.good"
    shutil.copy2(ranker, good)
    serving = _manager(registry_dir)
    assert serving.warning is None and serving.problem is None

    with open(ranker, "a") as damaged:
        damaged.write("\n# overwritten by a bad sync\n")
    serving.refresh()
    # Still serving the model it loaded, and saying what a restart would do.
    assert serving.problem is None and not _decide_with(serving).degraded
    assert serving.warning is not None
    assert f"bundle {champion}: checksum mismatch for ranker.txt" in serving.warning
    assert "would answer degraded" in serving.warning
    assert str(registry_dir) not in serving.warning  # API clients read it (/readyz)

    restarted = _manager(registry_dir)  # a worker started now
    assert restarted.problem is not None and _decide_with(restarted).degraded

    shutil.copy2(good, ranker)  # restored from a backup
    serving.refresh()
    restarted.refresh()
    assert serving.warning is None
    assert restarted.problem is None and restarted.version == champion
    assert not _decide_with(restarted).degraded


def test_models_list_shows_a_champion_whose_bundle_is_gone(registry_dir, tmp_path):
    from models.registry import Registry
    from training.cli import cli

    champion = Registry(registry_dir).champion()
    shutil.move(registry_dir / "versions" / champion, tmp_path / "elsewhere")
    listed = {v["version"]: v for v in Registry(registry_dir).versions()}
    assert listed[champion]["is_champion"] is True
    assert "missing" in listed[champion]["broken"]

    result = CliRunner().invoke(cli, ["models", "list", "--registry", str(registry_dir)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # Named first, whatever its place in the list (broken versions are listed last).
    assert lines[0].startswith(f"champion: {champion}  BROKEN") and "missing" in lines[0]
    line = next(line for line in lines[1:] if champion in line)
    assert line.startswith("*") and "BROKEN" in line and "missing" in line


def test_models_list_says_when_no_champion_is_named(registry_dir):
    from models.registry import CHAMPION_FILE
    from training.cli import cli

    (registry_dir / CHAMPION_FILE).unlink()
    listed = CliRunner().invoke(cli, ["models", "list", "--registry", str(registry_dir)])
    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith("champion: none (decisions answer degraded)")


# -------------------------------------------------------------------- key rotation
def test_a_revoked_key_still_sent_does_not_lock_the_new_key_out(make_app, new_id):
    """Rotation: the platform host switches to the new key while one of its desktops
    still sends the old one. The old key gets 401s; the new key from the same address
    keeps working (the revoked key is a real key, not a guess at one)."""
    app = make_app(auth_failures_per_s=0.01, auth_failures_burst=3, key_cache_s=0.0)
    client = app.test_client()
    engine = app.extensions["vea"].engine
    old_id, old = create_key(engine, "desktop", "desktop (old)")
    _new_id, new = create_key(engine, "desktop", "desktop (new)")
    host = {"REMOTE_ADDR": "10.9.8.7"}
    assert revoke_key(engine, old_id)

    path = f"/v1/decisions/{new_id()}"  # 404 once the key passes: nothing is stored
    for _ in range(6):  # twice the address's budget of failed checks
        stale = client.get(path, headers={"Authorization": f"Bearer {old}"}, environ_base=host)
        assert stale.status_code == 401, stale.json
    fresh = client.get(path, headers={"Authorization": f"Bearer {new}"}, environ_base=host)
    assert fresh.status_code == 404, fresh.json

    # Guesses still use the budget up.
    guesses = [
        client.get(
            path,
            headers={"Authorization": f"Bearer vea_000000000000_{new_id()}"},
            environ_base=host,
        ).status_code
        for _ in range(4)
    ]
    assert guesses == [401, 401, 401, 429]


def test_a_damaged_serving_bundle_is_a_metric_for_alerting(make_app, registry_dir, tmp_path):
    """vea_model_warning is 1 while the worker serves a model a restart could not load
    (the alert VeaModelNotBacked reads it) and 0 again once the bundle is restored."""
    from models.registry import Registry

    app = make_app()
    client = app.test_client()
    serving = app.extensions["vea"].models

    def gauge() -> str:
        lines = client.get("/metrics").get_data(as_text=True).splitlines()
        return next(line for line in lines if line.startswith("vea_model_warning "))

    serving.refresh(force=True)
    assert gauge() == "vea_model_warning 0.0"
    champion = Registry(registry_dir).champion()
    ranker = registry_dir / "versions" / champion / "ranker.txt"
    good = tmp_path / "ranker.good"
    shutil.copy2(ranker, good)
    with open(ranker, "a") as damaged:
        damaged.write("\n# overwritten by a bad sync\n")
    serving.refresh(force=True)
    assert serving.warning is not None and gauge() == "vea_model_warning 1.0"
    shutil.copy2(good, ranker)
    serving.refresh(force=True)
    assert serving.warning is None and gauge() == "vea_model_warning 0.0"
