"""Decision latency with and without a shadow challenger, in the same run.

    python -m bench.shadow [--decisions 6000] [--rows 20000] [--json out.json]

The service runs in-process (Flask test client, real SQLite file, real registry with a
champion and a second model). Requests alternate in blocks between "no shadow" and
"shadow on" (the registry pointer moves and the workers' model manager refreshes), so
both see the same machine load. Prints p50/p99 of the whole request and their ratio
(aim: p99 with a shadow at most 1.5x without), and the shadow's own decide time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BLOCK = 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=6000)
    parser.add_argument("--rows", type=int, default=20000, help="training rows per model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"

    from models.registry import Registry
    from service.app import create_app
    from service.auth import create_key
    from service.db import upgrade
    from training.fit import train_bundle
    from training.simulate import simulate

    work = Path(tempfile.mkdtemp(prefix="vea-bench-shadow-"))
    registry = Registry(work / "registry")
    for seed in (1, 2):
        rows, _ = simulate(rows=args.rows, seed=seed)
        registry.add(train_bundle(rows, seed=seed, num_threads=1, progress=False))
    shadow = next(v for v in registry.version_ids() if v != registry.champion())
    url = f"sqlite:///{work / 'vea.db'}"
    upgrade(url)
    app = create_app(
        {
            "database_url": url,
            "registry": str(registry.root),
            "access_log": False,
            "rate_limit_per_s": 0.0,
            "champion_poll_s": 3600.0,
            "compile_cache": str(work / "compiled"),
        }
    )
    state = app.extensions["vea"]
    # Compile both forests before measuring (the service does it in the background).
    from models.bundle import compile_bundle

    for version in registry.version_ids():
        compile_bundle(registry.load(version), str(work / "compiled"))
    state.models.refresh(force=True)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_key(state.engine, 'desktop')[1]}"}
    traffic, _ = simulate(rows=args.decisions + 2 * BLOCK, seed=3)
    latencies: dict[str, list[float]] = {"without": [], "with": []}
    shadow_ms: list[float] = []
    for start in range(0, len(traffic) - BLOCK + 1, BLOCK):
        mode = "with" if (start // BLOCK) % 2 else "without"
        if mode == "with":
            registry.set_shadow(shadow)
        else:
            registry.clear_shadow()
        state.models.refresh(force=True)
        assert (state.models.shadow_version is not None) == (mode == "with")
        for row in traffic.iloc[start : start + BLOCK].itertuples(index=False):
            body = {
                "interaction_id": row.interaction_id,
                "customer": {"customer_id": row.customer_id, "segment": row.segment,
                             "tenure_months": float(row.tenure_months), "persona": row.persona},
                "contact": {"channel": row.channel, "issue_type": row.issue_type,
                            "language": row.language},
            }  # fmt: skip
            began = time.perf_counter()
            response = client.post("/v1/decisions", json=body, headers=headers)
            elapsed = time.perf_counter() - began
            if response.status_code != 201:
                raise SystemExit(f"decision failed: {response.status_code} {response.json}")
            if start >= 2 * BLOCK:  # the first two blocks warm up
                latencies[mode].append(elapsed * 1e6)
    with state.engine.connect() as conn:
        from service.db import decisions

        shadow_ms = [
            s["ms"]
            for (s,) in conn.execute(decisions.select().with_only_columns(decisions.c.shadow))
            if s
        ]
    state.close()
    result = {}
    for mode, values in latencies.items():
        result[mode] = {
            "n": len(values),
            "p50_us": float(np.percentile(values, 50)),
            "p99_us": float(np.percentile(values, 99)),
        }
    result["ratio_p50"] = result["with"]["p50_us"] / result["without"]["p50_us"]
    result["ratio_p99"] = result["with"]["p99_us"] / result["without"]["p99_us"]
    result["shadow_decide_ms_p50"] = float(np.percentile(shadow_ms, 50))
    result["shadow_decide_ms_p99"] = float(np.percentile(shadow_ms, 99))
    for mode in ("without", "with"):
        r = result[mode]
        print(f"decision request, {mode:<7} shadow: n={r['n']:>5}  p50 {r['p50_us']:7.0f} us"
              f"  p99 {r['p99_us']:7.0f} us")  # fmt: skip
    print(
        f"ratio with / without: p50 {result['ratio_p50']:.2f}  p99 {result['ratio_p99']:.2f}"
        f"  (aim: p99 <= 1.5)\nshadow's own decision: p50 {result['shadow_decide_ms_p50']:.3f} ms"
        f"  p99 {result['shadow_decide_ms_p99']:.3f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
