"""One log of the joint choice (issue 10): off-policy value of other routing policies and of
a joint (activity, pool) policy from a log with randomized routing, against the simulator's
truth, over many seeds.

    python -m bench.joint_ope [--seeds 20] [--first-seed 1] [--rows 20000]
                              [--margin 1.0] [--floor 0.05] [--bootstrap 300]
                              [--json var/bench/joint_ope.json]

**World.** One workforce (``training.simulate.agent_skills``, seed ``WORLD_SEED``, 60
agents with true per-activity skill): 200,000 interactions of history measure proficiency
and fill the default pools (``models.proficiency.rebuild_pools``, as ``bench/pools.py``).

**Log, per seed.** ``--rows`` interactions of the simulator (new customers and contexts per
seed; its logging policy picks the activity with a known, non-uniform propensity); the
assisted contacts are routed by ``models.matching.route`` with pool exploration on
(``--margin``, ``--floor``): each contact gets availability reports (value pools free with
probability 0.75, else an exponential wait with a 60 s mean, so some are over the 60 s
limit; ``general`` always free, so no capacity fallback changes the logged activity), the
router's success probabilities are the average agent's true ones (a perfect activity
model: the bench measures routing), the pool is drawn by the decision id and its
probability logged. The outcome is drawn from the true success of the logged activity
with an agent picked at random among the routed pool's members
(``training.route_sim.pool_success``: the same as ``pick_agent`` then ``true_success``).

**Truth.** ``pool_success`` gives, for each contact, activity and pool, the exact success
probability; a routing policy's truth is that cube averaged by the policy's pool
probabilities on the logged contacts with their logged activities (the activity policy
unchanged), a joint policy's with its own activity. Waits only decide which pools are
candidates; the truth ignores abandonment (it values who serves the contact).

**Estimates.** ``training.ope.evaluate_supported``: DR (reward model: cross-fitted cell
means per activity, language, segment, channel and issue, ``training.ope.cell_mean_q``),
95% BCa bootstrap resampling customers. Routing: pools are the actions and the logged
``pool_propensity`` the probability. Joint: activity x pool pairs, probability
``propensity * pool_propensity``. Rows where the target may choose a pool the logger could
not (exact: the route's ``pool_probabilities``) are left out and reported per pool as
unsupported mass; the truth is taken on the same rows.

Targets: ``general-only``, ``best-proficiency`` (highest lift among the eligible pools
within the wait limit), ``random-eligible`` (uniform over them), and the joint policy
``best-activity+best-proficiency`` (the activity with the highest true expected value
for an average agent, routed to its best-proficiency pool).

Coverage: the share of seeds whose 95% interval contains the truth, with its Wilson 95%
interval.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from models.activities import ACTION_INDEX, ACTIONS, NONE, VALUE_ACTIVITIES
from models.economics import Economics
from models.matching import Availability, RoutingRules, route
from models.pools import GENERAL, PoolConfig, load_config
from models.proficiency import aggregate, estimate, rebuild_pools
from service.config import PACKAGE_DIR
from training.ope import (
    cell_mean_q,
    evaluate_supported,
    joint_actions,
)
from training.route_sim import pool_success
from training.simulate import agent_skills, default_logging_policy, simulate

WORLD_SEED, AGENTS, HISTORY_ROWS = 21, 60, 200_000
P_POOL_FREE, MEAN_BUSY_WAIT_S = 0.75, 60.0
ROUTING_TARGETS = ("general-only", "best-proficiency", "random-eligible")
JOINT_TARGET = "best-activity+best-proficiency"


def build_world() -> tuple[PoolConfig, pd.DataFrame]:
    """Pools filled from the proficiency measured on the world's history, and its agents."""
    log, truth = simulate(rows=HISTORY_ROWS, seed=WORLD_SEED, n_agents=AGENTS)
    activity = log["activity"].to_numpy()
    attempted = np.isin(activity, VALUE_ACTIVITIES)
    predicted = np.full(len(log), np.nan)
    for a in VALUE_ACTIVITIES:
        predicted[activity == a] = truth[f"p_{a}_avg_agent"].to_numpy()[activity == a]
    cells = aggregate(
        zip(
            log["agent_id"].to_numpy()[attempted],
            activity[attempted],
            log["ve_success"].to_numpy()[attempted],
            predicted[attempted],
            strict=True,
        )
    )
    config = rebuild_pools(load_config(PACKAGE_DIR / "pools.default.yaml"), estimate(cells)).config
    return config, agent_skills(WORLD_SEED, AGENTS)


def eligible_pools(
    config: PoolConfig, activity: str, channel: str, language: str, segment: str, waits, rules
) -> list[int]:
    """Indexes of the pools a contact may go to for ``activity`` (as ``models.matching``:
    serves it, has members or is general, and within the wait limit)."""
    if activity == NONE:
        return [config_index(config)[GENERAL]]
    out = []
    for j, pool in enumerate(config.pools):
        if not pool.serves(activity, channel, language, segment):
            continue
        if pool.id != GENERAL and not pool.members:
            continue
        if waits.get(pool.id, 0.0) > rules.max_wait_s:
            continue
        out.append(j)
    return out


def config_index(config: PoolConfig) -> dict[str, int]:
    return {p.id: j for j, p in enumerate(config.pools)}


def target_pools(config: PoolConfig, activity: str, eligible: list[int], name: str) -> np.ndarray:
    """A named routing policy's pool probabilities for one contact (``config.pools`` order)."""
    probs = np.zeros(len(config.pools))
    general = config_index(config)[GENERAL]
    if activity == NONE or name == "general-only":
        probs[general] = 1.0
    elif name == "best-proficiency":
        best = max(
            eligible,
            key=lambda j: (config.pools[j].lift_for(activity), config.pools[j].id != GENERAL, -j),
        )
        probs[best] = 1.0
    elif name == "random-eligible":
        probs[eligible] = 1.0 / len(eligible)
    else:
        raise ValueError(f"unknown routing policy {name!r}")
    return probs


def run_seed(seed: int, config: PoolConfig, agents: pd.DataFrame, args) -> dict:
    economics = Economics()
    rules = RoutingRules(
        value_of_success=economics.value_of_success,
        cost_per_second=economics.cost_per_second,
        extra_handle_time_s=dict(economics.extra_handle_time_s),
        explore_margin=args.margin,
        explore_floor=args.floor,
    )
    log, _ = simulate(rows=args.rows, seed=10_000 + seed, n_agents=AGENTS)
    log = log[log["channel"] != "self_service"].reset_index(drop=True)
    n, pools = len(log), [p.id for p in config.pools]
    n_pools = len(pools)
    cube = pool_success(log, config, agents)  # (n, 6, P) truth
    avg = cube[:, :, config_index(config)[GENERAL]]  # average agent of the language
    costs = np.asarray(economics.action_costs())
    values = avg * economics.value_of_success - costs[None, :]
    best_activity = np.array(ACTIONS, dtype=object)[values.argmax(axis=1)]
    mu_activity = default_logging_policy(log)  # the simulator's logging policy

    rng = np.random.default_rng([seed, 42])
    busy = rng.random((n, n_pools)) > P_POOL_FREE
    waits_all = np.where(busy, rng.exponential(MEAN_BUSY_WAIT_S, (n, n_pools)), 0.0)
    waits_all[:, config_index(config)[GENERAL]] = 0.0

    def routed(i: int, activity: str, waits: dict) -> dict:
        lists = [
            {
                "activity": a,
                "success_probability": float(avg[i, ACTION_INDEX[a]]),
                "expected_value": float(values[i, ACTION_INDEX[a]]),
            }
            for a in VALUE_ACTIVITIES
        ]
        return route(
            config,
            activity=activity,
            activities=lists,
            openness=0.0,
            channel=log.at[i, "channel"],
            language=log.at[i, "language"],
            segment=log.at[i, "segment"],
            availability={p: Availability(expected_wait_s=w) for p, w in waits.items()},
            rules=rules,
            none_value=float(values[i, 0]),
            decision_id=f"bench-{seed}-{i}",
        )

    logged_pool = np.empty(n, dtype=np.int64)
    pool_prop = np.empty(n)
    mu_pool = np.zeros((n, n_pools))  # the logger's pool distribution for the logged activity
    mu_pool_best = np.zeros((n, n_pools))  # ... and for the joint target's activity
    targets = {name: np.zeros((n, n_pools)) for name in ROUTING_TARGETS}
    joint_target = np.zeros((n, len(ACTIONS), n_pools))
    index = config_index(config)
    for i in range(n):
        waits = {p: float(waits_all[i, j]) for j, p in enumerate(pools)}
        activity = log.at[i, "activity"]
        answer = routed(i, activity, waits)
        logged_pool[i] = index[answer["pool"]]
        pool_prop[i] = answer["propensity"]
        for p, q in answer["pool_probabilities"].items():
            mu_pool[i, index[p]] = q
        ctx = (log.at[i, "channel"], log.at[i, "language"], log.at[i, "segment"])
        eligible = eligible_pools(config, activity, *ctx, waits, rules)
        for name in ROUTING_TARGETS:
            targets[name][i] = target_pools(config, activity, eligible, name)
        best = best_activity[i]
        other = answer if best == activity else routed(i, best, waits)
        for p, q in other["pool_probabilities"].items():
            mu_pool_best[i, index[p]] = q
        eligible_best = eligible_pools(config, best, *ctx, waits, rules)
        joint_target[i, ACTION_INDEX[best]] = target_pools(
            config, best, eligible_best, "best-proficiency"
        )
    activity_codes = log["activity"].map(ACTION_INDEX).to_numpy()
    rows = np.arange(n)
    p_true = cube[rows, activity_codes, logged_pool]
    reward = (rng.random(n) < p_true).astype(float)
    cells = (
        log["activity"].astype(str)
        + "|"
        + log["language"].astype(str)
        + "|"
        + log["segment"].astype(str)
        + "|"
        + log["channel"].astype(str)
        + "|"
        + log["issue_type"].astype(str)
    ).to_numpy()
    customers = log["customer_id"].to_numpy()
    out = {"seed": seed, "rows": n, "explored_share": float(np.mean(pool_prop < 1.0))}

    # Routing: pools are the actions, the activity as logged.
    q_route = cell_mean_q(reward, logged_pool, n_pools, cells, groups=customers, seed=seed)
    for name, target in targets.items():
        res = evaluate_supported(
            reward,
            logged_pool,
            pool_prop,
            target,
            mu_pool > 0,
            pools,
            q_hat=q_route,
            n_boot=args.bootstrap,
            seed=seed,
            clusters=customers,
        )
        keep = (target * (mu_pool <= 0)).sum(axis=1) <= 1e-6
        truth = float((target * cube[rows, activity_codes])[keep].sum(axis=1).mean())
        out[name] = _summary(res, truth)

    # Joint: activity x pool pairs, probability = activity propensity x pool propensity.
    logged_joint = joint_actions(activity_codes, logged_pool, n_pools)
    joint_prop = log["propensity"].to_numpy() * pool_prop
    target = joint_target.reshape(n, -1)
    support = mu_activity[:, :, None] > 0
    mu_joint = np.zeros((n, len(ACTIONS), n_pools), dtype=bool)
    mu_joint[rows, activity_codes] = mu_pool > 0
    mu_joint[rows, [ACTION_INDEX[b] for b in best_activity]] = mu_pool_best > 0
    supported = (support & mu_joint).reshape(n, -1)
    flat_cells = np.array(
        [c.split("|", 1)[1] for c in cells], dtype=object
    )  # the activity is part of the action
    q_joint = cell_mean_q(
        reward, logged_joint, len(ACTIONS) * n_pools, flat_cells, groups=customers, seed=seed
    )
    res = evaluate_supported(
        reward,
        logged_joint,
        joint_prop,
        target,
        supported,
        pools,
        q_hat=q_joint,
        n_boot=args.bootstrap,
        seed=seed,
        clusters=customers,
    )
    keep = (target * ~supported).sum(axis=1) <= 1e-6
    truth = float((target * cube.reshape(n, -1))[keep].sum(axis=1).mean())
    out[JOINT_TARGET] = _summary(res, truth)
    return out


def _summary(res: dict, truth: float) -> dict:
    dr = res["estimates"].get("dr") or {}
    lo, hi = dr.get("ci_low"), dr.get("ci_high")
    covered = lo is not None and hi is not None and lo <= truth <= hi
    return {
        "truth": truth,
        "dr": dr.get("value"),
        "ci_low": lo,
        "ci_high": hi,
        "width": None if lo is None or hi is None else hi - lo,
        "covered": bool(covered),
        "rows_evaluated": res["rows_evaluated"],
        "rows_unsupported": res["rows_unsupported"],
        "unsupported_by_pool": res["unsupported_by_pool"],
        "ess_fraction": (res.get("diagnostics") or {}).get("ess_fraction"),
    }


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--floor", type=float, default=0.05)
    parser.add_argument("--bootstrap", type=int, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    config, agents = build_world()
    print(
        "pools:",
        {p.id: len(p.members) for p in config.pools},
        f"(world built in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        t0 = time.perf_counter()
        run = run_seed(seed, config, agents, args)
        runs.append(run)
        cells = "  ".join(
            f"{name}: truth {r['truth']:.4f} DR {r['dr']:.4f} [{r['ci_low']:.4f}, "
            f"{r['ci_high']:.4f}]{'' if r['covered'] else ' MISS'}"
            for name in (*ROUTING_TARGETS, JOINT_TARGET)
            if (r := run[name])["dr"] is not None
        )
        print(
            f"seed {seed} ({run['rows']} rows, {run['explored_share']:.0%} drawn, "
            f"{time.perf_counter() - t0:.1f} s): {cells}",
            flush=True,
        )
    table = {}
    for name in (*ROUTING_TARGETS, JOINT_TARGET):
        done = [r[name] for r in runs if r[name]["dr"] is not None]
        k = sum(r["covered"] for r in done)
        widths = [r["width"] for r in done]
        lo, hi = wilson(k, len(done))
        table[name] = {
            "seeds": len(done),
            "covered": k,
            "coverage": k / len(done) if done else float("nan"),
            "coverage_wilson95": [lo, hi],
            "median_ci_width": float(np.median(widths)) if widths else None,
            "mean_ci_width": float(np.mean(widths)) if widths else None,
            "mean_unsupported_rows": float(np.mean([r["rows_unsupported"] for r in done]))
            if done
            else None,
            "mean_rows": float(np.mean([r["rows_evaluated"] for r in done])) if done else None,
        }
        print(
            f"{name:34s} coverage {k}/{len(done)} = {table[name]['coverage']:.2f} "
            f"(Wilson 95% {lo:.2f}-{hi:.2f}), CI width median "
            f"{table[name]['median_ci_width']:.4f}, rows evaluated "
            f"{table[name]['mean_rows']:.0f}, unsupported rows "
            f"{table[name]['mean_unsupported_rows']:.0f}",
            flush=True,
        )
    result = {
        "args": vars(args),
        "summary": table,
        "runs": runs,
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
