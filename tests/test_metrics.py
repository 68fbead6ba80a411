"""Classification, calibration and uplift metrics, and the self-contained HTML report.

The report tests live here because the report is where these metrics are shown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from models.activities import ACTIONS, VALUE_ACTIVITIES
from training.metrics import (
    calibration_table,
    classification_metrics,
    expected_calibration_error,
    qini_curve,
)
from training.ope import compare_policies, deterministic_probs, diagnostics, evaluate_policy
from training.report_html import render_html, render_report

# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize("weighted", [False, True])
def test_classification_metrics_match_scikit_learn(weighted: bool) -> None:
    rng = np.random.default_rng(0)
    n = 5_000
    p = rng.random(n)
    y = (rng.random(n) < 0.3 + 0.4 * p).astype(int)
    w = rng.uniform(0.5, 3.0, n) if weighted else None
    m = classification_metrics(y, p, weights=w)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p, sample_weight=w))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p, sample_weight=w))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p, sample_weight=w))
    assert m["log_loss"] == pytest.approx(log_loss(y, p, sample_weight=w))
    assert m["n"] == n and m["ece_binning"] == "equal_frequency"
    assert json.dumps(m, allow_nan=False)


def test_ece_small_for_calibrated_and_large_for_miscalibrated() -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    p = rng.beta(2, 5, n)  # crowded scores, like openness
    y = (rng.random(n) < p).astype(int)
    assert classification_metrics(y, p)["ece"] < 0.01
    assert expected_calibration_error(y, p, strategy="uniform") < 0.01
    over = np.clip(p + 0.15, 0, 1)  # over-confident model
    assert classification_metrics(y, over)["ece"] == pytest.approx(0.15, abs=0.02)
    squashed = 0.5 + 0.2 * (p - 0.5)  # under-dispersed model
    assert classification_metrics(y, squashed)["ece"] > 0.05


def test_calibration_table_bins() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(10_000)
    y = (rng.random(10_000) < p).astype(int)
    table = calibration_table(y, p, bins=10)
    assert len(table) == 10
    assert sum(r["count"] for r in table) == 10_000
    assert all(abs(r["count"] - 1_000) <= 2 for r in table)  # equal frequency
    assert all(r["lower"] <= r["mean_predicted"] <= r["upper"] for r in table)
    uniform = calibration_table(y, p, bins=4, strategy="uniform")
    assert [r["upper"] for r in uniform] == [0.25, 0.5, 0.75, 1.0]
    # Ties stay in one bin: a constant predictor has a single bin, and its gap is exact.
    const = calibration_table(y, np.full(10_000, 0.2), bins=10)
    assert len(const) == 1 and const[0]["gap"] == pytest.approx(y.mean() - 0.2)
    # Weights count as repeated rows.
    w = np.where(np.arange(10_000) % 2 == 0, 2.0, 1.0)
    rep = np.r_[np.arange(10_000), np.arange(0, 10_000, 2)]
    a = expected_calibration_error(y, p, weights=w, strategy="uniform")
    b = expected_calibration_error(y[rep], p[rep], strategy="uniform")
    assert a == pytest.approx(b)


def test_single_class_and_bad_inputs() -> None:
    m = classification_metrics(np.zeros(10), np.linspace(0, 0.5, 10))
    assert m["auc"] is None and m["pr_auc"] is None
    with pytest.raises(ValueError, match="0/1"):
        classification_metrics(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="probabilities"):
        classification_metrics(np.array([0, 1]), np.array([0.1, 1.2]))
    with pytest.raises(ValueError, match="strategy"):
        calibration_table(np.array([0, 1]), np.array([0.1, 0.2]), strategy="nope")


# --------------------------------------------------------------------------- uplift


def uplift_data(n: int, seed: int) -> dict[str, np.ndarray]:
    """Heterogeneous effect tau(x) in [-0.1, 0.3]; non-uniform, context-dependent logging."""
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    tau = -0.1 + 0.4 * x
    base = 0.2 + 0.1 * rng.random(n)
    prop_treat = 0.2 + 0.6 * x  # the logger treats high-x customers more often
    treated = (rng.random(n) < prop_treat).astype(int)
    y = (rng.random(n) < base + tau * treated).astype(int)
    propensity = np.where(treated == 1, prop_treat, 1 - prop_treat)
    return {"x": x, "tau": tau, "treated": treated, "y": y, "w": 1.0 / propensity}


def test_qini_of_perfect_ranking_beats_random() -> None:
    d = uplift_data(40_000, 0)
    args = (d["y"], d["treated"])
    perfect = qini_curve(*args, d["tau"], weights=d["w"])
    noise = qini_curve(*args, np.random.default_rng(9).random(40_000), weights=d["w"])
    reverse = qini_curve(*args, -d["tau"], weights=d["w"])
    const = qini_curve(*args, np.zeros(40_000), weights=d["w"])
    assert perfect["qini_coefficient"] > 0.1
    assert perfect["auuc"] > perfect["auuc_random"]
    assert abs(noise["qini_coefficient"]) < 0.5 * perfect["qini_coefficient"]
    assert reverse["qini_coefficient"] < 0
    assert const["qini_coefficient"] == pytest.approx(0.0, abs=1e-12)
    # Curves end at the IPW average treatment effect, which is close to the true mean tau.
    assert perfect["ate"] == pytest.approx(d["tau"].mean(), abs=0.02)
    assert perfect["qini"][-1] == pytest.approx(perfect["ate"])
    assert perfect["uplift"][-1] == pytest.approx(perfect["ate"])
    assert len(perfect["fraction"]) == 101 and perfect["fraction"][0] == 0.0
    assert perfect["n_treated"] + perfect["n_control"] == 40_000
    assert json.dumps(perfect, allow_nan=False)


def test_qini_needs_both_groups() -> None:
    with pytest.raises(ValueError, match="treated and control"):
        qini_curve(np.array([1, 0]), np.array([1, 1]), np.array([0.1, 0.2]))


# --------------------------------------------------------------------------- report


def full_evaluation() -> dict:
    """An evaluation dict built from the real estimators, as `vea evaluate` would write it."""
    rng = np.random.default_rng(0)
    n, k = 4_000, len(ACTIONS)
    p_open = rng.beta(2, 4, n)
    y_open = (rng.random(n) < p_open).astype(int)
    mu = np.clip(p_open[:, None] * rng.uniform(0.5, 1.2, size=(n, k)), 0, 1)
    logging = np.full((n, k), 0.1)
    logging[:, 0] = 0.5
    actions = rng.choice(k, size=n, p=logging[0])
    prop = logging[np.arange(n), actions]
    rewards = (rng.random(n) < mu[np.arange(n), actions]).astype(float)
    policies = {
        "model": deterministic_probs(mu.argmax(axis=1), k),
        "logging": logging,
        "best_single": deterministic_probs(np.full(n, 3), k),
        "random": np.full((n, k), 1.0 / k),
    }
    pv = {}
    for name, target in policies.items():
        est = evaluate_policy(rewards, actions, prop, target, q_hat=mu, n_boot=100)
        pv[name] = {key: e.to_dict() for key, e in est.items()}
        pv[name]["true"] = float((mu * target).sum(axis=1).mean())
        pv[name]["diagnostics"] = diagnostics(actions, prop, target, logging)
    pv["best_single"]["label"] = "always achieve_goals"
    pv["oracle"] = {"true": pv["model"]["true"]}
    uplift = {}
    for i, act in enumerate(VALUE_ACTIVITIES, start=1):
        rows = (actions == i) | (actions == 0)
        uplift[act] = qini_curve(
            rewards[rows],
            (actions[rows] == i).astype(int),
            mu[rows, i] - mu[rows, 0],
            weights=1.0 / prop[rows],
        )
    cmp = compare_policies(rewards, actions, prop, logging, policies["model"], q_hat=mu)
    shares = {
        name: {a: float(t[:, j].mean()) for j, a in enumerate(ACTIONS)}
        for name, t in policies.items()
    }
    return {
        "schema_version": 1,
        "generated_at": "2025-01-31T12:00:00Z",
        "model": {
            "version": "20250131-120000-abc123",
            "created_at": "2025-01-31T11:00:00Z",
            "learner": "lightgbm",
            "features": ["segment", "tenure_months", "issue_type"],
            "data_fingerprint": "sha256:1111",
            "training_rows": 100_000,
        },
        "data": {"path": "/data/eval.parquet", "rows": n, "fingerprint": "sha256:2222"},
        "reward": {"name": "ve_success", "description": "value enhanced (VES top-box)"},
        "openness": classification_metrics(y_open, p_open),
        "uplift": uplift,
        "policy_value": pv,
        "comparisons": {
            "model_vs_logging": {"a": "logging", "b": "model", "estimator": "dr"} | cmp.to_dict()
        },
        "oracle_fraction": 0.93,
        "action_shares": shares,
        "model_card": {
            "intended_use": "Suggest a value activity to contact-center agents.",
            "limits": ["Trained on simulated data", "Not for complaints <escalations>"],
            "features": ["segment", "tenure_months"],
            "data_fingerprint": "sha256:1111",
            "training_data": {"rows": 100_000, "period": "2024-01..2024-12"},
        },
        "warnings": ["holdout arm is small"],
    }


def test_report_is_self_contained(tmp_path: Path) -> None:
    ev = full_evaluation()
    json.dumps(ev, allow_nan=False)  # what `vea evaluate --json` writes is standard JSON
    out = render_report(ev, tmp_path / "sub" / "report.html")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text
    assert re.findall(r'src="([^"]+)"', text) and all(
        s.startswith("data:image/png;base64,") for s in re.findall(r'src="([^"]+)"', text)
    )
    assert text.count("data:image/png;base64,") == 4  # calibration, qini, policy value, shares
    for anchor in ("summary", "openness", "uplift", "policy", "actions", "model-card"):
        assert f'id="{anchor}"' in text
    assert "always achieve_goals" in text
    assert "holdout arm is small" in text
    assert "&lt;escalations&gt;" in text
    assert not (tmp_path / "sub" / "report.html.tmp").exists()


def test_report_escapes_text_and_urls() -> None:
    ev = {
        "model": {"version": "<script>alert(1)</script>", "learner": 'x" onload="y'},
        "data": {"path": "https://example.com/data.csv", "rows": 5},
        "warnings": ["see http://wiki/page"],
        "extra_field": {"note": "<b>bold</b>"},
    }
    text = render_html(ev)
    assert "<script>alert" not in text and "&lt;script&gt;" in text
    assert 'x" onload' not in text
    assert "http://" not in text and "https://" not in text
    assert "&lt;b&gt;bold" in text  # unknown keys are shown, escaped


@pytest.mark.parametrize(
    "ev",
    [
        {},
        {"model": {"version": "v1"}},
        {"model": {"version": "v1"}, "openness": {"auc": 0.7, "calibration": []}},
        {"policy_value": {"oracle": {"true": 0.4}}, "uplift": {}, "action_shares": None},
        {"warnings": "one warning as a string", "oracle_fraction": float("nan")},
    ],
)
def test_report_renders_minimal_dicts(tmp_path: Path, ev: dict) -> None:
    text = render_report(ev, tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'id="summary"' in text and text.rstrip().endswith("</html>")
    assert "uplift" not in ev or 'id="uplift"' not in text
    assert "http://" not in text and "https://" not in text


def test_report_survives_a_malformed_section() -> None:
    ev = {"uplift": {"educate_usage": {"fraction": [0.0, 1.0], "qini": ["a", {}]}}}
    text = render_html(ev)
    assert "could not render" in text and 'id="summary"' in text


def test_report_flags_evaluation_on_training_data() -> None:
    ev = {"model": {"data_fingerprint": "abc"}, "data": {"fingerprint": "abc"}}
    assert "own training data" in render_html(ev)
