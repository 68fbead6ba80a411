"""The model bundle: one directory per version, verified before anything is loaded.

Layout: ``manifest.json`` (version, created time, data fingerprint, feature spec,
economics, metrics, library versions, SHA-256 of every other file, and
``manifest_sha256``: the SHA-256 of the manifest's own content), LightGBM text
models (``openness.txt``, ``ranker.txt`` or ``ranker_<action>.txt``) and
``calibration.json`` and ``reasons.json`` (see ``models.explain``). No pickle: nothing in a bundle can run code when loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb

from models.activities import ACTIONS
from models.compiled import CompiledForest, compile_booster
from models.economics import Economics
from models.explain import ReasonTable
from models.features import FeatureEncoder
from models.openness import OpennessModel
from models.ranker import ActivityRanker
from models.schema import CONTEXT_FEATURES

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# The manifest's checksum of its own content (``manifest_digest``): the economics,
# features, spec and ranker metadata decide what a model suggests, and the list of files
# decides what is verified, so an edit to any of them must be refused like an edit to a
# model file. Bundles written before it have none and still load (``legacy_note``): the
# registries in use hold them, their champion among them, and refusing them would stop
# every upgraded service from serving. The format version stays 1 for the same reason
# the other way round: a service rolled back to the previous release (which ignores the
# key) still loads bundles written by this one.
MANIFEST_DIGEST = "manifest_sha256"
LEGACY_NOTE = (
    f"written before bundles carried {MANIFEST_DIGEST}: its model files are verified, "
    f"its {MANIFEST} (economics, features, spec) is not; retrain to replace it"
)


class BundleError(Exception):
    """A bundle that is missing, incomplete or does not match its checksums."""


@dataclass
class ModelBundle:
    """Everything needed to score contacts, as plain objects."""

    encoder: FeatureEncoder
    openness: OpennessModel
    ranker: ActivityRanker | None
    economics: Economics = field(default_factory=Economics)
    spec: dict[str, Any] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    reasons: ReasonTable | None = None

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unsaved"))

    @property
    def extra_features(self) -> list[str]:
        """Features the model reads beyond the canonical context (``CONTEXT_FEATURES``):
        a live decision carries them only in its ``features`` map, and without them the
        model sees missing values (e.g. a model trained on a spec's own columns)."""
        return [name for name in self.encoder.feature_names if name not in CONTEXT_FEATURES]


def compile_bundle(
    bundle: ModelBundle, cache_dir: str | Path, *, cached_only: bool = False
) -> bool:
    """Attach natively compiled forests (``models.compiled``) to every booster of the
    bundle; returns False, leaving LightGBM in charge, when any of them cannot be compiled
    (or, with ``cached_only``, is not in the cache yet)."""
    openness = compile_booster(bundle.openness.booster_, cache_dir, cached_only=cached_only)
    ranker = bundle.ranker
    compiled_ranker: list[CompiledForest | None] = []
    if ranker is not None:
        for booster in ranker.boosters_:
            compiled_ranker.append(
                None
                if booster is None
                else compile_booster(booster, cache_dir, cached_only=cached_only)
            )
        if any(
            b is not None and c is None
            for b, c in zip(ranker.boosters_, compiled_ranker, strict=True)
        ):
            return False
    if openness is None:
        return False
    bundle.openness.compiled_ = openness
    if ranker is not None:
        ranker.compiled_ = compiled_ranker
    return True


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest as a reader gets it (parsed JSON, keys sorted, no
    whitespace), without its own digest: how the file is laid out does not matter,
    every value in it does."""
    content = {key: value for key, value in manifest.items() if key != MANIFEST_DIGEST}
    return sha256_bytes(json.dumps(content, sort_keys=True, separators=(",", ":")).encode())


def legacy_note(manifest: dict[str, Any]) -> str | None:
    """Why a verified bundle's manifest is not covered by a checksum (it was written by a
    release before ``manifest_sha256``); None when it is."""
    return None if MANIFEST_DIGEST in manifest else LEGACY_NOTE


def _library_versions() -> dict[str, str]:
    import numpy
    import sklearn

    return {
        "lightgbm": lgb.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
    }


def save_bundle(bundle: ModelBundle, directory: str | Path) -> Path:
    """Write the bundle to `directory` atomically (a temp dir renamed into place)."""
    directory = Path(directory)
    if directory.exists():
        raise BundleError(f"{directory} already exists")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        files: dict[str, bytes] = {
            "openness.txt": bundle.openness.booster_.model_to_string().encode(),
            "calibration.json": json.dumps(bundle.openness.calibration_dict()).encode(),
        }
        ranker_meta = None
        if bundle.ranker is not None:
            r = bundle.ranker
            if r.stacked:
                files["ranker.txt"] = r.boosters_[0].model_to_string().encode()
            else:
                for action, booster in zip(ACTIONS, r.boosters_, strict=True):
                    if booster is not None:
                        files[f"ranker_{action}.txt"] = booster.model_to_string().encode()
            ranker_meta = {
                "learner": r.learner,
                "actions_seen": [a for a, s in zip(ACTIONS, r.actions_seen_, strict=True) if s],
                "feature_names": r.feature_names_,
                "categorical": r.categorical_,
            }
        if bundle.reasons is not None:
            files["reasons.json"] = json.dumps(bundle.reasons.to_dict()).encode()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        manifest = {
            # A manifest carried over from a loaded bundle holds that bundle's digest.
            **{k: v for k, v in bundle.manifest.items() if k != MANIFEST_DIGEST},
            "format_version": FORMAT_VERSION,
            "version": directory.name,
            "features": bundle.encoder.to_dict(),
            "economics": bundle.economics.to_dict(),
            "spec": bundle.spec,
            "ranker": ranker_meta,
            "library_versions": _library_versions(),
            "files": {name: sha256_bytes(data) for name, data in sorted(files.items())},
        }
        # The digest is of the manifest as it will be read back: values JSON cannot hold
        # are written as text (default=str), and a reader sees that text.
        written = json.loads(json.dumps(manifest, default=str))
        written[MANIFEST_DIGEST] = manifest_digest(written)
        manifest[MANIFEST_DIGEST] = written[MANIFEST_DIGEST]
        (tmp / MANIFEST).write_text(json.dumps(written, indent=2, sort_keys=True))
        # mkdtemp makes the directory private (0700): a service running as another user
        # (the container's) could not read a bundle an engineer trained. Whoever may read
        # the directory it is stored in (the registry's versions/) may read it; only its
        # owner writes (a bundle never changes once stored).
        os.chmod(tmp, directory.parent.stat().st_mode & 0o755)
        os.rename(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bundle.manifest = manifest
    return directory


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BundleError(f"{directory}: no {MANIFEST}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    if manifest.get("format_version") != FORMAT_VERSION or "files" not in manifest:
        raise BundleError(f"{path}: unsupported bundle format")
    # Checked here, before anyone reads a value, so that loading, `models list` and
    # promotion (which all start from this manifest) refuse an edited one alike.
    if MANIFEST_DIGEST in manifest and manifest[MANIFEST_DIGEST] != manifest_digest(manifest):
        raise BundleError(
            f"{directory}: checksum mismatch for {MANIFEST}: the bundle was modified or corrupted"
        )
    # Covered or not, economics the policy cannot use (NaN, inf, a negative price: stored
    # by releases that let them through) would make every decision `none` without a word.
    try:
        Economics.from_dict(manifest.get("economics"))
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{directory}: {MANIFEST}: economics: {exc}") from exc
    return manifest


def verified_files(directory: str | Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """Read every file the manifest lists and check its SHA-256 before anyone parses it."""
    directory = Path(directory)
    contents: dict[str, bytes] = {}
    for name, expected in manifest["files"].items():
        if "/" in name or name.startswith("."):
            raise BundleError(f"{directory}: manifest names a file outside the bundle: {name}")
        try:
            data = (directory / name).read_bytes()
        except FileNotFoundError as exc:
            raise BundleError(f"{directory}: {name} is missing") from exc
        if sha256_bytes(data) != expected:
            raise BundleError(
                f"{directory}: checksum mismatch for {name}: the bundle was modified or corrupted"
            )
        contents[name] = data
    return contents


def load_bundle(directory: str | Path) -> ModelBundle:
    """Verify, then load. Raises BundleError with a clear message on any problem."""
    manifest = read_manifest(directory)
    files = verified_files(directory, manifest)
    try:
        encoder = FeatureEncoder.from_dict(manifest["features"])
        openness = OpennessModel.from_parts(
            lgb.Booster(model_str=files["openness.txt"].decode()),
            json.loads(files["calibration.json"]),
        )
        ranker = None
        meta = manifest.get("ranker")
        if meta:
            seen = [a in meta["actions_seen"] for a in ACTIONS]
            if "ranker.txt" in files:
                boosters = [lgb.Booster(model_str=files["ranker.txt"].decode())]
            else:
                boosters = [
                    lgb.Booster(model_str=files[f"ranker_{a}.txt"].decode())
                    if f"ranker_{a}.txt" in files
                    else None
                    for a in ACTIONS
                ]
            ranker = ActivityRanker.from_parts(
                meta["learner"], boosters, seen, meta["feature_names"], meta["categorical"]
            )
        reasons = None
        if "reasons.json" in files:
            reasons = ReasonTable.from_dict(json.loads(files["reasons.json"]))
        return ModelBundle(
            reasons=reasons,
            encoder=encoder,
            openness=openness,
            ranker=ranker,
            economics=Economics.from_dict(manifest.get("economics")),
            spec=manifest.get("spec"),
            manifest=manifest,
        )
    except (KeyError, ValueError, lgb.basic.LightGBMError) as exc:
        raise BundleError(f"{directory}: bundle is inconsistent: {exc}") from exc
