"""gunicorn's sync and gthread workers with a time limit on each client socket.

gunicorn makes accepted sockets blocking with no timeout: a client that sends half its
headers, or announces a body it does not send, holds a sync worker (or a thread) until
gunicorn kills it at its own ``timeout`` (30 s), and two such connections froze the
default two workers. Here every read and write of a client socket gives up after
``VEA_CLIENT_TIMEOUT_S``: the request is dropped (headers: ``service.logs`` logs one
line) or, for an API request's JSON body, answered 408 (``service.api.common``; a page's
form answers 400). Selected by ``service/gunicorn_conf.py``.
"""

from __future__ import annotations

from gunicorn.workers import gthread, sync

from service.config import Settings


class _ClientTimeout:
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - gunicorn's
        super().__init__(*args, **kwargs)  # made in the master, which checked the value
        self.client_timeout_s = Settings.from_env(only=["client_timeout_s"]).client_timeout_s


class SyncWorker(_ClientTimeout, sync.SyncWorker):
    def handle(self, listener, client, addr) -> None:  # noqa: ANN001 - gunicorn's
        client.settimeout(self.client_timeout_s)
        super().handle(listener, client, addr)


class _TimedConn(gthread.TConn):
    client_timeout_s: float

    def init(self) -> None:
        # Runs before each request on the connection is read, after the socket was made
        # blocking again (which clears a timeout).
        super().init()
        self.sock.settimeout(self.client_timeout_s)


class ThreadWorker(_ClientTimeout, gthread.ThreadWorker):
    def enqueue_req(self, conn: gthread.TConn) -> None:
        # gunicorn's accept() makes the connection; it becomes a _TimedConn here, before
        # its first (and each kept-alive) request.
        conn.__class__ = _TimedConn
        conn.client_timeout_s = self.client_timeout_s
        super().enqueue_req(conn)
