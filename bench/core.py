"""Core benchmarks: training time, batch scoring throughput, in-process decision latency.

Ratios are measured in the same run (these machines are noisy): the decision's latency
is compared with a bare LightGBM ``predict`` of one numpy row on the same openness
booster. Prints a table; asserts nothing.

    python bench/core.py [--train-rows 1000000] [--score-rows 200000] [--decisions 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

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
    args = parser.parse_args()
    results: list[tuple[str, str]] = [("cores", str(os.cpu_count()))]

    t = time.perf_counter()
    log, _ = simulate(rows=args.train_rows, seed=11)
    results.append((f"simulate {args.train_rows:,} rows", f"{time.perf_counter() - t:.1f} s"))
    t = time.perf_counter()
    bundle = train_bundle(log, learner=args.learner, seed=0, progress=False)
    train_s = time.perf_counter() - t
    learner = bundle.ranker.learner
    results.append(
        (
            f"train {args.train_rows:,} rows (learner {args.learner} -> {learner})",
            f"{train_s:.1f} s",
        )
    )

    score_log, _ = simulate(rows=args.score_rows, seed=12)
    score_frame(bundle, score_log.head(1000))  # warm up
    t = time.perf_counter()
    scored = score_frame(bundle, score_log)
    score_s = time.perf_counter() - t
    results.append((f"batch score {len(scored):,} rows", f"{len(scored) / score_s:,.0f} rows/s"))

    decider = Decider(bundle)
    contexts = score_log.head(args.decisions).to_dict("records")
    rows = [bundle.encoder.encode_row(c) for c in contexts]
    booster = bundle.openness.booster_
    for c, r in zip(contexts[:500], rows[:500], strict=True):  # warm up both paths
        decider.decide(c)
        booster.predict(r, num_threads=1)
    bare, decision = [], []
    for c, r in zip(contexts, rows, strict=True):
        t0 = time.perf_counter_ns()
        booster.predict(r, num_threads=1)
        t1 = time.perf_counter_ns()
        decider.decide(c)
        t2 = time.perf_counter_ns()
        bare.append(t1 - t0)
        decision.append(t2 - t1)
    b50, b99 = percentiles(bare)
    d50, d99 = percentiles(decision)
    results.append(("bare LightGBM predict, 1 row (p50 / p99)", f"{b50:.0f} / {b99:.0f} us"))
    results.append(("vea decision, in-process (p50 / p99)", f"{d50:.0f} / {d99:.0f} us"))
    results.append(("decision / bare predict (p50 / p99)", f"{d50 / b50:.2f}x / {d99 / b99:.2f}x"))

    width = max(len(k) for k, _ in results)
    for key, value in results:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
