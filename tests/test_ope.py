"""Off-policy estimators on a synthetic bandit whose true policy values are known."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest

from models.activities import ACTIONS
from training.ope import (
    Estimate,
    compare_policies,
    deterministic_probs,
    diagnostics,
    dr,
    effective_sample_size,
    encode_actions,
    evaluate_policy,
    importance_weights,
    ips,
    snips,
    uniform_probs,
)

K = len(ACTIONS)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def bandit(n: int, seed: int, logger_temp: float = 1.0) -> dict[str, np.ndarray]:
    """Contexts, true success probabilities mu(x, a), a non-uniform logger and its log."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    coef = np.random.default_rng(1234).normal(scale=0.8, size=(3, K))  # fixed world
    base = np.linspace(-1.2, -0.4, K)
    mu = 1.0 / (1.0 + np.exp(-(base + x @ coef)))
    # The logger prefers `none` and depends on the context: propensities vary by row.
    logit = np.zeros((n, K))
    logit[:, 0] = 1.0
    logit += logger_temp * x[:, :1] * np.linspace(-1, 1, K)
    logging = _softmax(logit)
    u = rng.random(n)[:, None]
    actions = (u > np.cumsum(logging, axis=1)).sum(axis=1).clip(0, K - 1)
    rows = np.arange(n)
    rewards = (rng.random(n) < mu[rows, actions]).astype(float)
    return {
        "x": x,
        "mu": mu,
        "logging": logging,
        "actions": actions,
        "propensities": logging[rows, actions],
        "rewards": rewards,
    }


def true_value(mu: np.ndarray, target: np.ndarray) -> float:
    return float((mu * target).sum(axis=1).mean())


def target_policy(b: dict[str, np.ndarray]) -> np.ndarray:
    """A stochastic policy that favours the truly best action: differs from the logger."""
    return 0.8 * deterministic_probs(b["mu"].argmax(axis=1), K) + 0.2 * uniform_probs(
        len(b["rewards"]), K
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_estimators_cover_the_true_value(seed: int) -> None:
    b = bandit(20_000, seed)
    target = target_policy(b)
    truth = true_value(b["mu"], target)
    # A decent but imperfect reward model: truth plus noise.
    noise = np.random.default_rng(seed + 100).normal(scale=0.05, size=b["mu"].shape)
    q_hat = np.clip(b["mu"] + noise, 0, 1)
    res = evaluate_policy(
        b["rewards"], b["actions"], b["propensities"], target, q_hat=q_hat, n_boot=400, seed=seed
    )
    assert set(res) == {"ips", "snips", "dr"}
    for name, est in res.items():
        assert est.n == 20_000
        assert est.ci_low <= est.value <= est.ci_high, name
        assert est.ci_low <= truth <= est.ci_high, (name, est, truth)


def test_ips_and_dr_are_unbiased_over_replications() -> None:
    reps, n = 150, 2_000
    est_ips, est_dr, truths = [], [], []
    for seed in range(reps):
        b = bandit(n, 1000 + seed)
        target = target_policy(b)
        q_hat = np.clip(b["mu"] + 0.1, 0, 1)  # biased reward model: DR must still be unbiased
        est_ips.append(ips(b["rewards"], b["actions"], b["propensities"], target).mean())
        est_dr.append(dr(b["rewards"], b["actions"], b["propensities"], target, q_hat).mean())
        truths.append(true_value(b["mu"], target))
    for est in (np.array(est_ips), np.array(est_dr)):
        err = est - np.array(truths)
        se = err.std(ddof=1) / np.sqrt(reps)
        assert abs(err.mean()) < 4 * se, (err.mean(), se)


def test_dr_has_lower_variance_with_a_good_reward_model() -> None:
    b = bandit(20_000, 7)
    target = target_policy(b)
    res = evaluate_policy(
        b["rewards"], b["actions"], b["propensities"], target, q_hat=b["mu"], n_boot=300
    )
    width = {k: v.ci_high - v.ci_low for k, v in res.items()}
    assert width["dr"] < 0.7 * width["ips"]
    assert width["dr"] < width["snips"]


def test_ci_coverage_is_near_nominal() -> None:
    """Across independent logs, the 90% IPS and DR intervals contain the truth ~90% of runs."""
    reps, hits_ips, hits_dr = 200, 0, 0
    for seed in range(reps):
        b = bandit(1_000, 5000 + seed)
        target = target_policy(b)
        truth = true_value(b["mu"], target)
        res = evaluate_policy(
            b["rewards"],
            b["actions"],
            b["propensities"],
            target,
            q_hat=np.clip(b["mu"] - 0.05, 0, 1),
            n_boot=200,
            seed=seed,
            alpha=0.10,
        )
        hits_ips += res["ips"].ci_low <= truth <= res["ips"].ci_high
        hits_dr += res["dr"].ci_low <= truth <= res["dr"].ci_high
    assert 0.82 <= hits_ips / reps <= 0.97
    assert 0.82 <= hits_dr / reps <= 0.97


def clustered_log(n_customers: int, seed: int) -> dict[str, np.ndarray]:
    """Customers with several contacts each who share a type ``x`` and a success offset
    ``u`` (uniform, mean 0): contacts of one customer are correlated. The population value
    of "always the logger's favourite for x" is exactly ``mean_x MU[x, x + 1]``."""
    rng = np.random.default_rng(seed)
    size = 1 + rng.poisson(4.0, n_customers)
    cust = np.repeat(np.arange(n_customers), size)
    n = cust.size
    x = rng.integers(0, 3, n_customers)[cust]
    u = rng.uniform(-0.4, 0.4, n_customers)[cust]
    logit = np.zeros((n, K))
    logit[:, 0] = 1.0
    logit[np.arange(n), x + 1] += 2.0
    logging = _softmax(logit)
    actions = (rng.random(n)[:, None] > np.cumsum(logging, axis=1)).sum(axis=1).clip(0, K - 1)
    rewards = (rng.random(n) < CLUSTER_MU[x, actions] + u).astype(float)
    return {
        "customers": cust,
        "x": x,
        "actions": actions,
        "propensities": logging[np.arange(n), actions],
        "rewards": rewards,
    }


CLUSTER_MU = np.random.default_rng(42).uniform(0.4, 0.6, size=(3, K))


def test_cluster_bootstrap_covers_when_customers_repeat() -> None:
    """Resampling contacts treats a customer's correlated contacts as independent: too
    narrow. Resampling customers gives wider intervals that cover the population value."""
    truth = float(CLUSTER_MU[np.arange(3), np.arange(3) + 1].mean())
    reps, hits_row, hits_customer, width_row, width_customer = 200, 0, 0, [], []
    for seed in range(reps):
        b = clustered_log(300, seed)
        target = deterministic_probs(b["x"] + 1, K)
        q_hat = np.full((len(b["rewards"]), K), 0.5)
        args = (b["rewards"], b["actions"], b["propensities"], target)
        by_row = evaluate_policy(*args, q_hat=q_hat, n_boot=200, seed=seed)["dr"]
        by_customer = evaluate_policy(
            *args, q_hat=q_hat, n_boot=200, seed=seed, clusters=b["customers"]
        )["dr"]
        # Clustering changes the interval only.
        assert by_customer.value == pytest.approx(by_row.value)
        hits_row += by_row.ci_low <= truth <= by_row.ci_high
        hits_customer += by_customer.ci_low <= truth <= by_customer.ci_high
        width_row.append(by_row.ci_high - by_row.ci_low)
        width_customer.append(by_customer.ci_high - by_customer.ci_low)
    assert np.mean(width_customer) > 1.1 * np.mean(width_row)
    assert hits_customer / reps >= 0.9
    assert hits_row < hits_customer


def test_bca_interval_keeps_both_tails_under_heavy_weights() -> None:
    """A target that takes an action the logger tries 5% of the time (weights of 20) on a
    rare reward: the estimate is right-skewed. The BCa interval shifts with the skew, so
    it misses on each side about equally and covers near 95%."""
    n, reps = 1_500, 300
    logging = np.array([0.75, 0.05, 0.05, 0.05, 0.05, 0.05])
    mu = np.array([0.3, 0.15, 0.1, 0.1, 0.1, 0.1])
    target = deterministic_probs(np.full(n, 1), K)
    below, above = 0, 0
    for seed in range(reps):
        rng = np.random.default_rng(seed)
        a = rng.choice(K, n, p=logging)
        r = (rng.random(n) < mu[a]).astype(float)
        est = evaluate_policy(r, a, logging[a], target, n_boot=500, seed=seed)["ips"]
        below += est.ci_high < mu[1]
        above += est.ci_low > mu[1]
    assert (below + above) / reps <= 0.08
    assert below / reps <= 0.05 and above / reps <= 0.05


def test_clusters_must_match_the_rows() -> None:
    b = bandit(100, 0)
    with pytest.raises(ValueError, match="one id per row"):
        evaluate_policy(
            b["rewards"], b["actions"], b["propensities"], b["logging"], clusters=np.arange(99)
        )
    # One row per cluster (ids sorting in row order) is the row bootstrap: the same
    # resamples, the same interval.
    args = (b["rewards"], b["actions"], b["propensities"], b["logging"])
    one_each = [f"c{i:03d}" for i in range(100)]
    by_cluster = evaluate_policy(*args, n_boot=50, clusters=one_each)
    by_row = evaluate_policy(*args, n_boot=50)
    for name, est in by_row.items():
        assert (by_cluster[name].ci_low, by_cluster[name].ci_high) == pytest.approx(
            (est.ci_low, est.ci_high)
        )


def test_compare_policies_sign_and_paired_interval() -> None:
    b = bandit(20_000, 3)
    n = len(b["rewards"])
    best = deterministic_probs(b["mu"].argmax(axis=1), K)
    worst = deterministic_probs(b["mu"].argmin(axis=1), K)
    q_hat = np.clip(b["mu"] + 0.03, 0, 1)
    args = (b["rewards"], b["actions"], b["propensities"])
    up = compare_policies(*args, worst, best, q_hat=q_hat, n_boot=300)
    down = compare_policies(*args, best, worst, q_hat=q_hat, n_boot=300)
    truth = true_value(b["mu"], best) - true_value(b["mu"], worst)
    assert up.value > 0 and up.ci_low > 0 and up.excludes_zero()
    assert down.value < 0 and down.ci_high < 0
    assert up.ci_low <= truth <= up.ci_high
    assert up.value == pytest.approx(-down.value)
    # Paired: the difference interval is narrower than the two separate intervals combined.
    ra = evaluate_policy(*args, worst, q_hat=q_hat, n_boot=300)["dr"]
    rb = evaluate_policy(*args, best, q_hat=q_hat, n_boot=300)["dr"]
    assert up.value == pytest.approx(rb.value - ra.value)
    assert up.ci_high - up.ci_low < (ra.ci_high - ra.ci_low) + (rb.ci_high - rb.ci_low)
    # The same policy against itself differs by exactly nothing.
    same = compare_policies(*args, best, best, q_hat=q_hat, n_boot=50)
    assert same.value == 0 and same.ci_low == 0 and same.ci_high == 0
    # Without a reward model the comparison falls back to IPS.
    ips_diff = compare_policies(*args, worst, best, n_boot=100)
    assert (
        ips_diff.value == pytest.approx((ips(*args, best) - ips(*args, worst)).mean())
        and ips_diff.n == n
    )


def test_unlogged_action_is_valued_by_dr_only() -> None:
    """The logger never takes the last action; a policy that always takes it is invisible to
    IPS (estimate 0) but DR's direct part values it, and diagnostics flag the gap."""
    b = bandit(5_000, 11)
    keep = b["actions"] != K - 1
    r, a = b["rewards"][keep], b["actions"][keep]
    logging = b["logging"][keep].copy()
    logging[:, K - 1] = 0.0
    logging /= logging.sum(axis=1, keepdims=True)
    p = logging[np.arange(len(a)), a]
    target = deterministic_probs(np.full(len(a), K - 1), K)
    mu = b["mu"][keep]
    res = evaluate_policy(r, a, p, target, q_hat=mu, n_boot=100)
    assert res["ips"].value == 0.0
    assert np.isnan(res["snips"].value)  # no row agrees with the target: undefined
    assert res["dr"].value == pytest.approx(true_value(mu, target))
    d = diagnostics(a, p, target)
    assert d["unsupported_mass"] == 1.0 and d["ess"] == 0.0
    assert diagnostics(a, p, target, logging_probs=logging)["unsupported_mass"] == 1.0
    assert json.dumps(res["snips"].to_dict(), allow_nan=False)  # NaN -> null


def test_rows_logged_with_certainty_support_only_their_own_action() -> None:
    """Every action appears somewhere in the log, but a row served with probability 1 (no
    exploration, the holdout) says nothing about another action there: a target choosing
    another action on such a row is unsupported (it read as 0% before)."""
    a = np.tile(np.arange(K), 2)  # every action in the log
    p = np.repeat([1.0, 0.5], K)
    other = deterministic_probs((a + 1) % K, K)  # never the logged action
    assert diagnostics(a, p, other)["unsupported_mass"] == pytest.approx(0.5)
    same = deterministic_probs(a, K)
    assert diagnostics(a, p, same)["unsupported_mass"] == 0.0


def test_snips_is_invariant_to_reward_shift_and_ips_sums_weights() -> None:
    b = bandit(3_000, 2)
    target = target_policy(b)
    args = (b["actions"], b["propensities"], target)
    s0 = snips(b["rewards"], *args)
    s1 = snips(b["rewards"] + 5.0, *args)
    assert s1 == pytest.approx(s0 + 5.0)
    w = importance_weights(*args)
    assert ips(np.ones_like(b["rewards"]), *args) == pytest.approx(w)
    assert abs(w.mean() - 1.0) < 0.1  # full support: weights average to 1
    assert effective_sample_size(np.ones(10)) == pytest.approx(10.0)
    assert effective_sample_size(np.r_[np.ones(9), 0.0]) == pytest.approx(9.0)
    assert effective_sample_size(np.r_[1.0, np.zeros(9)]) == pytest.approx(1.0)


def test_logging_policy_evaluated_on_its_own_logs_gives_the_mean_reward() -> None:
    b = bandit(10_000, 4)
    res = evaluate_policy(b["rewards"], b["actions"], b["propensities"], b["logging"], n_boot=100)
    assert res["ips"].value == pytest.approx(b["rewards"].mean())
    assert res["snips"].value == pytest.approx(b["rewards"].mean())


def test_bootstrap_is_reproducible_and_seed_dependent() -> None:
    b = bandit(2_000, 5)
    target = target_policy(b)
    args = (b["rewards"], b["actions"], b["propensities"], target)
    r1 = evaluate_policy(*args, n_boot=100, seed=3)
    r2 = evaluate_policy(*args, n_boot=100, seed=3)
    r3 = evaluate_policy(*args, n_boot=100, seed=4)
    assert r1 == r2
    assert r1["ips"].ci_low != r3["ips"].ci_low
    assert r1["ips"].value == r3["ips"].value


def test_large_log_is_fast_and_warning_free() -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    actions = rng.integers(0, K, size=n)
    propensities = np.full(n, 1.0 / K)
    rewards = (rng.random(n) < 0.3).astype(float)
    target = deterministic_probs(rng.integers(0, K, size=n), K)
    q_hat = np.full((n, K), 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        start = time.perf_counter()
        res = evaluate_policy(rewards, actions, propensities, target, q_hat=q_hat, n_boot=100)
        elapsed = time.perf_counter() - start
    assert elapsed < 30.0
    assert res["dr"].ci_low < 0.3 < res["dr"].ci_high
    assert res["dr"].ci_high - res["dr"].ci_low < 0.01


def test_estimate_round_trip() -> None:
    e = Estimate(0.25, 0.2, 0.3, 100)
    assert Estimate.from_dict(json.loads(json.dumps(e.to_dict()))) == e
    assert Estimate(float("nan"), 0.0, 1.0, 3).to_dict()["value"] is None
    assert not Estimate(0.1, -0.1, 0.3, 5).excludes_zero()


def test_helpers() -> None:
    probs = deterministic_probs(np.array([0, 2, 5]), K)
    assert probs.shape == (3, K) and (probs.sum(axis=1) == 1).all() and probs[1, 2] == 1
    codes = encode_actions(["none", "advise_new_uses", "none"])
    assert codes.tolist() == [0, K - 1, 0]
    with pytest.raises(ValueError, match="unknown actions"):
        encode_actions(["nope"])
    with pytest.raises(ValueError):
        deterministic_probs(np.array([K]), K)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"propensities": np.array([0.5, 0.0, 0.5])}, "propensities"),
        ({"propensities": np.array([0.5, 1.2, 0.5])}, "propensities"),
        ({"target": np.full((3, K), 0.5)}, "sum to 1"),
        ({"target": np.full((2, K), 1.0 / K)}, "shape"),
        ({"actions": np.array([0, K, 1])}, "action codes"),
        ({"rewards": np.array([1.0, np.nan, 0.0])}, "finite"),
        ({"q_hat": np.zeros((3, K - 1))}, "q_hat"),
    ],
)
def test_bad_inputs_are_rejected(change: dict, match: str) -> None:
    args = {
        "rewards": np.array([1.0, 0.0, 1.0]),
        "actions": np.array([0, 1, 2]),
        "propensities": np.array([0.5, 0.25, 1.0]),
        "target": uniform_probs(3, K),
        "q_hat": np.zeros((3, K)),
    }
    args.update(change)
    with pytest.raises(ValueError, match=match):
        evaluate_policy(
            args["rewards"], args["actions"], args["propensities"], args["target"], args["q_hat"]
        )
