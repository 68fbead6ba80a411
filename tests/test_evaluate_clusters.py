"""`vea evaluate`'s intervals resample customers, as the gate's and the value report's
do: on a live log a customer's contacts share the customer, and resampling contacts one
by one read them as independent evidence (every interval too narrow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from core_fixtures import simulated, trained_bundle

from training.evaluate import evaluate_bundle
from training.retrain import customers_of

COPIES = 9  # each contact seen nine times: the same customer, the same outcome


def _widths(result: dict) -> dict[str, float]:
    values = result["policy_value"]
    return {
        name: values[name]["dr"]["ci_high"] - values[name]["dr"]["ci_low"]
        for name in ("model", "logging", "random")
    }


def test_a_customers_repeated_contacts_do_not_narrow_the_intervals():
    log = simulated(1500, 21)[0].reset_index(drop=True)
    # Distinct customers, then each one's contact repeated: no new evidence at all.
    log = log.assign(customer_id=[f"c{i}" for i in range(len(log))])
    repeated = log.loc[np.repeat(log.index.to_numpy(), COPIES)].reset_index(drop=True)
    repeated["interaction_id"] = [f"i{i}" for i in range(len(repeated))]
    bundle = trained_bundle()

    once = _widths(evaluate_bundle(bundle, log, n_boot=200))
    by_customer = _widths(evaluate_bundle(bundle, repeated, n_boot=200))
    by_contact = _widths(
        evaluate_bundle(bundle, repeated.drop(columns=["customer_id"]), n_boot=200)
    )
    for name, width in once.items():
        # Resampling customers: as wide as with each contact once.
        assert 0.8 * width < by_customer[name] < 1.25 * width, name
        # Resampling contacts (a log without customer ids): sqrt(9) = 3 times narrower.
        assert by_contact[name] < 0.5 * width, name


def test_rows_without_a_customer_id_are_each_their_own_customer():
    frame = pd.DataFrame({"customer_id": ["a", None, "a", np.nan, "b"]})
    keys = customers_of(frame)
    assert keys[0] == keys[2] != keys[4]
    assert len({keys[1], keys[3], keys[0], keys[4]}) == 4
    assert customers_of(frame.drop(columns=["customer_id"])) is None
