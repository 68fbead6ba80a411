"""Slow clients against real gunicorn (2 workers, sync and gthread): two connections
that never finish their headers froze the whole service for gunicorn's 30 s timeout,
then logged a traceback and a 500. With VEA_CLIENT_TIMEOUT_S they are dropped, and a
body that stops coming is answered 408 (service/workers.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from tests.conftest import free_port
from tests.test_e2e_gunicorn import decision_body, start_gunicorn, stop

ROOT = Path(__file__).resolve().parents[1]
SECRET_PATH = "/v1/customers/slow-client-7f3a/events"  # must not reach the log


@pytest.fixture(scope="module", params=[1, 2], ids=["sync", "gthread"])
def served(request, trained_registry, tmp_path_factory):
    """Started once for the module's tests of each worker kind (a start costs seconds):
    the slow clients are dropped, so each test finds both workers free."""
    from service.cli import keys as keys_group

    tmp_path = tmp_path_factory.mktemp(f"slow-clients-{request.param}")
    registry_dir = tmp_path / "registry"
    shutil.copytree(trained_registry, registry_dir, ignore=shutil.ignore_patterns(".lock"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEA_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PYTHONPATH=str(ROOT),
        VEA_DATABASE_URL=f"sqlite:///{tmp_path / 'vea.db'}",
        VEA_REGISTRY=str(registry_dir),
        VEA_COMPILE_CACHE="",
        VEA_RATE_LIMIT_PER_S="0",
        VEA_THREADS=str(request.param),
        VEA_CLIENT_TIMEOUT_S="1",
    )
    port, log = free_port(), tmp_path / "gunicorn.log"
    proc = start_gunicorn(env, port, 2, log)
    try:
        made = CliRunner().invoke(keys_group, ["create", "--role", "desktop"], env=env)
        assert made.exit_code == 0, made.output
        yield {"port": port, "log": log, "key": made.stdout.strip().splitlines()[-1]}
    finally:
        stop(proc)


def _log(served) -> str:
    time.sleep(0.5)  # let the workers' lines reach the file
    return served["log"].read_text()


def test_clients_that_never_finish_their_headers_do_not_hold_the_workers(served):
    slow = []
    for _ in range(2):  # one per worker
        sock = socket.create_connection(("127.0.0.1", served["port"]), timeout=10)
        sock.sendall(f"GET {SECRET_PATH} HTTP/1.1\r\nHost: x\r\n".encode())  # no blank line
        slow.append(sock)
    time.sleep(0.2)
    started = time.monotonic()
    response = requests.get(f"http://127.0.0.1:{served['port']}/healthz", timeout=10)
    assert response.status_code == 200
    assert time.monotonic() - started < 5  # not gunicorn's 30 s worker timeout
    for sock in slow:
        with sock:
            assert sock.recv(1024) == b""  # closed, with no answer
    text = _log(served)
    assert "VEA_CLIENT_TIMEOUT_S (1 s)" in text
    assert "Traceback" not in text and "WORKER TIMEOUT" not in text
    assert "slow-client-7f3a" not in text


def test_a_body_that_stops_coming_is_answered_408(served):
    head = (
        "POST /v1/decisions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {served['key']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", served["port"]), timeout=10) as sock:
        sock.sendall(head.encode() + b'{"')  # 2 of the 100 bytes announced
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert time.monotonic() - started < 5
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 408 "), answer[:300]
    error = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "request_timeout" and error["message"] and error["fields"] == {}
    # The service still answers, and nothing was logged as a crash.
    body = decision_body()
    response = requests.post(
        f"http://127.0.0.1:{served['port']}/v1/decisions",
        json=body,
        headers={"Authorization": f"Bearer {served['key']}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    text = _log(served)
    assert "Traceback" not in text and "WORKER TIMEOUT" not in text
    assert "unhandled error" not in text


@pytest.mark.parametrize("value", ["0", "30", "nan"])
def test_a_client_timeout_not_above_0_and_under_30_s_is_refused(value):
    from service.config import Settings

    with pytest.raises(ValueError, match="VEA_CLIENT_TIMEOUT_S"):
        Settings.from_env({"VEA_CLIENT_TIMEOUT_S": value})
