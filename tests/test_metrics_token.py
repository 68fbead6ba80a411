"""``VEA_METRICS_TOKEN``: when set, ``GET /metrics`` answers only ``Authorization: Bearer
<token>`` (compared in constant time; 401 in the API's error format otherwise); unset,
it stays open as before. A token too short to resist guessing, or one no header can
carry, stops the service at start-up naming the variable. Prometheus scrapes it with
``authorization: {credentials_file: ...}`` (ops/prometheus/scrape.example.yml)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from service.config import Settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
def app_with(sqlite_url, registry_dir, compile_cache):
    """Factory: an app on the suite's SQLite database with these settings."""
    from service.app import create_app

    apps = []

    def build(**overrides):
        app = create_app(
            {
                "database_url": sqlite_url,
                "registry": str(registry_dir),
                "compile_cache": str(compile_cache),
                "access_log": False,
                **overrides,
            }
        )
        app.testing = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["vea"].close()


def test_without_a_token_metrics_stay_open(app_with):
    response = app_with().test_client().get("/metrics")
    assert response.status_code == 200
    assert "vea_http_requests_total" in response.get_data(as_text=True)


def test_with_a_token_metrics_answer_only_the_bearer_of_it(app_with):
    from service.auth import create_key

    app = app_with(metrics_token=TOKEN)
    client = app.test_client()
    api_key = create_key(app.extensions["vea"].engine, "admin")[1]
    refused = [
        {},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"X-API-Key": TOKEN},  # the API's other header is not the token's
        {"Authorization": f"Bearer {api_key}"},  # an API key is not the metrics token
    ]
    for headers in refused:
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.json["error"]["code"] == "unauthorized"
        assert response.json["error"]["fields"] == {}
        assert "Authorization: Bearer" in response.json["error"]["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert TOKEN not in response.get_data(as_text=True)
    for scheme in ("Bearer", "bearer"):
        response = client.get("/metrics", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert response.status_code == 200, scheme
        assert "vea_http_requests_total" in response.get_data(as_text=True)
    # The other open endpoints stay open: the token guards /metrics only.
    assert client.get("/healthz").status_code == 200


def test_the_token_is_compared_in_constant_time(app_with, monkeypatch):
    import hmac

    compared = []
    constant_time = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    client = app_with(metrics_token=TOKEN).test_client()
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert compared == [(b"wrong", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("short", "at least 16 characters, got 5"),
        ("x" * 15, "at least 16 characters, got 15"),
        ("sixteen chars ok", "only visible ASCII characters, no spaces"),
        (TOKEN + "\n", "only visible ASCII characters, no spaces"),
        (TOKEN + "é", "only visible ASCII characters, no spaces"),
    ],
)
def test_a_weak_or_unsendable_token_is_refused_naming_the_variable(token, problem):
    with pytest.raises(ValueError, match=f"^VEA_METRICS_TOKEN: {problem}"):
        Settings.from_env({"VEA_METRICS_TOKEN": token})


def test_a_good_token_is_read_and_kept_out_of_the_settings_repr():
    settings = Settings.from_env({"VEA_METRICS_TOKEN": "x" * 16})
    assert settings.metrics_token == "x" * 16
    assert Settings.from_env({}).metrics_token == ""
    assert "x" * 16 not in repr(Settings.from_env({"VEA_METRICS_TOKEN": "x" * 16}))


def test_vea_serve_refuses_a_short_token_at_start_up(tmp_path):
    from tests.test_ops_settings import _serve

    code, output, _ = _serve({"VEA_METRICS_TOKEN": "too-short"}, tmp_path)
    assert code != 0
    assert "VEA_METRICS_TOKEN: at least 16 characters, got 9" in output
    assert "too-short" not in output  # the secret itself is not echoed
    assert "Booting worker" not in output


def _prometheus_config(tmp_path: Path, target: str, token: str) -> Path:
    """ops/prometheus/scrape.example.yml, pointed at ``target`` and a token file of its own."""
    config = yaml.safe_load((ROOT / "ops" / "prometheus" / "scrape.example.yml").read_text())
    token_file = tmp_path / "vea-metrics-token"
    token_file.write_text(token + "\n")  # as `echo` writes it: Prometheus trims it
    token_file.chmod(0o600)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "vea"  # the job alerts.yml reads
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"] = [{"targets": [target]}]
    job["scrape_interval"] = "1s"
    shutil.copy(ROOT / "ops" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_scrape_example_is_a_valid_prometheus_config(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found (apt-get install prometheus)")
    config = _prometheus_config(tmp_path, "127.0.0.1:8000", TOKEN)
    checked = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _scrape_health(prometheus_url: str, timeout_s: float = 30.0) -> dict:
    """The ``vea`` target as Prometheus reports it, once it was scraped."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{prometheus_url}/api/v1/targets", timeout=5) as answer:
                targets = json.load(answer)["data"]["activeTargets"]
        except OSError:
            targets = []
        scraped = [t for t in targets if t["labels"]["job"] == "vea" and t["health"] != "unknown"]
        if scraped:
            return scraped[0]
        time.sleep(0.2)
    pytest.fail("Prometheus did not scrape the vea target in time")


@pytest.mark.parametrize("sent", [TOKEN, "not-the-metrics-token"])
def test_prometheus_scrapes_metrics_with_the_token_from_its_file(app_with, tmp_path, sent):
    """A real Prometheus with the example's scrape job: up with the right token, down
    with a 401 with another."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus not found (apt-get install prometheus)")
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", free_port(), app_with(metrics_token=TOKEN), threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    web_port = free_port()
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={_prometheus_config(tmp_path, f'127.0.0.1:{server.port}', sent)}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{web_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        target = _scrape_health(f"http://127.0.0.1:{web_port}")
    finally:
        process.terminate()
        process.wait(timeout=30)
        server.shutdown()
        serving.join(timeout=10)
    if sent == TOKEN:
        assert target["health"] == "up", target["lastError"]
    else:
        assert target["health"] == "down"
        assert "401" in target["lastError"]
