"""`vea train --learner auto` on small logs: a log with enough rows to fit but too few to
compare the learners out of fold trains the default learner and says why (it failed
inside a fold, naming the fold's counts); a log below the minimum is refused up front
with the whole log's counts."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from core_fixtures import simulated

from models.activities import ACTIONS
from models.ranker import MIN_ACTION_SUPPORT
from models.registry import Registry
from training.cli import cli
from training.fit import BASELINE_LEARNER, fold_shortfall, selection_folds, train_bundle
from training.loading import action_codes


@lru_cache(maxsize=4)
def log_with(counts: tuple[tuple[str, int], ...]) -> pd.DataFrame:
    """Rows of a simulated log with exactly ``counts`` rows per activity, shuffled."""
    log = simulated(8000, 3)[0]
    parts = [log[log["activity"] == a].head(n) for a, n in counts]
    return pd.concat(parts).sample(frac=1, random_state=0).reset_index(drop=True)


JUST_ABOVE = tuple((a, MIN_ACTION_SUPPORT + 5) for a in ACTIONS)


def test_a_log_just_above_the_minimum_trains_the_default_learner_and_says_why():
    bundle = train_bundle(log_with(JUST_ABOVE), learner="auto", progress=False, num_threads=1)
    assert bundle.ranker.learner == BASELINE_LEARNER
    selection = bundle.manifest["metrics"]["learner_selection"]
    assert selection["skipped"] is True and selection["chosen"] == BASELINE_LEARNER
    note = selection["note"]
    assert note.startswith("learner selection skipped: each of the 5 folds fits on 80%")
    assert f"fewer than the {MIN_ACTION_SUPPORT} rows a model needs" in note
    # The counts are the fold's and the log's, named per activity.
    assert re.search(rf"none \d+/{MIN_ACTION_SUPPORT + 5}", note)
    assert "default learner s" in note
    assert np.isfinite(
        bundle.ranker.predict_proba(bundle.encoder.transform(log_with(JUST_ABOVE)))
    ).all()


def test_one_rare_activity_is_named_and_selection_skipped():
    counts = (("none", 900), ("validate_purchase", 31), *((a, 300) for a in ACTIONS[2:]))
    bundle = train_bundle(log_with(counts), learner="auto", progress=False, num_threads=1)
    selection = bundle.manifest["metrics"]["learner_selection"]
    assert selection["skipped"] is True
    assert "which leaves validate_purchase fewer than" in selection["note"]
    assert "/31)" in selection["note"]
    assert bundle.ranker.actions_seen_[ACTIONS.index("validate_purchase")]


def test_a_log_that_supports_every_fold_is_compared_as_before():
    log = simulated(3000, 11)[0]
    bundle = train_bundle(log, learner="auto", progress=False, num_threads=1)
    selection = bundle.manifest["metrics"]["learner_selection"]
    assert "note" not in selection and "skipped" not in selection
    assert set(selection["dr_value"]) == {"s", "s_ipw", "t", "dr"}


def test_the_cli_prints_the_note_it_records(tmp_path):
    path = tmp_path / "small.csv"
    log_with(JUST_ABOVE).to_csv(path, index=False)
    reg = tmp_path / "reg"
    result = CliRunner().invoke(
        cli, ["train", "--data", str(path), "--quiet", "--no-compile", "--registry", str(reg)]
    )
    assert result.exit_code == 0, result.output
    version = result.stdout.strip().split()[0]
    note = Registry(reg).load(version).manifest["metrics"]["learner_selection"]["note"]
    assert f"note: {note}" in result.stderr
    assert "Traceback" not in result.output


def test_a_log_below_the_minimum_is_refused_with_the_whole_logs_counts(tmp_path):
    below = (("none", MIN_ACTION_SUPPORT - 1), ("educate_usage", MIN_ACTION_SUPPORT - 5))
    path = tmp_path / "tiny.csv"
    log_with(below).to_csv(path, index=False)
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(path),
            "--quiet",
            "--no-compile",
            "--registry",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 1
    assert f"each needs at least {MIN_ACTION_SUPPORT}" in result.output
    assert f"the {2 * MIN_ACTION_SUPPORT - 6} rows hold" in result.output
    assert f"none {MIN_ACTION_SUPPORT - 1}" in result.output
    assert f"educate_usage {MIN_ACTION_SUPPORT - 5}" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("learner", ["s", "t", "dr"])
def test_a_forced_learner_on_a_small_log_needs_no_folds(learner):
    bundle = train_bundle(log_with(JUST_ABOVE), learner=learner, progress=False, num_threads=1)
    assert bundle.ranker.learner == learner
    assert "learner_selection" not in bundle.manifest["metrics"]


def test_a_sample_counts_actions_the_whole_log_teaches():
    """On the cluster, selection runs on a client sample: an activity the whole log
    teaches but the sample's folds cannot is named as well."""
    log = simulated(3000, 11)[0]
    actions = action_codes(log)
    folds = selection_folds(len(actions), 0)
    assert fold_shortfall(actions, folds) is None
    logged = np.bincount(actions, minlength=len(ACTIONS))
    rare = np.flatnonzero(logged == logged.min())[0]
    keep = (actions != rare) | (np.cumsum(actions == rare) <= 10)
    sample = actions[keep]
    text = fold_shortfall(sample, selection_folds(len(sample), 0), logged, "sampled rows")
    assert text is not None and f"of the {len(sample)} sampled rows" in text
    assert f"which leaves {ACTIONS[rare]} fewer than" in text


def test_a_log_of_none_only_trains_quietly_and_says_nothing_is_suggested(tmp_path):
    """numpy's 'Mean of empty slice' reached the console from the reasons table, and
    nothing said that the model would never suggest an activity."""
    import warnings

    log = simulated(8000, 3)[0]
    path = tmp_path / "none.csv"
    log[log["activity"] == "none"].to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "Mean of empty slice", RuntimeWarning)
        result = CliRunner().invoke(
            cli,
            [
                "train",
                "--data",
                str(path),
                "--quiet",
                "--no-compile",
                "--registry",
                str(tmp_path / "r"),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "the model learned only none and never suggests an activity" in result.stderr
    assert "validate_purchase 0" in result.stderr
