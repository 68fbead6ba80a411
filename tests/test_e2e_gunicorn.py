"""End to end: real gunicorn (2 sync workers) on a free localhost port, real PostgreSQL,
a real model registry. Decision -> outcome -> promote -> rollback under continuous
traffic without a single failed request; a second instance on the same database
shares idempotency; metrics aggregate across workers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from models.registry import Registry
from tests.conftest import free_port

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[1]


def start_gunicorn(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen:
    env = {**env, "VEA_BIND": f"127.0.0.1:{port}", "VEA_WORKERS": str(workers)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log.read_text()[-3000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    return proc
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not become ready: {log.read_text()[-3000:]}")
    except BaseException:
        stop(proc)  # never leave a server behind
        raise


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def decision_body(customer: str | None = None) -> dict:
    return {
        "interaction_id": uuid.uuid4().hex,
        "customer": {"customer_id": customer or uuid.uuid4().hex, "tenure_months": 3},
        "contact": {"channel": "chat", "issue_type": "inquiry"},
    }


class Traffic(threading.Thread):
    """Decisions in a loop; records every failure (non-201 or connection error)."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base, self.headers = base, headers
        self.stopping = threading.Event()
        self.sent = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()

    def run(self) -> None:
        session = requests.Session()
        while not self.stopping.is_set():
            try:
                r = session.post(
                    f"{self.base}/v1/decisions", json=decision_body(), headers=self.headers,
                    timeout=10,
                )  # fmt: skip
                if r.status_code != 201 or r.json()["degraded"]:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    self.versions.add(r.json()["model_version"])
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
            self.sent += 1


def wait_for_version(base: str, headers: dict, version: str, timeout: float = 30.0) -> None:
    """Every answer carries `version` for 30 requests in a row (both workers swapped)."""
    session = requests.Session()
    streak, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = session.post(f"{base}/v1/decisions", json=decision_body(), headers=headers, timeout=10)
        assert r.status_code == 201, r.text
        streak = streak + 1 if r.json()["model_version"] == version else 0
        if streak >= 30:
            return
    raise AssertionError(f"workers did not all switch to {version} within {timeout}s")


@pytest.fixture(scope="module", params=[1, 4], ids=["sync", "gthread"])
def served(request, postgres, trained_registry, tmp_path_factory):
    """Two instances on one PostgreSQL: sync workers, and gthread workers (4 threads).
    Started once for the module's tests of each kind (a start costs seconds): each test
    makes its own ids, and the promotion test rolls back to the champion it found."""
    from service.cli import keys as keys_group

    tmp_path = tmp_path_factory.mktemp(f"e2e-{request.param}")
    registry_dir = tmp_path / "registry"
    shutil.copytree(trained_registry, registry_dir, ignore=shutil.ignore_patterns(".lock"))
    url = postgres.create_database(f"vea_e2e_{uuid.uuid4().hex[:8]}")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VEA_DATABASE_URL": url,
        "VEA_REGISTRY": str(registry_dir),
        "VEA_CHAMPION_POLL_S": "0.5",
        "VEA_RATE_LIMIT_PER_S": "0",
        "VEA_ACCESS_LOG": "0",
        "VEA_THREADS": str(request.param),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom-a"),
    }
    env.pop("VEA_AUTO_MIGRATE", None)  # the master migrates the fresh database
    port = free_port()
    main = start_gunicorn(env, port, 2, tmp_path / "a.log")
    second = None
    try:
        runner = CliRunner()
        admin = runner.invoke(keys_group, ["create", "--role", "admin"], env=env)
        desktop = runner.invoke(keys_group, ["create", "--role", "desktop"], env=env)
        assert admin.exit_code == 0 and desktop.exit_code == 0, admin.output + desktop.output
        port2 = free_port()
        env2 = {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom-b")}
        second = start_gunicorn(env2, port2, 1, tmp_path / "b.log")
        yield {
            "base": f"http://127.0.0.1:{port}",
            "base2": f"http://127.0.0.1:{port2}",
            "admin": {"Authorization": f"Bearer {admin.stdout.strip().splitlines()[-1]}"},
            "desktop": {"Authorization": f"Bearer {desktop.stdout.strip().splitlines()[-1]}"},
            "registry": Registry(registry_dir),
            "logs": tmp_path,
        }
    finally:
        if second is not None:
            stop(second)
        stop(main)


def test_decision_outcome_promote_rollback_without_a_failed_request(served):
    base, desktop, admin = served["base"], served["desktop"], served["admin"]
    registry = served["registry"]
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)

    traffic = Traffic(base, desktop)
    traffic.start()
    try:
        decision = requests.post(f"{base}/v1/decisions", json=decision_body(), headers=desktop)
        assert decision.status_code == 201 and decision.json()["model_version"] == first
        outcome = requests.post(
            f"{base}/v1/decisions/{decision.json()['decision_id']}/outcome",
            json={"offered": True, "accepted": True, "ves_confidence": 7, "ves_ability": 7},
            headers=desktop,
        )
        assert outcome.status_code == 201 and outcome.json()["ve_success"] is True

        promoted = requests.post(
            f"{base}/v1/models/{other}/promote", json={"reason": "e2e"}, headers=admin
        )
        assert promoted.status_code == 200, promoted.text
        wait_for_version(base, desktop, other)
        wait_for_version(served["base2"], desktop, other)  # the other instance too
        deadline = time.monotonic() + 30
        while other not in traffic.versions and time.monotonic() < deadline:
            time.sleep(0.05)  # the background traffic must also cross the swap

        rolled = requests.post(f"{base}/v1/models/rollback", json={}, headers=admin)
        assert rolled.status_code == 200 and rolled.json()["champion"] == first
        wait_for_version(base, desktop, first)
    finally:
        traffic.stopping.set()
        traffic.join(timeout=30)
    assert traffic.sent > 20
    assert traffic.failures == []
    assert traffic.versions == {first, other}

    metrics = requests.get(f"{base}/metrics").text
    assert "vea_decisions_total" in metrics
    assert 'vea_http_request_duration_seconds_count{endpoint="/v1/decisions"' in metrics
    assert f'version="{first}"' in metrics


def test_two_instances_share_one_database(served):
    body = decision_body()
    one = requests.post(f"{served['base']}/v1/decisions", json=body, headers=served["desktop"])
    two = requests.post(f"{served['base2']}/v1/decisions", json=body, headers=served["desktop"])
    assert one.status_code == 201 and two.status_code == 200
    assert one.json() == two.json()
    # continuity across instances: the next contact of the customer sees the first one
    follow = decision_body(body["customer"]["customer_id"])
    later = requests.post(f"{served['base2']}/v1/decisions", json=follow, headers=served["desktop"])
    assert later.json()["continuation"]["decision_id"] == one.json()["decision_id"]


def test_gunicorn_logs_hold_no_raw_paths_or_customer_ids(served):
    customer = f"cust-private-{uuid.uuid4().hex[:8]}"
    response = requests.post(
        f"{served['base']}/v1/customers/{customer}/events",
        json={"type": "renewed"},
        headers=served["desktop"],
    )
    assert response.status_code == 201, response.text
    time.sleep(0.5)  # let the worker's log line reach the file
    text = (served["logs"] / "a.log").read_text()
    assert "Starting gunicorn" in text  # gunicorn's own messages are there
    assert customer not in text
    assert "gunicorn.access" not in text


def _raw_post(
    base: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    chunked: bool,
    wire: bytes | None = None,
) -> str:
    """One request over a plain socket (requests cannot send a path of invalid UTF-8 or
    choose chunking); returns the status line and body. ``wire``: the chunked body as
    sent, instead of ``body`` cut into chunks."""
    import socket

    host, port = base.removeprefix("http://").split(":")
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()] + ["Content-Type: application/json"]
    if chunked:
        head.append("Transfer-Encoding: chunked")
        chunks = [body[i : i + 8192] for i in range(0, len(body), 8192)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        payload = payload if wire is None else wire
    else:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    return status.decode() + " " + rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


def test_chunked_bodies_and_raw_paths_get_the_designs_errors(served):
    import json

    base, desktop = served["base"], served["desktop"]
    small = json.dumps(decision_body()).encode()
    assert " 201 " in _raw_post(base, "/v1/decisions", desktop, small, chunked=True)
    large = decision_body()
    large["features"] = {"notes": "x" * 70_000}  # over the 64 KB default limit
    answer = _raw_post(base, "/v1/decisions", desktop, json.dumps(large).encode(), chunked=True)
    assert " 413 " in answer and '"payload_too_large"' in answer, answer
    # A chunked body of exactly the limit is read whole (JSON allows trailing blanks);
    # one byte more is refused.
    fresh = json.dumps(decision_body()).encode()  # a new interaction, not a replay
    exact = fresh + b" " * (64 * 1024 - len(fresh))
    assert " 201 " in _raw_post(base, "/v1/decisions", desktop, exact, chunked=True)
    answer = _raw_post(base, "/v1/decisions", desktop, exact + b" ", chunked=True)
    assert " 413 " in answer and '"payload_too_large"' in answer, answer[:300]
    event = json.dumps({"type": "renewed"}).encode()
    answer = _raw_post(base, "/v1/customers/%ed%a0%80/events", desktop, event, chunked=False)
    assert " 400 " in answer and "not valid UTF-8" in answer, answer


def test_a_malformed_chunk_is_a_400_on_every_route_that_reads_a_body(served):
    """gunicorn decodes chunks as the app reads the body: a bad chunk size, a missing
    terminator or a bad extension answered 500 (and counted as a server error)."""
    import json

    base, desktop = served["base"], served["desktop"]
    made = requests.post(f"{base}/v1/decisions", json=decision_body(), headers=desktop, timeout=10)
    decision_id = made.json()["decision_id"]
    body = b'{"offered":false}'
    malformed = {
        "chunk size": b"zz\r\n" + body + b"\r\n0\r\n\r\n",
        "terminator": b"5\r\n" + body + b"\r\n0\r\n\r\n",
        "extension": b"11;ext=\x01\r\n" + body + b"\r\n0\r\n\r\n",
    }
    paths = ["/v1/decisions", f"/v1/decisions/{decision_id}/outcome", "/v1/customers/c1/events"]
    for path in paths:
        for wire in malformed.values():
            answer = _raw_post(base, path, desktop, b"", chunked=True, wire=wire)
            assert answer.startswith("HTTP/1.1 400 "), (path, wire, answer[:300])
            error = json.loads(answer[answer.index("{") :])["error"]
            assert error["code"] == "bad_request" and "malformed request body" in error["message"]
    # Nothing was stored from them: the decision still takes its first outcome.
    stored = requests.post(
        f"{base}/v1/decisions/{decision_id}/outcome",
        json={"offered": False},
        headers=desktop,
        timeout=10,
    )
    assert stored.status_code == 201, stored.text


def test_a_body_cut_short_of_its_content_length_is_a_400_not_a_shorter_request(served):
    """The client sends part of what it announced and closes its side: the part parsed
    as a whole request before (here a decision without its contact)."""
    import json
    import socket

    base, desktop = served["base"], served["desktop"]
    whole = json.dumps(decision_body()).encode()
    cut = whole[: whole.index(b', "contact"')] + b"}"
    host, port = base.removeprefix("http://").split(":")
    head = ["POST /v1/decisions HTTP/1.1", f"Host: {host}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in desktop.items()] + ["Content-Type: application/json"]
    head.append(f"Content-Length: {len(whole)}")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + cut)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    text = answer.decode(errors="replace")
    assert text.startswith("HTTP/1.1 400 "), text[:300]
    assert "shorter than its Content-Length" in text, text


def test_requests_gunicorn_refuses_itself_get_the_designs_errors(served):
    """Over-long request lines and headers never reach the app: gunicorn answers them, in
    the same JSON error format as the app (not an HTML page)."""
    import json

    base, desktop = served["base"], served["desktop"]
    body = json.dumps(decision_body()).encode()
    cases = {
        "414": ("/v1/decisions?" + "x" * 9000, desktop, "uri_too_long"),
        "431": ("/v1/decisions", {**desktop, "X-Filler": "y" * 9000}, "headers_too_large"),
    }
    for status, (path, headers, code) in cases.items():
        answer = _raw_post(base, path, headers, body, chunked=False)
        assert answer.startswith(f"HTTP/1.1 {status} "), answer[:200]
        error = json.loads(answer[answer.index("{") :])["error"]
        assert error["code"] == code and error["message"] and error["fields"] == {}, answer
