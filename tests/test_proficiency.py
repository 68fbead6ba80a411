"""Agent proficiency from outcomes (models.proficiency) against the simulator's known skill.

The case-mix model here is the simulator's average-agent truth (``p_<activity>_avg_agent``),
so these tests measure the estimator, not a model's error; the service uses the served
model's probability stored with every decision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.pools import attempts, proficiency_on_simulation, recovery_figures
from models.activities import VALUE_ACTIVITIES
from models.pools import parse_config
from models.proficiency import (
    INTERVAL,
    Cell,
    aggregate,
    estimate,
    fit_prior,
    general_spread,
    rebuild_pools,
)
from training.simulate import simulate


def test_proficiency_recovers_true_skill_and_pools_hold_no_weak_agents():
    """Issue 5's gate, 60 agents, cells with >= 30 attempts (``bench/pools.py`` prints the
    figures over seeds). At 200,000 interactions (~390 attempts per agent and activity) the
    agents' ranking matches their true skill: 0.90 mean, 0.82 minimum over 30 seeds (at
    100,000: 0.85 mean but 0.75 minimum, so the gate is not asserted there). The pools'
    false-member rate stays within what the 90% interval allows (one-sided 5%) at every
    size."""
    big = recovery_figures(proficiency_on_simulation(200_000, seed=3), min_contacts=30)
    print("200k:", big)
    assert big["agent_spearman"] >= 0.8
    assert big["cell_spearman"] >= 0.7  # 0.74 minimum over 30 seeds
    assert big["members"] >= 30  # the stars and more are found (35 minimum over 30 seeds)
    # One-sided 95% bound: a below-median agent joins with probability <= 5%.
    allowed = stats.binom.ppf(0.99, big["below_median"], 0.05)
    assert big["below_median_members"] <= allowed

    small = recovery_figures(proficiency_on_simulation(50_000, seed=7), min_contacts=30)
    print("50k:", small)
    assert small["below_median_members"] <= stats.binom.ppf(0.99, small["below_median"], 0.05)
    assert small["members"] >= 10  # the stars and the generally able already qualify
    # ~100 attempts per agent and activity: near what the outcomes can tell (README: 0.77
    # over 5 seeds, the raw ratio's own ceiling ~0.79).
    assert small["agent_spearman"] >= 0.6


def test_a_generally_able_agent_is_recognised_from_their_other_activities():
    """The hierarchical prior: agents' ratios covary across activities, so an agent who
    beats the model at four activities starts above average at a fifth with few contacts,
    and one who is average elsewhere does not."""
    rng = np.random.default_rng(4)
    records = []
    ability = {f"g{k}": float(np.exp(rng.normal(0.0, 0.25))) for k in range(40)}
    ability["able"], ability["plain"] = 1.4, 1.0
    for agent, u in ability.items():
        for j, activity in enumerate(VALUE_ACTIVITIES):
            n = 15 if (agent in ("able", "plain") and j == 0) else 400
            records += [(agent, activity, float(rng.random() < 0.3 * u), 0.3) for _ in range(n)]
    cells = aggregate(records)
    priors = {a: fit_prior([c for k, c in cells.items() if k[1] == a]) for a in VALUE_ACTIVITIES}
    assert 0.02 < general_spread(cells, priors) < 0.2  # ~0.07 drawn
    result = {(p.agent_id, p.activity): p for p in estimate(cells)}
    first = VALUE_ACTIVITIES[0]
    able, plain = result[("able", first)], result[("plain", first)]
    assert able.estimate > 1.15 and plain.estimate < 1.1
    assert able.low < able.estimate < able.high
    assert not able.qualified  # 15 contacts: below min_contacts, stays in general


def test_without_a_general_component_each_activity_stands_alone():
    # Independent activity skills: the cross-activity covariance is ~0 and a cell's prior
    # is the activity's population prior (the agent's other activities do not move it).
    rng = np.random.default_rng(5)
    records = []
    for k in range(40):
        for activity in VALUE_ACTIVITIES:
            u = float(np.exp(rng.normal(0.0, 0.2)))
            records += [(f"a{k}", activity, float(rng.random() < 0.3 * u), 0.3) for _ in range(300)]
    cells = aggregate(records)
    priors = {a: fit_prior([c for k, c in cells.items() if k[1] == a]) for a in VALUE_ACTIVITIES}
    assert general_spread(cells, priors) < 0.01


def test_case_mix_adjustment_does_not_reward_easy_customers():
    # Agent "easy" gets contacts the model expects to succeed 80% of the time and succeeds
    # 80%; agent "hard" gets 20% contacts and succeeds 30%: hard is the better agent.
    rng = np.random.default_rng(0)
    records = []
    for _ in range(400):
        records.append(("easy", "educate_usage", float(rng.random() < 0.8), 0.8))
        records.append(("hard", "educate_usage", float(rng.random() < 0.3), 0.2))
    for k in range(20):  # an average workforce around them
        for _ in range(200):
            records.append((f"avg{k}", "educate_usage", float(rng.random() < 0.4), 0.4))
    result = {p.agent_id: p for p in estimate(aggregate(records))}
    assert result["hard"].estimate > result["easy"].estimate
    assert result["hard"].qualified and not result["easy"].qualified
    assert result["hard"].low < result["hard"].estimate < result["hard"].high


def test_newcomers_stay_in_general_and_shrink_toward_the_population():
    rng = np.random.default_rng(1)
    records = [
        (f"a{k}", "advise_new_uses", float(rng.random() < 0.4 * (1 + 0.1 * (k % 3))), 0.4)
        for k in range(20)
        for _ in range(150)
    ]
    records += [("new", "advise_new_uses", 1.0, 0.4)] * 5  # 5 of 5: lucky, little evidence
    result = {p.agent_id: p for p in estimate(aggregate(records), min_contacts=30)}
    assert not result["new"].qualified
    assert result["new"].estimate < result["new"].raw  # shrunk


def test_prior_and_aggregation_edge_cases():
    assert fit_prior([]).mean == 1.0
    cells = aggregate(
        [("a", "educate_usage", 1, 0.5), ("", "educate_usage", 1, 0.5), ("b", "none", 1, 0.5)]
        + [("c", "educate_usage", 1, float("nan")), ("d", "sell", 0, 0.5)]
    )
    assert list(cells) == [("a", "educate_usage")]
    assert cells[("a", "educate_usage")] == Cell(1, 1.0, 0.5, 0.25)


def test_rebuild_fills_proficiency_pools_and_reports_changes():
    config = parse_config(
        {
            "pools": [
                {"id": "edu", "activities": ["educate_usage"], "membership": "proficiency"},
                {"id": "static", "activities": ["educate_usage"], "members": ["avg0", "star"]},
                {"id": "general"},
            ]
        }
    )
    rng = np.random.default_rng(2)
    records = [
        (f"avg{k}", "educate_usage", float(rng.random() < 0.4), 0.4)
        for k in range(20)
        for _ in range(300)
    ]
    records += [("star", "educate_usage", float(rng.random() < 0.6), 0.4) for _ in range(300)]
    rebuilt = rebuild_pools(config, estimate(aggregate(records)))
    pools = rebuilt.config.by_id()
    assert pools["edu"].members == ("star",)
    assert pools["edu"].lift["educate_usage"] > 1.2
    assert pools["static"].members == ("avg0", "star")  # static: members kept, lift measured
    assert 1.0 < pools["static"].lift["educate_usage"] < pools["edu"].lift["educate_usage"]
    assert any(line.startswith("edu: + star (educate_usage") for line in rebuilt.changes)
    again = rebuild_pools(rebuilt.config, rebuilt.proficiency)
    assert again.changes == []  # nothing changed: nothing printed
    # The star stops outperforming: they leave the pool, and that is reported.
    records = [r for r in records if r[0] != "star"]
    records += [("star", "educate_usage", float(rng.random() < 0.4), 0.4) for _ in range(300)]
    later = rebuild_pools(rebuilt.config, estimate(aggregate(records)))
    assert later.config.by_id()["edu"].members == ()
    assert any(line.startswith("edu: - star") for line in later.changes)


def test_one_agent_with_one_contact_gets_an_interval_as_wide_as_what_is_known():
    # One attempt says almost nothing: the prior's spread cannot be estimated from a single
    # agent (it used to hit a 1e-4 floor: 2.00 [1.95, 2.05] for one success at p = 0.5, and
    # [0.0000, 0.0003] for one failure).
    for success in (1.0, 0.0):
        (only,) = estimate(aggregate([("a", "educate_usage", success, 0.5)]))
        assert only.low < 1.0 < only.high  # as the model expects of anyone: plausible
        assert only.high - only.low > 0.8
        assert only.low > 0.05 and only.high < 5.0  # and not uninformative nonsense
        assert not only.qualified
    # Two agents, one contact each: still wide, and the two intervals overlap.
    a, b = estimate(aggregate([("a", "educate_usage", 1.0, 0.5), ("b", "educate_usage", 0.0, 0.5)]))
    assert a.high - a.low > 0.8 and b.high - b.low > 0.8 and b.high > a.low


def _coverage(rows: int, agents: int, seeds: range, interval: float) -> float:
    """Share of agent x activity cells whose interval holds the true ratio: the agent's
    success probability over the average agent's, summed over the contacts they got."""
    hits = []
    for seed in seeds:
        log, truth = simulate(rows=rows, seed=seed, n_agents=agents)
        activity = log["activity"].to_numpy()
        true_ratio = {}
        for a in VALUE_ACTIVITIES:
            rows_a = activity == a
            sums = (
                pd.DataFrame(
                    {
                        "agent": log["agent_id"].to_numpy()[rows_a],
                        "agent_p": truth[f"p_{a}"].to_numpy()[rows_a],
                        "avg_p": truth[f"p_{a}_avg_agent"].to_numpy()[rows_a],
                    }
                )
                .groupby("agent")
                .sum()
            )
            for agent, row in sums.iterrows():
                true_ratio[(agent, a)] = row["agent_p"] / row["avg_p"]
        for p in estimate(aggregate(attempts(log, truth)), interval=interval):
            hits.append(p.low <= true_ratio[(p.agent_id, p.activity)] <= p.high)
    return float(np.mean(hits))


@pytest.mark.parametrize(
    ("rows", "agents", "seeds"),
    [
        (200, 1, range(100, 140)),  # one agent: ~5 attempts per activity
        (300, 3, range(100, 130)),  # three agents, a handful of attempts each
        (2_000, 5, range(100, 120)),  # five agents, ~35 attempts each
        (5_000, 60, range(100, 105)),  # many agents, ~5 attempts each
        (50_000, 60, range(100, 103)),  # many agents, ~100 attempts each
    ],
)
@pytest.mark.parametrize("interval", [INTERVAL, 0.95])
def test_interval_coverage_holds_with_few_and_many_data(rows, agents, seeds, interval):
    """The interval holds the simulated agents' true ratio about as often as it says, few
    data or many (before the weakly-informative hyperprior on the spread, at 90%: 6%, 38%,
    55%, 73% and 87% of cells; at 95%: 6%, 43%, 61%, 77% and 93%)."""
    coverage = _coverage(rows, agents, seeds, interval)
    print(rows, agents, interval, coverage)
    assert interval - 0.08 <= coverage <= min(interval + 0.07, 0.99)


def test_a_rebuilt_lift_stays_within_what_a_pools_config_may_hold():
    from models.pools import MAX_LIFT

    config = parse_config(
        {
            "pools": [
                {"id": "edu", "activities": ["educate_usage"], "members": ["lucky"]},
                {"id": "general"},
            ]
        }
    )
    # Every contact a success where the model expected 2%: an estimate far above the bound.
    records = [("lucky", "educate_usage", 1.0, 0.02) for _ in range(10)]
    (lucky,) = estimate(aggregate(records))
    assert lucky.estimate > MAX_LIFT
    rebuilt = rebuild_pools(config, [lucky], min_contacts=1)
    assert rebuilt.config.by_id()["edu"].lift["educate_usage"] == MAX_LIFT
    parse_config(rebuilt.config.to_dict())  # reads back: the routers can load it
