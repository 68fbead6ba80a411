"""Small real data and models for tests: simulated logs and bundles trained on them.

Plain functions (cached), so any test module or conftest can import them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from models.bundle import ModelBundle
from training.fit import train_bundle
from training.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
HILLSTROM = ROOT.parent / "shared" / "data" / "hillstrom.csv"


@lru_cache(maxsize=4)
def simulated(rows: int = 8000, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    log, truth = simulate(rows=rows, seed=seed)
    return log, truth


@lru_cache(maxsize=4)
def trained_bundle(learner: str = "s", rows: int = 8000, seed: int = 3) -> ModelBundle:
    """A real bundle (not saved) trained on a small simulated log."""
    log, _ = simulated(rows, seed)
    return train_bundle(log, learner=learner, seed=seed, progress=False, data_fingerprint="test")


def decision_request(row) -> dict:
    """The `POST /v1/decisions` body for one row of a simulated log (``itertuples``)."""
    customer = {
        "customer_id": row.customer_id,
        "segment": row.segment,
        "persona": row.persona,
        "tenure_months": float(row.tenure_months),
        "switching_effort": row.switching_effort,
        "prior_contacts_30d": int(row.prior_contacts_30d),
        "language": row.language,
    }
    contact = {
        "channel": row.channel,
        "issue_type": row.issue_type,
        "sentiment": float(row.sentiment),
        "occurred_at": row.occurred_at.isoformat(),
    }
    return {"interaction_id": row.interaction_id, "customer": customer, "contact": contact}
