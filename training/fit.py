"""Training: from a validated canonical log to a model bundle.

The activity learner is chosen by what matters, the off-policy value of the policy it
induces: every candidate's greedy policy is valued out of fold (cross-fitting, see
``selection_folds``) with the doubly robust estimator; the winner is refitted on all
rows. A log too small for its folds trains the default learner, saying why.

The label is the named reward (``models.schema.Reward``, ``--reward``): ``ve_success``
by default, or ``accepted``, a retention window, or a weighted value. ``apply_reward``
writes it into the label column and leaves out (and counts) the rows where it is still
unknown, e.g. a retention window that has not closed yet. A weighted value between 0
and 1 is learned as it is, with the log loss on labels in [0, 1]
(``models.boosting.probability_objective``), and every off-policy value uses it too.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.activities import ACTIONS
from models.bundle import ModelBundle
from models.drift import reference_histogram
from models.economics import Economics
from models.explain import ReasonTable
from models.features import FeatureEncoder
from models.openness import MIN_PROPENSITY, OpennessModel
from models.policy import choose_actions, expected_values
from models.ranker import (
    LEARNERS,
    MIN_ACTION_SUPPORT,
    ActivityRanker,
    action_contributions,
    too_few_rows,
)
from models.schema import CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES, Reward
from training.loading import action_codes, attempted, contact_policy_allowed
from training.ope import compare_policies, deterministic_probs, evaluate_policy
from training.overlap import id_sample
from training.spec import Spec

K = len(ACTIONS)
SELECTION_FRACTION = 0.2
BASELINE_LEARNER = "s"
REASON_SAMPLE_ROWS = 1000  # TreeSHAP costs ~0.2 ms per row and action
DRIFT_SAMPLE_ROWS = 100_000  # reference histograms for drift; plenty for 10 bins
REWARD_ATTR = "vea_reward"  # frame.attrs: the reward the label column already holds


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
    w = 1.0 / (n_activities * np.clip(propensity, MIN_PROPENSITY, 1.0))
    return w / w.mean()


# Why a row's reward can be unknown, for the notes that count the rows left out.
UNKNOWN_REWARD = "no VES answers for ve_success, a retention window still open, or a part missing"


def apply_reward(frame: pd.DataFrame, reward: Reward | None) -> tuple[pd.DataFrame, int]:
    """The log with the label column holding ``reward`` and the rows where it is unknown
    left out: ``(frame, rows left out)``. The default reward is the label itself, unknown
    where it is empty (an outcome without VES answers); a log with every label known is
    returned unchanged."""
    if reward is None or reward.is_default or frame.attrs.get(REWARD_ATTR) == reward.label:
        # The default, or applied already (the label holds it).
        if LABEL not in frame:
            return frame, 0
        known = frame[LABEL].notna().to_numpy()
        if known.all():
            return frame, 0
        out = frame.loc[known].reset_index(drop=True)
        out.attrs.update(frame.attrs)
        return out, int((~known).sum())
    missing = [name for name in reward.parts if name not in frame]
    if missing:
        raise ValueError(
            f"reward {reward.label} needs the column(s) {missing}, which the log does not "
            "have (`vea export` writes them; map your own under the spec's columns:)"
        )
    columns = {name: frame[name].to_numpy(dtype=np.float64) for name in reward.parts}
    if "offered" in frame:
        columns["offered"] = frame["offered"].to_numpy(dtype=np.float64)
    values = reward.values(columns, len(frame))
    known = ~np.isnan(values)
    out = frame.loc[known].copy()
    out[LABEL] = values[known]
    out.attrs[REWARD_ATTR] = reward.label
    return out.reset_index(drop=True), int((~known).sum())


def reward_record(reward: Reward, spec: Spec | None) -> dict[str, Any]:
    """``reward.to_dict()`` for a manifest or a report, in the user's words: the default
    reward of a spec that maps its own success column is that column."""
    out = reward.to_dict()
    words = spec.success_words() if spec is not None and reward.is_default else None
    if words:
        out["description"] = words
    return out


def net_rewards(frame: pd.DataFrame, actions: np.ndarray, economics: Economics) -> np.ndarray:
    """Value of each logged contact: success worth minus the chosen action's handle-time cost."""
    costs = np.asarray(economics.action_costs())
    return frame[LABEL].to_numpy(dtype=np.float64) * economics.value_of_success - costs[actions]


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
    reward: Reward | None = None,
) -> ModelBundle:
    """Fit the openness model and (when the log has activities) the activity ranker on
    the named reward (default: the spec's, else ``ve_success``)."""
    economics = economics or Economics.from_dict(spec.economics if spec else None)
    reward = reward or (spec.reward if spec is not None else None) or Reward()
    frame, left_out = apply_reward(frame, reward)
    if frame.empty:
        raise ValueError(
            f"no rows with a known reward {reward.label} ({left_out} left out: "
            "their windows are still open or the parts are missing)"
        )
    if learner != "auto" and learner not in LEARNERS:
        raise ValueError(f"unknown learner {learner!r}; use auto or one of {LEARNERS}")
    encoder = feature_encoder_for(frame, spec.features if spec else ())
    if not encoder.feature_names:
        raise ValueError(
            "the log gives the model no feature: no context column (segment, tenure_months, "
            "channel, ...) has a value, and no extra feature is declared"
        )
    x = encoder.transform(frame)
    y = frame[LABEL].to_numpy(dtype=np.float64)
    names = encoder.feature_names
    categorical = list(range(len(encoder.categorical)))
    has_activity = "activity" in frame and frame["activity"].notna().all()
    candidates = [learner] if learner != "auto" else list(LEARNERS)
    steps = 1 + (len(candidates) + (1 if len(candidates) > 1 else 0) if has_activity else 0)
    if has_activity:
        counts = np.bincount(action_codes(frame), minlength=K)
        if not (counts >= MIN_ACTION_SUPPORT).any():
            # Refused before any model is fitted, with the whole log's counts.
            raise ValueError(too_few_rows(counts))
    # None: tqdm's own "only on a terminal". A log (make run, cron, CI) got one \r-joined
    # line of hundreds of redraws instead of nothing.
    bar = tqdm(total=steps, desc="training", unit="model", disable=None if progress else True)
    metrics: dict[str, Any] = {"reward": reward.label}

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
    reasons = None
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
        reasons = reason_table(ranker, x, encoder, seed)
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
        "reward": {**reward_record(reward, spec), "rows": int(len(frame)), "left_out": left_out},
        "drift_reference": drift_reference(frame, encoder, seed),
    }
    if "interaction_id" in frame:
        # Recognises its training rows in any later log (training.overlap).
        manifest["training_ids"] = id_sample(frame["interaction_id"].dropna())
    return ModelBundle(
        encoder=encoder,
        openness=openness,
        ranker=ranker,
        economics=economics,
        spec=spec.to_dict() if spec else None,
        manifest=manifest,
        reasons=reasons,
    )


def drift_reference(
    frame: pd.DataFrame, encoder: FeatureEncoder, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Per-feature training histograms for drift (``models.drift``), from a sample."""
    if len(frame) > DRIFT_SAMPLE_ROWS:
        frame = frame.sample(DRIFT_SAMPLE_ROWS, random_state=seed + 23)
    out = {}
    for name in encoder.feature_names:
        if name not in frame:
            continue
        column = frame[name].astype(object)
        values = column.where(column.notna(), None).tolist()
        out[name] = reference_histogram(values, numeric=name in encoder.numeric)
    return out


def reason_table(
    ranker: ActivityRanker, x: np.ndarray, encoder: FeatureEncoder, seed: int
) -> ReasonTable:
    """Reasons from exact contributions on a sample (TreeSHAP is too slow per decision)."""
    rows = np.random.default_rng(seed + 5).permutation(len(x))[:REASON_SAMPLE_ROWS]
    sample = x[np.sort(rows)]
    vocab_sizes = [len(encoder.vocabulary_[name]) for name in encoder.categorical]
    with warnings.catch_warnings():
        # A ranker that learned no value activity (a log of `none` only) leaves nothing to
        # average: numpy warns from the reasons code on the user's console; the table is
        # all zeros, which is right (no activity is ever suggested), and `vea train` says so.
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        return ReasonTable.fit(
            sample, action_contributions(ranker, sample), len(encoder.categorical), vocab_sizes
        )


def customers_of(frame: pd.DataFrame) -> np.ndarray | None:
    """Customer per row: customers recur in a live log, so bootstraps resample them and
    folds keep them whole. A row without a customer id is a customer of its own (not one
    customer of them all)."""
    if "customer_id" not in frame:
        return None
    ids = frame["customer_id"]
    keys = ids.astype(str).to_numpy(dtype=object)
    missing = ids.isna().to_numpy()
    if missing.any():
        # A NUL cannot be in a stored or read customer id: these never meet a real one.
        keys[missing] = [f"\0row {i}" for i in np.flatnonzero(missing)]
    return keys


def selection_folds(
    n: int, seed: int, customers: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-fitting splits: every row is valued out of fold on small logs, where a single
    20% hold-out is too noisy to tell learners apart; one split suffices on large ones.

    With ``customers`` (one key per row) a customer's contacts stay on one side of every
    split: split by row, a candidate was valued on contacts of customers it had learned
    from, which flatters the learner that fits a customer's own contacts best. Fewer
    customers than folds: by row, as without ids."""
    folds = 5 if n <= 50_000 else (2 if n <= 300_000 else 1)
    rng = np.random.default_rng(seed + 17)
    distinct, customer_of_row = (
        np.unique(customers.astype(str), return_inverse=True)
        if customers is not None
        else (None, None)
    )
    if distinct is None or len(distinct) < max(folds, 2):
        order = rng.permutation(n)
        if folds == 1:
            cut = int(n * (1 - SELECTION_FRACTION))
            return [(np.sort(order[:cut]), np.sort(order[cut:]))]
        parts = np.array_split(order, folds)
        return [
            (np.sort(np.concatenate(parts[:i] + parts[i + 1 :])), np.sort(parts[i]))
            for i in range(folds)
        ]
    # Customers in a random order, dealt into contiguous blocks: the folds (or the single
    # split's 80/20) hold shares of the customers, and so about those shares of the rows.
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[rng.permutation(len(distinct))] = np.arange(len(distinct))
    rank_of_row = rank[customer_of_row.reshape(-1)]
    if folds == 1:
        held = rank_of_row >= int(len(distinct) * (1 - SELECTION_FRACTION))
        return [(np.flatnonzero(~held), np.flatnonzero(held))]
    fold_of_row = rank_of_row * folds // len(distinct)
    return [
        (np.flatnonzero(fold_of_row != i), np.flatnonzero(fold_of_row == i)) for i in range(folds)
    ]


def fold_shortfall(
    actions: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    logged_counts: np.ndarray | None = None,
    rows_name: str = "rows",
) -> str | None:
    """Why cross-fitting cannot value the learners on this log, or None when it can.

    Each fold fits on a part of the log (4/5 of it with 5 folds), so an action just above
    ``MIN_ACTION_SUPPORT`` rows in the whole log can fall below it in a fold: no fold's
    model scores it (or, when no action keeps enough rows, none can be fitted at all).
    The learners would then be compared on policies that never suggest an activity the
    final model does suggest. ``logged_counts``: rows per action in the whole log when
    ``actions`` is a sample of it (the final model learns from the whole log)."""
    counts = np.bincount(actions, minlength=K) if logged_counts is None else logged_counts
    fewest = np.min([np.bincount(actions[fit], minlength=K) for fit, _ in folds], axis=0)
    short = (counts >= MIN_ACTION_SUPPORT) & (fewest < MIN_ACTION_SUPPORT)
    if not short.any():
        return None
    names = [a for i, a in enumerate(ACTIONS) if short[i]]
    found = ", ".join(f"{ACTIONS[i]} {fewest[i]}/{counts[i]}" for i in np.flatnonzero(short))
    how = f"each of the {len(folds)} folds" if len(folds) > 1 else "the selection split"
    return (
        f"{how} fits on {len(folds[0][0]) / max(len(actions), 1):.0%} of the "
        f"{len(actions)} {rows_name}, which leaves {', '.join(names)} fewer than the "
        f"{MIN_ACTION_SUPPORT} rows a model needs (rows in the smallest fold / logged: "
        f"{found}), so no learner could be valued on every activity"
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
    logged_counts: np.ndarray | None = None,
    rows_name: str = "rows",
) -> tuple[str, dict[str, Any]]:
    """Choose the learner whose greedy policy has the best off-policy value out of fold.

    Each candidate's policy and the plain S-learner's reward model (shared, so the
    comparison is fair; DR stays unbiased with known propensities) are cross-fitted. The
    simplest learner, ``s``, stays unless another beats it on the paired DR difference
    with a 95% interval above zero: a learner that only wins by noise is not chosen.
    When the folds are too small to learn every activity the whole log teaches
    (``fold_shortfall``), nothing is compared: ``s``, with a ``note`` saying why.
    """
    n = len(y)
    # A customer's contacts on one side of every split, and resampled together.
    customers = customers_of(frame)
    folds = selection_folds(n, seed, customers)
    baseline = BASELINE_LEARNER if BASELINE_LEARNER in candidates else candidates[0]
    shortfall = fold_shortfall(actions, folds, logged_counts, rows_name)
    if shortfall:
        # Enough rows to fit on the whole log, too few to compare learners out of fold:
        # the default learner, and the user is told why.
        bar.update(len(candidates))
        return baseline, {
            "chosen": baseline,
            "baseline": baseline,
            "skipped": True,
            "folds": len(folds),
            "note": (
                f"learner selection skipped: {shortfall}; trained the default learner "
                f"{baseline} (--learner names another)"
            ),
        }
    choices = {name: np.full(n, -1, dtype=np.int64) for name in candidates}
    # Each candidate is valued as it would serve, within what the contact policy allowed
    # (a `vea export` log says so), as the promotion gate values it.
    allowed = contact_policy_allowed(frame)
    q_hat = np.zeros((n, K))
    evaluated = np.zeros(n, dtype=bool)
    for fit_rows, eval_rows in folds:
        for name in candidates:
            bar.set_postfix_str(f"ranker candidate {name}")
            model = ActivityRanker(
                learner=name, seed=seed, num_threads=num_threads, refit=False
            ).fit(
                x[fit_rows],
                actions[fit_rows],
                y[fit_rows],
                propensity[fit_rows],
                categorical=categorical,
                feature_names=names,
            )
            values = expected_values(model.predict_proba(x[eval_rows]), economics)
            choices[name][eval_rows] = choose_actions(
                values, None if allowed is None else allowed[eval_rows]
            )
            if name == BASELINE_LEARNER:
                q_hat[eval_rows] = np.nan_to_num(values, nan=0.0)
        evaluated[eval_rows] = True
    bar.update(len(candidates))
    rows = np.flatnonzero(evaluated)
    rewards = net_rewards(frame.iloc[rows], actions[rows], economics)
    logged, prop, q = actions[rows], propensity[rows], q_hat[rows]
    clusters = None if customers is None else customers[rows]
    targets = {name: deterministic_probs(c[rows], K) for name, c in choices.items()}
    values = {
        name: evaluate_policy(
            rewards, logged, prop, t, q_hat=q, n_boot=200, seed=seed, clusters=clusters
        )["dr"].to_dict()
        for name, t in targets.items()
    }
    gains = {
        name: compare_policies(
            rewards,
            logged,
            prop,
            targets[baseline],
            t,
            q_hat=q,
            n_boot=200,
            seed=seed,
            clusters=clusters,
        ).to_dict()
        for name, t in targets.items()
        if name != baseline
    }
    winners = {name: g for name, g in gains.items() if (g["ci_low"] or 0.0) > 0.0}
    best = max(winners, key=lambda name: winners[name]["value"]) if winners else baseline
    return best, {
        "chosen": best,
        "baseline": baseline,
        "rows_evaluated": int(len(rows)),
        "folds": len(folds),
        "dr_value": values,
        "gain_over_baseline": gains,
    }
