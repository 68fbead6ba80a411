"""The reference desktop client (``examples/desktop_client.py``) against real gunicorn on
SQLite: decisions and outcomes, replays, a refused outcome, and an outage during which
outcomes wait in the outbox and reach vea once it is back; a decision never waits
past its deadline."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from tests.conftest import free_port
from tests.test_e2e_gunicorn import ROOT, decision_body, start_gunicorn, stop

spec = importlib.util.spec_from_file_location(
    "desktop_client", ROOT / "examples" / "desktop_client.py"
)
desktop_client = importlib.util.module_from_spec(spec)
sys.modules["desktop_client"] = desktop_client  # dataclasses look their module up there
spec.loader.exec_module(desktop_client)


@pytest.fixture(scope="module")
def vea(registry_dir_module, tmp_path_factory):
    """gunicorn on SQLite; ``restart()`` brings it back on the same port after ``stop()``."""
    from service.cli import keys as keys_group

    work = tmp_path_factory.mktemp("client")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VEA_DATABASE_URL": f"sqlite:///{work / 'vea.db'}",
        "VEA_REGISTRY": str(registry_dir_module),
        "VEA_RATE_LIMIT_PER_S": "0",
        "VEA_ACCESS_LOG": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(work / "prom"),
    }
    env.pop("VEA_AUTO_MIGRATE", None)
    port = free_port()
    server = {"proc": start_gunicorn(env, port, 1, work / "vea.log")}
    try:
        made = CliRunner().invoke(keys_group, ["create", "--role", "desktop"], env=env)
        assert made.exit_code == 0, made.output

        def halt() -> None:
            stop(server["proc"])

        def restart() -> None:
            server["proc"] = start_gunicorn(env, port, 1, work / "vea-again.log")

        yield {
            "base": f"http://127.0.0.1:{port}",
            "key": made.stdout.strip().splitlines()[-1],
            "stop": halt,
            "restart": restart,
        }
    finally:
        stop(server["proc"])


@pytest.fixture(scope="module")
def registry_dir_module(trained_registry, tmp_path_factory) -> Path:
    import shutil

    target = tmp_path_factory.mktemp("client-registry") / "registry"
    shutil.copytree(trained_registry, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def client(vea, tmp_path, **options):
    return desktop_client.VeaClient(vea["base"], vea["key"], tmp_path / "outbox.jsonl", **options)


def stored_outcome(vea, decision_id: str) -> dict | None:
    answer = requests.get(
        f"{vea['base']}/v1/decisions/{decision_id}",
        headers={"Authorization": f"Bearer {vea['key']}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["outcome"]


def test_a_decision_and_its_outcome_with_replays_and_a_refused_change(vea, tmp_path):
    vea_client = client(vea, tmp_path)
    body = decision_body()
    decision = vea_client.decide(body)
    assert decision is not None and decision["stored"] is True
    assert vea_client.decide(body)["decision_id"] == decision["decision_id"]  # a retry

    outcome = {"offered": True, "accepted": True, "agent_id": "a-17"}
    assert vea_client.record_outcome(decision, outcome) is None
    assert vea_client.record_outcome(decision, outcome) is None  # replayed, not doubled
    assert stored_outcome(vea, decision["decision_id"])["accepted"] is True

    dropped = vea_client.record_outcome(decision, {**outcome, "accepted": False})
    assert dropped is not None and dropped.status == 409
    assert dropped.error["error"]["code"] == "outcome_exists"
    assert stored_outcome(vea, decision["decision_id"])["accepted"] is True
    assert vea_client.pending() == 0


def test_a_bad_decision_body_raises_instead_of_retrying(vea, tmp_path):
    with pytest.raises(ValueError, match="refused"):
        client(vea, tmp_path).decide({"interaction_id": "x"})


def test_outcomes_wait_in_the_outbox_through_an_outage(vea, tmp_path, monkeypatch):
    monkeypatch.setattr(desktop_client, "MAX_WRITE_PAUSE_S", 0.01)
    vea_client = client(vea, tmp_path)
    decisions = [vea_client.decide(decision_body()) for _ in range(3)]
    unknown = {**decisions[0], "decision_id": uuid.uuid4().hex[:32]}

    vea["stop"]()
    try:
        started = time.monotonic()
        assert vea_client.decide(decision_body()) is None  # no hint, no wait
        assert time.monotonic() - started < 2.0
        for number, decision in enumerate(decisions):
            kept = vea_client.record_outcome(decision, {"offered": True, "handle_time_s": number})
            assert kept is None
        assert vea_client.record_outcome(unknown, {"offered": False}) is None
        assert vea_client.pending() == 4
        assert vea_client.flush() == []  # still down: everything kept, in order
        kept = [json.loads(line) for line in (tmp_path / "outbox.jsonl").read_text().splitlines()]
        assert [entry["payload"].get("handle_time_s") for entry in kept] == [0, 1, 2, None]
    finally:
        vea["restart"]()

    dropped = vea_client.flush()
    assert [(entry.status, entry.path) for entry in dropped] == [
        (404, f"/v1/decisions/{unknown['decision_id']}/outcome")
    ]
    assert vea_client.pending() == 0
    for number, decision in enumerate(decisions):
        assert stored_outcome(vea, decision["decision_id"])["handle_time_s"] == number
    assert vea_client.flush() == []


def test_an_unstored_decision_takes_no_outcome(vea, tmp_path):
    vea_client = client(vea, tmp_path)
    decision = vea_client.decide(decision_body())
    assert vea_client.record_outcome({**decision, "stored": False}, {"offered": True}) is None
    assert stored_outcome(vea, decision["decision_id"]) is None
    assert vea_client.pending() == 0


def test_a_decision_gives_up_at_its_deadline_when_vea_hangs(tmp_path):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        vea_client = desktop_client.VeaClient(base, "k", tmp_path / "o.jsonl", 0.3)
        started = time.monotonic()
        assert vea_client.decide(decision_body()) is None
        assert time.monotonic() - started < 1.0
