"""Batch encoding (vea score, vea evaluate, the retrain gate, drift) reads a category value
as serving does (models.features.category_code), so a model is valued on the policy it
serves:

- a declared category written as numbers, read by pandas as floats around one empty
  cell, is learned as "101" (not "101.0"), which a decision's 101 or "101" and next
  month's file without the empty cell are too;
- a model trained on a CRM's log ("Premium", "INQUIRY") scores `vea export`'s lower-case
  values as serving scores the API's, and their drift against the training data is nil.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.drift import psi, reference_histogram
from models.economics import Economics
from models.features import FeatureEncoder
from models.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES, category_key, category_text
from training.fit import train_bundle
from training.loading import load_log, validate_log
from training.retrain import drift_against, greedy_actions
from training.simulate import simulate
from training.spec import Spec

STORES = [101, 102, 103]
EMPTY_ROW = 7  # the training file's store left empty


def crm_log(seed: int = 3, rows: int = 3000) -> pd.DataFrame:
    """A simulated log as a CRM writes it: capitalised categories, store ids as numbers."""
    log, _ = simulate(rows=rows, seed=seed)
    log["segment"] = log["segment"].str.title()
    log["issue_type"] = log["issue_type"].str.upper()
    log["store"] = np.random.default_rng(seed).choice(STORES, size=len(log))
    return log


def as_exported(log: pd.DataFrame) -> pd.DataFrame:
    """The same contacts as `vea export` writes them: categories as the API loads them."""
    out = log.copy()
    for name in ("segment", "issue_type"):
        out[name] = out[name].str.lower()
    return out


def api_features(row: pd.Series) -> dict:
    """A decision's feature mapping (service.decisions.model_features) for a log row:
    the store id as the JSON number a caller sends."""
    features = {name: row[name] for name in (*CATEGORICAL_FEATURES, *NUMERIC_FEATURES)}
    features["store"] = int(row["store"])
    return features


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoding")
    spec = Spec.from_dict({"features": {"store": "category"}})
    log = crm_log()
    written = log.copy()
    written.loc[EMPTY_ROW, "store"] = None  # one empty cell: pandas reads the column as floats
    written.to_csv(root / "train.csv", index=False)
    frame = load_log(root / "train.csv", spec)
    bundle = train_bundle(frame, spec=spec, learner="s", seed=0, num_threads=1, progress=False)
    # Next month's file: the same contacts as exported, no empty cell (integers).
    as_exported(log).to_csv(root / "next.csv", index=False)
    later = load_log(root / "next.csv", spec, numeric_features=bundle.encoder.numeric)
    return bundle, frame, later


def test_a_category_of_whole_numbers_is_learned_as_a_decision_sends_it(trained):
    bundle, frame, later = trained
    encoder = bundle.encoder
    assert sorted(frame["store"].dropna().unique()) == ["101", "102", "103"]
    assert encoder.vocabulary_["store"] == ["101", "102", "103"]
    j = encoder.feature_names.index("store")
    codes = {
        sent: encoder.encode_values({"store": sent})[j] for sent in (101, "101", 101.0, " 101 ")
    }
    assert codes == dict.fromkeys(codes, 0.0), codes
    # Next month's file (no empty cell) is encoded, not read as all missing.
    assert not np.isnan(encoder.transform(later)[:, j]).any()


def test_batch_encoding_equals_serving_for_the_live_spellings(trained):
    bundle, frame, later = trained
    encoder = bundle.encoder
    batch = encoder.transform(later)
    served = np.array([encoder.encode_values(api_features(row)) for _, row in later.iterrows()])
    np.testing.assert_array_equal(batch, served)
    # The same customers in the CRM's spelling: the same matrix, and the same policy
    # (but for the store of the training file's empty cell).
    rows = later.index != EMPTY_ROW
    np.testing.assert_array_equal(batch[rows], encoder.transform(frame)[rows])
    economics = Economics()
    np.testing.assert_array_equal(
        greedy_actions(bundle, later, economics)[rows],
        greedy_actions(bundle, frame, economics)[rows],
    )


def test_the_drift_of_the_same_customers_is_nil(trained):
    bundle, frame, later = trained
    drift = drift_against(bundle, later)
    assert set(drift) >= {"segment", "issue_type", "store"}
    # Nil but for the store of the one empty cell (0.0003); 17 for the segment before.
    assert max(drift.values()) < 1e-3, drift


def test_bundles_trained_before_read_the_live_spellings():
    """A bundle and drift reference stored by the old encoding ("101.0", "Premium") read
    a decision's 101 and "premium", in batch and online, without retraining."""
    encoder = FeatureEncoder.from_dict(
        {
            "categorical": ["store", "segment"],
            "numeric": [],
            "vocabulary": {"store": ["101.0", "102.0"], "segment": ["Consumer", "Premium"]},
        }
    )
    live = pd.DataFrame({"store": [101, 102, None], "segment": ["premium", "consumer", None]})
    batch = encoder.transform(live)
    np.testing.assert_array_equal(batch[:2], [[0.0, 1.0], [1.0, 0.0]])
    assert np.isnan(batch[2]).all()
    assert encoder.encode_values({"store": "101", "segment": "premium"}) == [0.0, 1.0]

    old_reference = {"kind": "categorical", "shares": {"101.0": 0.5, "102.0": 0.5}, "missing": 0}
    assert psi(old_reference, [101, 102]) == pytest.approx(0.0, abs=1e-9)
    old_reference = {"kind": "categorical", "shares": {"Premium": 0.5, "Consumer": 0.5}}
    assert psi({**old_reference, "missing": 0}, ["premium", "consumer"]) < 1e-9


def test_drift_counts_a_category_as_the_model_reads_it():
    reference = reference_histogram([101.0, 102.0, "Premium", None], numeric=False)
    assert reference["shares"] == {"101": 0.25, "102": 0.25, "premium": 0.25}
    assert psi(reference, [101, "102", " PREMIUM", None]) == pytest.approx(0.0, abs=1e-9)
    assert psi(reference, np.array([101.0, 102.0, np.nan, 101.0])) > 0.1  # not the same


def test_one_text_for_a_category_value():
    for value in (101, 101.0, np.int64(101), np.float64(101.0), "101"):
        assert category_text(value) == "101"
    assert category_text(2.5) == "2.5"
    assert category_text(True) == "True"
    assert category_text(" Premium ") == " Premium "  # learned as written
    assert category_key(" Premium ") == "premium"
    assert category_key("101.0") == "101"
    assert category_key("1.05") == "1.05"


def test_the_loader_writes_whole_number_categories_as_text():
    frame = pd.DataFrame(
        {
            "segment": [3.0, math.nan, 4.0],  # a segment code column with an empty cell
            "store": [101.0, math.nan, 102.5],
            "customer_id": ["c1", "c2", "c3"],
        }
    )
    out = validate_log(frame, require_outcome=False, features={"store": "category"})
    assert out["segment"].tolist() == ["3", pd.NA, "4"]
    assert out["store"].tolist() == ["101", pd.NA, "102.5"]
