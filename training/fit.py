"""Training: from a validated canonical log to a model bundle.

The activity learner is chosen by what matters, the off-policy value of the policy it
induces: every candidate is fitted on 80% of the log and its greedy policy is valued
on the other 20% with the doubly robust estimator; the winner is refitted on all rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.activities import ACTIONS
from models.bundle import ModelBundle
from models.economics import Economics
from models.features import FeatureEncoder
from models.openness import OpennessModel
from models.policy import choose_actions, expected_values
from models.ranker import LEARNERS, ActivityRanker
from models.schema import CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES
from training.loading import action_codes, attempted
from training.ope import deterministic_probs, evaluate_policy
from training.spec import Spec

K = len(ACTIONS)
SELECTION_FRACTION = 0.2


def feature_encoder_for(frame: pd.DataFrame, extra: Sequence[str] = ()) -> FeatureEncoder:
    """Canonical context columns the log has (not all empty) plus the spec's extra features."""
    categorical = [c for c in CATEGORICAL_FEATURES if c in frame and frame[c].notna().any()]
    numeric = [c for c in NUMERIC_FEATURES if c in frame and frame[c].notna().any()]
    for name in extra:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            categorical.append(name)
        else:
            numeric.append(name)
    return FeatureEncoder(categorical, numeric).fit(frame)


def openness_weights(actions: np.ndarray, propensity: np.ndarray, n_activities: int) -> np.ndarray:
    """Weights that turn logged attempts into a uniform mix over the tried activities."""
    w = 1.0 / (n_activities * np.clip(propensity, 0.01, 1.0))
    return w / w.mean()


def net_rewards(frame: pd.DataFrame, actions: np.ndarray, economics: Economics) -> np.ndarray:
    """Value of each logged contact: success worth minus the chosen action's handle-time cost."""
    costs = np.asarray(economics.action_costs())
    return frame[LABEL].to_numpy(dtype=np.float64) * economics.value_of_success - costs[actions]


def policy_value_of(
    ranker: ActivityRanker,
    x: np.ndarray,
    frame: pd.DataFrame,
    actions: np.ndarray,
    q_hat: np.ndarray,
    economics: Economics,
    seed: int,
) -> dict[str, Any]:
    """DR value (with 95% CI) of the greedy policy a ranker induces, on held-out rows."""
    values = expected_values(ranker.predict_proba(x), economics)
    chosen = choose_actions(values)
    estimate = evaluate_policy(
        net_rewards(frame, actions, economics),
        actions,
        frame["propensity"].to_numpy(dtype=np.float64),
        deterministic_probs(chosen, K),
        q_hat=q_hat,
        n_boot=200,
        seed=seed,
    )["dr"]
    return estimate.to_dict()


def train_bundle(
    frame: pd.DataFrame,
    *,
    spec: Spec | None = None,
    economics: Economics | None = None,
    learner: str = "auto",
    seed: int = 0,
    num_threads: int = 0,
    progress: bool = True,
    data_fingerprint: str = "",
) -> ModelBundle:
    """Fit the openness model and (when the log has activities) the activity ranker."""
    economics = economics or Economics.from_dict(spec.economics if spec else None)
    if learner != "auto" and learner not in LEARNERS:
        raise ValueError(f"unknown learner {learner!r}; use auto or one of {LEARNERS}")
    encoder = feature_encoder_for(frame, spec.features if spec else ())
    x = encoder.transform(frame)
    y = frame[LABEL].to_numpy(dtype=np.float64)
    names = encoder.feature_names
    categorical = list(range(len(encoder.categorical)))
    has_activity = "activity" in frame and frame["activity"].notna().all()
    candidates = [learner] if learner != "auto" else list(LEARNERS)
    steps = 1 + (len(candidates) + (1 if len(candidates) > 1 else 0) if has_activity else 0)
    bar = tqdm(total=steps, desc="training", unit="model", disable=not progress)
    metrics: dict[str, Any] = {}

    # Openness: on value attempts when the log has them, else on every contact.
    if has_activity and attempted(frame).sum() >= 50:
        actions = action_codes(frame)
        rows = attempted(frame)
        tried = len(np.unique(actions[rows]))
        weight = openness_weights(actions[rows], frame["propensity"].to_numpy()[rows], tried)
        x_open, y_open = x[rows], y[rows]
    else:
        x_open, y_open, weight = x, y, None
    bar.set_postfix_str("openness")
    openness = OpennessModel(seed=seed, num_threads=num_threads).fit(
        x_open, y_open, sample_weight=weight, categorical=categorical, feature_names=names
    )
    bar.update()
    metrics["openness_rows"] = int(len(y_open))

    ranker = None
    if has_activity:
        actions = action_codes(frame)
        propensity = frame["propensity"].to_numpy(dtype=np.float64)
        chosen = candidates[0]
        if len(candidates) > 1:
            chosen, selection = select_learner(
                x,
                frame,
                actions,
                y,
                propensity,
                candidates,
                economics,
                seed,
                num_threads,
                categorical,
                names,
                bar,
            )
            metrics["learner_selection"] = selection
        bar.set_postfix_str(f"ranker ({chosen}, all rows)")
        ranker = ActivityRanker(learner=chosen, seed=seed, num_threads=num_threads).fit(
            x, actions, y, propensity, categorical=categorical, feature_names=names
        )
        bar.update()
        metrics["action_counts"] = {
            a: int(c) for a, c in zip(ACTIONS, np.bincount(actions, minlength=K), strict=True)
        }
    bar.close()
    manifest = {
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data_fingerprint": data_fingerprint,
        "training_rows": int(len(frame)),
        "seed": seed,
        "metrics": metrics,
    }
    return ModelBundle(
        encoder=encoder,
        openness=openness,
        ranker=ranker,
        economics=economics,
        spec=spec.to_dict() if spec else None,
        manifest=manifest,
    )


def select_learner(
    x,
    frame,
    actions,
    y,
    propensity,
    candidates,
    economics,
    seed,
    num_threads,
    categorical,
    names,
    bar,
) -> tuple[str, dict[str, Any]]:
    """Fit each candidate on 80%, value its greedy policy on 20% (DR), return the best."""
    rng = np.random.default_rng(seed + 17)
    order = rng.permutation(len(y))
    cut = int(len(y) * (1 - SELECTION_FRACTION))
    fit_rows, eval_rows = np.sort(order[:cut]), np.sort(order[cut:])
    eval_frame = frame.iloc[eval_rows]
    fitted: dict[str, ActivityRanker] = {}
    for name in candidates:
        bar.set_postfix_str(f"ranker candidate {name}")
        fitted[name] = ActivityRanker(learner=name, seed=seed, num_threads=num_threads).fit(
            x[fit_rows],
            actions[fit_rows],
            y[fit_rows],
            propensity[fit_rows],
            categorical=categorical,
            feature_names=names,
        )
        bar.update()
    # One shared reward model for the DR estimates keeps the comparison fair; the plain
    # S-learner's held-out predictions serve (DR stays unbiased with known propensities).
    reference = fitted.get("s") or next(iter(fitted.values()))
    q_hat = np.nan_to_num(
        expected_values(reference.predict_proba(x[eval_rows]), economics), nan=0.0
    )
    selection = {
        name: policy_value_of(
            model, x[eval_rows], eval_frame, actions[eval_rows], q_hat, economics, seed
        )
        for name, model in fitted.items()
    }
    best = max(selection, key=lambda n: selection[n]["value"])
    return best, {"chosen": best, "rows_evaluated": int(len(eval_rows)), "dr_value": selection}

