"""Bad input to `vea train` / `score` / `evaluate` / `retrain` / `pools rebuild`: a clear
message naming the row and field (or what to do), a non-zero exit, never a traceback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from core_fixtures import HILLSTROM, ROOT, simulated

from models.schema import MAX_HANDLE_TIME_S, MAX_PRIOR_CONTACTS_30D, MAX_TENURE_MONTHS
from training.cli import cli
from training.loading import DataError, load_log, validate_log
from training.retrain import GateResult, RetrainResult, describe
from training.spec import Spec, SpecError

HILLSTROM_SPEC = ROOT / "examples" / "hillstrom.yaml"


@pytest.fixture(autouse=True)
def compile_cache(tmp_path_factory, monkeypatch):
    """Compiled forests go to a test directory, never into the working tree."""
    monkeypatch.setenv("VEA_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "compiled"))


def vea(*args, registry=None, env=None):
    environment = {"VEA_REGISTRY": str(registry)} if registry else {}
    environment.update(env or {})
    return CliRunner().invoke(cli, [str(a) for a in args], env=environment)


def refused(result, *expected: str) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.output, result.output


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A champion trained on simulated data (canonical columns, no spec)."""
    root = tmp_path_factory.mktemp("cli_input")
    log, truth = simulated(3000, 5)
    log.to_parquet(root / "train.parquet")
    train = CliRunner().invoke(
        cli,
        ["train", "--data", str(root / "train.parquet"), "--learner", "s", "--quiet"]
        + ["--threads", "1", "--no-compile"],
        env={"VEA_REGISTRY": str(root / "reg")},
    )
    assert train.exit_code == 0, train.output
    return root, train.output.split()[0]


def _sim_csv(path, **changes) -> None:
    """A small simulated log as CSV, with ``changes[column] = (row index, value)``."""
    frame = simulated(3000, 5)[0].head(30).copy()
    for column, (row, value) in changes.items():
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[row], column] = value
    frame.to_csv(path, index=False)


# -------------------------------------------------------- 1. the API's bounds, finite
def test_the_loader_uses_the_api_bounds():
    """One source of truth: the REST API refuses the same values (service/schemas.py)."""
    from marshmallow import validate

    from service.schemas import CustomerSchema, OutcomeRequestSchema

    def maximum(field) -> float:
        return next(v.max for v in field.validators if isinstance(v, validate.Range))

    customer = CustomerSchema().fields
    assert maximum(customer["tenure_months"]) == MAX_TENURE_MONTHS
    assert maximum(customer["prior_contacts_30d"]) == MAX_PRIOR_CONTACTS_30D
    assert maximum(OutcomeRequestSchema().fields["handle_time_s"]) == MAX_HANDLE_TIME_S


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "row 3, field tenure_months: not a finite number (got inf)"),
        ("-inf", "row 3, field tenure_months: not a finite number (got -inf)"),
        ("1e300", "row 3, field tenure_months: must be <= 1200 (got 1e+300)"),
        ("1201", "row 3, field tenure_months: must be <= 1200 (got 1201)"),
    ],
)
def test_train_and_score_refuse_impossible_tenure(workspace, tmp_path, value, message):
    root, _ = workspace
    data = tmp_path / "bad.csv"
    _sim_csv(data, tenure_months=(2, value))
    refused(vea("train", "--data", data, "--quiet", "--no-compile", registry=tmp_path), message)
    assert not (tmp_path / "versions").exists()
    out = tmp_path / "scored.csv"
    refused(vea("score", "--data", data, "--out", out, registry=root / "reg"), message)
    assert not out.exists()


def test_other_api_bounds_and_non_finite_values():
    frame = simulated(3000, 5)[0].head(10).copy()
    frame["prior_contacts_30d"] = frame["prior_contacts_30d"].astype(float)
    frame.loc[1, "prior_contacts_30d"] = 100_001
    frame.loc[2, "handle_time_s"] = 86_401.0
    frame.loc[3, "sentiment"] = np.nan  # missing is fine
    frame.loc[4, "propensity"] = np.inf
    with pytest.raises(DataError) as caught:
        validate_log(frame)
    text = str(caught.value)
    assert "row 2, field prior_contacts_30d: must be <= 100000 (got 100001)" in text
    assert "row 3, field handle_time_s: must be <= 86400 (got 86401)" in text
    assert "row 5, field propensity: not a finite number (got inf)" in text
    assert "sentiment" not in text and text.count("propensity") == 1


# ------------------------------------------------------------ 2. numbers as timestamps
def test_numbers_are_not_timestamps(tmp_path):
    frame = simulated(3000, 5)[0].head(10).copy()
    frame["occurred_at"] = np.arange(10, dtype=np.int64) + 123456  # e.g. an epoch column
    frame.to_parquet(tmp_path / "ints.parquet")
    with pytest.raises(DataError) as caught:
        load_log(tmp_path / "ints.parquet")
    assert "row 1, field occurred_at: a number, not a timestamp" in str(caught.value)
    assert "(got 123456)" in str(caught.value)
    mixed = frame.copy()
    stamps: list[object] = ["2026-06-01T09:30:00Z"] * 10
    stamps[3] = 123456
    mixed["occurred_at"] = pd.Series(stamps, dtype=object, index=frame.index)
    with pytest.raises(DataError, match=r"row 4, field occurred_at: a number, not a timestamp"):
        validate_log(mixed)


# ---------------------------------------------------- 3. spec features that must be numbers
def _hillstrom_head(path, rows: int = 3000, **changes) -> None:
    frame = pd.read_csv(HILLSTROM, nrows=rows)
    for column, (row, value) in changes.items():
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def test_a_spec_feature_that_is_not_a_number_is_refused(tmp_path):
    data = tmp_path / "h.csv"
    _hillstrom_head(data, history=(2, "lots"))
    reg = tmp_path / "reg"
    result = vea("train", "--data", data, "--spec", HILLSTROM_SPEC, "--quiet", registry=reg)
    refused(result, "row 3, field history: not a number (", "(got 'lots')")
    assert "features: {history: category}" in result.output  # how to say it is a category
    # Counted, not rounded: one word in 3,000 values is not "100% of the column".
    assert "2,999 of 3,000 values are numbers" in result.output
    assert "100%" not in result.output
    assert not (reg / "versions").exists()


def test_a_declared_category_with_digits_stays_a_category(tmp_path):
    spec = Spec.from_dict({"success": "visit", "features": {"history": "category", "mens": None}})
    assert spec.to_dict()["features"] == {"history": "category", "mens": None}
    assert Spec.from_dict(spec.to_dict()).feature_kinds() == spec.feature_kinds()
    frame = load_log(HILLSTROM, spec)
    assert not pd.api.types.is_numeric_dtype(frame["history"])
    with pytest.raises(SpecError, match="features.history: 'text' is not a kind"):
        Spec.from_dict({"features": {"history": "text"}})


def test_a_model_numeric_feature_is_refused_when_not_a_number(tmp_path):
    """At scoring time the model says which features are numbers: a word there was read
    as a missing value before."""
    reg = tmp_path / "reg"
    train_data = tmp_path / "train.csv"
    _hillstrom_head(train_data)
    trained = vea(
        "train", "--data", train_data, "--spec", HILLSTROM_SPEC, "--quiet", "--threads", 1,
        "--learner", "s", "--no-compile", registry=reg,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    bad = tmp_path / "bad.csv"
    _hillstrom_head(bad, rows=50, history=(4, "lots"))
    out = tmp_path / "scored.csv"
    result = vea("score", "--data", bad, "--out", out, registry=reg)
    refused(result, "row 5, field history: not a number (got 'lots')")
    assert not out.exists()


# -------------------------------------------------------------- 4. plain values, once
def test_messages_show_plain_values_once(tmp_path):
    frame = pd.DataFrame(
        {
            "prior_contacts_30d": np.array([1, -3], dtype=np.int64),
            "ve_success": ["1", "yes"],
            "activity": ["none", None],
            "propensity": [1.0, 0.5],
        }
    )
    with pytest.raises(DataError) as caught:
        validate_log(frame)
    text = str(caught.value)
    assert "row 2, field prior_contacts_30d: must be >= 0 (got -3)" in text
    assert "np." not in text
    assert "row 2, field ve_success: not a number (got 'yes')" in text
    assert text.count("ve_success") == 1  # not also "missing"
    assert "row 2, field activity: missing" in text and "got nan" not in text


# ---------------------------------------------------------------------- 5. not UTF-8
def test_a_shift_jis_csv_is_named_with_its_line(workspace, tmp_path):
    root, _ = workspace
    data = tmp_path / "sjis.csv"
    data.write_bytes("channel,ve_success\nvoice,1\nchat,0\n電話,1\n".encode("shift_jis"))
    result = vea("train", "--data", data, "--quiet", registry=tmp_path / "reg")
    refused(result, "sjis.csv: not UTF-8 text (line 4", "iconv -f CP932 -t UTF-8")
    assert "codec can't decode" not in result.output
    result = vea("score", "--data", data, "--out", tmp_path / "s.csv", registry=root / "reg")
    refused(result, "not UTF-8 text (line 4")


# ------------------------------------------------------------------ 6. thread counts
def test_negative_threads_are_refused(workspace):
    root, _ = workspace
    result = vea("train", "--data", root / "train.parquet", "--threads", "-5", "--quiet")
    assert result.exit_code == 2 and "--threads" in result.output
    assert "-5 is not in the range 0<=x<=256" in result.output
    # Thousands of threads stalled the machine for minutes; 100,000 crashed the process.
    result = vea("train", "--data", root / "train.parquet", "--threads", "100000", "--quiet")
    assert result.exit_code == 2 and "100000 is not in the range 0<=x<=256" in result.output


# -------------------------------------------------------- 7. the gate's reason, printed
def _result(status: str, gate: GateResult | None, **extra) -> RetrainResult:
    return RetrainResult(status, "v2", "v1", gate, {}, [], 5000, **extra)


def test_retrain_prints_why_a_challenger_was_refused_or_skipped():
    values = {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    gate = GateResult(
        False,
        "refused: effective sample size 98 < 100: the logs barely cover the challenger's "
        "choices (explore more or wait for more data)",
        5000,
        2,
        improvement={"value": 0.1, "ci_low": 0.05, "ci_high": 0.15},
        champion_value=values,
        challenger_value=values,
    )
    text = describe(_result("refused", gate))
    assert "improvement 0.1000 [0.0500, 0.1500]" in text  # above zero, and yet:
    assert "challenger v2: refused (effective sample size 98 < 100" in text
    forced = describe(_result("promoted", gate))
    assert "challenger v2: promoted (forced past the gate, which refused: effective" in forced
    skipped = describe(_result("skipped", None, reason="500 rows < --min-rows 1000"))
    assert "skipped: 500 rows < --min-rows 1000; nothing trained" in skipped


# ------------------------------------------------ 8. the model used, and in-sample figures
def test_evaluate_names_the_model_when_the_data_is_for_another(workspace, tmp_path):
    root, version = workspace
    data = tmp_path / "h.csv"
    _hillstrom_head(data, rows=200)
    result = vea("evaluate", "--data", data, "--report", tmp_path / "r.html", registry=root / "reg")
    refused(
        result,
        "missing column 've_success'",
        f"This used model {version} (the champion)",
        "trained without a spec",
        "--model VERSION",
        "vea models list",
    )
    assert not (tmp_path / "r.html").exists()


def test_evaluate_warns_when_the_data_lacks_the_models_features(workspace, tmp_path):
    """Hillstrom data mapped by its spec, valued with the simulator-trained champion: it
    runs, but the model sees none of its own features; the console must say so."""
    root, version = workspace
    data = tmp_path / "h.csv"
    _hillstrom_head(data, rows=400)
    result = vea(
        "evaluate", "--data", data, "--spec", HILLSTROM_SPEC, "--json", tmp_path / "e.json",
        "--bootstrap", 50, registry=root / "reg",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"warning: model {version} reads" in result.stderr
    assert "--model VERSION" in result.stderr


def test_evaluate_warns_on_the_console_about_in_sample_figures(workspace, tmp_path):
    root, version = workspace
    args = ["evaluate", "--data", root / "train.parquet", "--json", tmp_path / "e.json"]
    result = vea(*args, "--bootstrap", 50, registry=root / "reg")
    assert result.exit_code == 0, result.output
    assert f"warning: model {version} was trained on this very data" in result.stderr
    assert "in-sample" in result.stderr
    held_out = tmp_path / "test.parquet"
    simulated(3000, 6)[0].head(1000).to_parquet(held_out)
    result = vea(
        "evaluate", "--data", held_out, "--json", tmp_path / "f.json", "--bootstrap", 50,
        registry=root / "reg",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "in-sample" not in result.stderr


# ------------------------------------------------- 9. pools rebuild on `vea score` output
def test_pools_rebuild_says_which_log_it_needs(workspace, tmp_path):
    root, _ = workspace
    scored = tmp_path / "scored.parquet"
    data = tmp_path / "contacts.csv"
    simulated(3000, 6)[0].head(100).to_csv(data, index=False)
    assert vea("score", "--data", data, "--out", scored, registry=root / "reg").exit_code == 0
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db"}
    assert vea("db", "upgrade", env=env).exit_code == 0
    result = vea("pools", "rebuild", "--log", scored, "--dry-run", env=env)
    refused(
        result,
        "missing columns ['activity', 'agent_id', 've_success']",
        "decisions with their outcomes and agent ids",
        "vea export",
        "looks like `vea score` output",
    )
