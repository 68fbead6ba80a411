"""`vea retrain`: export -> train a challenger -> off-policy gate -> promote or refuse.

The gate values the champion's and the challenger's greedy policies on the same logged
rows with the doubly robust estimator and a paired bootstrap (``training.ope``). Both the
challenger and the reward model are **cross-fitted**: the log is split into folds by
customer; for each fold a challenger and a reward model are fitted on the other folds and
scored on this one, so no row is valued by a model that learned from it. The rows are
the treated contacts (``policy_rows``: a holdout contact gets ``none`` whatever the
model), and the challenger that would serve is then fitted on all of them, the holdout
left out as the folds leave it out. So the 95% interval is of the improvement of this
learner trained on this log's treated rows, cross-fitted (each valued challenger had
(folds - 1) / folds of them, ``GATE_FOLDS``), not of the one model promoted, which
learned from more rows and is on average better: only the interval's lower end, a
one-sided 97.5% bound, is claimed for it, and the challenger is promoted only when that
lies above zero (or with ``--force``, which is recorded); every gate decision is written
to the registry history with its numbers and what they are of (``interval_of``,
``promotes_when``).

The gate values the suggestion, not the delivered activity: the logged action is what
the policy served (``activity``, with its propensity), whatever the agent then did,
because the suggestion is what the policy controls (intent to treat). The reward is the
named one (``--reward``, ``models.schema.Reward``), by default the champion's own (its
manifest's ``reward``; ``ve_success`` without a champion), so a plain retrain keeps the
objective the deployment optimises and gates on the reward `vea evaluate --shadow`
compares on. Rows whose reward is still unknown are left out and counted.

The export is a callable (the CLI passes the service's ``export`` command), so this module
never imports the service's web or database code; its option defaults (VEA_REGISTRY,
VEA_DRIFT_PSI_THRESHOLD) are read through ``training.settings``, which borrows only the
settings checks (``service.config``: no Flask, no connection) so that a bad value is
refused in the same words as at the service's start.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from models.activities import ACTIONS
from models.boosting import MAX_THREADS
from models.bundle import ModelBundle
from models.drift import feature_psi, level
from models.economics import Economics
from models.policy import choose_actions, expected_values
from models.ranker import LEARNERS, ActivityRanker
from models.registry import ChampionChanged, Registry
from models.schema import LABEL, REWARDS, Reward, RewardError, parse_instant, parse_reward
from models.tables import atomic_file, os_reason
from training.fit import (
    UNKNOWN_REWARD,
    apply_reward,
    customers_of,
    feature_encoder_for,
    net_rewards,
    train_bundle,
)
from training.loading import DataError, action_codes, contact_policy_allowed, write_table
from training.ope import (
    MAX_UNSUPPORTED,
    Estimate,
    compare_policies,
    deterministic_probs,
    diagnostics,
    evaluate_policy,
    overflow_message,
    overflowing_rows,
)
from training.overlap import seen_share
from training.settings import registry_option, setting
from training.spec import SOURCES_ATTR, Spec

K = len(ACTIONS)
# Customer folds of the cross-fitting. The challengers the gate values are each fitted on
# (folds - 1) / folds of the treated rows, the one it promotes on all of them, and a
# challenger learns from every row it gets: with 2 folds the valued ones had half the
# rows, fell short of the promoted one by about one standard error, and the 95% interval
# held the promoted challenger's true improvement in 36 of 44 simulated logs, every miss
# below it (bench/learning_loop.py --only gate, 2,000 and 3,000 rows); with 5, 41 truly
# better challengers promoted instead of 32. A smaller shortfall remains (the valued ones
# still learn from 4/5 of the rows): so the interval is said to be of the learner on this
# log, cross-fitted (``interval_of``), and only its lower end, which decides, is claimed
# for the challenger promoted. On 67 logs of 2,000 rows with a 20% holdout (1,590 treated
# rows on average), the promoted challenger's true improvement is 0.14 above the valued
# ones' (sd 0.14; below it in 7): the interval holds the valued ones' in 63 (1 below its
# lower end), the promoted one's in 60, all 7 misses above it: the lower end held for it
# in 67 of 67 (39 of 40 without a holdout). Fitted on the holdout's rows as well (before
# it learned from the treated rows only), it was no better (+0.001, sd 0.11) and covered
# alike (62, 5 above). Every challenger there is truly better, so the bench cannot show a
# worse one passed. The price: 5 challenger and 5 reward-model fits on 4/5 of the rows.
GATE_FOLDS = 5
# Below this many effective rows (Kish's ESS of the challenger's importance weights) the
# logs barely saw what the challenger would do: its interval is not trusted, whatever it
# says (heavy-tailed weights make bootstrap intervals too narrow).
MIN_ESS = 100.0
DRIFT_WARN_PSI = 0.2
# `vea retrain`'s exit when the champion changed while it ran (status "stale"): its
# challenger is stored but not promoted. Not 0, so that a scheduled retrain does not pass
# for one that promoted or was refused; not 1 or 2, which say the command failed or was
# given bad input.
EXIT_CHAMPION_CHANGED = 3

Fit = Callable[[pd.DataFrame], ModelBundle]
MEASURES = "the suggestion (intent to treat)"
# What `vea retrain --min-rows` counts: the rows the gate judges.
MIN_ROWS_COUNT = "treated rows with a known reward, the rows the gate judges"
# What the gate decides by. The challenger promoted is fitted on every treated row, the
# ones valued on (folds - 1) / folds of them: the interval is of the learner on this log,
# not of that one model, whose true gain is on average above the valued ones' (it learned
# from more rows), so the lower end is the one that can be claimed for it.
PROMOTES_WHEN = (
    "the interval's lower end is above zero (a one-sided 97.5% lower bound) and the log "
    "covers the challenger's choices; the challenger that would serve is fitted on all these rows, more than any valued one had, "
    "so the lower end bounds its gain conservatively and the upper end may fall short of it"
)


def interval_of(folds: int) -> str:
    """What the gate's 95% interval is of, in its record and on the console."""
    return (
        "the improvement of this learner trained on this log's treated rows, cross-fitted: "
        f"each contact valued by a challenger fitted on the other {folds - 1}/{folds} of "
        "the customers"
    )


# A log's row numbers as the loader gives them (1-based), carried through the rows left
# out (reward unknown, holdout) so that a refused row is named as the user counts it.
ROW = "_row"


def learner_option(default: str, help: str):
    """``--learner`` of `vea train` and `vea retrain`: auto or one of the ranker's learners."""
    return click.option(
        "--learner",
        type=click.Choice(["auto", *LEARNERS]),
        default=default,
        show_default=True,
        help=help,
    )


def threads_option(func):
    """``--threads`` of the commands that fit LightGBM models."""
    return click.option(
        "--threads",
        type=click.IntRange(min=0, max=MAX_THREADS),
        default=0,
        show_default=True,
        help="LightGBM threads (0: all cores).",
    )(func)


def bootstrap_option(help: str):
    """``--bootstrap`` of the commands that give off-policy values with 95% intervals."""
    return click.option(
        "--bootstrap",
        type=click.IntRange(min=50),
        default=500,
        show_default=True,
        help=help,
    )


def reward_options(func):
    """``--reward`` and ``--reward-weights`` for `vea train`, `vea retrain` and
    `vea evaluate --shadow` (the reward the comparison is on)."""
    func = click.option(
        "--reward-weights",
        metavar="PART=W,...",
        help="Weights of --reward weighted, e.g. ve_success=1,accepted=0.5,retained_60d=2 "
        "(parts: ve_success, accepted, retained_30d/60d/90d, upgraded; weights >= 0).",
    )(func)
    return click.option(
        "--reward",
        type=click.Choice(REWARDS),
        default=None,
        help="What the model learns to raise: ve_success, accepted, a retention window, "
        "upgraded, or weighted. Default for `vea train`: the spec's reward:, else ve_success; "
        "for `vea retrain`: the champion's own (its manifest), else ve_success. Rows whose "
        "reward is still unknown (retention window open) are left out and counted. With "
        "`vea evaluate --shadow`: the reward the comparison is on (default: the champion's "
        "own).",
    )(func)


def challenger_spec(
    champion: ModelBundle | None, frame: pd.DataFrame
) -> tuple[Spec | None, list[str]]:
    """The champion's spec for its challenger, and the champion's extra features the log
    lacks (left out of it). The challenger keeps the champion's extra features, reward
    and layout for ``evaluate`` and ``score``; its economics are the champion's (given to
    the fit), so it serves with the trade-off the gate valued it with."""
    if champion is None or not champion.spec:
        return None, []
    spec = Spec.from_dict(champion.spec, source="the champion's spec")
    missing = [name for name in spec.features if name not in frame]
    spec.features = [name for name in spec.features if name in frame]
    spec.feature_types = {k: v for k, v in spec.feature_types.items() if k in frame}
    return spec, missing


def reward_from_options(name: str | None, weights: str | None, spec=None) -> Reward:
    """The reward of the command line, else of the spec, else ``ve_success``."""
    if name is None and weights:
        raise click.BadParameter("needs --reward weighted", param_hint="--reward-weights")
    if name is None:
        return (spec.reward if spec is not None else None) or Reward()
    try:
        return parse_reward(name, weights)
    except RewardError as exc:
        hint = "--reward-weights" if weights or name == "weighted" else "--reward"
        raise click.BadParameter(str(exc), param_hint=hint) from None


REWARD_FROM_CHAMPION = "the champion's"


def champion_reward(champion: ModelBundle | None) -> tuple[Reward, str]:
    """The reward when none is named, and where it came from: the champion's own (its
    manifest's ``reward``), else ``ve_success``. `vea retrain` and the gate default to it,
    as `vea evaluate --shadow` does, so a challenger keeps the deployment's objective."""
    if champion is None:
        return Reward(), "default: no champion"
    named = champion.manifest.get("reward")
    if not named:
        return Reward(), "default: the champion's manifest names none"
    try:
        return Reward.from_dict(named), REWARD_FROM_CHAMPION
    except RewardError as exc:
        raise RewardError(f"the champion's manifest reward: {exc}") from None


@dataclass
class GateResult:
    promote: bool
    reason: str
    rows: int
    folds: int
    improvement: dict[str, Any] | None = None
    champion_value: dict[str, Any] | None = None
    challenger_value: dict[str, Any] | None = None
    logged_value: float | None = None
    diagnostics: dict[str, float] = field(default_factory=dict)
    reward: str = "ve_success"

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "rows": self.rows,
            "folds": self.folds,
            "estimator": "dr",
            "measures": MEASURES,
            # What the interval is of, and what of it decides (the challenger promoted is
            # not one of those valued).
            "interval_of": interval_of(self.folds) if self.folds else None,
            "promotes_when": PROMOTES_WHEN,
            "reward": self.reward,
            "alpha": 0.05,
            "improvement": self.improvement,
            "champion_value": self.champion_value,
            "challenger_value": self.challenger_value,
            "logged_value": self.logged_value,
            "diagnostics": self.diagnostics,
        }


def greedy_actions(bundle: ModelBundle, frame: pd.DataFrame, economics: Economics) -> np.ndarray:
    """Action codes the bundle's deterministic policy picks for every row: as it would
    serve, within what the contact policy allowed there when the log says
    (``contact_policy_allowed``). Unconstrained, a policy would be valued, and found
    unsupported, on activities it could never serve: the contacts where the contact
    policy allowed no attempt were logged with `none` at probability 1, so the gate
    refused every challenger once they passed 5% of the log."""
    x = bundle.encoder.transform(frame)
    if bundle.ranker is None:
        return np.zeros(len(frame), dtype=np.int64)  # an openness-only model never attempts
    values = expected_values(bundle.ranker.predict_proba(x), economics)
    return choose_actions(values, contact_policy_allowed(frame))


def customer_folds(frame: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Fold of every row, all of a customer's rows in one fold: a hash of seed and
    customer modulo ``folds``. That leaves a fold empty for about half the logs of ten
    customers: then the customers are dealt round the folds in their hash order instead,
    so none is empty while there are at least ``folds`` customers. (Only then: the same
    seed keeps giving a log the folds, and so the gate decision, it gave before.) A row
    without a customer id is a customer of its own."""
    customers = customers_of(frame)
    keys = np.arange(len(frame)).astype(str) if customers is None else customers.astype(str)
    distinct, customer_of_row = np.unique(keys, return_inverse=True)
    draws = np.array(
        [
            int.from_bytes(hashlib.sha256(f"{seed}:{k}".encode()).digest()[:4], "big")
            for k in distinct
        ],
        dtype=np.int64,
    )
    fold_of_customer = draws % folds
    if len(np.unique(fold_of_customer)) < min(folds, len(distinct)):
        fold_of_customer[np.argsort(draws, kind="stable")] = np.arange(len(distinct)) % folds
    return fold_of_customer[customer_of_row.reshape(-1)]


def reward_model(frame: pd.DataFrame, seed: int, num_threads: int) -> Callable:
    """An S-learner of P(success | context, action) fitted on ``frame``: q_hat for DR."""
    encoder = feature_encoder_for(frame)
    ranker = ActivityRanker(learner="s", seed=seed, num_threads=num_threads, refit=False).fit(
        encoder.transform(frame),
        action_codes(frame),
        frame[LABEL].to_numpy(dtype=np.float64),
        frame["propensity"].to_numpy(dtype=np.float64),
        categorical=list(range(len(encoder.categorical))),
        feature_names=encoder.feature_names,
    )
    return lambda other: ranker.predict_proba(encoder.transform(other))


def cross_fitted_values(
    frame: pd.DataFrame,
    fold_of: np.ndarray,
    folds: int,
    economics: Economics,
    seed: int,
    num_threads: int,
) -> np.ndarray:
    """DR's direct-method term: each row's expected value of every action, from a reward
    model that never saw the row's customer (fitted on the other folds)."""
    q_hat = np.zeros((len(frame), K))
    for f in range(folds):
        held = fold_of == f
        q = reward_model(frame.loc[~held].reset_index(drop=True), seed + f, num_threads)(
            frame.loc[held].reset_index(drop=True)
        )
        q_hat[held] = np.nan_to_num(expected_values(q, economics), nan=0.0)
    return q_hat


@dataclass(frozen=True)
class GreedyComparison:
    improvement: Estimate  # second policy minus first, paired on the same rows
    values: dict[str, Estimate]
    diagnostics: dict[str, Any]  # of the second policy against the logging policy
    logged_value: float


def holdout_rows(frame: pd.DataFrame) -> np.ndarray:
    """Which rows are holdout contacts (``experiment_arm``): they get ``none`` whatever
    the model, so no policy is valued, or trained for promotion, on them."""
    if "experiment_arm" not in frame:
        return np.zeros(len(frame), dtype=bool)
    return (frame["experiment_arm"] == "holdout").to_numpy()


def policy_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The contacts a policy acts on: a holdout contact gets ``none`` whatever the model
    (``experiment_arm``), so champion, challenger and shadow are compared without them,
    and the challenger `vea retrain` promotes learns from these rows only (the ones its
    gate's cross-fitted challengers learn from)."""
    held = holdout_rows(frame)
    if not held.any():
        return frame
    out = frame.loc[~held].reset_index(drop=True)
    out.attrs.update(frame.attrs)  # e.g. the reward the label already holds
    return out


def compare_greedy(
    frame: pd.DataFrame,
    fold_of: np.ndarray,
    folds: int,
    policies: dict[str, np.ndarray],
    economics: Economics,
    *,
    seed: int,
    num_threads: int,
    n_boot: int,
) -> GreedyComparison:
    """DR values of two deterministic policies (an action code per row) on the log, and
    the second minus the first, with the reward model cross-fitted over ``fold_of`` and
    customers resampled together. Shared by the promotion gate and the shadow check."""
    actions = action_codes(frame)
    rewards = net_rewards(frame, actions, economics)
    propensity = frame["propensity"].to_numpy(dtype=np.float64)
    q_hat = cross_fitted_values(frame, fold_of, folds, economics, seed, num_threads)
    customers = customers_of(frame)
    targets = {name: deterministic_probs(codes, K) for name, codes in policies.items()}
    (_, t_first), (_, t_second) = targets.items()
    improvement = compare_policies(
        rewards,
        actions,
        propensity,
        t_first,
        t_second,
        q_hat=q_hat,
        n_boot=n_boot,
        seed=seed,
        clusters=customers,
    )
    values = {
        name: evaluate_policy(
            rewards,
            actions,
            propensity,
            t,
            q_hat=q_hat,
            n_boot=n_boot,
            seed=seed,
            clusters=customers,
        )["dr"]
        for name, t in targets.items()
    }
    return GreedyComparison(
        improvement, values, diagnostics(actions, propensity, t_second), float(rewards.mean())
    )


def numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its row numbers in ``ROW``, for ``refuse_overflowing``."""
    return frame.assign(**{ROW: np.arange(1, len(frame) + 1)})


def refuse_overflowing(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (rows a policy is valued on, ``numbered``) without ``ROW``, after checking
    no propensity is too small to value a policy with (``training.ope.overflowing_rows``):
    a ``DataError`` naming the rows otherwise, as `vea evaluate` says it. A propensity of
    1e-300 is valid, in (0, 1], but its weight overflowed the gate's and the shadow's
    estimators: numpy warnings, then values of -3e300 gated on (and a challenger stored),
    or a shadow comparison ending in 'Out of range float values are not JSON compliant'."""
    if frame.empty or "propensity" not in frame:
        # An export of no decisions can lack every column, an openness-only log the
        # propensity: nothing to value a policy with.
        return frame.drop(columns=ROW)
    problems = overflowing_propensities(frame, frame[ROW].to_numpy())
    if problems:
        raise DataError(problems)
    return frame.drop(columns=ROW)


def overflowing_propensities(frame: pd.DataFrame, rows: np.ndarray) -> list[str]:
    """What to say of ``frame``'s propensities too small to value a policy with
    (``training.ope.overflowing_rows``), by their ``rows`` (the log's numbers); empty when
    there are none. A spec-mapped log (the champion's layout) names the user's column."""
    propensity = frame["propensity"].to_numpy(dtype=np.float64)
    tiny = overflowing_rows(propensity)
    if not tiny.size:
        return []
    field = (frame.attrs.get(SOURCES_ATTR) or {}).get("propensity")
    shown = f"{field} (propensity)" if field and field != "propensity" else "propensity"
    return overflow_message(rows[tiny], propensity[tiny], shown)


def gate_refusal(improvement: Estimate, health: dict[str, float], min_ess: float) -> str | None:
    """Why the promotion gate refuses a challenger, or None when it passes: ``interval``
    (the 95% interval of the improvement does not lie above zero), ``unsupported`` (over
    ``MAX_UNSUPPORTED`` of its choices fall where the log never served them) or ``ess``
    (the importance weights leave fewer than ``min_ess`` effective rows). The one rule
    of the gate and of the shadow check's "would pass the gate"."""
    if not improvement.ci_low > 0:
        return "interval"
    if health["unsupported_mass"] > MAX_UNSUPPORTED:
        return "unsupported"
    if health["ess"] < min_ess:
        return "ess"
    return None


def gate(
    frame: pd.DataFrame,
    champion: ModelBundle | None,
    fit: Fit,
    *,
    economics: Economics | None = None,
    folds: int = GATE_FOLDS,
    seed: int = 0,
    n_boot: int = 500,
    num_threads: int = 0,
    min_ess: float = MIN_ESS,
    reward: Reward | None = None,
) -> GateResult:
    """Cross-fitted DR comparison of a challenger (``fit`` on training folds) with the
    champion on a validated canonical log's treated rows (``policy_rows``), on the named
    reward (default: the champion's own, ``ve_success`` without one; rows where it is
    unknown are left out). The interval is of the learner's improvement on these rows,
    cross-fitted (``interval_of``); the challenger to promote on it is ``fit`` on all of
    them (``retrain``), whose gain only the interval's lower end bounds."""
    economics = economics or (champion.economics if champion is not None else Economics())
    reward = reward or champion_reward(champion)[0]
    frame, _left_out = apply_reward(policy_rows(frame), reward)
    n = len(frame)
    if champion is None:
        return GateResult(
            True, "no champion: the first model is promoted", n, 0, reward=reward.label
        )
    fold_of = customer_folds(frame, folds, seed)
    if len(np.unique(fold_of)) < folds:
        ids = customers_of(frame)
        customers = n if ids is None else len(np.unique(ids.astype(str)))
        raise DataError(
            f"too few customers to judge the challenger: the log's {n} contacts come from "
            f"{customers} customers, and the gate cross-fits over {folds} customer folds "
            "(a customer's contacts stay in one)"
        )
    champ = greedy_actions(champion, frame, economics)
    chall = np.empty(n, dtype=np.int64)
    for f in range(folds):
        held = fold_of == f
        train = frame.loc[~held].reset_index(drop=True)
        chall[held] = greedy_actions(fit(train), frame.loc[held].reset_index(drop=True), economics)
    result = compare_greedy(
        frame,
        fold_of,
        folds,
        {"champion": champ, "challenger": chall},
        economics,
        seed=seed,
        num_threads=num_threads,
        n_boot=n_boot,
    )
    health = result.diagnostics
    refusal = gate_refusal(result.improvement, health, min_ess)
    reason = {
        None: "challenger better: the 95% interval of the DR improvement is above zero",
        "interval": "refused: the 95% interval of the DR improvement does not lie above zero",
        "unsupported": (
            f"refused: for {health['unsupported_mass']:.0%} of the contacts the challenger "
            "chooses an activity the log never served there (turn on exploration, "
            "VEA_EXPLORATION): the improvement would rest on the reward model's guesses"
        ),
        "ess": (
            f"refused: effective sample size {health['ess']:.0f} < {min_ess:.0f}: the logs "
            "barely cover the challenger's choices (explore more or wait for more data)"
        ),
    }[refusal]
    return GateResult(
        refusal is None,
        reason,
        n,
        folds,
        improvement=result.improvement.to_dict(),
        champion_value=result.values["champion"].to_dict(),
        challenger_value=result.values["challenger"].to_dict(),
        logged_value=result.logged_value,
        diagnostics=health,
        reward=reward.label,
    )


def drift_against(bundle: ModelBundle | None, frame: pd.DataFrame) -> dict[str, float | None]:
    """PSI of the log's features against the bundle's training histograms."""
    if bundle is None:
        return {}
    references = bundle.manifest.get("drift_reference") or {}
    live = {}
    for name in references:
        if name in frame:
            column = frame[name].astype(object)
            live[name] = column.where(column.notna(), None).tolist()
    return {k: v for k, v in feature_psi(references, live).items() if v is not None}


@dataclass
class RetrainResult:
    # "promoted", "refused", "skipped", or "stale": the gate passed (or --force) but the
    # champion it judged against was replaced meanwhile, so nothing was promoted.
    status: str
    challenger: str | None
    champion: str | None
    gate: GateResult | None
    drift: dict[str, float | None]
    drift_warnings: list[str]
    rows: int
    reward: str = "ve_success"
    left_out: int = 0  # rows whose reward is still unknown (e.g. window open)
    # Where the reward came from: "command line", "the champion's", "default: ...".
    reward_source: str = "given"
    reason: str = ""  # why it was skipped or stale (the gate's own reason is in ``gate``)
    holdout: int = 0  # holdout contacts with a known reward: not judged, not trained on


def retrain(
    frame: pd.DataFrame,
    registry: Registry,
    *,
    force: bool = False,
    min_rows: int = 1000,
    fit: Fit | None = None,
    learner: str = "s",
    seed: int = 0,
    n_boot: int = 500,
    num_threads: int = 0,
    source: str = "",
    drift_threshold: float = DRIFT_WARN_PSI,
    reward: Reward | None = None,
    reward_source: str = "given",
) -> RetrainResult:
    """Train a challenger on a validated log, gate it against the champion, record it.

    ``reward`` is the label of the challenger and of the gate; without one, the champion's
    own (its manifest), else ``ve_success``. ``reward_source`` says where a given reward
    came from (the CLI: "command line"); it is recorded with the reward. Rows where the
    reward is still unknown are left out and counted (``left_out``).

    The challenger is promoted only over the champion it was gated against (None: none):
    if another became champion meanwhile (an operator's `vea models promote`, another
    retrain), it is stored but not promoted, status "stale", and the history says why."""
    champion_version = registry.champion()
    champion = registry.load(champion_version) if champion_version else None
    if reward is None:
        reward, reward_source = champion_reward(champion)
    frame, left_out = apply_reward(numbered(frame), reward)
    # The rows the gate judges and the promoted challenger learns from: the treated
    # contacts (the gate's cross-fitted challengers never see a holdout row, so neither
    # does the one promoted). Refused before anything is trained or recorded.
    treated = refuse_overflowing(policy_rows(frame))
    frame = frame.drop(columns=ROW)
    holdout = len(frame) - len(treated)
    drift = drift_against(champion, frame)
    warnings = [
        f"drift: {name} PSI {value:.3f} ({level(value)})"
        for name, value in drift.items()
        if value is not None and value > drift_threshold
    ]
    seen = (
        seen_share(champion.manifest.get("training_ids"), treated["interaction_id"].dropna())
        if champion is not None and "interaction_id" in treated
        else None
    )
    if seen:
        warnings.append(
            f"about {seen:.0%} of this log is the champion's own training data: the gate "
            "values the champion on rows it learned from, which flatters it (a challenger "
            "must then clear a higher bar); --since can leave them out"
        )
    elif champion is not None and source and champion.manifest.get("data_fingerprint") == source:
        # A log without interaction ids (e.g. Hillstrom) is told by its file alone.
        warnings.append(
            "this log is the very file the champion was trained on (same fingerprint): the "
            "gate values the champion on rows it learned from, which flatters it (a "
            "challenger must then clear a higher bar)"
        )
    if len(treated) < min_rows:
        # Counted as the gate judges them: the holdout rows were counted too (a log of 430
        # rows passed the check, and the gate judged 304 of them). The sentence is the one
        # the dashboard translates: what was counted is a field of its own.
        skipped_because = f"{len(treated)} rows < --min-rows {min_rows}"
        registry.record(
            {
                "event": "gate",
                "decision": "skipped",
                "reason": skipped_because,
                "rows_counted": MIN_ROWS_COUNT,
                "holdout_rows": holdout,
                "champion": champion_version,
                "source": source,
                "reward": reward.label,
                "reward_source": reward_source,
                "reward_left_out": left_out,
                "warnings": warnings,
            }
        )
        return RetrainResult(
            "skipped",
            None,
            champion_version,
            None,
            drift,
            warnings,
            len(treated),
            reward=reward.label,
            left_out=left_out,
            reward_source=reward_source,
            reason=skipped_because,
            holdout=holdout,
        )
    spec, missing = challenger_spec(champion, frame)
    if missing:
        warnings.append(
            f"the champion reads {', '.join(missing)}, which the log lacks: the challenger "
            "learns without them (send them in the decisions' features to keep them)"
        )
    fit = fit or (
        lambda rows: train_bundle(
            rows,
            spec=spec,
            economics=champion.economics if champion is not None else None,
            seed=seed,
            learner=learner,
            num_threads=num_threads,
            progress=False,
            reward=reward,
        )
    )
    result = gate(
        treated, champion, fit, seed=seed, n_boot=n_boot, num_threads=num_threads, reward=reward
    )
    # On the rows the gate's challengers were drawn from (every one of them): fitted on
    # the holdout's `none` contacts too, it was a model the gate never valued the like of.
    bundle = fit(treated)
    note = ((bundle.manifest.get("metrics") or {}).get("learner_selection") or {}).get("note")
    if note:
        warnings.append(note)  # --learner auto on a log too small to compare learners
    bundle.manifest["data_fingerprint"] = bundle.manifest.get("data_fingerprint") or source[:64]
    if isinstance(bundle.manifest.get("reward"), dict):
        bundle.manifest["reward"]["left_out"] = left_out
        bundle.manifest["reward"]["source"] = reward_source
    # Promoted below, by the gate's decision, like any challenger (the first model too).
    version = registry.add(bundle, first_becomes_champion=False)
    promote = result.promote or force
    forced = bool(force and not result.promote)
    registry.record(
        {
            "event": "gate",
            "decision": "promote" if promote else "refuse",
            "forced": forced,
            "challenger": version,
            "champion": champion_version,
            "source": source,
            "drift_psi": drift,
            "reward_left_out": left_out,
            "reward_source": reward_source,
            "warnings": warnings,  # as printed: the record must not read cleaner
            **result.to_dict(),
        }
    )
    status, stale_because = ("promoted" if promote else "refused"), ""
    if promote:
        try:
            # Only over the champion the gate judged against (compared under the
            # registry's lock): the gate says nothing about one promoted meanwhile.
            registry.promote_change(
                version,
                reason=("forced past the gate: " if forced else "") + result.reason,
                forced=forced,
                actor="retrain",
                expected=champion_version,
            )
        except ChampionChanged as exc:
            status = "stale"
            stale_because = champion_changed(version, champion_version, exc.champion)
            registry.record(
                {
                    "event": "promote_skipped",
                    "version": version,
                    "gated_against": champion_version,
                    "champion": exc.champion,
                    "forced": forced,
                    "reason": stale_because,
                    "actor": "retrain",
                }
            )
    return RetrainResult(
        status,
        version,
        champion_version,
        result,
        drift,
        warnings,
        len(treated),
        reward=reward.label,
        left_out=left_out,
        reward_source=reward_source,
        reason=stale_because,
        holdout=holdout,
    )


def champion_changed(challenger: str, gated_against: str | None, champion: str | None) -> str:
    """Why a challenger that passed the gate (or was forced) was not promoted."""
    return (
        f"the champion changed while retrain ran (the gate judged {challenger} against "
        f"{gated_against or 'no champion'}; the champion is now {champion or 'none'}). "
        f"{challenger} is stored: vea retrain again to gate against the champion now, or "
        f"vea models promote {challenger}"
    )


def describe(result: RetrainResult) -> str:
    lines = [f"reward {result.reward} ({result.reward_source}); measures {MEASURES}"]
    if result.left_out:
        lines.append(
            f"note: {result.left_out} rows left out: their reward is not known ({UNKNOWN_REWARD})"
        )
    g = result.gate
    if result.status == "skipped":
        why = result.reason or f"{result.rows} rows are fewer than --min-rows"
        counted = f"counted: {MIN_ROWS_COUNT}" + (
            f"; {result.holdout} holdout rows not counted" if result.holdout else ""
        )
        lines.append(f"skipped: {why}; nothing trained ({counted})")
        return "\n".join(lines)
    if g is not None and g.improvement is not None:
        imp = g.improvement
        held = f", {result.holdout} holdout rows left out" if result.holdout else ""
        lines.append(
            f"gate on {g.rows} rows (treated contacts{held}; {g.folds}-fold cross-fitted "
            f"DR): champion {g.champion_value['value']:.4f}, challenger "
            f"{g.challenger_value['value']:.4f}, improvement {imp['value']:.4f} "
            f"[{imp['ci_low']:.4f}, {imp['ci_high']:.4f}]"
        )
        lines.append(f"  the 95% interval is of {interval_of(g.folds)}")
        # "promotes", not "promoted": the status line below is the one that says it.
        lines.append(f"  it promotes when {PROMOTES_WHEN}")
    # The gate's reason on the console, not only in history.jsonl: an interval above zero
    # can still be refused (too small an effective sample size), and that must not
    # read as a contradiction.
    why = g.reason.removeprefix("refused: ") if g is not None else ""
    if result.status == "promoted" and g is not None and not g.promote:
        why = f"forced past the gate, which refused: {why}"
    if result.status == "stale":
        lines.append(f"challenger {result.challenger}: not promoted: {result.reason}")
        return "\n".join(lines)
    lines.append(f"challenger {result.challenger}: {result.status}" + (f" ({why})" if why else ""))
    return "\n".join(lines)


def export_then_load(export: Callable[[Path], None], directory: Path) -> tuple[pd.DataFrame, Path]:
    """Run the export into ``directory`` and load the result with the training loader."""
    from training.loading import validate_log

    path = directory / "export.parquet"
    export(path)
    frame = pd.read_parquet(path)
    if frame.empty:
        return frame, path
    return validate_log(frame, source=str(path)), path


def _keep_export(export: Path, keep: Path) -> None:
    """``--keep-export``: the export (Parquet; a .csv name gets CSV) written to ``keep``
    as `vea export` writes: owner-only and renamed into place (it holds customer ids, and
    a reader must not see half of it). DataError naming the path when it cannot be."""
    if keep.suffix.lower() == ".csv":
        write_table(pd.read_parquet(export), keep)
        return
    try:
        with atomic_file(keep) as tmp:
            shutil.copyfile(export, tmp)
    except OSError as exc:
        raise DataError(f"cannot write {keep}: {os_reason(exc, keep)}") from None


def _load_given_log(data: str, registry: Registry) -> pd.DataFrame:
    """``--data``: a canonical log (as `vea export` writes it), else one in the layout of
    the champion's spec, as `vea evaluate` and `vea score` read it: a champion trained
    with ``--spec`` (e.g. on Hillstrom) was refused its own layout with 'map it with a
    spec', an option `vea retrain` does not have."""
    from training.loading import ColumnsMissing, load_log, say_note

    try:
        return load_log(data, note=say_note)
    except ColumnsMissing as exc:
        version = registry.champion()
        champion = registry.load(version) if version else None
        if champion is None or not champion.spec:
            raise DataError(
                f"{exc}. vea retrain --data reads the canonical layout `vea export` writes"
                + ("" if champion is None else " (the champion was trained without a spec)")
            ) from exc
        try:
            return load_log(
                data,
                Spec.from_dict(champion.spec, source="the champion's spec"),
                note=say_note,
            )
        except ColumnsMissing as again:
            raise DataError(
                f"{again}. vea retrain --data reads the canonical layout `vea export` writes "
                f"or that of the champion's spec (model {version}); neither fits"
            ) from again


def _instant(value: str | None, param: click.Parameter) -> datetime | None:
    """``--since`` in the forms `vea export` and the reports take (models.schema)."""
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}", param=param) from None


# ------------------------------------------------------------------------------ command
@click.command("retrain")
@click.option(
    "--since",
    default=None,
    callback=lambda ctx, param, value: _instant(value, param),
    help="Export decisions from here (a date or date-time, UTC unless an offset is given).",
)
@click.option("--force", is_flag=True, help="Promote even if the gate refuses (recorded).")
@click.option(
    "--min-rows",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Fewest rows the gate judges (treated contacts with a known reward; holdout "
    "contacts do not count); fewer: nothing changes.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    help="Use this canonical log instead of exporting from the service database.",
)
@click.option("--keep-export", type=click.Path(dir_okay=False), help="Also copy the export here.")
@registry_option
@learner_option(
    "s", "Challenger's activity learner (auto: chosen by off-policy value, ~4x slower)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (folds, models).")
@threads_option
@bootstrap_option(
    "Bootstrap resamples (of customers) for the gate's 95% interval (of the learner's "
    "cross-fitted improvement; its lower end decides)."
)
@click.option(
    "--drift-threshold",
    type=float,
    default=lambda: setting("drift_psi_threshold"),
    show_default="VEA_DRIFT_PSI_THRESHOLD or 0.2",
    help="PSI of a feature (export vs the champion's training data) that is warned about.",
)
@reward_options
@click.pass_context
def retrain_command(
    ctx,
    since,
    force,
    min_rows,
    data,
    keep_export,
    registry,
    learner,
    seed,
    threads,
    bootstrap,
    drift_threshold,
    reward,
    reward_weights,
) -> None:
    """Export the service's logs, train a challenger, gate it off-policy, promote or refuse.

    The gate values the challenger on the treated contacts (holdout contacts get `none`
    whatever the model, so they are left out of the gate and of the challenger's
    training). Its 95% interval is of the improvement of this learner trained on this
    log's treated rows, cross-fitted over 5 customer folds: each contact is valued by a
    challenger fitted on the other 4/5 of the customers. The challenger promoted is
    fitted on all the treated rows; it is promoted when the interval's lower end, a
    one-sided 97.5% lower bound, is above zero (and the log covers its choices).
    """
    from training.loading import file_fingerprint

    # The command line's reward, else the champion's own (retrain() resolves it from the
    # registry), else ve_success. `vea retrain` takes no spec, so there is no spec reward.
    named = reward is not None or reward_weights is not None
    chosen = reward_from_options(reward, reward_weights) if named else None

    if data:
        # Both shape the export, which --data replaces: accepted, they would do nothing.
        for given, option in ((since, "--since"), (keep_export, "--keep-export")):
            if given is not None:
                raise click.UsageError(
                    f"{option} applies to the export from the service database, not to "
                    "--data (give the log you want trained on)"
                )
    with tempfile.TemporaryDirectory(prefix="vea-retrain-") as tmp:
        if data:
            frame, path = _load_given_log(data, Registry(registry)), Path(data)
        else:
            export_cmd = ctx.find_root().command.get_command(ctx, "export")
            if export_cmd is None:
                raise click.UsageError("the service is not installed: pass --data LOG")
            frame, path = export_then_load(
                lambda out: ctx.invoke(export_cmd, out=str(out), since=since, until=None),
                Path(tmp),
            )
            if keep_export:
                _keep_export(path, Path(keep_export))
        result = retrain(
            frame,
            Registry(registry),
            force=force,
            min_rows=min_rows,
            learner=learner,
            seed=seed,
            n_boot=bootstrap,
            num_threads=threads,
            source=file_fingerprint(path),
            drift_threshold=drift_threshold,
            reward=chosen,
            reward_source="command line",
        )
    for warning in result.drift_warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(describe(result))
    if result.status == "stale":
        ctx.exit(EXIT_CHAMPION_CHANGED)
