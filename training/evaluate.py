"""`vea evaluate`: how good a bundle is on a log, as JSON and a self-contained HTML report.

Reward for policy values: the net value of a contact, ``reward * value_of_success -
extra handle-time cost of the logged action`` (the bundle's economics), so the policy
that maximises it is the one the decision policy aims for. ``reward`` is the one the
bundle was trained on (its manifest; ``ve_success`` for bundles that predate named
rewards); rows where it is still unknown are left out and counted.

Policy values measure the **suggestion** (intent to treat): the logged action is the
served suggestion with its logged propensity, whatever the agent then delivered, since
the suggestion is what the policy controls. (The delivered activity has no logged
probability, so it cannot be valued off-policy without modelling agents' compliance.)
Holdout contacts (a vea export's ``experiment_arm``) are left out and counted: they get
``none`` whatever the model, so a policy valued there is only the model's own guess.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from models.activities import ACTIONS, NONE
from models.bundle import ModelBundle
from models.economics import Economics
from models.policy import choose_actions, expected_values
from models.schema import LABEL, Reward
from training.fit import apply_reward, net_rewards, openness_weights, reward_record
from training.loading import DataError, action_codes, attempted, contact_policy_allowed
from training.metrics import classification_metrics, qini_curve
from training.ope import (
    deterministic_probs,
    diagnostics,
    evaluate_policy,
    mean_value,
)
from training.overlap import seen_share
from training.report_html import derived_warnings, in_sample_warning
from training.retrain import ROW, customers_of, holdout_rows, numbered, overflowing_propensities
from training.score import score_arrays
from training.spec import Spec

K = len(ACTIONS)
MEASURES = "the suggestion (intent to treat)"


def _shares(actions: np.ndarray) -> dict[str, float]:
    counts = np.bincount(actions, minlength=K) / max(len(actions), 1)
    return {a: float(c) for a, c in zip(ACTIONS, counts, strict=True)}


def _observed(
    rewards: np.ndarray, n_boot: int, seed: int, clusters: np.ndarray | None
) -> dict[str, Any]:
    """On-policy value of the logging policy: the mean logged reward, bootstrap CI."""
    est = mean_value(rewards, n_boot=n_boot, seed=seed, clusters=clusters).to_dict()
    return {"ips": est, "snips": est, "dr": est}


def _openness(
    y: np.ndarray, score: np.ndarray, weights: np.ndarray | None, scope: str, rows: str
) -> dict[str, Any]:
    """``classification_metrics`` with its scope, and why AUC is missing when it is: with
    one outcome class there is nothing to rank, and a bare null would read as a bug."""
    metrics = classification_metrics(y, score, weights=weights)
    metrics["scope"] = scope
    if metrics["auc"] is None:
        outcome = "succeeded" if metrics["base_rate"] >= 0.5 else "failed"
        n = metrics["n"]
        which = f"the one {rows.removesuffix('s')}" if n == 1 else f"all {n} {rows}"
        metrics["note"] = (
            f"AUC and PR AUC n/a: {which} here {outcome}, and ranking needs successes and failures"
        )
    return metrics


def value_range(target: np.ndarray, economics: Economics) -> list[float]:
    """The least and the most a contact can be worth under a policy (``target``, (n, K)):
    a failure of its costliest action to a success of its cheapest (rewards are in
    [0, 1]). Any estimate outside is an artefact of the importance weights, which
    ``report_html.derived_warnings`` says."""
    costs = np.asarray(economics.action_costs())[target.sum(axis=0) > 0]
    return [float(-costs.max()), float(economics.value_of_success - costs.min())]


def true_value(truth: pd.DataFrame, target: np.ndarray, bundle: ModelBundle) -> float:
    """Simulator ground truth of a (possibly stochastic) policy: sum_a pi(a) * true EV(a)."""
    p_true = truth[[f"p_{a}" for a in ACTIONS]].to_numpy(dtype=np.float64)
    values = expected_values(p_true, bundle.economics)
    return float(np.mean(np.sum(target * values, axis=1)))


def evaluate_bundle(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    *,
    truth: pd.DataFrame | None = None,
    data_info: dict[str, Any] | None = None,
    n_boot: int = 500,
    seed: int = 0,
    reward: Reward | None = None,
) -> dict[str, Any]:
    """Build the evaluation dict (schema in ``training.report_html``) on ``reward``
    (default: the one the bundle learned)."""
    m = bundle.manifest
    reward = reward or Reward.from_dict(m.get("reward"))
    applied, left_out = apply_reward(numbered(frame), reward)
    file_rows = applied[ROW].to_numpy()  # the loader's row numbers, 1-based
    if left_out and truth is not None:
        kept = np.zeros(len(frame), dtype=bool)
        kept[file_rows - 1] = True
        truth = truth.loc[kept].reset_index(drop=True)
    frame = applied.drop(columns=[ROW])
    # Holdout contacts (a vea export's experiment_arm) get `none` whatever the model: the
    # model's choice was never served there, so DR valued it by the model's own
    # predictions on them. Left out, as the gate and the shadow check leave them out,
    # unless the log holds nothing else (then no policy is valued, below).
    held = holdout_rows(frame)
    only_holdout = bool(len(frame)) and bool(held.all())
    holdout = 0 if only_holdout else int(held.sum())
    if holdout:
        frame = frame.loc[~held].reset_index(drop=True)
        file_rows = file_rows[~held]
        if truth is not None:
            truth = truth.loc[~held].reset_index(drop=True)
    openness, success = score_arrays(bundle, frame)
    y = frame[LABEL].to_numpy(dtype=np.float64)  # 0/1, or a weighted reward in [0, 1]
    features = bundle.encoder.feature_names
    result: dict[str, Any] = {
        "schema_version": 1,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": f"vea model {bundle.version}",
        "model": {
            "version": bundle.version,
            "created_at": m.get("created_at"),
            "learner": (m.get("ranker") or {}).get("learner"),
            "features": features,
            "data_fingerprint": m.get("data_fingerprint"),
            "training_rows": m.get("training_rows"),
        },
        "data": {
            "rows": int(len(frame)),
            # Rows with a known reward left out as holdout contacts (0: none).
            "holdout_rows_left_out": holdout,
            **(data_info or {}),
        },
        "reward": {
            "name": "net_value",
            "description": (
                f"{reward.label} x {bundle.economics.value_of_success:g} minus the logged "
                f"action's extra handle time x {bundle.economics.cost_per_second:g} per second"
            ),
            "reward": reward.label,
            "reward_description": reward_record(
                reward, Spec.from_dict(bundle.spec) if bundle.spec else None
            )["description"],
            "rows_left_out": left_out,
            "measures": MEASURES,
        },
        "warnings": [],
    }
    has_log = "activity" in frame and "propensity" in frame
    if has_log:
        actions = action_codes(frame)
        propensity = frame["propensity"].to_numpy(dtype=np.float64)
        rows = attempted(frame)
        scope = "value attempts, weighted to a uniform mix of activities"
        if rows.any():
            tried = len(np.unique(actions[rows]))
            weights = openness_weights(actions[rows], propensity[rows], tried)
            result["openness"] = _openness(
                y[rows], openness[rows], weights, scope, "value attempts"
            )
        else:
            # A holdout-only extract (every row `none`): openness is the success chance of
            # an attempt, and there is none to measure it on; the policies are still valued.
            result["openness"] = {
                "n": 0,
                "scope": scope,
                "note": "n/a: the log has no value attempt (every row's activity is none), "
                "and openness is the success chance of one",
            }
    else:
        result["openness"] = _openness(y, openness, None, "all contacts", "contacts")
    if success is None or not has_log or only_holdout:
        if only_holdout:
            result["warnings"].append(
                "every row is a holdout contact, served `none` whatever the model: no policy "
                "evaluation (the model's choices were never served here)"
            )
        elif success is not None:
            result["warnings"].append("log has no activity/propensity: no policy evaluation")
        result["model_card"] = model_card(bundle)
        return _with_warnings(result, bundle, frame)

    problems = overflowing_propensities(frame, file_rows)
    if problems:
        raise DataError(problems, str((data_info or {}).get("path") or ""))
    values = expected_values(success, bundle.economics)
    q_hat = np.nan_to_num(values, nan=0.0)
    rewards = net_rewards(frame, actions, bundle.economics)
    seen = bundle.ranker.actions_seen_

    # Uplift of each activity over `none`, on the rows that logged one or the other.
    result["uplift"] = {}
    none_code = ACTIONS.index(NONE)
    for code, action in enumerate(ACTIONS):
        if action == NONE or not seen[code] or not seen[none_code]:
            continue
        rows = (actions == code) | (actions == none_code)
        if (actions[rows] == code).sum() < 10 or (actions[rows] == none_code).sum() < 10:
            continue
        uplift_score = success[rows, code] - success[rows, none_code]
        if not np.isfinite(uplift_score).all():
            # A bundle can list an action as learned yet hold no model for it (t-learner
            # bundles saved before one-class actions got a constant model): no score, no
            # curve, and the other activities are still evaluated.
            unscored = [
                name
                for name, c in ((action, code), (NONE, none_code))
                if not np.isfinite(success[rows, c]).all()
            ]
            result["warnings"].append(
                f"uplift of {action} not computed: the model gives no success probability "
                f"for {' or '.join(unscored)} on some rows (no model for it in the bundle)"
            )
            continue
        result["uplift"][action] = qini_curve(
            y[rows],
            (actions[rows] == code).astype(int),
            uplift_score,
            weights=1.0 / propensity[rows],
        )

    # A customer's contacts share the customer: resampled together, or every interval is
    # too narrow on a live log where customers recur.
    customers = customers_of(frame)
    # As the model would serve: within what the contact policy allowed (a vea export says).
    chosen = choose_actions(values, contact_policy_allowed(frame))
    targets: dict[str, np.ndarray] = {"model": deterministic_probs(chosen, K)}
    for code, action in enumerate(ACTIONS):
        if seen[code]:
            targets[f"always:{action}"] = deterministic_probs(np.full(len(frame), code), K)
    random_target = np.zeros((len(frame), K))
    random_target[:, seen] = 1.0 / seen.sum()
    targets["random"] = random_target
    values_of = {
        name: {
            k: v.to_dict()
            for k, v in evaluate_policy(
                rewards,
                actions,
                propensity,
                target,
                q_hat=q_hat,
                n_boot=n_boot,
                seed=seed,
                clusters=customers,
            ).items()
        }
        for name, target in targets.items()
    }
    best_single = max(
        (name.removeprefix("always:") for name in targets if name.startswith("always:")),
        key=lambda action: values_of[f"always:{action}"]["dr"]["value"],
    )
    values_of["best_single"] = values_of[f"always:{best_single}"]
    # The report's order: the model, each activity, the best of them, random.
    policies = {name: t for name, t in targets.items() if name != "random"}
    policies["best_single"] = targets[f"always:{best_single}"]
    policies["random"] = random_target

    result["policy_value"] = {}
    for name, target in policies.items():
        entry = {
            **values_of[name],
            "diagnostics": diagnostics(actions, propensity, target),
            "value_range": value_range(target, bundle.economics),
        }
        if name == "best_single":
            entry["label"] = f"best single activity ({best_single})"
        if truth is not None:
            entry["true"] = true_value(truth, target, bundle)
        result["policy_value"][name] = entry
    result["policy_value"]["logging"] = _observed(rewards, n_boot, seed, customers)
    result["action_shares"] = {"model": _shares(chosen), "logging": _shares(actions)}
    if truth is not None:
        result.update(oracle_comparison(truth, chosen, actions, bundle, result))
    result["model_card"] = model_card(bundle)
    return _with_warnings(result, bundle, frame)


def _with_warnings(
    result: dict[str, Any], bundle: ModelBundle, frame: pd.DataFrame
) -> dict[str, Any]:
    """Every warning in ``result["warnings"]``, the one list the JSON, the HTML report and
    the console show: rows the model was trained on (the very file by its fingerprint,
    else the share of rows whose interaction ids are in the bundle's sample of its
    training ids), estimates resting on few rows and choices the log never supports."""
    warnings = result["warnings"]
    found = derived_warnings(result)
    if not any(w == in_sample_warning(bundle.version) for w in found) and "interaction_id" in frame:
        seen = seen_share(bundle.manifest.get("training_ids"), frame["interaction_id"].dropna())
        if seen:
            found.insert(
                0,
                f"about {seen:.0%} of these rows are model {bundle.version}'s own training "
                "data (by interaction id): for them the figures are in-sample and flatter "
                "the model",
            )
    warnings[:0] = [w for w in found if w not in warnings]
    return result


def oracle_comparison(
    truth: pd.DataFrame,
    chosen: np.ndarray,
    actions: np.ndarray,
    bundle: ModelBundle,
    result: dict[str, Any],
) -> dict[str, Any]:
    """The model against the simulator's oracle.

    The activity is chosen before an agent is assigned, so the fair oracle knows the
    customer but not the agent: it picks by the average agent's true probabilities
    (``p_<action>_avg_agent``). The oracle that also knows the agent is reported beside
    it as the ceiling that routing (not the activity choice) can approach.
    """
    rows = np.arange(len(truth))
    p_true = truth[[f"p_{a}" for a in ACTIONS]].to_numpy(dtype=np.float64)
    true_values = expected_values(p_true, bundle.economics)
    avg_columns = [f"p_{a}_avg_agent" for a in ACTIONS]
    if all(c in truth for c in avg_columns):
        decision_time = expected_values(truth[avg_columns].to_numpy(np.float64), bundle.economics)
    else:
        decision_time = true_values
    oracle = np.argmax(decision_time, axis=1)
    with_agent = np.argmax(true_values, axis=1)
    oracle_value = float(true_values[rows, oracle].mean())
    with_agent_value = float(true_values[rows, with_agent].mean())
    values = result["policy_value"]
    values["logging"]["true"] = float(true_values[rows, actions].mean())
    values["oracle"] = {"true": oracle_value, "label": "oracle (truth, agent unknown)"}
    values["oracle_with_agent"] = {"true": with_agent_value, "label": "oracle (truth and agent)"}
    result["action_shares"]["oracle"] = _shares(oracle)
    model_value = values["model"]["true"]
    return {
        "oracle_fraction": model_value / oracle_value,
        "oracle_fraction_with_agent": model_value / with_agent_value,
        "true_success_rate": {
            "model": float(p_true[rows, chosen].mean()),
            "oracle": float(p_true[rows, oracle].mean()),
            "logging": float(p_true[rows, actions].mean()),
        },
    }


def model_card(bundle: ModelBundle) -> dict[str, Any]:
    m = bundle.manifest
    return {
        "intended_use": (
            "Rank value-enhancement activities and score openness for live service contacts, "
            "to suggest (never force) a value conversation and route to proven agents."
        ),
        "limits": [
            "Learned from logged decisions: contexts the logging policy never tried are guesses.",
            "Activities with too few logged rows are not scored and never suggested.",
            "Openness is the success chance of a value attempt chosen uniformly among the "
            "activities tried in training, calibrated on a held-out part of that data.",
            "Re-evaluate after changes in contact mix, products or agent guidance (drift).",
        ],
        "features": bundle.encoder.feature_names,
        "data_fingerprint": m.get("data_fingerprint"),
        "training_data": {
            "rows": m.get("training_rows"),
            "action_counts": (m.get("metrics") or {}).get("action_counts"),
        },
        "learner_selection": (m.get("metrics") or {}).get("learner_selection"),
        "economics": bundle.economics.to_dict(),
        "spec": bundle.spec,
        "library_versions": m.get("library_versions"),
    }
