"""The model each worker serves, and the hot swap.

Every worker holds one ``Decider`` built from the registry's champion. It polls the
champion pointer (one ``stat``) at most every ``poll_s`` seconds; when the pointer
changes it loads and verifies the new bundle, runs a smoke decision, and only then
swaps. A bundle that fails any of that never replaces the serving one; with nothing
to serve the worker answers from the rule-based fallback (``models.fallback``) and
reports why (``/readyz``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.bundle import BundleError, compile_bundle
from models.decision import Decider
from models.economics import Economics
from models.fallback import FALLBACK_VERSION, decide_fallback
from models.registry import Registry, RegistryError

log = logging.getLogger("vea.serving")

SMOKE_FEATURES = {"channel": "voice", "issue_type": "inquiry", "tenure_months": 6.0}


@dataclass(frozen=True)
class Served:
    """The outcome of one ``decide`` call."""

    result: dict[str, Any]
    model_version: str
    degraded: bool
    degraded_reason: str | None


class ModelManager:
    def __init__(
        self,
        registry_root: str | Path,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
        compile_cache: str = "",
    ) -> None:
        self.registry = Registry(registry_root)
        self.compile_cache = compile_cache
        self.poll_s = poll_s
        self._clock = clock
        self._lock = threading.Lock()
        self._decide_lock = threading.Lock()
        self._decider: Decider | None = None
        self._stamp: object = ()  # never equal to a real stamp: forces the first load
        self._checked_at = -float("inf")
        self._problem: str | None = "no model loaded yet"
        self.loaded_at: float | None = None
        # A newer champion that could not be loaded while an older model keeps serving.
        self.warning: str | None = None
        self.on_swap: Callable[[str | None, str | None], None] | None = None

    # ------------------------------------------------------------------ state
    @property
    def version(self) -> str | None:
        decider = self._decider
        return decider.version if decider is not None else None

    @property
    def economics(self) -> Economics | None:
        """The serving model's economics (routing values pools in the same units)."""
        return getattr(self._decider, "economics", None)

    @property
    def problem(self) -> str | None:
        """Why decisions are degraded, or None when a verified champion is serving."""
        return self._problem

    def refresh(self, force: bool = False) -> None:
        """Swap to the current champion if the pointer changed (cheap when it did not)."""
        now = self._clock()
        if not force and now - self._checked_at < self.poll_s:
            return
        with self._lock:
            if not force and now - self._checked_at < self.poll_s:
                return  # another thread refreshed meanwhile
            self._checked_at = now
            try:
                stamp = self.registry.champion_stamp()
            except OSError as exc:
                self._problem = f"model registry unreadable: {exc.__class__.__name__}"
                return
            if stamp == self._stamp and not force:
                return
            self._load(stamp)

    def _load(self, stamp: object) -> None:
        previous = self.version
        champion = self.registry.champion()
        if champion is None:
            self._stamp = stamp
            if self._decider is None:
                self._problem = f"no champion model in registry {self.registry.root}"
            return
        if champion == previous:
            self._stamp = stamp
            return
        try:
            decider = build_decider(self.registry, champion, self.compile_cache)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the serving model
            # Keep serving what we have; remember the stamp so a broken bundle is not
            # re-verified on every poll (a new promotion changes the stamp again).
            self._stamp = stamp
            detail = f"champion {champion} failed to load: {exc}"
            log.error("model load failed", extra={"version": champion, "error": str(exc)})
            if self._decider is None:
                self._problem = detail
            else:
                self.warning = f"{detail}; still serving {previous}"
                log.warning("still serving previous model", extra={"version": previous})
            return
        self._decider = decider
        self._stamp = stamp
        self._problem = None
        self.warning = None
        self.loaded_at = time.time()
        log.info("model swapped", extra={"version": champion, "previous": previous})
        if self.on_swap is not None:
            self.on_swap(previous, champion)
        if self.compile_cache and not decider.compiled:
            threading.Thread(
                target=self._compile, args=(decider,), name="vea-compile", daemon=True
            ).start()

    def _compile(self, serving: Decider) -> None:
        """Compile the serving model's forests off the request path, then swap to the
        compiled twin (same predictions, faster) if that model is still the one serving."""
        try:
            bundle = serving.bundle
            if not compile_bundle(bundle, self.compile_cache):
                return
            compiled = Decider.from_bundle(bundle)
            compiled.decide(SMOKE_FEATURES)
        except Exception as exc:  # noqa: BLE001 - the uncompiled model keeps serving
            log.warning("compiling the model failed", extra={"error": repr(exc)})
            return
        with self._lock:
            if self._decider is serving:
                self._decider = compiled
                log.info("compiled model serving", extra={"version": compiled.version})

    # --------------------------------------------------------------- deciding
    def decide(
        self,
        features: Mapping[str, Any],
        *,
        language: str,
        blocked_activities: frozenset[str],
        allow_attempt: bool,
    ) -> Served:
        self.refresh()
        decider = self._decider
        if decider is not None:
            try:
                # One decision at a time per worker: a Decider may reuse buffers, and
                # under gthread workers requests share it (the GIL serialises it anyway).
                with self._decide_lock:
                    result = decider.decide(
                        features,
                        language=language,
                        blocked_activities=blocked_activities,
                        allow_attempt=allow_attempt,
                    )
                return Served(result, decider.version, False, None)
            except Exception as exc:  # noqa: BLE001 - a model error must not fail the call
                log.error("model error", extra={"version": decider.version, "error": repr(exc)})
                reason = "model_error"
        else:
            reason = "no_model"
        result = decide_fallback(
            features,
            language=language,
            blocked_activities=blocked_activities,
            allow_attempt=allow_attempt,
        )
        return Served(result, FALLBACK_VERSION, True, reason)


def build_decider(registry: Registry, version: str, compile_cache: str = "") -> Decider:
    """Load (verifying every checksum) and smoke-test a version; raise if unfit to serve.

    Forests already compiled (``vea train`` warms the cache) are used at once; otherwise
    the LightGBM path serves until ``ModelManager`` has compiled them in the background.
    """
    bundle = registry.load(version)
    if compile_cache:
        compile_bundle(bundle, compile_cache, cached_only=True)
    decider = Decider.from_bundle(bundle)
    smoke = decider.decide(SMOKE_FEATURES)
    if "suggested_activity" not in smoke or "openness" not in smoke:
        raise BundleError(f"{version}: smoke decision returned an incomplete answer")
    return decider


__all__ = ["ModelManager", "Served", "build_decider", "BundleError", "RegistryError"]
