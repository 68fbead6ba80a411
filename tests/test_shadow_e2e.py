"""Shadow challengers end to end on the simulator (issue "Learning from the whole decision").

A weak champion serves (Flask test client, real SQLite, real registry, exploration on);
a truly better model shadows the first half of the traffic and a truly worse one the
second half. Simulated customers answer through the API. `vea export` then
`vea evaluate --shadow` must rank the better shadow above the champion and the worse one
below, each with its 95% interval; answers served with a shadow are identical to those
served without one.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from core_fixtures import decision_request

from models.activities import ACTIONS
from models.registry import Registry, RegistryError
from training.fit import train_bundle
from training.retrain import greedy_actions
from training.simulate import simulate, true_policy_value

HALF = 3000
SETTINGS = {
    "access_log": False,
    "rate_limit_per_s": 0.0,
    "sqlite_synchronous": "NORMAL",
    # Generous exploration (every activity at least 1/12): the log covers the shadows'
    # choices well enough to compare them on a few thousand contacts.
    "exploration": "epsilon",
    "epsilon": 0.5,
    "champion_poll_s": 3600.0,  # the test refreshes explicitly
    # The ranking is under test, not the guard: a loaded machine must not suspend the
    # shadow (5 ms by default) and leave contacts without its choice.
    "shadow_budget_ms": 10_000.0,
}


def _fit(rows, invert: bool = False):
    if invert:
        rows = rows.assign(ve_success=1 - rows["ve_success"])
    return train_bundle(rows, learner="s", seed=0, num_threads=1, progress=False)


def _app(root, name: str, registry: Registry):
    from service.app import create_app
    from service.auth import create_key
    from service.db import upgrade

    url = f"sqlite:///{root / f'{name}.db'}"
    upgrade(url)
    app = create_app({**SETTINGS, "database_url": url, "registry": str(registry.root)})
    key = create_key(app.extensions["vea"].engine, "admin")[1]
    return app, {"Authorization": f"Bearer {key}"}, url


def _numbered_ids(monkeypatch) -> None:
    # Exploration hashes the decision id: numbered ids make both runs draw alike.
    counter = iter(range(10**9))
    monkeypatch.setattr("service.decisions.secrets.token_hex", lambda n=16: f"{next(counter):032x}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("shadow")
    registry = Registry(root / "registry")
    # Trained on enough rows to know every activity: exploration then tries them all.
    champion = registry.add(_fit(simulate(rows=500, seed=31)[0]))
    better = registry.add(_fit(simulate(rows=6000, seed=41)[0]))
    worse = registry.add(_fit(simulate(rows=3000, seed=42)[0], invert=True))
    test, truth = simulate(rows=5000, seed=43)

    def true_value(version: str) -> float:
        bundle = registry.load(version)
        actions = greedy_actions(bundle, test, bundle.economics)
        names = np.array(ACTIONS, dtype=object)[actions]
        return true_policy_value(truth, names, bundle.economics)

    values = {name: true_value(v) for name, v in (("champion", champion), ("better", better),
                                                   ("worse", worse))}  # fmt: skip
    assert values["worse"] < values["champion"] < values["better"], values
    return root, registry, {"champion": champion, "better": better, "worse": worse}, values


def _serve(client, headers, rows, p_true, rng) -> list[dict]:
    answers = []
    for i, row in enumerate(rows.itertuples(index=False)):
        response = client.post("/v1/decisions", json=decision_request(row), headers=headers)
        assert response.status_code == 201, response.json
        answer = response.json
        answers.append(answer)
        action = ACTIONS.index(answer["suggested_activity"])
        success = bool(rng.random() < p_true[i, action])
        offered = action != 0
        outcome = {"offered": offered, "accepted": offered and success, "ve_success": success}
        response = client.post(
            f"/v1/decisions/{answer['decision_id']}/outcome", json=outcome, headers=headers
        )
        assert response.status_code == 201, response.json
    return answers


def test_answers_with_a_shadow_are_identical_to_answers_without(world, monkeypatch):
    root, registry, versions, _ = world
    rows, truth = simulate(rows=150, seed=44)
    p_true = truth[[f"p_{a}" for a in ACTIONS]].to_numpy()
    served = {}
    for name, shadow in (("plain", None), ("shadowed", versions["better"])):
        if shadow is None:
            registry.clear_shadow()
        else:
            registry.set_shadow(shadow)
        _numbered_ids(monkeypatch)
        app, headers, url = _app(root, f"same-{name}", registry)
        assert app.extensions["vea"].models.shadow_version == shadow
        answers = _serve(app.test_client(), headers, rows, p_true, np.random.default_rng(1))
        served[name] = [{k: v for k, v in a.items() if k != "created_at"} for a in answers]
        app.extensions["vea"].close()
    registry.clear_shadow()
    assert served["plain"] == served["shadowed"]


def test_shadows_are_ranked_by_their_true_value_on_the_live_log(world, monkeypatch, tmp_path):
    from service.db import make_engine
    from service.export import export_log
    from training.cli import cli

    root, registry, versions, values = world
    _numbered_ids(monkeypatch)
    app, headers, url = _app(root, "live", registry)
    models = app.extensions["vea"].models
    client = app.test_client()
    traffic, truth = simulate(rows=2 * HALF, seed=45)
    p_true = truth[[f"p_{a}" for a in ACTIONS]].to_numpy()
    rng = np.random.default_rng(7)
    for half, name in enumerate(("better", "worse")):
        registry.set_shadow(versions[name])
        models.refresh(force=True)
        assert models.shadow_version == versions[name]
        part = slice(half * HALF, (half + 1) * HALF)
        _serve(client, headers, traffic.iloc[part], p_true[part], rng)
    registry.clear_shadow()
    app.extensions["vea"].close()

    export = tmp_path / "live.parquet"
    engine = make_engine(url)
    assert export_log(engine, export).rows == 2 * HALF
    engine.dispose()
    # The truth on the logged contacts: each shadow's choice against the champion's.
    logged = pd.read_parquet(export).set_index("interaction_id").loc[traffic["interaction_id"]]
    economics = registry.load(versions["champion"]).economics
    true_gain = {}
    for half, name in enumerate(("better", "worse")):
        part = slice(half * HALF, (half + 1) * HALF)
        chosen = {c: logged[c].iloc[part].to_numpy(dtype=object)
                  for c in ("shadow_activity", "best_activity")}  # fmt: skip
        true_gain[name] = true_policy_value(
            truth.iloc[part], chosen["shadow_activity"], economics
        ) - true_policy_value(truth.iloc[part], chosen["best_activity"], economics)
    results = {}
    for name in ("better", "worse"):
        out = tmp_path / f"{name}.json"
        result = CliRunner().invoke(
            cli,
            ["evaluate", "--data", str(export), "--shadow", versions[name],
             "--registry", str(registry.root), "--bootstrap", "300", "--json", str(out)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        results[name] = json.loads(out.read_text())
        assert results[name]["rows"] == HALF
        assert results[name]["shadow_version"] == versions[name]
    print(json.dumps({"true_gain": true_gain, **{k: v["improvement"] for k, v in results.items()}}))
    for name in ("better", "worse"):
        gain = results[name]["improvement"]
        assert gain["ci_low"] <= true_gain[name] <= gain["ci_high"], (name, gain, true_gain)
    # Ranked by their true value: the better shadow above the champion, the worse below
    # (and refused by the gate with its whole interval below zero).
    assert true_gain["better"] > 0 > true_gain["worse"]
    assert results["better"]["improvement"]["value"] > 0
    assert results["worse"]["improvement"]["ci_high"] < 0
    assert results["worse"]["would_pass_gate"] is False


def test_shadow_pointer_rules(world):
    _, registry, versions, _ = world
    with pytest.raises(RegistryError):
        registry.set_shadow(registry.champion())  # the champion cannot shadow itself
    with pytest.raises(RegistryError):
        registry.set_shadow("no-such-version")
    registry.set_shadow(versions["better"])
    assert registry.shadow() == versions["better"]
    assert registry.clear_shadow() == versions["better"] and registry.shadow() is None
    assert registry.clear_shadow() is None
    events = [e["event"] for e in registry.history()]
    assert "shadow" in events and "shadow_off" in events
    # Promoting the shadow ends it: the champion never shadows itself.
    registry.set_shadow(versions["better"])
    registry.promote(versions["better"], reason="test")
    assert registry.shadow() is None
    registry.rollback()
