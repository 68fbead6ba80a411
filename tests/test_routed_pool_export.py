"""The export's ``pool_id`` is the pool that handled the contact (the outcome's); its
``pool_propensity`` is the probability of the pool routing chose. When they differ (an
overflow, a transfer), the export paired one pool with another's probability and
``vea evaluate --routing`` divided by the wrong one. The chosen pool now travels as
``routed_pool_id``, and routing is evaluated on it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from service.auth import create_key
from service.export import decision_frame
from training.cli import cli


def test_the_export_keeps_the_routed_pool_beside_the_handling_one(own_app, new_id):
    engine = own_app.extensions["vea"].engine
    client = own_app.test_client()
    desk = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    answers = []
    for handled_by in ("overflow_pool", None):
        body = {
            "interaction_id": new_id("i-"),
            "customer": {"customer_id": new_id("c-"), "tenure_months": 4},
            "contact": {"channel": "voice", "issue_type": "how_to"},
        }
        answer = client.post("/v1/decisions", json=body, headers=desk).json
        outcome = {"offered": False, **({"pool_id": handled_by} if handled_by else {})}
        recorded = client.post(
            f"/v1/decisions/{answer['decision_id']}/outcome", json=outcome, headers=desk
        )
        assert recorded.status_code == 201, recorded.json
        answers.append(answer)

    frame = decision_frame(engine).set_index("decision_id")
    moved, stayed = (frame.loc[a["decision_id"]] for a in answers)
    routed = answers[0]["route"]
    assert moved["pool_id"] == "overflow_pool"
    assert moved["routed_pool_id"] == routed["pool"] != "overflow_pool"
    assert moved["pool_propensity"] == routed.get("propensity", 1.0)
    assert stayed["pool_id"] == stayed["routed_pool_id"] == answers[1]["route"]["pool"]


def test_routing_is_evaluated_on_the_routed_pool(tmp_path):
    """A log where a third of the contacts routed to edu_a were handled by general: the
    general-only policy's value (truth 0.22) is covered when the routed pool is used."""
    pools = {
        "pools": [
            {"id": "edu_a", "activities": ["educate_usage"], "members": ["a1"],
             "lift": {"educate_usage": 1.3}},
            {"id": "general"},
        ]
    }  # fmt: skip
    (tmp_path / "pools.json").write_text(json.dumps(pools))
    rng = np.random.default_rng(1)
    n = 4000
    activity = np.where(rng.random(n) < 0.6, "educate_usage", "none")
    to_a = (activity == "educate_usage") & (rng.random(n) < 0.7)
    routed = np.where(to_a, "edu_a", "general")
    success = np.where(activity == "none", 0.1, np.where(to_a, 0.5, 0.3))
    handled = np.where(to_a & (rng.random(n) < 1 / 3), "general", routed)
    frame = pd.DataFrame(
        {
            "interaction_id": [f"i{i}" for i in range(n)],
            "customer_id": [f"c{i // 2}" for i in range(n)],
            "channel": "voice",
            "language": "en",
            "segment": "consumer",
            "issue_type": "inquiry",
            "activity": activity,
            "propensity": np.where(activity == "educate_usage", 0.6, 0.4),
            "pool_id": handled,
            "routed_pool_id": routed,
            "pool_propensity": np.where(activity == "none", 1.0, np.where(to_a, 0.7, 0.3)),
            "ve_success": (rng.random(n) < success).astype(int),
        }
    )
    frame.to_csv(tmp_path / "log.csv", index=False)
    out = CliRunner().invoke(
        cli,
        ["evaluate", "--data", str(tmp_path / "log.csv"), "--pools", str(tmp_path / "pools.json"),
         "--bootstrap", "100", "--routing", "general-only", "--json", str(tmp_path / "g.json")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    result = json.loads((tmp_path / "g.json").read_text())
    for estimate in ("ips", "dr"):
        interval = result["estimates"][estimate]
        assert interval["ci_low"] <= 0.22 <= interval["ci_high"], (estimate, interval)
