"""At most VEA_HEAVY_CONCURRENCY heavy computations at once per instance (service.heavy):
with every slot taken, the reports, the dashboard's uncached sections and its CSV
downloads are refused at once (429, Retry-After) while decisions, outcomes and events
answer as ever. A slot is taken here as another worker of the instance would hold it: a
lock on its file in the shared state directory."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from tests.conftest import free_port
from tests.test_e2e_gunicorn import ROOT, decision_body, start_gunicorn, stop
from tests.test_pages import log_in, raw_key

REPORTS = ["/v1/reports/value", "/v1/reports/drift", "/v1/reports/organic"]


@contextlib.contextmanager
def held(directory: Path, *slots: int) -> Iterator[None]:
    """Hold these slots as another process of the instance would (a report computing)."""
    fds = []
    try:
        for index in slots:
            fd = os.open(directory / f"heavy-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            fds.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        for fd in fds:
            os.close(fd)


@pytest.fixture
def shared(tmp_path) -> Path:
    directory = tmp_path / "shared"
    directory.mkdir()
    return directory


@pytest.fixture
def app(make_app, shared):
    return make_app(shared_state_dir=str(shared))


def _refused(answer) -> None:
    assert answer.status_code == 429, answer.get_data(as_text=True)
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.json["error"]["code"] == "rate_limited"
    assert "busy" in answer.json["error"]["message"]


def _decide(client, keys, new_id) -> None:
    body = {
        "interaction_id": new_id("i-"),
        "customer": {"customer_id": new_id("c-"), "tenure_months": 2.0},
        "contact": {"channel": "chat", "issue_type": "inquiry"},
    }
    decision = client.post("/v1/decisions", json=body, headers=keys["desktop"])
    assert decision.status_code == 201, decision.json
    outcome = client.post(
        f"/v1/decisions/{decision.json['decision_id']}/outcome",
        json={"offered": False},
        headers=keys["desktop"],
    )
    assert outcome.status_code == 201, outcome.json
    event = client.post(
        f"/v1/customers/{new_id()}/events", json={"type": "renewed"}, headers=keys["desktop"]
    )
    assert event.status_code in (200, 201, 202), event.json


def test_reports_are_refused_at_once_while_every_slot_is_taken(client, keys, shared, new_id):
    with held(shared, 0):
        for path in REPORTS:
            started = time.monotonic()
            _refused(client.get(path, headers=keys["manager"]))
            assert time.monotonic() - started < 1.0  # refused, not queued
        _refused(client.get("/v1/reports/value?from=2019-01-01", headers=keys["manager"]))
        _decide(client, keys, new_id)  # never limited
    for path in REPORTS:
        answer = client.get(path, headers=keys["manager"])
        assert answer.status_code == 200, answer.json


def test_a_pools_rebuild_takes_a_slot(client, keys, shared):
    """It reads every stored outcome in the request, as a report does."""
    rebuild = {"json": {"dry_run": True}, "headers": keys["admin"]}
    with held(shared, 0):
        _refused(client.post("/v1/pools/rebuild", **rebuild))
    answer = client.post("/v1/pools/rebuild", **rebuild)
    assert answer.status_code == 200, answer.json


def test_bad_parameters_are_answered_without_a_slot(client, keys, shared):
    with held(shared, 0):
        answer = client.get("/v1/reports/value?form=2019-01-01", headers=keys["manager"])
    assert answer.status_code == 422


def test_two_slots_allow_two(make_app, keys, shared):
    client = make_app(shared_state_dir=str(shared), heavy_concurrency=2).test_client()
    with held(shared, 0):
        assert client.get(REPORTS[0], headers=keys["manager"]).status_code == 200
    with held(shared, 1):
        assert client.get(REPORTS[0], headers=keys["manager"]).status_code == 200
    with held(shared, 0, 1):
        _refused(client.get(REPORTS[0], headers=keys["manager"]))


def test_zero_means_no_limit(make_app, keys, shared):
    client = make_app(shared_state_dir=str(shared), heavy_concurrency=0).test_client()
    with held(shared, 0):
        assert client.get(REPORTS[2], headers=keys["manager"]).status_code == 200


def test_without_a_shared_directory_the_app_limits_its_own_threads(make_app, keys):
    from service import heavy

    app = make_app()
    client = app.test_client()
    with app.app_context(), heavy.slot():
        _refused(client.get(REPORTS[0], headers=keys["manager"]))
    assert client.get(REPORTS[0], headers=keys["manager"]).status_code == 200


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", "The reports are busy computing other figures: try again in 5 s."),
        ("ja", "レポートは他の集計を処理中です。5秒後にもう一度お試しください。"),
    ],
)
def test_the_dashboard_says_it_is_busy_in_its_language(client, keys, shared, language, words):
    log_in(client, raw_key(keys["manager"]))
    with held(shared, 0):
        page = client.get(f"/dashboard?period=all&lang={language}")
        assert page.status_code == 429
        assert page.headers["Retry-After"] == "5"
        assert page.mimetype == "text/html"
        assert words in page.get_data(as_text=True)
        download = client.get(f"/dashboard/by_segment.csv?period=all&lang={language}")
        _refused(download)
    assert client.get(f"/dashboard?period=all&lang={language}").status_code == 200


def test_kept_dashboard_sections_need_no_slot(client, keys, shared):
    log_in(client, raw_key(keys["manager"]))
    assert client.get("/dashboard?period=90").status_code == 200
    with held(shared, 0):
        assert client.get("/dashboard?period=90").status_code == 200  # from the kept sections
        assert client.get("/dashboard/by_segment.csv?period=90").status_code == 200
        assert client.get("/dashboard?period=7").status_code == 429  # another period: cold


def test_the_setting_is_checked():
    from service.config import Settings

    assert Settings.from_env({"VEA_HEAVY_CONCURRENCY": "3"}).heavy_concurrency == 3
    for bad in ("-1", "65", "x"):
        with pytest.raises(ValueError, match="VEA_HEAVY_CONCURRENCY"):
            Settings.from_env({"VEA_HEAVY_CONCURRENCY": bad})


# ------------------------------------------------------------------ real gunicorn
@pytest.fixture
def gunicorn_with_a_slow_report(registry_dir, tmp_path):
    """Real gunicorn, 2 sync workers, SQLite, one heavy slot; the value config is a file
    at start and a FIFO after it, so a value report waits in its slot until the test
    writes the config (a report taking as long as the test wants)."""
    from service.cli import keys as keys_group

    config = tmp_path / "value.yaml"
    config.write_text("value_of_retention: 100\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}",
        "VEA_REGISTRY": str(registry_dir),
        "VEA_VALUE_CONFIG": str(config),
        "VEA_RATE_LIMIT_PER_S": "0",
        "VEA_ACCESS_LOG": "0",
        "VEA_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    for name in ("VEA_AUTO_MIGRATE", "VEA_SHARED_STATE_DIR", "VEA_HEAVY_CONCURRENCY"):
        env.pop(name, None)  # the master migrates and makes the shared directory
    port = free_port()
    log = tmp_path / "gunicorn.log"
    proc = start_gunicorn(env, port, 2, log)
    try:
        # Ready means one worker is; a worker still booting reads the config too, and
        # once it is a FIFO would wait there (and be taken for the report's read).
        booted = time.monotonic() + 60
        while log.read_text().count('"msg":"model swapped"') < 2:
            assert time.monotonic() < booted, log.read_text()[-3000:]
            time.sleep(0.1)
        made = {}
        for role in ("manager", "desktop"):
            created = CliRunner().invoke(keys_group, ["create", "--role", role], env=env)
            assert created.exit_code == 0, created.output
            made[role] = {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}
        config.unlink()
        os.mkfifo(config)
        yield f"http://127.0.0.1:{port}", made, config
    finally:
        stop(proc)


def _writer_when_read(fifo: Path, timeout: float = 20.0) -> int:
    """Open the FIFO for writing once a reader (the report in its worker) has it open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        time.sleep(0.02)
    raise AssertionError("the value report never read its config")


def test_a_slow_report_in_one_worker_refuses_another_while_decisions_answer(
    gunicorn_with_a_slow_report,
):
    base, made, fifo = gunicorn_with_a_slow_report
    slow: dict[str, requests.Response] = {}

    def first_report() -> None:
        slow["answer"] = requests.get(
            f"{base}/v1/reports/value", headers=made["manager"], timeout=30
        )

    thread = threading.Thread(target=first_report)
    thread.start()
    writer = _writer_when_read(fifo)  # the first report is now inside its slot
    try:
        started = time.monotonic()
        second = requests.get(f"{base}/v1/reports/organic", headers=made["manager"], timeout=10)
        assert second.status_code == 429, second.text
        assert second.json()["error"]["code"] == "rate_limited"
        assert int(second.headers["Retry-After"]) >= 1
        assert time.monotonic() - started < 2.0
        for _ in range(5):
            started = time.monotonic()
            decision = requests.post(
                f"{base}/v1/decisions", json=decision_body(), headers=made["desktop"], timeout=5
            )
            assert decision.status_code == 201, decision.text
            assert time.monotonic() - started < 2.0
    finally:
        os.write(writer, b"value_of_retention: 100\n")
        os.close(writer)
        thread.join(timeout=30)
    assert slow["answer"].status_code == 200, slow["answer"].text
    after = requests.get(f"{base}/v1/reports/organic", headers=made["manager"], timeout=30)
    assert after.status_code == 200, after.text
