"""Where a decision's CPU time goes, in process: ``POST /v1/decisions`` through the real
WSGI app (no HTTP server, no network), split into its parts, next to the hello-world
app of ``bench/http.py`` in the same run.

    python -m bench.decision_path [--requests 4000] [--backend sqlite|postgresql]
                                  [--durability full|relaxed] [--json out.json]

Each part is the CPU time of this thread (``time.thread_time``) spent inside one call of
the request path while real requests run: loading the body (the compiled marshmallow
path), reading the customer's history, the model, routing, the durable insert. What is
left is Flask, flask-smorest, the hooks (auth, metrics, access log) and the answer. A
durable commit's wait for the disk is not CPU time of this thread; its kernel work is.
``bench/http.py`` adds gunicorn's HTTP handling (~150 us per request here) to both apps.
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http import ensure_registry, hello_app  # noqa: E402


def environ(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> dict:
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    if body:
        env["CONTENT_TYPE"] = "application/json"
    return env


def call(app: Any, env: dict) -> str:
    statuses: list[str] = []
    chunks = app(env, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return statuses[0]


def cpu_per_call(run: Callable[[int], object], n: int) -> float:
    """CPU microseconds of this thread per call of ``run(i)``."""
    start = time.thread_time()
    for i in range(n):
        run(i)
    return (time.thread_time() - start) / n * 1e6


class Parts:
    """Adds up the thread CPU time spent inside chosen calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def measuring(self, owner: Any, name: str, label: str) -> Iterator[None]:
        original = getattr(owner, name)
        seconds = self.seconds

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] += time.thread_time() - start

        patched_own = name in vars(owner)  # else inherited from the class
        setattr(owner, name, timed)
        try:
            yield
        finally:
            if patched_own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--durability", choices=["full", "relaxed"], default="full")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    work = Path(tempfile.mkdtemp(prefix="vea-bench-path-"))
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(work / "prom"))
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

    from service import decisions as use_cases
    from service import history
    from service.app import create_app
    from service.auth import create_key
    from service.db import make_engine, upgrade
    from service.schemas import DecisionRequestSchema

    cluster = None
    if args.backend == "postgresql":
        from tests.conftest import PostgresCluster, postgres_bindir

        cluster = PostgresCluster(postgres_bindir(), durable=args.durability == "full").start()
        url = cluster.create_database("vea_path")
    else:
        url = f"sqlite:///{work / 'path.db'}"
    try:
        registry = ensure_registry(work)
        upgrade(url)
        engine = make_engine(url)
        _, key = create_key(engine, "desktop", "bench")
        engine.dispose()
        app = create_app(
            {
                "database_url": url,
                "registry": registry,
                "rate_limit_per_s": 0,
                "sqlite_synchronous": "FULL" if args.durability == "full" else "NORMAL",
                "access_log": True,
            }
        )
        state = app.extensions["vea"]
        deadline = time.monotonic() + 120
        while not state.models.compiled and time.monotonic() < deadline:
            time.sleep(0.2)  # the service compiles the forests in the background

        headers = {"Authorization": f"Bearer {key}"}

        def decision(i: int) -> str:
            body = json.dumps(
                {
                    "interaction_id": f"path-{i}",
                    "customer": {
                        "customer_id": f"cust-{i % 2000}",
                        "tenure_months": i % 48,
                        "segment": "consumer",
                    },
                    "contact": {"channel": "chat", "issue_type": "inquiry", "language": "en"},
                }
            ).encode()
            return call(app, environ("POST", "/v1/decisions", body, headers))

        hello = hello_app()
        # The access lines go to /dev/null (still written: gunicorn writes them to a file).
        saved_stderr = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        for i in range(300):  # warm caches, customers with history
            assert decision(-1 - i).startswith("201"), "decision failed"
            call(hello, environ("GET", "/hello"))
        hello_us = cpu_per_call(lambda i: call(hello, environ("GET", "/hello")), args.requests)
        parts = Parts()
        with (
            parts.measuring(DecisionRequestSchema, "load", "load the body"),
            parts.measuring(use_cases, "decide", "use case"),
            parts.measuring(history, "fetch", "history read"),
            parts.measuring(state.models, "decide", "model"),
            parts.measuring(state.pools, "route", "routing"),
            parts.measuring(state.writer, "insert", "insert (durable)"),
        ):
            decision_us = cpu_per_call(decision, args.requests)
        os.dup2(saved_stderr, 2)
    finally:
        if cluster is not None:
            cluster.stop()

    us = {label: s / args.requests * 1e6 for label, s in parts.seconds.items()}
    inside = ("history read", "model", "routing", "insert (durable)")
    rows = [
        ("load the body", us["load the body"]),
        ("decision use case", us["use case"]),
        *[("  " + label, us[label]) for label in inside],
        ("  the rest (policy, reasons, connection)", us["use case"] - sum(us[k] for k in inside)),
        ("Flask, smorest, hooks, answer", decision_us - us["use case"] - us["load the body"]),
    ]
    print(f"in-process CPU per request ({args.backend}, durability {args.durability}, "
          f"{args.requests} requests)")  # fmt: skip
    print(f"  {'hello-world':<42} {hello_us:8.1f} us")
    print(f"  {'decision':<42} {decision_us:8.1f} us   ({decision_us / hello_us:.1f}x hello)")
    for label, value in rows:
        print(f"    {label:<40} {value:8.1f} us  {value / decision_us:6.1%}")
    if args.backend == "postgresql":
        print("  (the PostgreSQL server's own CPU is not included: bench/http.py counts it)")
    if args.json:
        args.json.write_text(
            json.dumps({"hello_us": hello_us, "decision_us": decision_us, "parts": us})
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
