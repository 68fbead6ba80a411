"""Training at scale: local versus Dask, wall time and peak memory.

For each size the simulator writes a partitioned Parquet directory (one file per
``--chunk`` rows, each chunk its own seed; reused when it already exists), then each
engine trains on it in a fresh process through the CLI (``vea train --engine ...``), so
one run's memory cannot leak into the next.

Memory: tracemalloc misses LightGBM's and Arrow's native allocations, so this samples the
resident set size (psutil) of the training process *and all its children* (the Dask
workers of the LocalCluster) every 0.2 s and reports the peak of their sum; the child also
reports ``getrusage`` peaks (itself, and its largest waited-for child, a Dask worker).
The openness AUC of each model on a held-out simulated log shows quality kept pace.

    python bench/train_scale.py [--rows 1000000 5000000] [--engines local dask]
        [--workers 2] [--learner s] [--data-dir var/bench/train_scale] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ is first on sys.path and its http.py would shadow the standard
# library's http package, which distributed imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
SAMPLE_SECONDS = 0.2


def simulate_partitioned(rows: int, directory: Path, chunk: int) -> Path:
    """A Parquet directory of `rows` simulated contacts, `chunk` rows per file."""
    from training.simulate import simulate

    marker = directory / "_ROWS"
    if marker.exists() and int(marker.read_text()) == rows:
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for i, start in enumerate(range(0, rows, chunk)):
        # Each chunk its own seed: ids (sim-<seed>-<i>) stay unique across files.
        log, _truth = simulate(rows=min(chunk, rows - start), seed=1000 + i)
        log.to_parquet(directory / f"part-{i:04d}.parquet", index=False)
    marker.write_text(str(rows))  # '_' prefix: dask and pyarrow skip it when reading
    return directory


def tree_rss(process: psutil.Process) -> tuple[int, dict[int, int]]:
    """Resident bytes of a process and its descendants: total and per pid."""
    per_pid: dict[int, int] = {}
    for p in [process, *process.children(recursive=True)]:
        try:
            per_pid[p.pid] = p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return sum(per_pid.values()), per_pid


def run_engine(engine: str, data: Path, args: argparse.Namespace) -> dict:
    """Train in a fresh process, sampling the memory of its whole process tree."""
    registry = Path(tempfile.mkdtemp(prefix=f"vea-bench-{engine}-"))
    report = registry / "report.json"
    command = [
        sys.executable, __file__, "--child", str(report), "--",
        "train", "--data", str(data), "--engine", engine, "--learner", args.learner,
        "--quiet", "--registry", str(registry / "reg"),
        "--no-compile",  # time training alone, the same work for both engines
    ]  # fmt: skip
    if engine == "dask":
        command += ["--workers", str(args.workers)]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    process = psutil.Process(child.pid)
    peak_total, peak_each = 0, 0
    while child.poll() is None:
        try:
            total, per_pid = tree_rss(process)
        except psutil.NoSuchProcess:
            break
        peak_total = max(peak_total, total)
        peak_each = max([peak_each, *per_pid.values()])
        time.sleep(SAMPLE_SECONDS)
    output = child.communicate()[0]
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{engine} training failed ({child.returncode}): {output}")
    result = json.loads(report.read_text())
    result.update(
        engine=engine,
        wall_s=wall,
        peak_tree_rss_mb=peak_total / 2**20,
        peak_process_rss_mb=peak_each / 2**20,
        version=output.strip().split()[0],
        # Other work on the machine skews the times: say how busy it was.
        load_avg_1m=(load_before, os.getloadavg()[0]),
        registry=str(registry / "reg"),
    )
    return result


def child_main(report: str, cli_args: list[str]) -> int:
    """Run one `vea` command in this process and report its time and getrusage peaks."""
    from training.cli import cli

    started = time.perf_counter()
    cli.main(cli_args, prog_name="vea", standalone_mode=False)
    seconds = time.perf_counter() - started
    # ru_maxrss is in KiB on Linux. RUSAGE_CHILDREN: the largest waited-for child.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    Path(report).write_text(
        json.dumps({"train_s": seconds, "self_maxrss_mb": own, "child_maxrss_mb": children})
    )
    return 0


def openness_auc(registry: str, version: str, frame) -> float:
    from models.registry import Registry
    from training.fit import openness_weights
    from training.loading import action_codes, attempted
    from training.metrics import classification_metrics
    from training.score import score_arrays

    bundle = Registry(registry).load(version)
    openness, _success = score_arrays(bundle, frame)
    rows = attempted(frame)
    weights = openness_weights(action_codes(frame)[rows], frame["propensity"].to_numpy()[rows], 5)
    y = frame["ve_success"].to_numpy(dtype=np.float64)[rows]
    return float(classification_metrics(y, openness[rows], weights=weights)["auc"])


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child_main(sys.argv[2], sys.argv[4:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--engines", nargs="+", default=["local", "dask"])
    parser.add_argument("--workers", type=int, default=2, help="Dask LocalCluster workers")
    parser.add_argument("--learner", default="s")
    parser.add_argument("--chunk", type=int, default=250_000, help="rows per Parquet file")
    parser.add_argument("--test-rows", type=int, default=200_000)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var/bench/train_scale")
    parser.add_argument("--keep", action="store_true", help="keep the registries")
    parser.add_argument("--json", type=Path, help="also write the results here (bench/all.py)")
    args = parser.parse_args()

    from training.loading import validate_log
    from training.simulate import simulate

    test = validate_log(simulate(rows=args.test_rows, seed=99)[0])
    print(f"cores {os.cpu_count()}, memory {psutil.virtual_memory().total / 2**30:.0f} GiB")
    print(
        f"{'rows':>10} {'engine':<6} {'train s':>8} {'peak RSS MiB (all procs)':>25} "
        f"{'largest proc MiB':>17} {'openness AUC':>13}"
    )
    results = []
    for rows in args.rows:
        started = time.perf_counter()
        data = simulate_partitioned(rows, args.data_dir / f"rows-{rows}", args.chunk)
        files = len(list(data.glob("*.parquet")))
        print(f"# {rows} rows in {files} files ({time.perf_counter() - started:.0f} s to simulate)")
        for engine in args.engines:
            r = run_engine(engine, data, args)
            r["rows"] = rows
            r["openness_auc"] = openness_auc(r["registry"], r["version"], test)
            manifest = json.loads(
                (Path(r["registry"]) / "versions" / r["version"] / "manifest.json").read_text()
            )
            r["boosting_rounds"] = (manifest.get("engine") or {}).get("boosting_rounds")
            results.append(r)
            print(
                f"{rows:>10} {engine:<6} {r['train_s']:>8.1f} {r['peak_tree_rss_mb']:>25.0f} "
                f"{max(r['peak_process_rss_mb'], r['self_maxrss_mb'], r['child_maxrss_mb']):>17.0f} "
                f"{r['openness_auc']:>13.4f}  (load {r['load_avg_1m'][0]:.1f}/{r['load_avg_1m'][1]:.1f})",
                flush=True,
            )
            if not args.keep:
                shutil.rmtree(Path(r["registry"]).parent, ignore_errors=True)
    print(json.dumps(results, indent=1, default=str))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
