"""How long the value dashboard (``/dashboard``) takes at a contact center's monthly
volume: ``service.export.decision_frame`` (the period's decisions joined to outcomes and
events), each section of ``service.web.dashboard.gather``, the full page and a CSV
download through the Flask test client, on a database filled in bulk.

    python -m bench.dashboard [--decisions 100000] [--backend sqlite|postgresql]
                              [--repeat 3] [--profile N]

The decisions are written with SQLAlchemy Core into the real schema (``upgrade``), as the
service stores them: features and the stored answer as JSON, four in five with an
outcome, one in ten decided by a shadow challenger too, and churn, renewal and upgrade
events for some of the customers. "cold" is a worker that has not kept the sections
(``service.web.dashboard._SectionCache``); "kept" the same page or table seen again with
no new data. The cold page is timed ``--repeat`` times (best and median). Each figure
is wall seconds and this process's CPU seconds: on a machine shared with
other jobs the wall time swings with their load, the CPU time much less (PostgreSQL's
own work is in the wall time only). Then the query plan of the data version every view
asks (``_data_version``: index searches only, whatever the size). ``--profile N``
prints cProfile's N most expensive functions of one cold page. Prints a table; asserts
nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http import ensure_registry  # noqa: E402

CHUNK = 5000


def fill(url: str, n: int, model_version: str, seed: int = 3) -> None:
    """``n`` decisions of the last 30 days, their outcomes and customer events."""

    from models.activities import ACTIONS
    from service.db import customer_events, decisions, make_engine, outcomes, utcnow

    rng = np.random.default_rng(seed)
    now = utcnow()
    customers = max(n // 3, 1)
    engine = make_engine(url)
    channels = ("chat", "voice", "email")
    issues = ("inquiry", "billing", "technical", "complaint")
    segments = ("consumer", "smb", "enterprise")
    pools = ("general", "billing", "tech")
    with engine.begin() as conn:
        for offset in range(0, n, CHUNK):
            rows, results = [], []
            for i in range(offset, min(n, offset + CHUNK)):
                customer = f"cust-{int(rng.integers(customers))}"
                at = now - timedelta(seconds=float(rng.uniform(60, 29.5 * 86400)))
                holdout = rng.random() < 0.2
                suggested = "none" if holdout else ACTIONS[int(rng.integers(len(ACTIONS)))]
                values = {a: float(rng.uniform(-1, 5)) for a in ACTIONS[1:]}
                features = {
                    "channel": channels[i % 3],
                    "issue_type": issues[i % 4],
                    "segment": segments[i % 3],
                    "persona": None,
                    "switching_effort": int(rng.integers(1, 6)),
                    "language": "en" if i % 5 else "ja",
                    "tenure_months": int(rng.integers(0, 120)),
                    "prior_contacts_30d": int(rng.integers(0, 6)),
                    "sentiment": float(rng.uniform(-1, 1)),
                }
                shadow = rng.random() < 0.1
                blocked = ["advise_new_uses"] if i % 7 == 0 else []
                answer = {
                    "decision_id": f"d{i:031d}",
                    "model_version": model_version,
                    "activities": [
                        {"activity": a, "expected_value": v, "success_probability": 0.3}
                        for a, v in values.items()
                    ],
                    "suggested_activity": suggested,
                    "contact_policy": {
                        "allow_attempt": i % 11 != 0,
                        "blocked_activities": blocked,
                        "reasons": [],
                    },
                    "expected_value_none": 0.0,
                    "reasons": ["bench"],
                }
                rows.append(
                    {
                        "decision_id": f"d{i:031d}",
                        "interaction_id": f"i-{i}",
                        "customer_id": customer,
                        "occurred_at": at,
                        "created_at": at,
                        "channel": features["channel"],
                        "issue_type": features["issue_type"],
                        "language": features["language"],
                        "features": features,
                        "suggested_activity": suggested,
                        "propensity": 1.0 if holdout else float(rng.uniform(0.2, 0.9)),
                        "pool_id": pools[i % 3],
                        "pool_propensity": None,
                        "model_version": model_version,
                        "experiment_arm": "holdout" if holdout else "treatment",
                        "degraded": i % 97 == 0,
                        "openness": float(rng.uniform(0.05, 0.9)),
                        "response": answer,
                        "best_activity": max(values, key=values.get),
                        "shadow_version": model_version if shadow else None,
                        "shadow_activity": ACTIONS[int(rng.integers(len(ACTIONS)))]
                        if shadow
                        else None,
                        "shadow": {"champion_expected_value_none": 0.0} if shadow else None,
                    }
                )
                if rng.random() < 0.8:
                    offered = suggested != "none" and rng.random() < 0.7
                    surveyed = rng.random() < 0.6
                    results.append(
                        {
                            "decision_id": f"d{i:031d}",
                            "activity": suggested if offered else "none",
                            "offered": offered,
                            "accepted": bool(rng.random() < 0.5) if offered else None,
                            "ve_success": bool(rng.random() < 0.4) if surveyed else None,
                            "ves_confidence": int(rng.integers(1, 8)) if surveyed else None,
                            "ves_ability": int(rng.integers(1, 8)) if surveyed else None,
                            "resolved": bool(rng.random() < 0.8),
                            "handle_time_s": float(rng.uniform(60, 900)),
                            "csat": int(rng.integers(1, 6)) if surveyed else None,
                            "nps": int(rng.integers(0, 11)) if rng.random() < 0.3 else None,
                            "ces": int(rng.integers(1, 8)) if rng.random() < 0.3 else None,
                            "agent_id": f"agent-{i % 150}",
                            "pool_id": pools[i % 3],
                            "occurred_at": at + timedelta(minutes=5),
                            "recorded_at": at + timedelta(minutes=5),
                            "payload": {},
                        }
                    )
            conn.execute(decisions.insert(), rows)
            if results:
                conn.execute(outcomes.insert(), results)
        events = []
        kinds = ("churned", "renewed", "retained", "upgraded")
        for c in range(0, customers, 4):
            kind = kinds[c % 4]
            at = now - timedelta(seconds=float(rng.uniform(0, 120 * 86400)))
            events.append(
                {
                    "customer_id": f"cust-{c}",
                    "type": kind,
                    "occurred_at": at,
                    "value": float(rng.uniform(10, 100)) if kind == "upgraded" and c % 3 else None,
                    "recorded_at": at,
                    "payload": {},
                }
            )
        for start in range(0, len(events), CHUNK):
            conn.execute(customer_events.insert(), events[start : start + CHUNK])
    engine.dispose()


def timed(function: Any) -> tuple[tuple[float, float], Any]:
    """``((wall seconds, CPU seconds of this process), result)`` of ``function()``."""
    started, cpu = time.perf_counter(), time.process_time()
    result = function()
    return (time.perf_counter() - started, time.process_time() - cpu), result


def data_version_plan(engine: Any) -> list[str]:
    """The backend's plan of both data-version queries, one line per step."""
    from service.web import dashboard

    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    lines = []
    with engine.connect() as conn:
        latest = tuple(conn.execute(dashboard.latest_writes_query()).one())
        for query in (dashboard.latest_writes_query(), dashboard.recent_writes_query(latest)):
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            lines += [str(row[-1]) for row in conn.exec_driver_sql(explain + sql)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--profile", type=int, default=0, help="top N functions of a page")
    parser.add_argument("--repeat", type=int, default=3, help="cold pages timed")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    work = Path(tempfile.mkdtemp(prefix="vea-bench-dashboard-"))
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(work / "prom"))
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

    from models.registry import Registry
    from service.app import create_app
    from service.auth import create_key
    from service.db import make_engine, upgrade
    from service.export import decision_frame
    from service.web import dashboard
    from tests.test_pages import log_in

    cluster = None
    if args.backend == "postgresql":
        from tests.conftest import PostgresCluster, postgres_bindir

        cluster = PostgresCluster(postgres_bindir(), durable=False).start()
        url = cluster.create_database("vea_dashboard")
    else:
        url = f"sqlite:///{work / 'dashboard.db'}"
    figures: list[tuple[str, tuple[float, float]]] = []
    plan: list[str] = []
    try:
        registry = ensure_registry(work)
        upgrade(url)
        fill_s, _ = timed(lambda: fill(url, args.decisions, Registry(registry).champion()))
        figures.append((f"fill {args.decisions} decisions (setup)", fill_s))
        engine = make_engine(url)
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")  # as autovacuum would after a bulk load
                conn.commit()
        _, key = create_key(engine, "manager", "bench")
        figures.append(("decision_frame", timed(lambda: decision_frame(engine))[0]))
        plan = data_version_plan(engine)
        engine.dispose()

        app = create_app({"database_url": url, "registry": registry, "rate_limit_per_s": 0})

        def cold() -> None:
            # The sections a worker keeps (service.web.dashboard._SectionCache) forgotten.
            app.extensions.pop("vea.dashboard_sections", None)

        with app.app_context():
            period, _ = dashboard.period_of({})
            seconds, frame = timed(
                lambda: decision_frame(app.extensions["vea"].engine, period["start"], period["end"])
            )
            figures.append((f"decision_frame, 30 days ({len(frame)} rows)", seconds))
            figures.append(("data version", timed(dashboard._data_version)[0]))
            for section in ("value", "trend", "drift", "organic", "pools", "models"):
                cold()  # each alone, reading the decisions itself, as a CSV download does
                figures.append(
                    (
                        f"section {section} (own read)",
                        timed(lambda s=section: dashboard.gather(period, only=s))[0],
                    )
                )
        client = app.test_client()
        log_in(client, key)
        client.get("/dashboard")  # templates compiled, registry loaded: as a running worker
        pages = []
        for _ in range(max(args.repeat, 1)):
            cold()
            seconds, answer = timed(lambda: client.get("/dashboard"))
            pages.append(seconds)
        status = answer.status_code
        walls, cpus = sorted(s[0] for s in pages), sorted(s[1] for s in pages)
        figures.append((f"GET /dashboard (cold, {status}), best", (walls[0], cpus[0])))
        middle = len(pages) // 2
        figures.append((f"GET /dashboard (cold, {status}), median", (walls[middle], cpus[middle])))
        seconds, answer = timed(lambda: client.get("/dashboard"))
        figures.append((f"GET /dashboard (seen again: kept, {answer.status_code})", seconds))
        for table in ("uplift", "trend", "drift", "organic"):
            cold()
            seconds, answer = timed(lambda t=table: client.get(f"/dashboard/{t}.csv"))
            figures.append((f"GET /dashboard/{table}.csv (cold, {answer.status_code})", seconds))
        client.get("/dashboard/uplift.csv")
        seconds, answer = timed(lambda: client.get("/dashboard/uplift.csv"))
        figures.append((f"GET /dashboard/uplift.csv (kept, {answer.status_code})", seconds))
        if args.profile:
            cold()
            profile = cProfile.Profile()
            profile.enable()
            client.get("/dashboard?period=30")
            profile.disable()
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.profile)
            print(out.getvalue())
    finally:
        if cluster is not None:
            cluster.stop()
    width = max(len(label) for label, _ in figures)
    print(f"{'dashboard, ' + args.backend:<{width}}     wall      cpu")
    for label, (wall, cpu) in figures:
        print(f"{label:<{width}}  {wall:7.2f}  {cpu:7.2f}")
    print(f"\ndata version plan ({args.backend}, {args.decisions} decisions):")
    for line in plan:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
