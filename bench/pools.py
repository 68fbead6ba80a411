"""Agent pools (issue 5): proficiency recovery and routing under load, in one table.

    python -m bench.pools [--seeds 5] [--first-seed 1] [--full] [--min-contacts 30]
                          [--loads 0.7 0.9] [--json var/bench/pools.json]

**Proficiency.** For each interaction count (50,000 and 100,000; ``--full`` adds 200,000)
and each seed, the simulator (``training.simulate``, 60 agents with known per-activity
skill) writes a log; ``models.proficiency`` measures every agent x activity from the
attempts, with the simulator's average-agent probability as the case-mix model (so the
estimator is measured, not a model's error). Figures, against the true skill:

* agent-level Spearman: an agent's proficiency is the evidence-weighted (expected
  successes) mean of their cells with enough contacts, against the mean of their true
  skills at those activities; agents without such a cell are left out;
* agent x activity Spearman: within each activity over the cells with enough contacts,
  then averaged over the activities;
* "enough contacts" = at least ``--min-contacts`` attempts (default 30: the pools' own
  ``min_contacts``, ``VEA_PROFICIENCY_MIN_CONTACTS``);
* qualified cells (agent x activity in a value pool) and distinct agents, and how many
  qualified cells have true skill below the activity's median, against what the 90%
  interval allows: its lower bound passes the median for a below-median cell at most 5%
  of the time (one-sided), so 5% of the below-median cells is the expected ceiling; the
  99% binomial bound of that is also printed (what ``tests/test_proficiency.py`` asserts).

**Routing.** Per seed, 200,000 interactions of history measure proficiency and fill the
default pools (``service/pools.default.yaml``, ``models.proficiency.rebuild_pools``); the
next 10,000 interactions' assisted contacts are routed through ``training.route_sim``'s
queue (Poisson arrivals at each ``--loads`` x the agents' capacity, exponential patience
with a 3-minute mean, a perfect activity model) by vea (``models.matching``, default
``RoutingRules``), a random eligible pool, the best pool ignoring capacity and no pools
(first free agent, every suggested activity attempted). Differences are of the drawn
success (0/1) on the same contacts with common random numbers: the paired 95% normal
interval pools the contacts of every seed (it treats the seeds' workforces as fixed);
beside it the per-seed range and a t interval over the seed means (each seed its own
workforce and pools: the wider, between-world uncertainty).

The default run (5 seeds) takes about 30 s on 2 cores, `--full` about 40 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from models.activities import VALUE_ACTIVITIES
from models.matching import RoutingRules
from models.pools import PoolConfig, load_config
from models.proficiency import DEFAULT_MIN_CONTACTS, aggregate, estimate, rebuild_pools
from service.config import PACKAGE_DIR
from training.route_sim import QueueResult, run_queue, suggestions_from_truth
from training.simulate import agent_skills, simulate

AGENTS = 60
ROUTERS = ("vea", "random", "best_pool", "general")
BASELINES = {
    "random": "random eligible pool",
    "best_pool": "best pool ignoring capacity",
    "general": "no pools",
}


# ------------------------------------------------------------------- proficiency
def attempts(log: pd.DataFrame, truth: pd.DataFrame) -> Iterator[tuple[str, str, float, float]]:
    """The value attempts of a simulated log as ``models.proficiency.aggregate`` records,
    the average agent's true probability as the case-mix model's prediction."""
    activity = log["activity"].to_numpy()
    attempted = np.isin(activity, VALUE_ACTIVITIES)
    predicted = np.full(len(log), np.nan)
    for a in VALUE_ACTIVITIES:
        rows = activity == a
        predicted[rows] = truth[f"p_{a}_avg_agent"].to_numpy()[rows]
    return zip(
        log["agent_id"].to_numpy()[attempted],
        activity[attempted],
        log["ve_success"].to_numpy()[attempted],
        predicted[attempted],
        strict=True,
    )


def proficiency_on_simulation(rows: int, seed: int, agents: int = AGENTS) -> pd.DataFrame:
    """Every agent x activity's measured proficiency (``Proficiency`` fields) beside its
    true skill (``skill``), on ``rows`` simulated interactions."""
    log, truth = simulate(rows=rows, seed=seed, n_agents=agents)
    frame = pd.DataFrame([p.__dict__ for p in estimate(aggregate(attempts(log, truth)))])
    skills = agent_skills(seed, agents).set_index("agent_id")
    frame["skill"] = [
        skills.loc[agent, f"skill_{a}"]
        for agent, a in zip(frame["agent_id"], frame["activity"], strict=True)
    ]
    return frame


def recovery_figures(frame: pd.DataFrame, min_contacts: int) -> dict[str, float]:
    """Spearman of measured vs true skill and the pools' below-median members (module
    docstring for the rules)."""
    enough = frame[frame["contacts"] >= min_contacts]
    # An agent's overall proficiency: their activities' estimates weighted by evidence.
    agents = enough.groupby("agent_id").apply(
        lambda g: pd.Series(
            {
                "estimate": np.average(g["estimate"], weights=g["expected"]),
                "skill": g["skill"].mean(),
            }
        ),
        include_groups=False,
    )
    within = [
        stats.spearmanr(g["estimate"], g["skill"])[0]
        for _, g in enough.groupby("activity")
        if len(g) >= 3
    ]
    below = frame["skill"] < frame.groupby("activity")["skill"].transform("median")
    n_below = int(below.sum())
    return {
        "agent_spearman": float(stats.spearmanr(agents["estimate"], agents["skill"])[0]),
        # Over all cells with enough contacts, activities pooled.
        "cell_spearman": float(stats.spearmanr(enough["estimate"], enough["skill"])[0]),
        "cell_spearman_within": float(np.mean(within)) if within else float("nan"),
        "agents_enough": len(agents),
        "cells_enough": len(enough),
        "median_contacts": float(frame["contacts"].median()),
        "members": int(frame["qualified"].sum()),
        "member_agents": int(frame.loc[frame["qualified"], "agent_id"].nunique()),
        "below_median": n_below,
        "below_median_members": int((frame["qualified"] & below).sum()),
        "allowed_expected": 0.05 * n_below,
        "allowed_99": float(stats.binom.ppf(0.99, n_below, 0.05)),
    }


# ----------------------------------------------------------------------- routing
def routing_world(
    seed: int, history_rows: int = 200_000, new_rows: int = 10_000, agents: int = AGENTS
) -> tuple[PoolConfig, pd.DataFrame, list, list, list]:
    """Pools rebuilt from ``history_rows`` simulated interactions; the next ``new_rows``
    interactions' assisted contacts with a perfect model's suggestions. Returns
    ``(config, context, suggested, activity lists, value of none)``."""
    log, truth = simulate(rows=history_rows + new_rows, seed=seed, n_agents=agents)
    cells = aggregate(attempts(log.iloc[:history_rows], truth.iloc[:history_rows]))
    config = rebuild_pools(load_config(PACKAGE_DIR / "pools.default.yaml"), estimate(cells)).config
    new = log.iloc[history_rows:].reset_index(drop=True)
    new_truth = truth.iloc[history_rows:].reset_index(drop=True)
    assisted = (new["channel"] != "self_service").to_numpy()
    context = new[assisted].reset_index(drop=True)
    suggested, activities, none_values = suggestions_from_truth(
        new_truth[assisted].reset_index(drop=True)
    )
    return config, context, suggested, activities, none_values


def route_all(world, seed: int, load: float, agents: int = AGENTS) -> dict[str, QueueResult]:
    config, context, suggested, activities, none_values = world
    return {
        router: run_queue(
            context,
            suggested,
            activities,
            config,
            seed=seed,
            n_agents=agents,
            router=router,
            rules=RoutingRules(),
            none_values=none_values,
            load=load,
        )
        for router in ROUTERS
    }


def paired(diffs: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean paired difference over the contacts of every seed, with its 95% interval."""
    d = np.concatenate(diffs)
    half = 1.96 * float(d.std(ddof=1)) / np.sqrt(len(d))
    per_seed = np.array([float(x.mean()) for x in diffs])
    # Over seeds (each seed its own workforce and pools): a t interval of the seed means.
    if len(per_seed) > 1:
        seed_half = float(
            stats.t.ppf(0.975, len(per_seed) - 1) * per_seed.std(ddof=1) / np.sqrt(len(per_seed))
        )
    else:
        seed_half = float("nan")
    return {
        "difference": float(d.mean()),
        "ci_low": float(d.mean()) - half,
        "ci_high": float(d.mean()) + half,
        "seed_mean": float(per_seed.mean()),
        "seed_ci_low": float(per_seed.mean()) - seed_half,
        "seed_ci_high": float(per_seed.mean()) + seed_half,
        "seed_min": float(per_seed.min()),
        "seed_max": float(per_seed.max()),
        "contacts": len(d),
    }


# -------------------------------------------------------------------------- main
def _range(values: Sequence[float]) -> str:
    return f"{np.mean(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="also 200,000 interactions")
    parser.add_argument("--sizes", type=int, nargs="+", help="interaction counts (override)")
    parser.add_argument("--min-contacts", type=int, default=DEFAULT_MIN_CONTACTS)
    parser.add_argument("--loads", type=float, nargs="+", default=[0.7, 0.9])
    parser.add_argument("--history", type=int, default=200_000, help="routing: history rows")
    parser.add_argument("--routed", type=int, default=10_000, help="routing: routed rows")
    parser.add_argument("--no-routing", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    sizes = args.sizes or ([50_000, 100_000, 200_000] if args.full else [50_000, 100_000])
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr, flush=True)

    recovery: dict[int, list[dict]] = {size: [] for size in sizes}
    for size in sizes:
        for seed in seeds:
            figures = recovery_figures(proficiency_on_simulation(size, seed), args.min_contacts)
            recovery[size].append({"seed": seed, **figures})
            progress(f"proficiency {size:,} seed {seed}: agent Spearman "
                     f"{figures['agent_spearman']:.3f}")  # fmt: skip

    routing: dict[float, dict] = {}
    if not args.no_routing:
        by_load: dict[float, list[dict[str, QueueResult]]] = {load: [] for load in args.loads}
        for seed in seeds:
            world = routing_world(seed, args.history, args.routed)
            for load in args.loads:
                by_load[load].append(route_all(world, seed, load))
            progress(f"routing seed {seed}")
        for load, runs in by_load.items():
            routers = {}
            for router in ROUTERS:
                results = [run[router] for run in runs]
                summaries = [r.summary() for r in results]
                waits = np.concatenate([r.wait_s for r in results])
                routers[router] = {
                    "success_rate": float(np.mean([s["success_rate"] for s in summaries])),
                    "true_success": float(np.mean([s["true_success"] for s in summaries])),
                    "mean_wait_s": float(waits.mean()),
                    "p95_wait_s": float(np.percentile(waits, 95)),
                    "abandoned": float(np.mean([s["abandoned"] for s in summaries])),
                    "value_attempts": float(np.mean([s["value_attempts"] for s in summaries])),
                }
            versus = {
                baseline: paired(
                    [
                        run["vea"].drawn.astype(float) - run[baseline].drawn.astype(float)
                        for run in runs
                    ]
                )
                for baseline in BASELINES
            }
            routing[load] = {"routers": routers, "vea_minus": versus}

    seconds = time.perf_counter() - started
    print(
        f"\nvea agent pools: {AGENTS} agents, seeds {seeds[0]}-{seeds[-1]}, "
        f"enough contacts = >= {args.min_contacts} attempts at the activity ({seconds:.0f} s)\n"
    )
    header = (
        "interactions",
        "attempts per cell (median)",
        "Spearman agents (mean, min-max)",
        "Spearman agent x activity, within activity",
        "agents / cells with enough contacts",
        "qualified cells (agents)",
        "below-median cells qualified: mean, total / of",
        "interval allows: 5% expected (99% bound)",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for size, runs in recovery.items():
        col = {k: [r[k] for r in runs] for k in runs[0] if k != "seed"}
        print(
            "| "
            + " | ".join(
                [
                    f"{size:,}",
                    f"{np.mean(col['median_contacts']):.0f}",
                    _range(col["agent_spearman"]),
                    _range(col["cell_spearman_within"]),
                    f"{np.mean(col['agents_enough']):.0f} / {np.mean(col['cells_enough']):.0f}",
                    f"{np.mean(col['members']):.1f} ({np.mean(col['member_agents']):.1f})",
                    f"{np.mean(col['below_median_members']):.1f}, "
                    f"{sum(col['below_median_members'])} / {sum(col['below_median'])}",
                    f"{np.mean(col['allowed_expected']):.1f} "
                    f"({np.mean(col['allowed_99']):.0f}) per seed",
                ]
            )
            + " |"
        )
    if routing:
        print(
            f"\nRouting {args.routed:,} interactions (assisted contacts) after {args.history:,} "
            f"of history, per seed; vea minus each baseline: drawn success, paired 95% CI "
            f"over the contacts of all {len(seeds)} seeds, per-seed range, t CI over seeds\n"
        )
        header = (
            "load",
            "comparison",
            "difference [paired 95% CI, contacts]",
            "per-seed range",
            "[95% t CI over seeds]",
        )
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for load, figures in routing.items():
            for baseline, d in figures["vea_minus"].items():
                print(
                    f"| {load:g} | vea - {BASELINES[baseline]} | {d['difference']:+.3f} "
                    f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] | "
                    f"{d['seed_min']:+.3f} to {d['seed_max']:+.3f} | "
                    f"[{d['seed_ci_low']:+.3f}, {d['seed_ci_high']:+.3f}] |"
                )
        print()
        header = (
            "load",
            "router",
            "success rate",
            "mean wait (s)",
            "p95 wait (s)",
            "abandoned",
            "value attempts",
        )
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for load, figures in routing.items():
            general_wait = figures["routers"]["general"]["mean_wait_s"]
            for router, r in figures["routers"].items():
                added = (
                    f" ({r['mean_wait_s'] - general_wait:+.1f} vs no pools)"
                    if router == "vea"
                    else ""
                )
                print(
                    f"| {load:g} | {router} | {r['success_rate']:.3f} | "
                    f"{r['mean_wait_s']:.1f}{added} | {r['p95_wait_s']:.0f} | "
                    f"{r['abandoned']:.1%} | {r['value_attempts']:.1%} |"
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "agents": AGENTS,
                    "seeds": seeds,
                    "min_contacts": args.min_contacts,
                    "recovery": {str(k): v for k, v in recovery.items()},
                    "routing": {str(k): v for k, v in routing.items()},
                    "seconds": seconds,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
