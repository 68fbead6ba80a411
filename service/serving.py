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
from service.logs import error_summary

log = logging.getLogger("vea.serving")

SMOKE_FEATURES = {"channel": "voice", "issue_type": "inquiry", "tenure_months": 6.0}
RECOVER = ": restore the bundle from a backup, or `vea models rollback` (or promote a good version)"


@dataclass(frozen=True)
class Served:
    """The outcome of one ``decide`` call."""

    result: dict[str, Any]
    model_version: str
    degraded: bool
    degraded_reason: str | None


class ShadowGuard:
    """Keeps a failing or slow shadow from costing the served answers anything.

    The shadow decides after the champion's answer is complete, on the same worker, so
    its cost is added latency. When more than ``max_bad`` of the last ``window`` shadow
    calls failed or took longer than the budget, the shadow is skipped for
    ``cooldown_s`` and then tried again.
    """

    def __init__(
        self,
        budget_ms: float,
        clock: Callable[[], float],
        window: int = 20,
        max_bad: int = 3,
        cooldown_s: float = 60.0,
    ) -> None:
        self.budget_s = budget_ms / 1000.0
        self._clock = clock
        self.window, self.max_bad, self.cooldown_s = window, max_bad, cooldown_s
        self.reset()

    def reset(self) -> None:
        self._recent: list[bool] = []  # True: a bad call
        self._suspended_until = -float("inf")

    def allowed(self) -> bool:
        return self._clock() >= self._suspended_until

    def record(self, elapsed_s: float, failed: bool) -> str:
        """Record one call; returns its verdict: "ok", "slow" or "error"."""
        verdict = "error" if failed else "slow" if elapsed_s > self.budget_s else "ok"
        self._recent.append(verdict != "ok")
        del self._recent[: -self.window]
        if sum(self._recent) > self.max_bad:
            self._suspended_until = self._clock() + self.cooldown_s
            self._recent.clear()
            log.warning("shadow suspended", extra={"cooldown_s": self.cooldown_s})
        return verdict


class ModelManager:
    def __init__(
        self,
        registry_root: str | Path,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
        compile_cache: str = "",
        shadow_budget_ms: float = 5.0,
    ) -> None:
        self.registry = Registry(registry_root)
        self.compile_cache = compile_cache
        self.poll_s = poll_s
        self._clock = clock
        self._lock = threading.Lock()
        self._decide_lock = threading.Lock()
        self._decider: Decider | None = None
        self._shadow: Decider | None = None
        self.shadow_problem: str | None = None
        self.shadow_guard = ShadowGuard(shadow_budget_ms, clock)
        self._stamp: object = ()  # never equal to a real stamp: forces the first load
        # The champion bundle's files (Registry.files_stamp) when last looked at: a bundle
        # damaged or restored on disk is noticed without a promotion.
        self._champion_files: object = ()
        self._checked_at = -float("inf")
        self._problem: str | None = "no model loaded yet"
        self.loaded_at: float | None = None
        self.on_swap: Callable[[str | None, str | None], None] | None = None
        # Told whether a warning stands whenever that changes (the metrics' gauge).
        self.on_warning: Callable[[bool], None] | None = None
        self._warning: str | None = None

    @property
    def warning(self) -> str | None:
        """Why this worker serves a model the registry no longer backs (a newer champion
        failed to load, the serving bundle is damaged on disk, no champion is named), or
        None: it serves on, but a worker started now would not serve the same."""
        return self._warning

    @warning.setter
    def warning(self, text: str | None) -> None:
        changed = (text is None) != (self._warning is None)
        self._warning = text
        if changed and self.on_warning is not None:
            self.on_warning(text is not None)

    # ------------------------------------------------------------------ state
    @property
    def version(self) -> str | None:
        decider = self._decider
        return decider.version if decider is not None else None

    @property
    def compiled(self) -> bool:
        """Whether the serving model runs natively compiled forests (else LightGBM)."""
        decider = self._decider
        return decider is not None and decider.compiled

    @property
    def economics(self) -> Economics | None:
        """The serving model's economics (routing values pools in the same units)."""
        return getattr(self._decider, "economics", None)

    @property
    def problem(self) -> str | None:
        """Why decisions are degraded, or None when a verified champion is serving."""
        return self._problem

    def refresh(self, force: bool = False) -> None:
        """Swap to the current champion (and shadow) if a pointer changed (cheap when not)."""
        now = self._clock()
        if not force and now - self._checked_at < self.poll_s:
            return
        with self._lock:
            if not force and now - self._checked_at < self.poll_s:
                return  # another thread refreshed meanwhile
            self._checked_at = now
            try:
                stamp = self.registry.pointer_stamp()
                champion_files = self.registry.files_stamp(self.registry.champion() or "")
            except OSError as exc:
                self._problem = f"model registry unreadable: {exc.__class__.__name__}"
                return
            moved = force or stamp != self._stamp
            if not moved and champion_files == self._champion_files:
                return
            # Remember the stamps even when a load fails: a broken bundle is not
            # re-verified on every poll, only once a promotion moves the pointer or its
            # files change (restored from a backup, or damaged under a serving worker).
            self._stamp = stamp
            self._champion_files = champion_files
            self._load_champion()
            if moved:
                self._load_shadow()

    def _load_champion(self) -> None:
        previous = self.version
        champion = self.registry.champion()
        if champion is None:
            if self._decider is None:
                self._problem = "no champion model in the registry: train or promote one"
            else:
                self.warning = (
                    f"the registry names no champion: this worker serves {previous} from "
                    f"memory, one started now would answer degraded{RECOVER}"
                )
            return
        if champion == previous:
            self._check_serving_bundle(champion)
            return
        try:
            decider = build_decider(self.registry, champion, self.compile_cache)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the serving model
            detail = f"champion {champion} failed to load: {exc}"
            log.error("model load failed", extra={"version": champion, "error": str(exc)})
            if self._decider is None:
                self._problem = detail
            else:
                self.warning = f"{detail}; still serving {previous}"
                log.warning("still serving previous model", extra={"version": previous})
            return
        self._decider = decider
        self._problem = None
        self.warning = None
        self.loaded_at = time.time()
        log.info("model swapped", extra={"version": champion, "previous": previous})
        if self.on_swap is not None:
            self.on_swap(previous, champion)
        self._compile_later(decider)

    def _check_serving_bundle(self, version: str) -> None:
        """The serving champion's files changed on disk: do they still verify? A worker
        keeps serving the model it loaded, but one started now (a restart, a replaced
        worker, another instance) would refuse the bundle and answer degraded: said in
        ``warning`` (``/readyz``) while this worker still serves."""
        try:
            self.registry.verify(version)
        except BundleError as exc:
            if self.warning is None:
                log.error("serving model damaged on disk", extra={"version": version})
            self.warning = (
                f"{exc}: this worker serves {version} from memory, one started now would "
                f"answer degraded{RECOVER}"
            )
            return
        self.warning = None

    def _load_shadow(self) -> None:
        wanted = self.registry.shadow()
        if wanted == self.version:
            wanted = None  # promoted meanwhile: it is the champion now
        current = self._shadow
        if wanted == (current.version if current is not None else None):
            return
        self.shadow_problem = None
        self._shadow = None
        self.shadow_guard.reset()
        if wanted is None:
            log.info("shadow stopped", extra={"version": current.version if current else None})
            return
        try:
            shadow = build_decider(self.registry, wanted, self.compile_cache)
        except Exception as exc:  # noqa: BLE001 - a broken shadow never touches serving
            self.shadow_problem = f"shadow {wanted} failed to load: {exc}"
            log.error("shadow load failed", extra={"version": wanted, "error": str(exc)})
            return
        self._shadow = shadow
        log.info("shadow deciding", extra={"version": wanted})
        self._compile_later(shadow)

    def _compile_later(self, decider: Decider) -> None:
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
            elif self._shadow is serving:
                self._shadow = compiled
                log.info("compiled shadow deciding", extra={"version": compiled.version})

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
                log.error(
                    "model error",
                    extra={"version": decider.version, "error": error_summary(exc)},
                )
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

    @property
    def shadow_version(self) -> str | None:
        shadow = self._shadow
        return shadow.version if shadow is not None else None

    def shadow_decide(
        self,
        features: Mapping[str, Any],
        *,
        language: str,
        blocked_activities: frozenset[str],
        allow_attempt: bool,
    ) -> tuple[dict[str, Any] | None, str]:
        """The shadow's decision for the same contact, under the same contact policy:
        ``(summary or None, verdict)``, verdict one of none, suspended, ok, slow, error.
        Never raises: whatever the shadow does, the served answer is unchanged."""
        shadow = self._shadow
        if shadow is None:
            return None, "none"
        if not self.shadow_guard.allowed():
            return None, "suspended"
        started = self._clock()
        try:
            with self._decide_lock:
                result = shadow.decide(
                    features,
                    language=language,
                    blocked_activities=blocked_activities,
                    allow_attempt=allow_attempt,
                )
            elapsed = self._clock() - started
            summary = shadow_summary(result, shadow.version, elapsed)
        except Exception as exc:  # noqa: BLE001 - logged and counted, never raised
            log.error(
                "shadow error", extra={"version": shadow.version, "error": error_summary(exc)}
            )
            return None, self.shadow_guard.record(self._clock() - started, failed=True)
        return summary, self.shadow_guard.record(elapsed, failed=False)


def shadow_summary(result: Mapping[str, Any], version: str, elapsed_s: float) -> dict[str, Any]:
    """What is stored of a shadow decision: its choice and its probabilities."""
    return {
        "version": version,
        "activity": result["suggested_activity"],
        "openness": result["openness"]["score"],
        "success_probability": {
            a["activity"]: a["success_probability"] for a in result["activities"]
        },
        "expected_value": {a["activity"]: a["expected_value"] for a in result["activities"]},
        "expected_value_none": result.get("expected_value_none", 0.0),
        "ms": round(elapsed_s * 1000.0, 3),
    }


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
