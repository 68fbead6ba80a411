"""Every benchmark in one command (``make bench``), one table at the end.

Runs each ``bench/`` script in its own process (so one's memory and threads cannot skew
the next) with modest sizes that finish in about ten minutes on 2 cores, reads the
figures each one writes with ``--json`` (``learning_loop.py`` prints its JSON on
stdout), and prints one Markdown table: every figure beside its baseline and the ratio.
The scripts' own output goes to ``var/bench/logs/<script>.log``.

    python -m bench.all [--quick] [--only core http decision_path shadow train_scale ...]
                        [--json var/bench/all.json]

``--quick`` shrinks every size for a smoke run (a minute or two; figures meaningless).
Larger runs: call the scripts themselves (their docstrings give the full-size commands).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "var" / "bench" / "logs"

# Script -> arguments (normal run, --quick run). Sizes are chosen for ~10 minutes total.
PLANS: dict[str, tuple[list[str], list[str]]] = {
    "core": (
        ["--train-rows", "200000", "--learner", "s", "--score-rows", "100000",
         "--decisions", "5000"],
        ["--train-rows", "5000", "--learner", "s", "--score-rows", "5000", "--decisions", "500"],
    ),
    "train_scale": (
        ["--rows", "200000", "--engines", "local", "dask", "--test-rows", "50000",
         "--chunk", "100000"],
        ["--rows", "20000", "--engines", "local", "dask", "--test-rows", "5000",
         "--chunk", "10000", "--data-dir", str(ROOT / "var/bench/train_scale_quick")],
    ),
    "http": (
        ["--backend", "both", "--duration", "5"],
        ["--backend", "sqlite", "--duration", "1", "--warmup", "1", "--tool", "python"],
    ),
    "decision_path": (
        ["--requests", "3000"],
        ["--requests", "200"],
    ),
    "shadow": (
        ["--decisions", "3000", "--rows", "20000"],
        ["--decisions", "600", "--rows", "3000"],
    ),
    "learning_loop": (
        ["--seeds", "4", "--rows", "4000"],
        ["--seeds", "1", "--rows", "2000", "--only", "holdout"],
    ),
}  # fmt: skip
TIMEOUT_S = 1800  # per script: a hung script must not hang `make bench`

Row = tuple[str, str, str, str]  # benchmark, vea, baseline, ratio


def run_script(name: str, args: list[str], out: Path) -> tuple[object | None, str]:
    """Run one bench script; return (its figures or None, how it went)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    command = [sys.executable, "-m", f"bench.{name}", *args]
    if name != "learning_loop":
        command += ["--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    print(f"running {name} ... (log: {log.relative_to(ROOT)})", file=sys.stderr, flush=True)
    try:
        with log.open("w") as handle:
            done = subprocess.run(  # nosec B603 # our own scripts, fixed argv, no shell
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE if name == "learning_loop" else handle,
                stderr=handle,
                text=True,
                timeout=TIMEOUT_S,
            )
            if name == "learning_loop":
                handle.write(done.stdout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT_S} s"
    seconds = time.perf_counter() - started
    status = f"{seconds:.0f} s" + (f", exit {done.returncode}" if done.returncode else "")
    try:
        if name == "learning_loop":
            return json.loads(done.stdout), status
        return json.loads(out.read_text()), status
    except (OSError, ValueError):
        return None, f"no figures ({status}; see the log)"


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"


def core_rows(f: dict) -> list[Row]:
    rows: list[Row] = [
        (
            f"training {f['train_rows']:,} rows, learner {f['learner']} (core)",
            f"{f['train_s']:.1f} s",
            "",
            "",
        ),
        (
            f"batch scoring {f['score_rows']:,} rows, compiled vs LightGBM",
            f"{f['score_rows_per_s_compiled']:,.0f} rows/s",
            f"{f['score_rows_per_s_LightGBM']:,.0f} rows/s",
            ratio(f["score_rows_per_s_compiled"], f["score_rows_per_s_LightGBM"]),
        ),
    ]
    for path, d in f.get("decision", {}).items():
        rows.append(
            (
                f"decision in-process ({path}) vs bare 1-row ranker predict, p50 / p99",
                f"{d['p50_us']:.0f} / {d['p99_us']:.0f} us",
                f"{d['bare_ranker_p50_us']:.0f} / {d['bare_ranker_p99_us']:.0f} us",
                f"{ratio(d['p50_us'], d['bare_ranker_p50_us'])} / "
                f"{ratio(d['p99_us'], d['bare_ranker_p99_us'])}",
            )
        )
    return rows


def train_scale_rows(results: list[dict]) -> list[Row]:
    rows: list[Row] = []
    for size in sorted({r["rows"] for r in results}):
        by_engine = {r["engine"]: r for r in results if r["rows"] == size}
        local, dask = by_engine.get("local"), by_engine.get("dask")
        for r in by_engine.values():
            rows.append(
                (
                    f"training {size:,} rows, {r['engine']} (train_scale): time, peak RSS, AUC",
                    f"{r['train_s']:.1f} s, {r['peak_tree_rss_mb']:.0f} MiB, "
                    f"{r['openness_auc']:.4f}",
                    "",
                    "",
                )
            )
        if local and dask:
            rows.append(
                (
                    f"training {size:,} rows, dask vs local: time / peak RSS",
                    f"{dask['train_s']:.1f} s / {dask['peak_tree_rss_mb']:.0f} MiB",
                    f"{local['train_s']:.1f} s / {local['peak_tree_rss_mb']:.0f} MiB",
                    f"{ratio(dask['train_s'], local['train_s'])} / "
                    f"{ratio(dask['peak_tree_rss_mb'], local['peak_tree_rss_mb'])}",
                )
            )
    return rows


def http_rows(results: list[dict]) -> list[Row]:
    rows: list[Row] = []
    keys = sorted({(r["backend"], r["concurrency"]) for r in results})
    for backend, concurrency in keys:
        pair = {
            r["endpoint"]: r
            for r in results
            if r["backend"] == backend and r["concurrency"] == concurrency
        }
        d, h = pair.get("decisions"), pair.get("hello-world")
        if not (d and h):
            continue
        errors = f", {d['errors']} errors" if d["errors"] else ""
        rows.append(
            (
                f"HTTP POST /v1/decisions vs hello-world, {backend}, c={concurrency}: "
                "req/s, p50 / p99",
                f"{d['rps']:,.0f} req/s, {d['p50_ms']:.2f} / {d['p99_ms']:.2f} ms{errors}",
                f"{h['rps']:,.0f} req/s, {h['p50_ms']:.2f} / {h['p99_ms']:.2f} ms",
                ratio(d["rps"], h["rps"]),
            )
        )
        reference = pair.get("reference")
        if reference:
            rows.append(
                (
                    f"HTTP design's reference (parse + 6 predicts) vs hello-world, {backend}, "
                    f"c={concurrency}",
                    f"{reference['rps']:,.0f} req/s, p99 {reference['p99_ms']:.2f} ms",
                    f"{h['rps']:,.0f} req/s",
                    ratio(reference["rps"], h["rps"]),
                )
            )
        if "server_cpu_us" in d and "server_cpu_us" in h:
            rows.append(
                (
                    f"HTTP server CPU per request, decisions vs hello-world, {backend}, "
                    f"c={concurrency}",
                    f"{d['server_cpu_us']:,.0f} us",
                    f"{h['server_cpu_us']:,.0f} us",
                    ratio(h["server_cpu_us"], d["server_cpu_us"]),
                )
            )
    return rows


def decision_path_rows(f: dict) -> list[Row]:
    parts = f["parts"]
    inside = sum(parts[k] for k in ("history read", "model", "routing", "insert (durable)"))
    framework = f["decision_us"] - parts["use case"] - parts["load the body"]
    return [
        (
            "decision in-process CPU per request (WSGI, sqlite durable) vs hello-world app",
            f"{f['decision_us']:.0f} us",
            f"{f['hello_us']:.0f} us",
            ratio(f["decision_us"], f["hello_us"]),
        ),
        (
            "  of which: durable insert / model / history / routing / rest of use case / "
            "body load / Flask + hooks + answer",
            f"{parts['insert (durable)']:.0f} / {parts['model']:.0f} / "
            f"{parts['history read']:.0f} / {parts['routing']:.0f} / "
            f"{parts['use case'] - inside:.0f} / {parts['load the body']:.0f} / "
            f"{framework:.0f} us",
            "",
            "",
        ),
    ]


def shadow_rows(f: dict) -> list[Row]:
    return [
        (
            "decision request with a shadow challenger vs without (in-process), p99",
            f"{f['with']['p99_us']:,.0f} us",
            f"{f['without']['p99_us']:,.0f} us",
            f"{f['ratio_p99']:.2f}x",
        )
    ]


def learning_loop_rows(f: dict) -> list[Row]:
    rows: list[Row] = []
    holdout = f.get("holdout_uplift")
    if holdout:
        for measure, figures in holdout.items():
            if not isinstance(figures, dict) or "coverage" not in figures:
                continue
            low, high = figures.get("coverage_ci95", (math.nan, math.nan))
            rows.append(
                (
                    f"holdout uplift 95% CI covers the truth ({measure}, "
                    f"{holdout['seeds']} seeds x {holdout['rows']:,} rows)",
                    f"{figures['coverage']:.0%} [Wilson {low:.0%}, {high:.0%}]",
                    "95% nominal",
                    ratio(figures["coverage"], 0.95),
                )
            )
    dr = f.get("dr_value")
    if dr:
        rows.append(
            (
                f"DR 95% CI covers the policy's true value ({dr.get('seeds', '?')} seeds)",
                f"{dr['coverage']:.0%}",
                "95% nominal",
                ratio(dr["coverage"], 0.95),
            )
        )
    hill = f.get("hillstrom")
    if hill:
        policies = hill["policies"]
        fixed = {k: v["dr"]["value"] for k, v in policies.items() if k != "learned"}
        best = max(fixed, key=fixed.get)
        learned = policies["learned"]["dr"]["value"]
        rows.append(
            (
                "Hillstrom: learned policy vs best fixed arm (DR value)",
                f"{learned:.3f}",
                f"{fixed[best]:.3f} ({best})",
                ratio(learned, fixed[best]),
            )
        )
    return rows


FORMATTERS = {
    "core": core_rows,
    "train_scale": train_scale_rows,
    "http": http_rows,
    "decision_path": decision_path_rows,
    "shadow": shadow_rows,
    "learning_loop": learning_loop_rows,
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, load {load:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", nargs="+", choices=list(PLANS), default=list(PLANS))
    parser.add_argument("--json", type=Path, help="also write every script's figures here")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", file=sys.stderr)
    table: list[Row] = []
    collected: dict[str, object] = {}
    failed = []
    for name in args.only:
        normal, quick = PLANS[name]
        figures, status = run_script(name, quick if args.quick else normal, LOGS / f"{name}.json")
        collected[name] = {"status": status, "figures": figures}
        if figures is None:
            failed.append(name)
            table.append((f"{name}: FAILED ({status})", "", "", ""))
            continue
        try:
            table += FORMATTERS[name](figures)
        except (KeyError, TypeError, ValueError) as exc:  # a script changed its output
            failed.append(name)
            table.append((f"{name}: unreadable figures ({exc!r})", "", "", ""))
        print(f"  {name}: {status}", file=sys.stderr, flush=True)

    print(f"\nvea benchmarks ({'quick smoke run, ' if args.quick else ''}{machine()})\n")
    header = ("benchmark", "vea", "baseline", "ratio")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(collected, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
