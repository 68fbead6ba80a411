"""Bundles verify before they load; the registry switches champions atomically."""

from __future__ import annotations

import json

import numpy as np
import pytest
from core_fixtures import simulated, trained_bundle

from models.bundle import BundleError, load_bundle, save_bundle
from models.registry import Registry, RegistryError
from training.fit import train_bundle


def test_saved_bundle_round_trips_predictions(tmp_path):
    bundle = trained_bundle()
    path = save_bundle(bundle, tmp_path / "v1")
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["files"]) >= {"openness.txt", "calibration.json", "ranker.txt"}
    assert all(len(h) == 64 for h in manifest["files"].values())
    assert manifest["library_versions"]["lightgbm"]
    loaded = load_bundle(path)
    x = bundle.encoder.transform(simulated()[0].head(200))
    np.testing.assert_allclose(loaded.openness.predict_proba(x), bundle.openness.predict_proba(x))
    np.testing.assert_allclose(loaded.ranker.predict_proba(x), bundle.ranker.predict_proba(x))
    assert not any(p.suffix in (".pkl", ".joblib") for p in path.iterdir())


def test_tampered_bundle_is_refused(tmp_path):
    path = save_bundle(trained_bundle(), tmp_path / "v1")
    model = path / "ranker.txt"
    model.write_text(model.read_text().replace("shrinkage=0.05", "shrinkage=0.5", 1))
    with pytest.raises(BundleError, match="checksum mismatch for ranker.txt"):
        load_bundle(path)


def test_missing_file_and_bad_manifest_are_refused(tmp_path):
    path = save_bundle(trained_bundle(), tmp_path / "v1")
    (path / "calibration.json").unlink()
    with pytest.raises(BundleError, match="calibration.json is missing"):
        load_bundle(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(path)
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(tmp_path / "nowhere")


def test_save_refuses_to_overwrite(tmp_path):
    save_bundle(trained_bundle(), tmp_path / "v1")
    with pytest.raises(BundleError, match="already exists"):
        save_bundle(trained_bundle(), tmp_path / "v1")


def test_registry_first_model_is_champion_then_promote_and_rollback(tmp_path):
    reg = Registry(tmp_path / "reg")
    assert reg.champion() is None and reg.champion_stamp() is None
    first = reg.add(trained_bundle())
    assert reg.champion() == first
    stamp = reg.champion_stamp()
    second = reg.add(trained_bundle("t"))
    assert reg.champion() == first, "only the first model is promoted automatically"
    reg.promote(second, reason="better", actor="test")
    assert reg.champion() == second and reg.champion_stamp() != stamp
    assert reg.rollback() == first
    assert reg.champion() == first
    with pytest.raises(RegistryError, match="no earlier champion"):
        reg.rollback()
    events = [e["event"] for e in reg.history()]
    assert events == ["register", "promote", "register", "promote", "rollback"]
    listed = reg.versions()
    assert {v["version"] for v in listed} == {first, second}
    assert [v["is_champion"] for v in listed if v["version"] == first] == [True]


def test_promoting_the_champion_again_keeps_the_way_back(tmp_path):
    """A retried promotion changes nothing: rollback still returns to the champion the
    first promotion replaced (the retry was recorded as its own predecessor, and rollback
    answered with the same model)."""
    reg = Registry(tmp_path / "reg")
    first = reg.add(trained_bundle())
    second = reg.add(trained_bundle("t"))
    assert reg.promote(second) == first
    assert reg.promote(second) == first  # the retry answers as the first call did
    assert [e["event"] for e in reg.history()].count("promote") == 2  # first model + one
    assert reg.rollback() == first and reg.champion() == first
    # A history written by an older release, with the retry recorded: skipped.
    reg.promote(second)
    reg._append({"at": "x", "event": "promote", "version": second, "previous": second})
    assert reg.rollback() == first


def test_registry_refuses_unknown_or_tampered_versions(tmp_path):
    reg = Registry(tmp_path / "reg")
    first = reg.add(trained_bundle())
    second = reg.add(trained_bundle())
    with pytest.raises(RegistryError, match="unknown model version"):
        reg.promote("nope")
    with pytest.raises(RegistryError, match="invalid version"):
        reg.load("../etc")
    (reg.path_of(second) / "openness.txt").write_text("garbage")
    with pytest.raises(BundleError):
        reg.promote(second)
    assert reg.champion() == first, "a bad bundle never replaces the serving one"
    assert "broken" in next(v for v in reg.versions() if v["version"] == second)
    assert reg.resolve("champion") == first


def test_training_is_reproducible_with_a_seed():
    log, _ = simulated()

    first = train_bundle(log.head(3000), learner="s", seed=9, progress=False)
    second = train_bundle(log.head(3000), learner="s", seed=9, progress=False)
    other = train_bundle(log.head(3000), learner="s", seed=10, progress=False)
    text = [b.ranker.boosters_[0].model_to_string() for b in (first, second, other)]
    assert text[0] == text[1]
    assert text[0] != text[2]
    assert first.openness.calibration_dict() == second.openness.calibration_dict()


def test_a_bundle_names_the_features_a_live_decision_must_send(tmp_path):
    """A model trained on a spec's own column reads it from the decision's `features`
    map; promotion says so (API and CLI) instead of serving it silently as missing."""
    from click.testing import CliRunner

    from training.cli import cli
    from training.spec import Spec

    assert trained_bundle().extra_features == []  # the canonical context only
    log = simulated()[0].head(3000).copy()
    log["plan"] = np.where(np.arange(len(log)) % 3 == 0, "gold", "basic")
    spec = Spec.from_dict({"features": ["plan"]})
    bundle = train_bundle(log, spec=spec, learner="s", progress=False, num_threads=1)
    assert bundle.extra_features == ["plan"]

    registry = Registry(tmp_path / "registry")
    first = registry.add(trained_bundle())
    version = registry.add(bundle)
    result = CliRunner().invoke(
        cli, ["models", "promote", version, "--registry", str(tmp_path / "registry")]
    )
    assert result.exit_code == 0, result.output
    assert "reads plan" in result.output and registry.champion() == version
    assert first != version


def test_a_stored_bundle_is_as_readable_as_the_registry(tmp_path):
    """Not private to the user who trained it: a service running as another user (the
    container's) reads the same registry."""
    registry = Registry(tmp_path / "registry")
    registry.versions_dir.mkdir(parents=True)
    registry.versions_dir.chmod(0o755)
    version = registry.add(trained_bundle())
    assert registry.path_of(version).stat().st_mode & 0o777 == 0o755
