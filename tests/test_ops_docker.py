"""Dockerfile and docker-compose.yml, read as an operator would (no Docker here): a
non-root image whose healthcheck runs without curl, settings that pass the service's own
checks and write only under the volume, and no secret in either file."""

from __future__ import annotations

import re
import shlex
import socketserver
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from service.config import Settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
VOLUME = "/var/lib/vea"


def _dockerfile() -> str:
    # Continuation lines joined: one instruction per line.
    return re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())


def _instructions(name: str) -> list[str]:
    return [
        line.split(None, 1)[1]
        for line in _dockerfile().splitlines()
        if line.split(None, 1)[:1] == [name]
    ]


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _instructions("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_image_runs_as_a_numeric_non_root_user():
    (user,) = _instructions("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user  # runAsNonRoot can check a number


def test_the_image_settings_pass_the_services_checks_and_write_under_the_volume():
    env = _image_env()
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("VEA_")})
    assert settings.bind.startswith("0.0.0.0:")
    # /app is root's: every path the service writes must be on the volume.
    for path in (settings.registry, settings.compile_cache, settings.database_url[10:]):
        assert path.startswith(VOLUME), path
    assert VOLUME in _instructions("VOLUME")[0]
    assert not any("SECRET" in k or "PASSWORD" in k for k in env)


class HealthzHandler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass


def _serving(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def healthz_server():
    server = _serving(ThreadingHTTPServer(("127.0.0.1", free_port()), HealthzHandler))
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


@pytest.fixture
def healthz_socket(tmp_path):
    path = tmp_path / "vea.sock"
    server = _serving(UnixHTTPServer(str(path), HealthzHandler))
    yield path
    server.shutdown()
    server.server_close()


def _healthcheck(bind: str) -> int:
    """The image's HEALTHCHECK command as Docker runs it (a shell, from the source tree
    as from /app), with the system Python: it must need nothing beyond the standard
    library."""
    (check,) = _instructions("HEALTHCHECK")
    command = check.split(" CMD ", 1)[1]
    assert "curl" not in command and "wget" not in command  # not in a slim image
    env = {**_image_env(), "VEA_BIND": bind, "PATH": "/usr/bin:/bin"}
    python = str(Path(subprocess.check_output(["which", "python3"], text=True).strip()))
    command = command.replace("python ", f"{python} ", 1)
    return subprocess.run(["sh", "-c", command], env=env, cwd=ROOT, timeout=30).returncode


def test_the_healthcheck_asks_healthz_on_the_port_vea_bind_names(healthz_server):
    assert _healthcheck(f"0.0.0.0:{healthz_server}") == 0
    assert _healthcheck(f"127.0.0.1:{healthz_server}") == 0
    assert _healthcheck(f"0.0.0.0:{free_port()}") != 0  # nothing listening: unhealthy


def test_the_healthcheck_asks_healthz_on_the_unix_socket_vea_bind_names(healthz_socket):
    """VEA_BIND=unix:PATH (gunicorn behind a proxy on the same host) was read as a port."""
    assert _healthcheck(f"unix:{healthz_socket}") == 0
    assert _healthcheck(f"unix://{healthz_socket}") == 0
    assert _healthcheck(f"unix:{healthz_socket.with_name('other.sock')}") != 0


def test_the_healthcheck_wants_a_200(healthz_socket, monkeypatch):
    monkeypatch.setattr(HealthzHandler, "status", 503)
    assert _healthcheck(f"unix:{healthz_socket}") != 0


def test_compose_keeps_secrets_out_and_wires_postgresql_and_the_volume():
    text = (ROOT / "docker-compose.yml").read_text()
    compose = _compose()
    db, api = compose["services"]["db"], compose["services"]["api"]
    password = db["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${") and ":?" in password, password  # required, no default
    url = api["environment"]["VEA_DATABASE_URL"]
    assert url.startswith("postgresql://") and "@db:5432/" in url and "${VEA_DB_PASSWORD" in url
    assert "vea:vea@" not in text
    for name, service in compose["services"].items():
        for key in service.get("environment", {}):
            assert not key.startswith("VEA_") or key in {
                f"VEA_{f.upper()}" for f in Settings.__dataclass_fields__
            }, (name, key)
        for volume in service.get("volumes", []):
            if volume.endswith(VOLUME):
                assert service["environment"]["VEA_REGISTRY"].startswith(VOLUME)
                assert service["environment"]["VEA_COMPILE_CACHE"].startswith(VOLUME)
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    # gunicorn's graceful_timeout (20 s) must fit in the stop grace period.
    assert int(api["stop_grace_period"].rstrip("s")) > 20


def test_secrets_and_local_state_stay_out_of_the_build_context():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    for pattern in (".env", "var", ".git", "**/*.db"):
        assert pattern in ignored, pattern
