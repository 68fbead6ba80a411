"""A promotion decided against one champion never replaces another.

`vea retrain` read the champion when it started and promoted its challenger at the end
over whatever was champion by then: an operator's `vea models promote` during the gate
was silently undone, with a gate event naming one champion and a promote event another.
`Registry.add` looked for "no champion yet" outside the lock and then promoted, so two
first models stored at once both became champion, one after the other. The interleavings
are forced here (a registry call made at the moment the race would happen), not waited for.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import pytest
from click.testing import CliRunner

import models.registry as registry_module
import training.retrain as retrain_module
from models.registry import Registry
from training.fit import train_bundle
from training.retrain import GateResult, describe, retrain
from training.simulate import simulate


@lru_cache(maxsize=1)
def _log():
    return simulate(rows=1200, seed=11)[0]


@lru_cache(maxsize=1)
def _bundle():
    return train_bundle(_log(), learner="s", seed=0, num_threads=1, progress=False)


def _fresh_bundle(rows=None):
    """A new copy of the trained bundle (also the retrain's ``fit``: the rows do not matter)."""
    return copy.deepcopy(_bundle())


def _promotions(registry):
    return [(e["version"], e["previous"]) for e in registry.history() if e["event"] == "promote"]


@pytest.fixture
def two_versions(tmp_path):
    """A registry with a champion and another stored version."""
    registry = Registry(tmp_path / "registry")
    champion = registry.add(_fresh_bundle())
    other = registry.add(_fresh_bundle())
    return registry, champion, other


def test_two_first_models_stored_at_once_make_one_champion(tmp_path):
    mine, theirs = Registry(tmp_path / "registry"), Registry(tmp_path / "registry")
    # Another `vea train` stores its first model between this one's "no champion yet?"
    # and its promotion (which begins by loading the bundle).
    load, raced = mine.load, []

    def load_after_another_first_model(version):
        if not raced:
            raced.append(theirs.add(_fresh_bundle()))
        return load(version)

    mine.load = load_after_another_first_model
    version = mine.add(_fresh_bundle())
    assert raced and raced[0] != version
    assert mine.champion() == raced[0]
    assert _promotions(mine) == [(raced[0], None)]  # one first model, not two
    assert version in mine.version_ids()  # stored all the same


def test_a_promotion_expecting_another_champion_changes_nothing(two_versions):
    registry, champion, other = two_versions
    history = registry.history()
    with pytest.raises(registry_module.ChampionChanged) as caught:
        registry.promote_change(other, expected="20260101T000000Z-gone-0000")
    assert (caught.value.expected, caught.value.champion) == (
        "20260101T000000Z-gone-0000",
        champion,
    )
    assert registry.champion() == champion and registry.history() == history
    with pytest.raises(registry_module.ChampionChanged):
        registry.promote_change(other, expected=None)  # "no champion yet": there is one
    change = registry.promote_change(other, expected=champion)
    assert (change.champion, change.previous, change.changed) == (other, champion, True)


def _gate_while_an_operator_promotes(registry_root, version, *, passes=True):
    """The gate, as it runs, while an operator promotes ``version`` (`vea models promote`)."""

    def gate(frame, champion, fit, **_):
        Registry(registry_root).promote(version, reason="operator's choice", actor="cli")
        reason = "challenger better: the 95% interval of the DR improvement is above zero"
        return GateResult(passes, reason if passes else "refused: not better", len(frame), 5)

    return gate


@pytest.mark.parametrize("force", [False, True], ids=["gate passed", "forced"])
def test_retrain_does_not_replace_a_champion_promoted_while_it_ran(
    two_versions, monkeypatch, force
):
    registry, champion, other = two_versions
    monkeypatch.setattr(
        retrain_module,
        "gate",
        _gate_while_an_operator_promotes(registry.root, other, passes=not force),
    )
    result = retrain(_log(), registry, fit=_fresh_bundle, force=force, num_threads=1)

    assert result.status == "stale"
    assert registry.champion() == other  # the operator's choice stands
    assert result.challenger in registry.version_ids()  # stored, not promoted
    assert (result.challenger, other) not in _promotions(registry)
    gate_event, skipped = registry.history()[-2:]
    assert gate_event["event"] == "gate" and gate_event["champion"] == champion
    assert skipped["event"] == "promote_skipped"
    assert (skipped["version"], skipped["gated_against"], skipped["champion"]) == (
        result.challenger,
        champion,
        other,
    )
    assert skipped["forced"] is force
    said = describe(result)
    assert f"challenger {result.challenger}: not promoted" in said
    assert champion in said and other in said


def test_retrain_still_promotes_over_the_champion_it_gated_against(two_versions, monkeypatch):
    registry, champion, _other = two_versions
    monkeypatch.setattr(
        retrain_module,
        "gate",
        lambda frame, *_, **__: GateResult(True, "challenger better", len(frame), 5),
    )
    result = retrain(_log(), registry, fit=_fresh_bundle, num_threads=1)
    assert result.status == "promoted" and registry.champion() == result.challenger
    assert _promotions(registry)[-1] == (result.challenger, champion)


def test_the_first_retrain_promotes_only_into_an_empty_registry(tmp_path, monkeypatch):
    """Without a champion the gate promotes the first model: not over one an operator
    promoted meanwhile (the first model of a `vea train`)."""
    registry = Registry(tmp_path / "registry")

    def gate(frame, champion, fit, **_):
        assert champion is None
        Registry(registry.root).add(_fresh_bundle())  # becomes the first champion
        return GateResult(True, "no champion: the first model is promoted", len(frame), 0)

    monkeypatch.setattr(retrain_module, "gate", gate)
    first = retrain(_log(), registry, fit=_fresh_bundle, num_threads=1)
    assert first.status == "stale" and first.champion is None
    assert registry.champion() != first.challenger
    assert "no champion" in describe(first)


def test_vea_retrain_says_so_and_exits_3(two_versions, monkeypatch, tmp_path):
    registry, champion, other = two_versions
    monkeypatch.setattr(
        retrain_module, "gate", _gate_while_an_operator_promotes(registry.root, other)
    )
    monkeypatch.setattr(retrain_module, "train_bundle", lambda rows, **_: _fresh_bundle())
    path = tmp_path / "log.parquet"
    _log().to_parquet(path)
    from training.cli import cli

    result = CliRunner().invoke(
        cli, ["retrain", "--data", str(path), "--registry", str(registry.root), "--threads", "1"]
    )
    assert result.exit_code == 3, result.output  # EXIT_CHAMPION_CHANGED
    challenger = registry.history()[-1]["version"]
    assert f"challenger {challenger}: not promoted: the champion changed" in result.output
    assert champion in result.output and other in result.output
    assert registry.champion() == other
