"""A spec maps a user's log onto the canonical one without losing what the log already
has (canonical columns pass through), reads `success.positive` the way the user wrote
it, and errors name the user's own columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from core_fixtures import HILLSTROM, ROOT, simulated

from models.schema import CONTEXT_FEATURES, LABEL
from training.cli import cli
from training.loading import DataError, load_log
from training.spec import Spec, SpecError

HILLSTROM_SPEC = ROOT / "examples" / "hillstrom.yaml"


@pytest.fixture(autouse=True)
def compile_cache(tmp_path_factory, monkeypatch):
    """Compiled forests go to a test directory, never into the working tree."""
    monkeypatch.setenv("VEA_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "compiled"))


def _train(data, spec, registry):
    args = ["train", "--data", data, "--spec", spec, "--learner", "s", "--threads", 1]
    args += ["--quiet", "--no-compile"]
    return CliRunner().invoke(cli, [str(a) for a in args], env={"VEA_REGISTRY": str(registry)})


def _write_spec(path, data: dict):
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# ------------------------------------------ canonical columns pass through the spec
def test_canonical_columns_pass_through_unless_the_spec_fills_them():
    log = simulated(3000, 5)[0].head(50).copy()
    log["recency"] = np.arange(50, dtype=float)
    log["arm"] = log["activity"]
    spec = Spec.from_dict(
        {
            "columns": {"tenure_months": "recency", "channel": "channel"},
            "activity": "arm",
            "propensity": 0.5,
            "success": "ve_success",
        }
    )
    out = spec.apply(log)
    assert set(CONTEXT_FEATURES) <= set(out.columns)  # issue_type, segment... kept
    assert {"interaction_id", "customer_id", "accepted", "retained_60d"} <= set(out.columns)
    # The spec's own mapping wins over a column of the same canonical name.
    assert out["tenure_months"].tolist() == log["recency"].tolist()
    assert out["propensity"].eq(0.5).all()
    assert "arm" not in out.columns


def test_a_column_the_spec_reads_is_not_also_taken_under_its_own_name():
    """Hillstrom's `segment` is the e-mail arm (the activity), not a customer segment."""
    raw = pd.DataFrame(
        {
            "segment": ["Mens E-Mail", "No E-Mail"],
            "visit": [1, 0],
            "channel": ["Web", "Phone"],
            "issue_type": ["billing", "how_to"],
        }
    )
    spec = Spec.from_dict(
        {
            "activity": {
                "column": "segment",
                "values": {"Mens E-Mail": "advise_new_uses", "No E-Mail": "none"},
            },
            "propensity": 0.5,
            "success": "visit",
        }
    )
    out = spec.apply(raw)
    assert "segment" not in out.columns
    assert out["activity"].tolist() == ["advise_new_uses", "none"]
    assert out["channel"].tolist() == ["Web", "Phone"]
    assert out["issue_type"].tolist() == ["billing", "how_to"]
    assert spec.passed_through(raw.columns) == ["channel", "issue_type"]


def test_a_spec_with_economics_only_keeps_the_whole_log(tmp_path):
    log = simulated(3000, 5)[0]
    data = tmp_path / "log.parquet"
    log.to_parquet(data)
    spec = Spec.from_dict({"economics": {"value_of_success": 5.0, "cost_per_second": 0.05}})
    frame = load_log(data, spec)
    assert {LABEL, "activity", "propensity", *CONTEXT_FEATURES} <= set(frame.columns)
    # Trained, the model reads every canonical context feature, as without a spec.
    econ_only = _write_spec(tmp_path / "econ.yaml", spec.to_dict())
    channel_only = _write_spec(
        tmp_path / "channel.yaml",
        {
            "columns": {"channel": "channel"},
            "activity": "activity",
            "propensity": "propensity",
            "success": "ve_success",
        },
    )
    for path in (econ_only, channel_only):
        registry = tmp_path / path.stem
        result = _train(data, path, registry)
        assert result.exit_code == 0, result.output
        version = result.output.split()[0]
        manifest = json.loads((registry / "versions" / version / "manifest.json").read_text())
        features = manifest["features"]["categorical"] + manifest["features"]["numeric"]
        assert set(features) == set(CONTEXT_FEATURES), path.stem


def test_a_spec_that_leaves_no_feature_is_refused_without_a_traceback(tmp_path):
    data = tmp_path / "bare.csv"
    pd.DataFrame({"arm": ["a", "b"] * 50, "visit": [1, 0, 0, 1] * 25}).to_csv(data, index=False)
    spec = _write_spec(
        tmp_path / "bare.yaml",
        {
            "activity": {"column": "arm", "values": {"a": "none", "b": "educate_usage"}},
            "propensity": 0.5,
            "success": "visit",
        },
    )
    result = _train(data, spec, tmp_path / "reg")
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "the spec leaves the model no feature" in result.output
    assert not (tmp_path / "reg" / "versions").exists()


# ---------------------------------------------------------------- success.positive
@pytest.mark.parametrize(
    ("values", "positive"),
    [
        ([1.0, 0.0, None, 1.0], "1"),  # a float column, positive: 1
        (["1.0", "0.0", None, "1"], "1"),  # the same as text in a CSV
        (["yes", "no", None, "yes"], "yes"),  # YAML reads an unquoted yes as True
        (["Yes", "No", None, "TRUE"], "true"),
        ([True, False, None, True], "yes"),
        (["yes", "no", None, "yes"], "'yes'"),  # quoted, the same
        (["visit", "none", None, "visit"], "visit"),
    ],
)
def test_success_positive_matches_as_the_user_wrote_it(values, positive):
    spec = Spec.from_dict(yaml.safe_load(f"success: {{column: y, positive: {positive}}}"))
    out = spec.apply(pd.DataFrame({"y": pd.Series(values, dtype=object)}))
    assert out[LABEL].tolist() == [1, 0, pd.NA, 1]


def test_success_positive_that_matches_no_row_names_the_column_and_its_values(tmp_path):
    spec = Spec.from_dict({"success": {"column": "visit", "positive": "Y"}})
    raw = pd.DataFrame({"visit": ["yes", "no", None]})
    with pytest.raises(SpecError) as caught:
        spec.apply(raw)
    text = str(caught.value)
    assert "success.positive 'Y' matches no row of column visit" in text
    assert "'yes'" in text and "'no'" in text
    # Scoring reads no outcome: there a column without successes is no error.
    assert spec.apply(raw, require_outcome=False)[LABEL].tolist() == [0, 0, pd.NA]
    # Nor is a file (or a Dask partition) that happens to hold no success at all.
    assert spec.apply(pd.DataFrame({"visit": ["no", "no"]}))[LABEL].tolist() == [0, 0]
    with pytest.raises(SpecError, match="success.positive must be one value"):
        Spec.from_dict({"success": {"column": "visit", "positive": [1, 2]}})


def test_train_with_a_float_success_column_and_positive_1(tmp_path):
    """The reviewer's case: visit as 0.0/1.0 (one blank) trained as all failures."""
    frame = pd.read_csv(HILLSTROM, nrows=3000)
    frame["visit"] = frame["visit"].astype(float)
    frame.loc[5, "visit"] = np.nan
    data = tmp_path / "h.csv"
    frame.to_csv(data, index=False)
    spec = yaml.safe_load(HILLSTROM_SPEC.read_text(encoding="utf-8"))
    spec["success"] = {"column": "visit", "positive": 1}
    loaded = load_log(data, Spec.from_dict(spec))
    assert loaded[LABEL].sum() == frame["visit"].sum() > 0
    result = _train(data, _write_spec(tmp_path / "s.yaml", spec), tmp_path / "reg")
    assert result.exit_code == 0, result.output
    # The listing says what the model's success holds in the user's words.
    listed = CliRunner().invoke(
        cli, ["models", "list"], env={"VEA_REGISTRY": str(tmp_path / "reg")}
    )
    assert "reward=ve_success (visit = 1 (the spec's success column" in listed.output


# ------------------------------------------------------------ the user's column names
def _hillstrom(path, **changes) -> None:
    frame = pd.read_csv(HILLSTROM, nrows=300)
    for column, (row, value) in changes.items():
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    frame.to_csv(path, index=False)


@pytest.mark.parametrize(
    ("changes", "success", "message"),
    [
        ({"recency": (7, -3)}, "visit", "row 8, field recency (tenure_months): must be >= 0"),
        ({"segment": (5, None)}, "visit", "row 6, field segment (activity): missing"),
        ({"spend": (3, 29.99)}, "spend", "row 4, field spend (ve_success): must be 0 or 1"),
    ],
)
def test_errors_name_the_users_column(tmp_path, changes, success, message):
    data = tmp_path / "h.csv"
    _hillstrom(data, **changes)
    spec = yaml.safe_load(HILLSTROM_SPEC.read_text(encoding="utf-8"))
    spec["success"] = success
    with pytest.raises(DataError) as caught:
        load_log(data, Spec.from_dict(spec))
    assert message in str(caught.value)
    assert "not a whole number" not in str(caught.value)


def test_a_log_without_any_feature_is_refused_before_training():
    from training.fit import train_bundle
    from training.simulate import simulate

    log, _ = simulate(rows=500, seed=3)
    bare = log[["interaction_id", "activity", "propensity", "ve_success"]]
    with pytest.raises(ValueError, match="gives the model no feature"):
        train_bundle(bare, learner="s", num_threads=1, progress=False)
