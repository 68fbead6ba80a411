"""Core benchmarks: training time, batch scoring throughput, in-process decision latency.

Ratios are measured in the same run (these machines are noisy): the decision's latency
is compared with a bare LightGBM ``predict`` of one numpy row on the same openness
booster. Prints a table; asserts nothing.

    python bench/core.py [--train-rows 1000000] [--score-rows 200000] [--decisions 20000]
                         [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from models.bundle import compile_bundle
from models.decision import Decider
from training.fit import train_bundle
from training.score import score_frame
from training.simulate import simulate


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    us = np.asarray(samples_ns) / 1000.0
    return float(np.percentile(us, 50)), float(np.percentile(us, 99))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-rows", type=int, default=1_000_000)
    parser.add_argument("--learner", default="auto")
    parser.add_argument("--score-rows", type=int, default=500_000)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/all.py)")
    args = parser.parse_args()
    results: list[tuple[str, str]] = [("cores", str(os.cpu_count()))]
    figures: dict = {"cores": os.cpu_count(), "train_rows": args.train_rows}

    t = time.perf_counter()
    log, _ = simulate(rows=args.train_rows, seed=11)
    results.append((f"simulate {args.train_rows:,} rows", f"{time.perf_counter() - t:.1f} s"))
    t = time.perf_counter()
    bundle = train_bundle(log, learner=args.learner, seed=0, progress=False)
    train_s = time.perf_counter() - t
    learner = bundle.ranker.learner
    figures.update(train_s=train_s, learner=learner)
    results.append(
        (
            f"train {args.train_rows:,} rows (learner {args.learner} -> {learner})",
            f"{train_s:.1f} s",
        )
    )

    score_log, _ = simulate(rows=args.score_rows, seed=12)
    plain = copy.deepcopy(bundle)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        compiled = compile_bundle(bundle, cache)
    results.append(("compile forests (lleaves)", f"{time.perf_counter() - t:.1f} s, ok={compiled}"))
    for name, candidate in (("LightGBM", plain), ("compiled", bundle)):
        score_frame(candidate, score_log.head(1000))  # warm up
        t = time.perf_counter()
        scored = score_frame(candidate, score_log)
        rate = len(scored) / (time.perf_counter() - t)
        results.append((f"batch score {len(scored):,} rows ({name})", f"{rate:,.0f} rows/s"))
        figures[f"score_rows_per_s_{name}"] = rate
    figures["score_rows"] = args.score_rows

    bare_booster = bundle.ranker.boosters_[0] if bundle.ranker.stacked else None
    for name, candidate in (("LightGBM fast path", plain), ("compiled", bundle)):
        results += decision_latency(
            name, candidate, score_log, args.decisions, bare_booster, figures
        )

    width = max(len(k) for k, _ in results)
    for key, value in results:
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def decision_latency(
    name, bundle, score_log, n, bare_booster, figures: dict | None = None
) -> list[tuple[str, str]]:
    """Decision latency against a bare ``Booster.predict`` of one numpy row, same loop.
    ``figures`` (when given) receives the microseconds under ``decision[name]``."""
    decider = Decider(bundle)
    contexts = score_log.head(n).to_dict("records")
    rows = [bundle.encoder.encode_row(c) for c in contexts]
    booster = bundle.openness.booster_
    ranker_rows = [np.hstack([r, [[0.0]]]) for r in rows]
    for c, r in zip(contexts[:500], rows[:500], strict=True):  # warm up both paths
        decider.decide(c)
        booster.predict(r, num_threads=1)
    bare, bare_ranker, decision = [], [], []
    for c, r, rr in zip(contexts, rows, ranker_rows, strict=True):
        t0 = time.perf_counter_ns()
        booster.predict(r, num_threads=1)
        t1 = time.perf_counter_ns()
        if bare_booster is not None:
            bare_booster.predict(rr, num_threads=1)
        t2 = time.perf_counter_ns()
        decider.decide(c)
        t3 = time.perf_counter_ns()
        bare.append(t1 - t0)
        bare_ranker.append(t2 - t1)
        decision.append(t3 - t2)
    b50, b99 = percentiles(bare)
    r50, r99 = percentiles(bare_ranker)
    d50, d99 = percentiles(decision)
    if figures is not None:
        figures.setdefault("decision", {})[name] = {
            "p50_us": d50, "p99_us": d99,
            "bare_openness_p50_us": b50, "bare_openness_p99_us": b99,
            "bare_ranker_p50_us": r50, "bare_ranker_p99_us": r99,
        }  # fmt: skip
    return [
        ("bare predict, 1 row, openness booster (p50/p99)", f"{b50:.0f} / {b99:.0f} us"),
        ("bare predict, 1 row, ranker booster (p50/p99)", f"{r50:.0f} / {r99:.0f} us"),
        (f"vea decision in-process, {name} (p50/p99)", f"{d50:.0f} / {d99:.0f} us"),
        (
            f"decision / bare ranker predict, {name} (p50/p99)",
            f"{d50 / r50:.2f}x / {d99 / r99:.2f}x",
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
