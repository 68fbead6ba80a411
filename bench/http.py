"""HTTP benchmark: ``POST /v1/decisions`` against a hello-world JSON endpoint on the same
gunicorn settings, in one run, at concurrency 1 and 16, on SQLite and PostgreSQL.

    python -m bench.http [--backend sqlite|postgresql|both] [--duration 10] [--warmup 10]
                         [--durability full|relaxed] [--json out.json]

For each backend it starts the real service (``service/gunicorn_conf.py`` with its
defaults, 2 sync workers, or whatever ``VEA_WORKERS``/``VEA_THREADS`` say; a real
champion model, a migrated database, an API key) and, with the very same gunicorn settings, a
bare Flask app whose only route returns ``{"hello": "world"}``. PostgreSQL is a private
throw-away cluster (``tests/conftest.py``), durable unless ``--durability relaxed``.
Load comes from ``wrk`` when installed (Debian package ``wrk``), else from the bounded
Python generator below; either way only 127.0.0.1 is ever targeted. Every decision has a
fresh ``interaction_id`` (so each one is computed and stored, never an idempotent
replay) and customers repeat, so history lookups find earlier contacts.

Measured is the steady state: each app first gets ``--warmup`` seconds (default 10) of
unmeasured load at concurrency 16. On a fresh database the first ~100 MB of writes grow
SQLite's WAL file (PostgreSQL: create its WAL segments), and a sync that grows a file
costs the kernel twice the work of one that overwrites (130 vs 72 us CPU, 290 vs 155 us
wall per SQLite commit here); a running service overwrites its WAL file, so the cold
start is not what it sees. On PostgreSQL a CHECKPOINT after the warm-up lets it recycle
the segments written so far, as a running server does. ``--warmup 0`` measures from cold.

Beside them runs the design's own reference for its target ratio, "parse + 6 predicts"
(``reference_app``: the decision's JSON body parsed, six one-row LightGBM predicts of the
champion's boosters, nothing validated, read or stored), so the run shows how far that
reference itself is from hello-world on this machine.

Prints requests/s, p50 and p99 latency per endpoint and concurrency, and the ratios
decisions / hello-world (design target: >= 0.5; p99 < 20 ms at concurrency 16) and
reference / hello-world.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder would come first on sys.path and this module
# ("http") would shadow the standard library's http package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONCURRENCIES = (1, 16)
LUA = r"""
local counter = 0
local thread_no = 0
function setup(thread)
  thread:set("no", thread_no)
  thread_no = thread_no + 1
end
function init(args)
  math.randomseed(os.time() + no * 7919)
  prefix = string.format("b%d-%d-", no, math.random(1, 1000000000))
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"interaction_id":"%s%d","customer":{"customer_id":"cust-%d-%d","tenure_months":%d,' ..
    '"segment":"consumer"},"contact":{"channel":"chat","issue_type":"inquiry","language":"en"}}',
    prefix, counter, no, counter % 2000, counter % 48)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer __KEY__"}, body)
end
"""


def hello_app():
    """The baseline: a bare Flask app with one JSON route (gunicorn factory)."""
    from flask import Flask

    app = Flask("hello")

    @app.get("/hello")
    def hello():
        return {"hello": "world"}

    return app


def reference_app():
    """The design's reference for its target ratio, "parse + 6 predicts" (design.md,
    Performance facts): parse the decision's JSON body, then six one-row LightGBM predicts
    (one thread) of the champion's own boosters on a numpy row. No validation, history,
    policy, routing, storage, auth, metrics or logs (gunicorn factory)."""
    import numpy as np
    from flask import Flask, request

    from models.registry import Registry

    bundle = Registry(os.environ["VEA_REGISTRY"]).load_champion()
    boosters = [bundle.openness.booster_, *(b for b in bundle.ranker.boosters_ if b)]
    six = [boosters[i % len(boosters)] for i in range(6)]
    widths = [b.num_feature() for b in six]
    app = Flask("reference")

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.post("/reference")
    def reference():
        body = request.get_json()
        tenure = float(body["customer"].get("tenure_months", 0))
        scores = []
        for booster, width in zip(six, widths, strict=True):
            row = np.zeros((1, width))
            row[0, 0] = tenure
            scores.append(float(booster.predict(row, num_threads=1)[0]))
        return {"interaction_id": body["interaction_id"], "scores": scores}

    return app


# ------------------------------------------------------------------- servers
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(
    env: dict[str, str], app: str | None, log: Path, probe: str = "/readyz"
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
    if app:
        cmd.append(app)
    env = {**env, "VEA_BIND": f"127.0.0.1:{port}"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", probe)
                if conn.getresponse().status == 200:
                    return proc, f"http://127.0.0.1:{port}"
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not become ready:\n{log.read_text()[-2000:]}")
    except BaseException:
        stop(proc)  # never leave a server behind
        raise


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def ensure_registry(work: Path) -> str:
    """A registry with a champion: $VEA_REGISTRY if it has one, else a small fresh model."""
    from models.registry import Registry

    configured = os.environ.get("VEA_REGISTRY")
    if configured and Registry(configured).champion():
        return configured
    from training.fit import train_bundle
    from training.simulate import simulate

    log, _ = simulate(rows=5000, seed=7)
    root = work / "registry"
    Registry(root).add(train_bundle(log, seed=7, num_threads=1, progress=False))
    return str(root)


# ----------------------------------------------------------------- CPU time
def tree_cpu_seconds(root_pids: list[int]) -> float:
    """CPU time (user + system) used so far by these processes and their descendants.

    Other jobs on a shared machine change requests/s from run to run; the server's CPU
    time per request does not depend on them much, so its ratio is the steadier figure.
    """
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    wanted, total = set(root_pids), 0.0
    for pid in sorted(times):
        chain, node = [], pid
        while node and node not in wanted and node in parents and len(chain) < 64:
            chain.append(node)
            node = parents[node]
        if node in wanted:
            total += times[pid]
    return total


# --------------------------------------------------------------------- load
def run_wrk(url: str, path: str, concurrency: int, duration: float, script: Path | None) -> dict:
    threads = min(concurrency, 2)
    cmd = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{duration:.0f}s",
           "--latency", "--timeout", "5s"]  # fmt: skip
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url + path], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(p: str) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(0) if socket_errors else "",
    }


def run_python(url: str, path: str, concurrency: int, duration: float, key: str | None) -> dict:
    """Bounded fallback load generator: `concurrency` threads, one request in flight each,
    a new connection per request (gunicorn sync workers close it anyway)."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def worker(no: int) -> None:
        nonlocal errors
        local, bad, n = [], 0, 0
        prefix = f"p{no}-{uuid.uuid4().hex[:8]}-"
        while time.monotonic() < deadline:
            n += 1
            body, headers, method = None, {}, "GET"
            if key is not None:
                method = "POST"
                body = json.dumps({
                    "interaction_id": f"{prefix}{n}",
                    "customer": {"customer_id": f"cust-{no}-{n % 2000}", "tenure_months": n % 48},
                    "contact": {"channel": "chat", "issue_type": "inquiry", "language": "en"},
                })  # fmt: skip
                headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
            start = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
                ok = 200 <= response.status < 300
            except OSError:
                ok = False
            local.append(time.perf_counter() - start)
            bad += not ok
        with lock:
            latencies.extend(local)
            errors += bad

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"rps": len(latencies) / elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "errors": errors, "socket_errors": ""}  # fmt: skip


# --------------------------------------------------------------------- main
def bench_backend(backend: str, args, work: Path, registry: str) -> list[dict]:
    from service.auth import create_key
    from service.db import make_engine, upgrade

    cluster = None
    if backend == "postgresql":
        from tests.conftest import PostgresCluster, postgres_bindir

        bindir = postgres_bindir()
        if bindir is None:
            print("postgresql: server binaries not found, skipped", file=sys.stderr)
            return []
        cluster = PostgresCluster(bindir, durable=args.durability == "full").start()
        url = cluster.create_database("vea_bench")
    else:
        url = f"sqlite:///{work / 'bench.db'}"
    try:
        upgrade(url)
        engine = make_engine(url)
        _, key = create_key(engine, "desktop", "bench")
        engine.dispose()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "VEA_DATABASE_URL": url,
            "VEA_REGISTRY": registry,
            "VEA_WORKERS": str(args.workers),
            "VEA_RATE_LIMIT_PER_S": "0",  # one key drives all the load
            "VEA_SQLITE_SYNCHRONOUS": "FULL" if args.durability == "full" else "NORMAL",
            "PROMETHEUS_MULTIPROC_DIR": str(work / f"prom-{backend}"),
        }
        script = work / "decisions.lua"
        script.write_text(LUA.replace("__KEY__", key))
        use_wrk = args.tool == "wrk" or (args.tool == "auto" and shutil.which("wrk"))
        results = []
        hello, hello_url = start(
            env, "bench.http:hello_app()", work / f"hello-{backend}.log", probe="/hello"
        )
        reference, reference_url = start(
            env, "bench.http:reference_app()", work / f"reference-{backend}.log", probe="/health"
        )
        service, service_url = start(env, None, work / f"service-{backend}.log")
        servers = {
            "hello-world": [hello.pid],
            "reference": [reference.pid],
            "decisions": [service.pid],
        }
        if cluster is not None:  # the database's work is part of a decision's cost
            servers["decisions"].append(cluster.postmaster_pid())
        try:
            if args.warmup > 0:  # steady state first (see the module docstring)
                for base, path, is_decision in (
                    (hello_url, "/hello", False),
                    (reference_url, "/reference", True),
                    (service_url, "/v1/decisions", True),
                ):
                    if use_wrk:
                        run_wrk(base, path, 16, args.warmup, script if is_decision else None)
                    else:
                        run_python(base, path, 16, args.warmup, key if is_decision else None)
                if cluster is not None:  # WAL segments written so far become recyclable
                    checkpoint = make_engine(cluster.url())
                    with checkpoint.connect() as conn:
                        conn.exec_driver_sql("CHECKPOINT")
                    checkpoint.dispose()
            for concurrency in CONCURRENCIES:
                for name, base, path, is_decision in (
                    ("hello-world", hello_url, "/hello", False),
                    ("reference", reference_url, "/reference", True),
                    ("decisions", service_url, "/v1/decisions", True),
                ):
                    cpu_before = tree_cpu_seconds(servers[name])
                    if use_wrk:
                        result = run_wrk(
                            base, path, concurrency, args.duration, script if is_decision else None
                        )
                    else:
                        result = run_python(
                            base, path, concurrency, args.duration, key if is_decision else None
                        )
                    requests = result["rps"] * args.duration
                    cpu = tree_cpu_seconds(servers[name]) - cpu_before
                    result["server_cpu_us"] = cpu / max(requests, 1) * 1e6
                    result.update(backend=backend, endpoint=name, concurrency=concurrency,
                                  tool="wrk" if use_wrk else "python")  # fmt: skip
                    results.append(result)
                    print(format_row(result), flush=True)
        finally:
            stop(service)
            stop(reference)
            stop(hello)
        return results
    finally:
        if cluster is not None:
            cluster.stop()


def format_row(r: dict) -> str:
    errors = f"  errors={r['errors']}" if r["errors"] else ""
    return (
        f"{r['backend']:<10} {r['endpoint']:<12} c={r['concurrency']:<3} "
        f"{r['rps']:>8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms"
        f"  server CPU {r['server_cpu_us']:6.0f} us/req{errors}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument(
        "--warmup",
        type=float,
        default=10.0,
        help="seconds of unmeasured load on each app first (0: measure from a cold start)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--durability",
        choices=["full", "relaxed"],
        default="full",
        help="full (default, as served): every commit is synced to disk before the answer; "
        "relaxed: SQLite synchronous=NORMAL and PostgreSQL without fsync, to separate the "
        "service's CPU cost from this disk's sync latency",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    work = Path(tempfile.mkdtemp(prefix="vea-bench-"))
    try:
        registry = ensure_registry(work)
        backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
        results = []
        for backend in backends:
            results += bench_backend(backend, args, work, registry)
        print()
        print(
            f"ratio decisions / hello-world, durability {args.durability} "
            "(target >= 0.50; p99 target < 20 ms at c=16):"
        )
        pairs = [
            (backend, concurrency, {r["endpoint"]: r for r in results
                                    if r["backend"] == backend and r["concurrency"] == concurrency})
            for backend in backends
            for concurrency in CONCURRENCIES
        ]  # fmt: skip
        for backend, concurrency, pair in pairs:
            if "decisions" in pair and "hello-world" in pair:
                ratio = pair["decisions"]["rps"] / pair["hello-world"]["rps"]
                cpu_ratio = pair["hello-world"]["server_cpu_us"] / max(
                    pair["decisions"]["server_cpu_us"], 1e-9
                )
                print(f"  {backend:<10} c={concurrency:<3} {ratio:.2f}  "
                      f"(decisions p99 {pair['decisions']['p99_ms']:.2f} ms; "
                      f"server CPU per request, hello / decisions: {cpu_ratio:.2f})")  # fmt: skip
        print("ratio of the design's reference (parse + 6 predicts, nothing stored) / hello-world:")
        for backend, concurrency, pair in pairs:
            if "reference" in pair and "hello-world" in pair:
                ratio = pair["reference"]["rps"] / pair["hello-world"]["rps"]
                print(f"  {backend:<10} c={concurrency:<3} {ratio:.2f}  "
                      f"(p99 {pair['reference']['p99_ms']:.2f} ms)")  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 1 if any(r["errors"] for r in results) else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
