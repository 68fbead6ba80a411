"""The simulator: log schema, reproducibility, logged propensities, outcome consistency and
the calibration targets of design section 5 (seed 001 figures)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.activities import ACTIONS, CHANNELS, ISSUE_TYPES, LANGUAGES, NONE, SEGMENTS
from models.economics import Economics
from training.simulate import (
    CONTEXT_COLUMNS,
    LOG_COLUMNS,
    MIN_PROPENSITY,
    agent_skills,
    default_logging_policy,
    oracle_actions,
    simulate,
    true_expected_values,
    true_policy_value,
    write_simulation,
)

ROWS = 40_000
P_COLUMNS = [f"p_{a}" for a in ACTIONS]


@pytest.fixture(scope="module")
def sim() -> tuple[pd.DataFrame, pd.DataFrame]:
    return simulate(ROWS, seed=11)


def _chosen(truth: pd.DataFrame, actions: np.ndarray) -> np.ndarray:
    """True success probability of the given action on each row."""
    codes = pd.Index(ACTIONS).get_indexer(actions)
    return truth[P_COLUMNS].to_numpy()[np.arange(len(truth)), codes]


# --- Schema --------------------------------------------------------------------------------


def test_log_schema_and_ranges(sim):
    log, truth = sim
    assert list(log.columns) == list(LOG_COLUMNS)
    assert len(log) == ROWS
    assert log["interaction_id"].is_unique
    assert log["interaction_id"].iloc[0] == f"sim-11-{ROWS}-0"
    assert str(log["occurred_at"].dt.tz) == "UTC"
    assert log["occurred_at"].is_monotonic_increasing
    span = log["occurred_at"].max() - log["occurred_at"].min()
    assert pd.Timedelta(days=170) < span <= pd.Timedelta(days=180)
    assert log["occurred_at"].min() >= pd.Timestamp("2026-01-01", tz="UTC")

    assert set(log["channel"]) == set(CHANNELS)
    assert set(log["issue_type"]) == set(ISSUE_TYPES)
    assert set(log["segment"]) == set(SEGMENTS)
    assert set(log["language"]) == set(LANGUAGES)
    assert set(log["switching_effort"]) == {"low", "high"}
    assert set(log["activity"]) == set(ACTIONS)
    assert set(log["pool_id"]) == {"general"}
    assert log["persona"].notna().all()

    assert (log["tenure_months"] >= 0).all()
    assert log["tenure_months"].max() > 60  # long tail (up to ~10 years)
    assert log["tenure_months"].median() < 15  # many recent purchasers
    assert log["prior_contacts_30d"].dtype.kind == "i"
    assert (log["prior_contacts_30d"] >= 0).all()
    assert log["sentiment"].between(-1, 1).all()
    assert log["propensity"].gt(0).all() and log["propensity"].le(1).all()
    for col in ("ve_success", "accepted", "offered", "retained_60d"):
        assert set(log[col].unique()) <= {0, 1}, col
    for col in ("ves_confidence", "ves_ability"):
        assert log[col].between(1, 7).all() and log[col].dtype.kind == "i"
    assert log["csat"].between(1, 5).all() and log["csat"].dtype.kind == "i"
    assert (log["handle_time_s"] > 0).all()

    expected = ["interaction_id", *P_COLUMNS, *(f"{c}_avg_agent" for c in P_COLUMNS)]
    assert list(truth.columns) == [*expected, "considering_switch"]
    assert truth["interaction_id"].equals(log["interaction_id"])
    probs = truth[expected[1:]].to_numpy()
    assert (probs > 0).all() and (probs < 0.9).all()  # realistic: never near-certain
    assert set(truth["considering_switch"].unique()) == {0, 1}


def test_shares_follow_the_design(sim):
    log, _ = sim
    ja = (log["language"] == "ja").mean()
    assert 0.55 < ja < 0.65
    issue = log["issue_type"].value_counts(normalize=True)
    assert issue.idxmax() == "inquiry"
    assert issue["complaint"] < issue["inquiry"] / 2
    # Business customers find switching harder.
    high = log.assign(h=log["switching_effort"] == "high").groupby("segment")["h"].mean()
    assert high["enterprise"] > high["small_business"] > high["consumer"]
    # Complaints and cancellations arrive upset.
    mood = log.groupby("issue_type")["sentiment"].mean()
    assert mood["complaint"] < mood["billing"] < mood["inquiry"]
    assert mood["cancellation"] < mood["billing"]


def test_customers_recur_and_prior_contacts_come_from_history():
    log, _ = simulate(3_000, seed=5)
    per_customer = log["customer_id"].value_counts()
    assert 2.5 < len(log) / len(per_customer) < 3.5
    assert per_customer.max() >= 5
    times = log["occurred_at"].to_numpy()
    customers = log["customer_id"].to_numpy()
    window = np.timedelta64(30, "D")
    by_customer: dict[str, list[np.datetime64]] = {}
    expected = np.empty(len(log), dtype=int)
    for i, (c, t) in enumerate(zip(customers, times, strict=True)):  # time order
        earlier = by_customer.setdefault(c, [])
        # Timestamps are rounded to the second; the simulator counts on exact times.
        expected[i] = sum(t - s < window for s in earlier)
        earlier.append(t)
    mismatch = expected != log["prior_contacts_30d"].to_numpy()
    assert mismatch.mean() < 0.002
    assert log["prior_contacts_30d"].mean() > 0.3


# --- Reproducibility -----------------------------------------------------------------------


def test_same_seed_same_output_and_seeds_differ():
    a_log, a_truth = simulate(5_000, seed=3, n_agents=20)
    b_log, b_truth = simulate(5_000, seed=3, n_agents=20)
    pd.testing.assert_frame_equal(a_log, b_log)
    pd.testing.assert_frame_equal(a_truth, b_truth)
    c_log, c_truth = simulate(5_000, seed=4, n_agents=20)
    assert not a_log["activity"].equals(c_log["activity"])
    assert not np.allclose(a_truth["p_none"], c_truth["p_none"])
    assert not set(a_log["interaction_id"]) & set(c_log["interaction_id"])
    with pytest.raises(ValueError, match="seed"):
        simulate(10, seed=-1)
    with pytest.raises(ValueError, match="rows"):
        simulate(0, seed=1)


def test_agent_skills_reproducible_with_a_skilled_minority():
    skills = agent_skills(7, 200)
    pd.testing.assert_frame_equal(skills, agent_skills(7, 200))
    assert not skills.equals(agent_skills(8, 200))
    assert skills["agent_id"].is_unique
    values = skills.filter(like="skill_").to_numpy()
    assert values.shape == (200, 5)
    assert abs(np.median(values)) < 0.05
    stars = (values > 0.45).any(axis=1).mean()
    assert 0.08 < stars < 0.25
    assert set(skills["language"]) == {"ja", "en"}
    assert list(agent_skills(1, 1)["agent_id"]) == ["agent-001"]


def test_agents_are_language_matched_and_their_skill_shows_in_the_truth(sim):
    log, truth = sim
    skills = agent_skills(11, 60).set_index("agent_id")
    assert (skills.loc[log["agent_id"], "language"].to_numpy() == log["language"]).all()
    # A row's agent-specific truth is above the average-agent truth exactly where the agent's
    # skill is above the average of the agents who could take the contact.
    gap = truth["p_advise_new_uses"] - truth["p_advise_new_uses_avg_agent"]
    skill = skills.loc[log["agent_id"], "skill_advise_new_uses"].to_numpy()
    assert np.corrcoef(gap, skill)[0, 1] > 0.8
    # Agents are assigned independently of the activity.
    star = skills.index[skills.filter(like="skill_").max(axis=1) > 0.5]
    by_activity = log.assign(star=log["agent_id"].isin(star)).groupby("activity")["star"].mean()
    assert by_activity.max() - by_activity.min() < 0.05


# --- Logging policy ------------------------------------------------------------------------


def test_logged_propensity_is_the_policy_probability(sim):
    log, _ = sim
    probs = default_logging_policy(log[list(CONTEXT_COLUMNS)])
    assert probs.shape == (ROWS, len(ACTIONS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs.min() >= MIN_PROPENSITY == 0.02
    codes = pd.Index(ACTIONS).get_indexer(log["activity"])
    np.testing.assert_array_equal(probs[np.arange(ROWS), codes], log["propensity"].to_numpy())
    # Non-uniform and context-dependent: habits, not a coin.
    assert probs.max() > 0.5
    none = probs[:, 0]
    complaint = (log["issue_type"] == "complaint").to_numpy()
    assert none[complaint].mean() > none[~complaint].mean() + 0.2
    # Empirical action shares match the policy's mean probabilities.
    shares = log["activity"].value_counts(normalize=True).reindex(ACTIONS).to_numpy()
    np.testing.assert_allclose(shares, probs.mean(axis=0), atol=0.01)


def test_custom_policy_hook():
    seen: list[pd.DataFrame] = []

    def uniform(context: pd.DataFrame) -> np.ndarray:
        seen.append(context)
        return np.full((len(context), len(ACTIONS)), 1.0 / len(ACTIONS))

    log, _ = simulate(6_000, seed=2, policy=uniform)
    assert list(seen[0].columns) == list(CONTEXT_COLUMNS)
    np.testing.assert_allclose(log["propensity"], 1.0 / len(ACTIONS))
    shares = log["activity"].value_counts(normalize=True)
    assert shares.between(0.13, 0.20).all() and len(shares) == len(ACTIONS)

    def always_educate(context: pd.DataFrame) -> np.ndarray:
        probs = np.zeros((len(context), len(ACTIONS)))
        probs[:, ACTIONS.index("educate_usage")] = 1.0
        return probs

    log, _ = simulate(2_000, seed=2, policy=always_educate)
    assert set(log["activity"]) == {"educate_usage"}
    assert (log["propensity"] == 1.0).all()

    with pytest.raises(ValueError, match="shape"):
        simulate(100, seed=2, policy=lambda c: np.ones((len(c), 3)) / 3)
    with pytest.raises(ValueError, match="sum to 1"):
        simulate(100, seed=2, policy=lambda c: np.ones((len(c), len(ACTIONS))))


# --- Outcomes ------------------------------------------------------------------------------


def test_ves_items_agree_with_success(sim):
    log, _ = sim
    both_top = (log["ves_confidence"] >= 6) & (log["ves_ability"] >= 6)
    assert (both_top.astype(int) == log["ve_success"]).all()
    failures = log[log["ve_success"] == 0]
    assert failures["ves_confidence"].nunique() >= 6  # the full scale is used


def test_offered_accepted_and_success_are_consistent(sim):
    log, truth = sim
    none = log["activity"] == NONE
    assert (log.loc[none, "offered"] == 0).all()
    assert (log.loc[none, "accepted"] == 0).all()
    assert 0.93 < log.loc[~none, "offered"].mean() < 0.97
    assert (log.loc[log["offered"] == 0, "accepted"] == 0).all()
    offered = log[log["offered"] == 1]
    accept = offered.groupby("ve_success")["accepted"].mean()
    assert accept[1] > accept[0] + 0.3
    # ve_success ~ Bernoulli(p_true[activity]): the logged rate matches the truth.
    p = _chosen(truth, log["activity"].to_numpy())
    assert abs(log["ve_success"].mean() - p.mean()) < 0.01
    for activity, group in log.groupby("activity"):
        assert abs(group["ve_success"].mean() - p[group.index].mean()) < 0.03, activity


def test_value_activities_add_their_handle_time(sim):
    log, _ = sim
    extra = Economics().extra_handle_time_s
    # Same context mix for the comparison: the logged policy depends on the issue type.
    inquiry = log[log["issue_type"] == "inquiry"]
    base = inquiry.loc[inquiry["activity"] == NONE, "handle_time_s"].mean()
    for activity in ("validate_purchase", "achieve_goals"):
        rows = inquiry[(inquiry["activity"] == activity) & (inquiry["offered"] == 1)]
        added = rows["handle_time_s"].mean() - base
        assert abs(added - extra[activity]) < 0.35 * extra[activity] + 15, activity
    longer = Economics(extra_handle_time_s={"validate_purchase": 600.0})
    slow, _ = simulate(4_000, seed=11, economics=longer)
    fast, _ = simulate(4_000, seed=11)
    rows = slow["activity"] == "validate_purchase"
    assert slow.loc[rows, "handle_time_s"].mean() > fast.loc[rows, "handle_time_s"].mean() + 400


def test_csat_follows_sentiment_and_success(sim):
    log, _ = sim
    upset = log["sentiment"] < -0.4
    assert log.loc[upset, "csat"].mean() < log.loc[~upset, "csat"].mean() - 0.3
    by_success = log.groupby("ve_success")["csat"].mean()
    assert by_success[1] > by_success[0]


def test_retention_reproduces_the_seed_figures():
    log, truth = simulate(60_000, seed=21)
    considering = truth["considering_switch"] == 1
    assert 0.15 < considering.mean() < 0.28
    by_issue = considering.groupby(log["issue_type"]).mean()
    assert by_issue["cancellation"] > by_issue["complaint"] > by_issue["inquiry"]
    rates = log[considering].groupby(["switching_effort", "ve_success"])["retained_60d"].mean()
    # Seed 001: 90% vs 73% (hard to switch), 69% vs 52% (easy to switch).
    for (effort, success), target in {
        ("high", 1): 0.90,
        ("high", 0): 0.73,
        ("low", 1): 0.69,
        ("low", 0): 0.52,
    }.items():
        assert abs(rates[(effort, success)] - target) < 0.04, (effort, success)
    others = log[~considering]
    assert 0.94 < others["retained_60d"].mean() < 0.98


# --- Calibration (design section 5) --------------------------------------------------------


def test_oracle_calibration(sim):
    log, truth = sim
    oracle = oracle_actions(truth)
    success = _chosen(truth, oracle).mean()
    assert 0.35 <= success <= 0.50  # seed 001: 35-50% of conversations
    shares = pd.Series(oracle).value_counts(normalize=True).reindex(ACTIONS, fill_value=0)
    assert 0.15 <= shares[NONE] <= 0.45  # the extra handle time does not always pay
    assert shares.drop(NONE).max() <= 0.5  # the best activity depends on the customer
    assert (shares.drop(NONE) > 0.03).all()
    none_by_issue = pd.Series(oracle == NONE).groupby(log["issue_type"].to_numpy()).mean()
    assert none_by_issue["complaint"] > 0.6 > 0.1 > none_by_issue["inquiry"]

    oracle_value = true_policy_value(truth, oracle)
    constant = {a: true_policy_value(truth, np.full(len(truth), a)) for a in ACTIONS}
    assert max(constant.values()) <= 0.85 * oracle_value
    random_value = true_expected_values(truth).mean()  # uniform random policy
    assert random_value < max(constant.values())
    logged = true_policy_value(truth, log["activity"].to_numpy())
    assert logged < 0.8 * oracle_value  # room for a model to improve on the habits


def test_oracle_picks_the_best_expected_value(sim):
    _, truth = sim
    values = true_expected_values(truth)
    oracle = oracle_actions(truth)
    best = values.max(axis=1).mean()
    assert true_policy_value(truth, oracle) == pytest.approx(best)
    for action in ACTIONS:
        assert true_policy_value(truth, [action] * len(truth)) <= best + 1e-12
    # Pricier handle time makes `none` win more often.
    pricey = Economics(cost_per_second=0.06)
    assert (oracle_actions(truth, pricey) == NONE).mean() > (oracle == NONE).mean()
    with pytest.raises(ValueError):
        true_policy_value(truth, ["nonsense"] * len(truth))
    with pytest.raises(ValueError):
        true_policy_value(truth, [NONE])


def test_inquiry_more_open_than_complaint(sim):
    log, truth = sim
    best = truth[P_COLUMNS[1:]].max(axis=1).groupby(log["issue_type"]).mean()
    assert best["inquiry"] == best.max()
    assert best["complaint"] == best.min()
    assert best["inquiry"] > 3 * best["complaint"]
    logged = log.groupby("issue_type")["ve_success"].mean()
    assert logged["inquiry"] > logged["complaint"] + 0.2


def test_best_activity_depends_on_context(sim):
    log, truth = sim
    oracle = pd.Series(oracle_actions(truth), index=log.index)
    tenure = log["tenure_months"]
    assert (oracle[tenure < 1] == "validate_purchase").mean() > 0.6
    assert (oracle[tenure > 48] == "advise_new_uses").mean() > 0.3
    assert (oracle[tenure > 48] == "validate_purchase").mean() < 0.05
    business = log["segment"].isin(["small_business", "enterprise"])
    assert (oracle[business] == "achieve_goals").mean() > 0.2
    assert (oracle[~business] == "achieve_goals").mean() < 0.05
    novice_how_to = (log["persona"] == "novice") & (log["issue_type"] == "how_to")
    assert (oracle[novice_how_to] == "educate_usage").mean() > 0.5
    # Education never helps an upset customer: teaching an angry customer reads as blame.
    sentiment = log["sentiment"]
    assert (oracle[sentiment < -0.5] == "educate_usage").mean() < 0.005
    assert (oracle[sentiment < -0.3] == "educate_usage").mean() < 0.01
    assert (oracle[sentiment > 0] == "educate_usage").mean() > 0.1
    # Fatigue: repeat contacts are less open.
    best = truth[P_COLUMNS[1:]].max(axis=1)
    prior = log["prior_contacts_30d"]
    assert best[prior == 0].mean() > best[prior >= 3].mean() + 0.1


# --- Output --------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_write_simulation(tmp_path, ext):
    log, truth = simulate(500, seed=1)
    out = tmp_path / "nested" / f"sim.{ext}"
    truth_path = write_simulation(log, truth, out)
    assert truth_path == tmp_path / "nested" / f"sim.truth.{ext}"
    assert out.exists() and truth_path.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == [f"sim.{ext}", f"sim.truth.{ext}"]
    read = pd.read_csv if ext == "csv" else pd.read_parquet
    back, back_truth = read(out), read(truth_path)
    assert list(back.columns) == list(LOG_COLUMNS)
    assert list(back_truth.columns) == list(truth.columns)
    assert back["interaction_id"].tolist() == log["interaction_id"].tolist()
    np.testing.assert_allclose(back_truth["p_none"], truth["p_none"])


def test_write_simulation_refuses_other_extensions(tmp_path):
    log, truth = simulate(100, seed=1)
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        write_simulation(log, truth, tmp_path / "sim.json")
    assert list(tmp_path.iterdir()) == []
