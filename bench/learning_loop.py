"""Learning-loop figures (issue 6): do the intervals the product reports cover the truth?

1. Holdout uplift: customers split by ``models.exploration.holdout_arm``; the treated
   arm is served by the simulator's logging policy, the holdout gets `none`. The 95%
   interval of ``models.value_report.difference`` (success and 60-day retention) is checked
   against the simulator's true uplift, over ``--seeds`` seeds.
2. DR: a model trained on one simulated log values its greedy policy on a fresh log
   (logged by the simulator's non-uniform policy) with the cross-fitted reward model of
   ``training.retrain``; the interval is checked against the policy's true value.
3. Hillstrom (``../shared/data/hillstrom.csv``, propensity 1/3): the learned policy
   (trained on one half) valued off-policy on the other half against each fixed arm.

    python bench/learning_loop.py --seeds 20 --rows 6000 [--hillstrom PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from models.activities import ACTION_INDEX, ACTIONS, NONE
from models.exploration import HOLDOUT, holdout_arm
from models.value_report import difference
from training import simulate as sim
from training.fit import net_rewards, train_bundle
from training.loading import action_codes, load_log
from training.ope import deterministic_probs, evaluate_policy
from training.retrain import greedy_actions, reward_model
from training.spec import Spec

K = len(ACTIONS)


def _retention_given_success(log: pd.DataFrame, truth: pd.DataFrame) -> tuple:
    """True P(retained | success) and P(retained | failure) per row (simulator tables)."""
    considering = truth["considering_switch"].to_numpy() == 1
    high = log["switching_effort"].to_numpy() == "high"
    ok_h, bad_h = sim.RETAIN_CONSIDERING["high"]
    ok_l, bad_l = sim.RETAIN_CONSIDERING["low"]
    ok_o, bad_o = sim.RETAIN_OTHERS
    r1 = np.where(considering, np.where(high, ok_h, ok_l), ok_o)
    r0 = np.where(considering, np.where(high, bad_h, bad_l), bad_o)
    return r1, r0


def holdout_coverage(seeds: int, rows: int, share: float) -> dict:
    covered = {"ve_success": 0, "retained_60d": 0}
    widths = {"ve_success": [], "retained_60d": []}
    for seed in range(seeds):
        experiment = f"study-{seed}"

        def policy(context: pd.DataFrame, experiment=experiment) -> np.ndarray:
            probs = sim.default_logging_policy(context)
            held = np.array(
                [holdout_arm(c, share, experiment) == HOLDOUT for c in context["customer_id"]]
            )
            probs[held] = 0.0
            probs[held, ACTION_INDEX[NONE]] = 1.0
            return probs

        log, truth = sim.simulate(rows=rows, seed=100 + seed, policy=policy)
        context = log[list(sim.CONTEXT_COLUMNS)]
        treat_probs = sim.default_logging_policy(context.copy())
        p = truth[[f"p_{a}" for a in ACTIONS]].to_numpy()
        p_treated = (treat_probs * p).sum(axis=1)
        p_none = p[:, ACTION_INDEX[NONE]]
        true_success = float((p_treated - p_none).mean())
        r1, r0 = _retention_given_success(log, truth)
        true_retention = float(((r1 - r0) * (p_treated - p_none)).mean())
        held = np.array([holdout_arm(c, share, experiment) == HOLDOUT for c in log["customer_id"]])
        for name, true in (("ve_success", true_success), ("retained_60d", true_retention)):
            y = log[name].to_numpy(dtype=float)
            cust = log["customer_id"].to_numpy()
            d = difference(y[~held], y[held], cust[~held], cust[held])
            covered[name] += d["ci_low"] <= true <= d["ci_high"]
            widths[name].append(d["ci_high"] - d["ci_low"])
    return {
        "seeds": seeds,
        "rows": rows,
        "holdout_share": share,
        "coverage": {k: v / seeds for k, v in covered.items()},
        "mean_ci_width": {k: float(np.mean(v)) for k, v in widths.items()},
    }


def dr_coverage(seeds: int, rows: int) -> dict:
    first, _ = sim.simulate(rows=rows, seed=1)
    bundle = train_bundle(first, learner="s", seed=0, num_threads=1, progress=False)
    covered, widths, errors = 0, [], []
    for seed in range(seeds):
        log, truth = sim.simulate(rows=rows, seed=200 + seed)
        target = greedy_actions(bundle, log, bundle.economics)
        true = sim.true_policy_value(truth, np.array(ACTIONS, dtype=object)[target])
        actions = action_codes(log)
        rewards = net_rewards(log, actions, bundle.economics)
        # Cross-fitted reward model: each half is valued by a model of the other half.
        half = np.arange(len(log)) % 2 == 0
        q = np.zeros((len(log), K))
        for rows_fit, rows_eval in ((half, ~half), (~half, half)):
            model = reward_model(log.loc[rows_fit].reset_index(drop=True), seed, 1)
            probs = model(log.loc[rows_eval].reset_index(drop=True))
            values = probs * bundle.economics.value_of_success - np.asarray(
                bundle.economics.action_costs()
            )
            q[rows_eval] = np.nan_to_num(values, nan=0.0)
        est = evaluate_policy(
            rewards,
            actions,
            log["propensity"].to_numpy(),
            deterministic_probs(target, K),
            q_hat=q,
            n_boot=300,
            seed=seed,
        )["dr"]
        covered += est.ci_low <= true <= est.ci_high
        widths.append(est.ci_high - est.ci_low)
        errors.append(est.value - true)
    return {
        "seeds": seeds,
        "rows": rows,
        "coverage": covered / seeds,
        "mean_ci_width": float(np.mean(widths)),
        "mean_error": float(np.mean(errors)),
    }


def hillstrom(path: str, spec_path: str, seed: int = 0) -> dict:
    spec = Spec.from_file(spec_path)
    frame = load_log(path, spec)
    order = np.random.default_rng(seed).permutation(len(frame))
    train, test = (
        frame.iloc[np.sort(order[: len(frame) // 2])].reset_index(drop=True),
        frame.iloc[np.sort(order[len(frame) // 2 :])].reset_index(drop=True),
    )
    bundle = train_bundle(train, spec=spec, learner="s", seed=seed, num_threads=1, progress=False)
    actions = action_codes(test)
    rewards = net_rewards(test, actions, bundle.economics)
    propensity = test["propensity"].to_numpy()
    q_probs = bundle.ranker.predict_proba(bundle.encoder.transform(test))
    q = np.nan_to_num(
        q_probs * bundle.economics.value_of_success - np.asarray(bundle.economics.action_costs()),
        nan=0.0,
    )
    learned = greedy_actions(bundle, test, bundle.economics)
    out = {"rows_train": len(train), "rows_test": len(test), "policies": {}}
    targets = {"learned": learned}
    for arm in sorted(set(ACTIONS[a] for a in np.unique(actions))):
        targets[f"always {arm}"] = np.full(len(test), ACTION_INDEX[arm])
    for name, target in targets.items():
        est = evaluate_policy(
            rewards, actions, propensity, deterministic_probs(target, K), q_hat=q, n_boot=300
        )
        out["policies"][name] = {k: v.to_dict() for k, v in est.items() if k in ("ips", "dr")}
    out["learned_shares"] = {ACTIONS[a]: float((learned == a).mean()) for a in np.unique(learned)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--holdout-share", type=float, default=0.2)
    parser.add_argument("--hillstrom", default="../shared/data/hillstrom.csv")
    parser.add_argument("--spec", default="examples/hillstrom.yaml")
    parser.add_argument("--only", choices=["holdout", "dr", "hillstrom"], default=None)
    args = parser.parse_args()
    result = {}
    started = time.perf_counter()
    if args.only in (None, "holdout"):
        result["holdout_uplift"] = holdout_coverage(args.seeds, args.rows, args.holdout_share)
    if args.only in (None, "dr"):
        result["dr_value"] = dr_coverage(args.seeds, args.rows)
    if args.only in (None, "hillstrom") and Path(args.hillstrom).exists():
        result["hillstrom"] = hillstrom(args.hillstrom, args.spec)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
