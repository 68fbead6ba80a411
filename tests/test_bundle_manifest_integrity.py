"""A bundle's manifest is covered by a checksum like its model files: an edited manifest
(economics, features, spec, ranker metadata, the list of files) is refused by loading,
listed BROKEN and never promoted. Bundles written before the manifest carried its
checksum still load, named as such (``legacy_note``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from models.bundle import (
    MANIFEST_DIGEST,
    BundleError,
    ModelBundle,
    legacy_note,
    load_bundle,
    read_manifest,
    save_bundle,
)
from models.registry import Registry
from training.fit import train_bundle
from training.simulate import simulate

MISMATCH = "checksum mismatch for manifest.json: the bundle was modified or corrupted"


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    log, _truth = simulate(rows=3000, seed=11)
    return train_bundle(log, learner="s", seed=11, num_threads=1, progress=False)


def _edit(path: Path, change) -> None:
    """Rewrite a stored bundle's manifest.json the way a person with an editor would."""
    manifest_file = path / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    change(manifest)
    manifest_file.chmod(0o644)
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _cheap_validation(m):
    # The audit's edit: a success worth nothing and validation free of handle time made
    # `vea score` suggest validate_purchase on 599 rows of 600.
    m["economics"]["value_of_success"] = 0.001
    m["economics"]["extra_handle_time_s"]["validate_purchase"] = 0


EDITS = {
    "economics": _cheap_validation,
    "features": lambda m: m["features"]["numeric"].reverse(),
    "spec": lambda m: m.update(spec={"economics": {"value_of_success": 1.0}}),
    "ranker metadata": lambda m: m["ranker"]["actions_seen"].pop(),
    # Without its entry, an edited model file would not be verified at all.
    "list of files": lambda m: m["files"].pop("calibration.json"),
    "digest itself": lambda m: m.update({MANIFEST_DIGEST: "0" * 64}),
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_an_edited_manifest_is_refused_by_load_list_and_promote(bundle, tmp_path, edit):
    registry = Registry(tmp_path / "reg")
    good = registry.add(bundle)
    edited = registry.add(bundle)
    assert registry.load(edited).version == edited
    _edit(registry.path_of(edited), edit)

    with pytest.raises(BundleError, match=MISMATCH):
        load_bundle(registry.path_of(edited))
    with pytest.raises(BundleError, match=f"bundle {edited}: {MISMATCH}"):
        registry.load(edited)
    with pytest.raises(BundleError, match=MISMATCH):
        registry.verify(edited)
    listed = next(v for v in registry.versions() if v["version"] == edited)
    assert listed["broken"] == f"bundle {edited}: {MISMATCH}"
    with pytest.raises(BundleError, match=MISMATCH):
        registry.promote(edited)
    assert registry.champion() == good, "an edited bundle never replaces the serving one"


def test_the_checksum_covers_content_not_layout(bundle, tmp_path):
    """Re-indenting the manifest (or reordering its keys) changes no value: it loads."""
    path = save_bundle(bundle, tmp_path / "v1")
    manifest_file = path / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest_file.chmod(0o644)
    manifest_file.write_text(json.dumps(dict(reversed(manifest.items())), indent=4))
    assert load_bundle(path).economics == bundle.economics
    assert legacy_note(read_manifest(path)) is None


def test_values_json_cannot_hold_are_covered_as_written(bundle, tmp_path):
    """The manifest stores a value JSON has no type for as text (a datetime, a numpy
    integer): the checksum is of what a reader gets back, so the bundle loads."""
    bundle.manifest["trained_at"] = datetime(2026, 1, 2, tzinfo=UTC)
    bundle.manifest["extra_rows"] = np.int64(7)
    try:
        path = save_bundle(bundle, tmp_path / "v1")
    finally:
        del bundle.manifest["trained_at"], bundle.manifest["extra_rows"]
    manifest = load_bundle(path).manifest
    assert manifest["trained_at"] == "2026-01-02 00:00:00+00:00"
    assert manifest["extra_rows"] == "7"


def test_a_loaded_bundle_saved_again_gets_its_own_checksum(bundle, tmp_path):
    """A manifest carried over from a loaded bundle holds that bundle's checksum; the new
    bundle (another version, so another manifest) must not keep it."""
    first = load_bundle(save_bundle(bundle, tmp_path / "v1"))
    first_digest = first.manifest[MANIFEST_DIGEST]
    second = save_bundle(first, tmp_path / "v2")
    assert load_bundle(second).version == "v2"
    assert read_manifest(second)[MANIFEST_DIGEST] != first_digest


def test_a_bundle_from_the_previous_release_still_loads_named_as_legacy(bundle, tmp_path):
    """Registries in use hold bundles written before the manifest carried a checksum,
    their champion among them: refusing those would stop an upgraded service serving.
    They load, their model files still verified, and ``legacy_note`` says the manifest
    is not covered."""
    registry = Registry(tmp_path / "reg")
    version = registry.add(bundle)
    path = registry.path_of(version)
    # What the previous release wrote: the same manifest, without its checksum.
    _edit(path, lambda m: m.pop(MANIFEST_DIGEST))

    loaded = registry.load(version)
    assert loaded.economics == bundle.economics
    note = legacy_note(loaded.manifest)
    assert note is not None and "manifest.json" in note and "economics" in note
    assert "broken" not in next(v for v in registry.versions() if v["version"] == version)
    registry.verify(version)
    # Its model files are verified as before.
    (path / "calibration.json").chmod(0o644)
    (path / "calibration.json").write_text("{}")
    with pytest.raises(BundleError, match="checksum mismatch for calibration.json"):
        registry.load(version)
