"""The container's health check (the Dockerfile's HEALTHCHECK): ``GET /healthz`` where
``VEA_BIND`` says gunicorn listens, a TCP address or a unix socket; exit 0 on a 200.

``python -m service.healthcheck``. Standard library only, and nothing of the app: it runs
every 15 s under a 3 s timeout in a slim image (no curl), so it must start in
milliseconds. ``VEA_BIND`` itself was checked when the service started
(``service.config``).
"""

from __future__ import annotations

import http.client
import os
import socket
import sys

TIMEOUT_S = 2.0
DEFAULT_BIND = "127.0.0.1:8000"  # service.config.Settings.bind (not imported: see above)
# A wildcard address listens everywhere: ask on loopback.
WILDCARD_V4 = "0.0.0.0"  # nosec B104 # a listen address read from VEA_BIND, not bound here
LOOPBACK = {WILDCARD_V4: "127.0.0.1", "": "127.0.0.1", "::": "::1"}


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (gunicorn's ``--bind unix:PATH``)."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def connection(bind: str, timeout: float = TIMEOUT_S) -> http.client.HTTPConnection:
    """A connection to the address ``bind`` names, in gunicorn's ``--bind`` forms:
    ``HOST:PORT``, ``[IPV6]:PORT``, ``unix:PATH`` (or ``unix://PATH``)."""
    for prefix in ("unix://", "unix:"):
        if bind.startswith(prefix):
            return UnixHTTPConnection(bind[len(prefix) :], timeout)
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    return http.client.HTTPConnection(LOOPBACK.get(host, host), int(port), timeout=timeout)


def healthy(bind: str) -> bool:
    """Whether ``/healthz`` answers 200 at ``bind`` (nothing listening is unhealthy)."""
    conn = connection(bind)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def main() -> int:
    return 0 if healthy(os.environ.get("VEA_BIND") or DEFAULT_BIND) else 1


if __name__ == "__main__":
    sys.exit(main())
