"""`vea models list` names the bundles written before manifests carried a checksum
(``models.bundle.legacy_note``): they load and list as healthy, yet an edit of their
manifest (economics, features) would go unnoticed, and nothing said which ones they are.
"""

from __future__ import annotations

import json

from click.testing import CliRunner
from test_bundle_manifest_integrity import _edit

from models.bundle import MANIFEST_DIGEST
from models.registry import Registry
from training.cli import cli


def _vea(*argv: str):
    result = CliRunner().invoke(cli, list(argv), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_a_bundle_without_a_manifest_checksum_is_listed_as_legacy(registry_dir):
    registry = Registry(registry_dir)
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    # What the release before the manifest checksum wrote: the same manifest, without it.
    _edit(registry.path_of(other), lambda m: m.pop(MANIFEST_DIGEST))

    lines = _vea("models", "list", "--registry", str(registry_dir)).output.splitlines()
    legacy = next(line for line in lines if line.startswith(f"  {other}"))
    current = next(line for line in lines if line.startswith(f"* {first}"))
    assert "legacy: manifest not covered by a checksum" in legacy
    assert "BROKEN" not in legacy
    assert "legacy" not in current

    listed = json.loads(_vea("models", "list", "--json", "--registry", str(registry_dir)).output)
    notes = {v["version"]: v.get("legacy") for v in listed}
    assert notes[first] is None
    assert "manifest.json" in notes[other] and "retrain" in notes[other]


def test_the_models_api_names_legacy_bundles_too(client, keys, registry_dir):
    registry = Registry(registry_dir)
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    _edit(registry.path_of(other), lambda m: m.pop(MANIFEST_DIGEST))
    listed = client.get("/v1/models", headers=keys["engineer"]).json
    notes = {v["version"]: v.get("legacy") for v in listed["versions"]}
    assert notes[first] is None
    assert "manifest.json" in notes[other], notes
