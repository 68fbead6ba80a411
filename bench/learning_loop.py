"""Learning-loop figures (issue 6): do the intervals the product reports cover the truth?

1. Holdout uplift: customers split by ``models.exploration.holdout_arm``; the treated
   arm is served by the simulator's logging policy, the holdout gets `none`. The 95%
   interval of ``models.value_report.difference`` (success, 60-day retention and VES) is
   checked against the simulator's true uplift, over ``--seeds`` seeds.
2. DR: a model trained on one simulated log values its greedy policy on a fresh log
   (logged by the simulator's non-uniform policy) with a reward model cross-fitted over
   customer folds, as ``training.retrain`` does; the customer-cluster interval is checked
   against the policy's true value.
3. Hillstrom (``../shared/data/hillstrom.csv``, propensity 1/3): the learned policy
   (trained on one half) valued off-policy on the other half against each fixed arm.
4. Gate: ``training.retrain.gate`` on a log a weak champion served with vea's softmax
   exploration; its 95% interval of the improvement is checked against the true
   improvement of the challenger ``vea retrain`` would promote (fitted on every row), and
   of the cross-fitted challengers it actually values (``--gate-folds`` sets the folds),
   with how many it promotes and whether those are truly better, and how far the promoted
   challenger's true improvement lies from the valued ones' (the interval is of theirs).
   Only with ``--only gate`` (each seed fits a challenger per fold: about 10 s a seed at
   2,000 rows, so a few minutes for 24); ``--first-seed`` runs further seeds to add to a
   run already made.

The truth of every seed is the expectation over the simulator's outcome noise on that
seed's own contacts (all of them, both arms), the estimand of an intention-to-treat
difference of arm means. Each figure comes with the error's mean (bias) and standard
deviation across seeds beside the mean reported standard error, and a Wilson interval for
the coverage itself, and how often an exactly calibrated 95% interval covers as few
(``p_as_few_if_calibrated``): with 20 seeds it still covers fewer than 18 of them 7.5% of
the time, and 21 of 24 or fewer 12% of the time, so run more seeds before reading a
shortfall.

    python bench/learning_loop.py --seeds 20 --rows 6000 [--hillstrom PATH]
    python bench/learning_loop.py --only gate --seeds 24 --rows 2000 [--gate-folds 2]
    python bench/learning_loop.py --only gate --seeds 36 --rows 2000 --first-seed 24
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr
from scipy.stats import binom

from models.activities import ACTION_INDEX, ACTIONS, NONE
from models.economics import Economics
from models.exploration import HOLDOUT, holdout_arm
from models.policy import expected_values
from models.value_report import difference
from training import simulate as sim
from training.fit import net_rewards, train_bundle
from training.loading import action_codes, load_log
from training.ope import compare_policies, deterministic_probs, diagnostics, evaluate_policy
from training.retrain import GATE_FOLDS, customer_folds, gate, greedy_actions, reward_model
from training.spec import Spec

K = len(ACTIONS)
Z95 = 1.959963984540054
# Mean VES of a success: both items top-box, each 7 with probability 0.55 (simulate._ves_items).
VES_SUCCESS = 6.55
DR_BOOT = 1000  # enough replicates that the 2.5% tails are not Monte Carlo noise


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


def _failure_ves(sentiment: np.ndarray, offered: float) -> np.ndarray:
    """E[VES | no success] per row, from ``simulate._ves_items``: a mood
    N(3.6 + 1.2 sentiment + 0.5 offered, 0.8^2), two items rint(mood + N(0, 0.9^2)) clipped to
    1-7, and when both came out top-box one of them (at random) is set to 4 or 5."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)  # expectation over the mood
    weights = weights / weights.sum()
    mood = (3.6 + 1.2 * sentiment + 0.5 * offered)[:, None] + 0.8 * nodes[None, :]
    below = ndtr((np.arange(1.5, 7.0)[None, None, :] - mood[:, :, None]) / 0.9)  # P(item <= k)
    cdf = np.concatenate([below, np.ones(below.shape[:2] + (1,))], axis=2)
    probs = np.diff(cdf, axis=2, prepend=0.0)  # P(item = 1..7 | mood)
    p6, p7 = probs[:, :, 5], probs[:, :, 6]
    top = p6 + p7
    # Sum of both items minus the lowering: P(both top) * (E[item | top] - 4.5).
    total = 2.0 * (probs * np.arange(1, 8)).sum(axis=2) - top * (6 * p6 + 7 * p7) + 4.5 * top**2
    return (total / 2.0) @ weights


def _ves_given_action(log: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """(n, 6) true expected VES of each action. A value activity is delivered (offered) with
    P_OFFERED and then succeeds with the delivered probability, else only organically, so
    the failure branch's offered flag follows delivery."""
    sentiment = log["sentiment"].to_numpy(dtype=float)
    fail_offered, fail_not = _failure_ves(sentiment, 1.0), _failure_ves(sentiment, 0.0)
    p = truth[[f"p_{a}" for a in ACTIONS]].to_numpy()
    organic = p[:, ACTION_INDEX[NONE]][:, None]
    delivered = (p - (1.0 - sim.P_OFFERED) * organic) / sim.P_OFFERED
    values = (
        p * VES_SUCCESS
        + sim.P_OFFERED * (1.0 - delivered) * fail_offered[:, None]
        + (1.0 - sim.P_OFFERED) * (1.0 - organic) * fail_not[:, None]
    )
    values[:, ACTION_INDEX[NONE]] = organic[:, 0] * VES_SUCCESS + (1.0 - organic[:, 0]) * fail_not
    return values


def _wilson(hits: int, n: int) -> list[float]:
    """95% Wilson interval of a coverage rate: how sure the seed count lets us be."""
    if n == 0:
        return [float("nan"), float("nan")]
    rate, z2 = hits / n, Z95**2
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * np.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [round(float(centre - half), 3), round(float(centre + half), 3)]


def _summary(hits: list[bool], lows: list[float], highs: list[float], errors: list[float]) -> dict:
    """Coverage with its Wilson interval, the mean width, and bias vs spread: a mean error
    far from 0 (in units of sd / sqrt(seeds)) is bias, a mean SE below the sd of the error
    (``sd_error_in_se`` above 1) is an interval too narrow."""
    widths = np.subtract(highs, lows)
    return {
        "coverage": float(np.mean(hits)),
        "coverage_ci95": _wilson(int(np.sum(hits)), len(hits)),
        "p_as_few_if_calibrated": round(float(binom.cdf(int(np.sum(hits)), len(hits), 0.95)), 3),
        "mean_ci_width": float(widths.mean()),
        "mean_error": float(np.mean(errors)),
        "sd_error": float(np.std(errors, ddof=1)) if len(errors) > 1 else float("nan"),
        "mean_se": float(widths.mean() / (2 * Z95)),
        # Each seed's error in its own reported SE: about 1 for a calibrated interval.
        "sd_error_in_se": float(np.std(np.divide(errors, widths / (2 * Z95)), ddof=1))
        if len(errors) > 1
        else float("nan"),
    }


def holdout_coverage(seeds: int, rows: int, share: float) -> dict:
    measures = ("ve_success", "retained_60d", "ves")
    runs: dict[str, dict[str, list]] = {
        m: {"hits": [], "lows": [], "highs": [], "errors": []} for m in measures
    }
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
        # Truth: every contact (both arms) served by the logging policy minus every contact
        # given `none`, in expectation over the outcome noise of this seed's contacts.
        treat_probs = sim.default_logging_policy(context.copy())
        p = truth[[f"p_{a}" for a in ACTIONS]].to_numpy()
        p_treated = (treat_probs * p).sum(axis=1)
        p_none = p[:, ACTION_INDEX[NONE]]
        r1, r0 = _retention_given_success(log, truth)
        ves = _ves_given_action(log, truth)
        true = {
            "ve_success": float((p_treated - p_none).mean()),
            "retained_60d": float(((r1 - r0) * (p_treated - p_none)).mean()),
            "ves": float(((treat_probs * ves).sum(axis=1) - ves[:, ACTION_INDEX[NONE]]).mean()),
        }
        observed = {
            "ve_success": log["ve_success"].to_numpy(dtype=float),
            "retained_60d": log["retained_60d"].to_numpy(dtype=float),
            "ves": (log["ves_confidence"].to_numpy(float) + log["ves_ability"].to_numpy(float)) / 2,
        }
        held = np.array([holdout_arm(c, share, experiment) == HOLDOUT for c in log["customer_id"]])
        cust = log["customer_id"].to_numpy()
        for name in measures:
            y = observed[name]
            d = difference(y[~held], y[held], cust[~held], cust[held])
            run = runs[name]
            run["hits"].append(d["ci_low"] <= true[name] <= d["ci_high"])
            run["lows"].append(d["ci_low"])
            run["highs"].append(d["ci_high"])
            run["errors"].append(d["value"] - true[name])
    return {
        "seeds": seeds,
        "rows": rows,
        "holdout_share": share,
        **{name: _summary(**run) for name, run in runs.items()},
    }


def dr_coverage(seeds: int, rows: int) -> dict:
    first, _ = sim.simulate(rows=rows, seed=1)
    bundle = train_bundle(first, learner="s", seed=0, num_threads=1, progress=False)
    hits, lows, highs, errors, ess = [], [], [], [], []
    for seed in range(seeds):
        log, truth = sim.simulate(rows=rows, seed=200 + seed)
        target = greedy_actions(bundle, log, bundle.economics)
        true = sim.true_policy_value(truth, np.array(ACTIONS, dtype=object)[target])
        actions = action_codes(log)
        rewards = net_rewards(log, actions, bundle.economics)
        # Cross-fitted reward model over customer folds (as training.retrain does): each
        # half is valued by a model that never saw any contact of the same customers.
        half = customer_folds(log, 2, seed) == 0
        q = np.zeros((len(log), K))
        for rows_fit, rows_eval in ((half, ~half), (~half, half)):
            model = reward_model(log.loc[rows_fit].reset_index(drop=True), seed, 1)
            probs = model(log.loc[rows_eval].reset_index(drop=True))
            values = probs * bundle.economics.value_of_success - np.asarray(
                bundle.economics.action_costs()
            )
            q[rows_eval] = np.nan_to_num(values, nan=0.0)
        target_probs = deterministic_probs(target, K)
        est = evaluate_policy(
            rewards,
            actions,
            log["propensity"].to_numpy(),
            target_probs,
            q_hat=q,
            n_boot=DR_BOOT,
            seed=seed,
            clusters=log["customer_id"].to_numpy(),
        )["dr"]
        hits.append(est.ci_low <= true <= est.ci_high)
        lows.append(est.ci_low)
        highs.append(est.ci_high)
        errors.append(est.value - true)
        ess.append(diagnostics(actions, log["propensity"].to_numpy(), target_probs)["ess_fraction"])
    return {
        "seeds": seeds,
        "rows": rows,
        **_summary(hits, lows, highs, errors),
        "mean_ess_fraction": float(np.mean(ess)),
    }


def _softmax_serving(bundle, economics: Economics):
    """vea's softmax exploration over the bundle's expected values (temperature 1, floor
    0.02, as tests/test_loop_truth.py serves): the logging policy of a live log."""

    def policy(context: pd.DataFrame) -> np.ndarray:
        values = expected_values(
            bundle.ranker.predict_proba(bundle.encoder.transform(context)), economics
        )
        values = np.nan_to_num(values, nan=-1e9)
        weights = np.exp(values - values.max(axis=1, keepdims=True))
        return 0.02 + (1.0 - 0.02 * K) * weights / weights.sum(axis=1, keepdims=True)

    return policy


def gate_coverage(seeds: int, rows: int, folds: int, first_seed: int = 0) -> dict:
    economics = Economics()
    champion = train_bundle(
        sim.simulate(rows=400, seed=1000)[0], learner="s", seed=0, num_threads=1, progress=False
    )
    serve = _softmax_serving(champion, economics)
    promoted = {"hits": [], "lows": [], "highs": [], "errors": []}
    valued = {"hits": [], "lows": [], "highs": [], "errors": []}
    decisions = {"promoted": 0, "promoted_truly_better": 0, "promoted_truly_worse": 0}
    truly_better = 0
    gaps = []  # the promoted challenger's true improvement minus the valued ones'
    for seed in range(first_seed, first_seed + seeds):
        log, truth = sim.simulate(rows=rows, seed=300 + seed, policy=serve)
        fitted = []

        def fit(train: pd.DataFrame, fitted=fitted):
            bundle = train_bundle(train, learner="s", seed=0, num_threads=1, progress=False)
            fitted.append(bundle)
            return bundle

        result = gate(log, champion, fit, folds=folds, seed=seed, n_boot=DR_BOOT, num_threads=1)
        final = fit(log)  # what `vea retrain` registers and would serve
        values = sim.true_expected_values(truth, economics)
        at = np.arange(len(log))
        champion_value = values[at, greedy_actions(champion, log, economics)]
        # The gate fits one challenger per fold, in fold order, each valued on its fold.
        fold_of = customer_folds(log, folds, seed)
        cross = np.empty(len(log), dtype=np.int64)
        for f in range(folds):
            held = fold_of == f
            cross[held] = greedy_actions(fitted[f], log.loc[held].reset_index(drop=True), economics)
        true_gain = {
            "promoted": float(
                (values[at, greedy_actions(final, log, economics)] - champion_value).mean()
            ),
            "valued": float((values[at, cross] - champion_value).mean()),
        }
        gaps.append(true_gain["promoted"] - true_gain["valued"])
        imp = result.improvement
        for name, run in (("promoted", promoted), ("valued", valued)):
            run["hits"].append(imp["ci_low"] <= true_gain[name] <= imp["ci_high"])
            run["lows"].append(imp["ci_low"])
            run["highs"].append(imp["ci_high"])
            run["errors"].append(imp["value"] - true_gain[name])
        print(  # a long run can be read as it goes
            f"gate seed {seed}: {imp['value']:.3f} [{imp['ci_low']:.3f}, {imp['ci_high']:.3f}]"
            f" true {true_gain['promoted']:.3f} (valued {true_gain['valued']:.3f})"
            f" {'promoted' if result.promote else 'refused'}",
            file=sys.stderr,
            flush=True,
        )
        better = bool(true_gain["promoted"] > 0)
        truly_better += better
        if result.promote:
            decisions["promoted"] += 1
            decisions["promoted_truly_better"] += better
            decisions["promoted_truly_worse"] += not better
    return {
        "seeds": seeds,
        "first_seed": first_seed,
        "rows": rows,
        "folds": folds,
        "promoted_challenger": _summary(**promoted),
        "valued_challengers": _summary(**valued),
        # Fitted on every row, the promoted challenger learned from more than the valued
        # ones: a positive mean is the interval's shortfall for it (about 0.5 with 2 folds).
        "promoted_minus_valued": {
            "mean": float(np.mean(gaps)),
            "sd": float(np.std(gaps, ddof=1)) if len(gaps) > 1 else float("nan"),
        },
        **decisions,
        "truly_better": int(truly_better),
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
            rewards, actions, propensity, deterministic_probs(target, K), q_hat=q, n_boot=DR_BOOT
        )
        out["policies"][name] = {k: v.to_dict() for k, v in est.items() if k in ("ips", "dr")}
        if name != "learned":
            # Paired DR difference on the same customers: is the learned policy better?
            out["policies"][name]["learned_minus_this"] = compare_policies(
                rewards,
                actions,
                propensity,
                deterministic_probs(target, K),
                deterministic_probs(learned, K),
                q_hat=q,
                n_boot=DR_BOOT,
            ).to_dict()
    out["learned_shares"] = {ACTIONS[a]: float((learned == a).mean()) for a in np.unique(learned)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--holdout-share", type=float, default=0.2)
    parser.add_argument("--hillstrom", default="../shared/data/hillstrom.csv")
    parser.add_argument("--spec", default="examples/hillstrom.yaml")
    parser.add_argument("--only", choices=["holdout", "dr", "hillstrom", "gate"], default=None)
    parser.add_argument(
        "--gate-folds", type=int, default=GATE_FOLDS, help="customer folds of the gate"
    )
    parser.add_argument(
        "--first-seed", type=int, default=0, help="the gate's first seed (to add to a run)"
    )
    args = parser.parse_args()
    result = {}
    started = time.perf_counter()
    if args.only in (None, "holdout"):
        result["holdout_uplift"] = holdout_coverage(args.seeds, args.rows, args.holdout_share)
    if args.only in (None, "dr"):
        result["dr_value"] = dr_coverage(args.seeds, args.rows)
    if args.only == "gate":  # a challenger fit per fold and seed: asked for by name only
        result["gate"] = gate_coverage(args.seeds, args.rows, args.gate_folds, args.first_seed)
    if args.only in (None, "hillstrom") and Path(args.hillstrom).exists():
        result["hillstrom"] = hillstrom(args.hillstrom, args.spec)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
