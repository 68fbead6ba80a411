"""The model registry: bundles by version, a champion pointer, and the promotion history.

It lives on the file system (default ``var/registry``, ``VEA_REGISTRY``) so training
and every service worker share it without a database. The champion pointer is a small
file replaced atomically (``os.replace``), so a reader sees the old or the new
champion, never half of one; writers take an exclusive lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.bundle import (
    BundleError,
    ModelBundle,
    legacy_note,
    load_bundle,
    read_manifest,
    save_bundle,
    verified_files,
)

CHAMPION_FILE = "champion"
# A challenger that decides beside the champion on live traffic, never served.
SHADOW_FILE = "shadow"
HISTORY_FILE = "history.jsonl"
VERSIONS_DIR = "versions"

log = logging.getLogger("vea.registry")

# ``promote_change(expected=...)`` not given: promote whatever the champion is.
_ANY_CHAMPION = object()


class RegistryError(Exception):
    """A registry operation that cannot be done (unknown version, nothing to roll back to)."""


class ChampionChanged(RegistryError):
    """A promotion conditional on the champion (``expected``) found another one there, so
    nothing changed: whatever the promotion rested on (a gate against the champion it
    expected, "no champion yet") no longer holds."""

    def __init__(self, version: str, expected: str | None, champion: str | None) -> None:
        self.version, self.expected, self.champion = version, expected, champion
        super().__init__(
            f"{version} not promoted: the champion is {champion or 'none'}, not "
            f"{expected or 'none'} as expected (it changed meanwhile)"
        )


@dataclass(frozen=True)
class ChampionChange:
    """What a promotion or rollback did, read under the registry's lock: the champion
    now, the one before it, and whether the pointer moved. Read outside the lock, a
    concurrent change could make a caller report (and audit) another change than the
    one recorded in the history."""

    champion: str
    previous: str | None
    changed: bool


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Registry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ paths
    @property
    def versions_dir(self) -> Path:
        return self.root / VERSIONS_DIR

    def path_of(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise RegistryError(f"invalid version {version!r}")
        return self.versions_dir / version

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ----------------------------------------------------------------- reading
    def version_ids(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(
            (
                p.name
                for p in self.versions_dir.iterdir()
                if p.is_dir() and not p.name.startswith(".")
            ),
            reverse=True,
        )

    def versions(self) -> list[dict[str, Any]]:
        """Manifest summaries, newest first; bundles failing verification are listed as
        broken, and so is a champion whose bundle is gone (else nothing would show that
        the pointer names a model a restarted worker cannot load)."""
        champion = self.champion()
        out = []
        ids = self.version_ids()
        if champion is not None and champion not in ids:
            out.append(
                {
                    "version": champion,
                    "broken": f"bundle {champion} is missing: the champion pointer names it",
                    "is_champion": True,
                }
            )
        for version in ids:
            try:
                m = read_manifest(self.path_of(version))
                verified_files(self.path_of(version), m)
                entry = {
                    "version": version,
                    "created_at": m.get("created_at"),
                    "learner": (m.get("ranker") or {}).get("learner"),
                    "training_rows": m.get("training_rows"),
                    "reward": (m.get("reward") or {}).get("label"),
                    "reward_description": (m.get("reward") or {}).get("description"),
                    "data_fingerprint": m.get("data_fingerprint"),
                    "metrics": m.get("metrics", {}),
                    "is_champion": version == champion,
                }
                # Healthy, but only its model files are verified: an edit of its manifest
                # (economics, features) would pass unseen, so the listing says so.
                note = legacy_note(m)
                if note is not None:
                    entry["legacy"] = note
                out.append(entry)
            except BundleError as exc:
                out.append(
                    {
                        "version": version,
                        "broken": str(self._named(exc, version)),
                        "is_champion": version == champion,
                    }
                )
        return sorted(out, key=lambda v: (v.get("created_at") or "", v["version"]), reverse=True)

    def verify(self, version: str) -> None:
        """Check a stored bundle's checksums without loading it; ``BundleError`` naming
        the version when it is missing or does not match."""
        path = self.path_of(version)
        if not path.is_dir():
            raise BundleError(f"bundle {version} is missing")
        try:
            verified_files(path, read_manifest(path))
        except BundleError as exc:
            raise self._named(exc, version) from None

    def files_stamp(self, version: str) -> tuple[tuple[str, int, int, int], ...] | None:
        """A bundle's files as the file system sees them (name, inode, size, modification
        time): changes whenever one is replaced, modified or removed; None when the
        bundle is gone. A directory listing and a few stats: cheap enough to poll."""
        try:
            entries = []
            for entry in os.scandir(self.path_of(version)):
                st = entry.stat()
                entries.append((entry.name, st.st_ino, st.st_size, st.st_mtime_ns))
        except (RegistryError, OSError):
            return None
        return tuple(sorted(entries))

    def champion(self) -> str | None:
        try:
            return (self.root / CHAMPION_FILE).read_text().strip() or None
        except FileNotFoundError:
            return None

    def champion_stamp(self) -> tuple[int, int] | None:
        """Changes whenever the pointer is replaced; one stat, cheap enough to poll."""
        try:
            st = os.stat(self.root / CHAMPION_FILE)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def shadow(self) -> str | None:
        try:
            return (self.root / SHADOW_FILE).read_text().strip() or None
        except FileNotFoundError:
            return None

    def pointer_stamp(self) -> tuple[object, object]:
        """(champion, shadow) stamps: changes whenever either pointer is replaced."""
        stamps = []
        for name in (CHAMPION_FILE, SHADOW_FILE):
            try:
                st = os.stat(self.root / name)
                stamps.append((st.st_ino, st.st_mtime_ns))
            except FileNotFoundError:
                stamps.append(None)
        return stamps[0], stamps[1]

    def load(self, version: str) -> ModelBundle:
        path = self.path_of(version)
        if not path.is_dir():
            raise RegistryError(f"unknown model version {version!r}")
        try:
            return load_bundle(path)
        except BundleError as exc:
            raise self._named(exc, version) from None

    def _named(self, exc: BundleError, version: str) -> BundleError:
        """``exc`` naming the bundle by its version instead of its directory: messages
        reach API clients (and /readyz), the server's directories are none of theirs."""
        return BundleError(str(exc).replace(str(self.path_of(version)), f"bundle {version}"))

    def load_champion(self) -> ModelBundle | None:
        version = self.champion()
        return None if version is None else self.load(version)

    def resolve(self, ref: str) -> str:
        """A version id from 'champion' or an explicit version."""
        if ref == "champion":
            version = self.champion()
            if version is None:
                raise RegistryError(f"no champion in {self.root}: train a model first")
            return version
        if not self.path_of(ref).is_dir():
            raise RegistryError(f"unknown model version {ref!r}")
        return ref

    def history(self) -> list[dict[str, Any]]:
        """Every event, oldest first. A line that cannot be read (an append cut short by
        a crash) is skipped with a warning naming the file and line: one damaged event
        must not make the whole history, and the events after it, unreadable."""
        events = []
        for number, event in self._history_lines():
            if event is None:
                self._warn_unreadable(number)
            else:
                events.append(event)
        return events

    def _history_lines(self) -> list[tuple[int, dict[str, Any] | None]]:
        """(line number, event) of every non-blank history line; event None when the line
        is not a JSON object."""
        try:
            # Events are written as ASCII JSON: any other byte is damage, left to the line.
            text = (self.root / HISTORY_FILE).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        lines = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            lines.append((number, event if isinstance(event, dict) else None))
        return lines

    def _warn_unreadable(self, number: int) -> None:
        log.warning(
            "%s line %d is not a readable event (an append cut short?): skipped",
            self.root / HISTORY_FILE,
            number,
        )

    # ----------------------------------------------------------------- writing
    def add(self, bundle: ModelBundle, *, first_becomes_champion: bool = True) -> str:
        """Store a new bundle under a fresh version id; the first one becomes champion
        (unless ``first_becomes_champion`` is False: the caller decides, as `vea retrain`
        does by its gate)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        fingerprint = str(bundle.manifest.get("data_fingerprint", ""))[:6] or "model"
        version = f"{stamp}-{fingerprint}-{secrets.token_hex(2)}"
        save_bundle(bundle, self.path_of(version))
        self.record({"event": "register", "version": version})
        # The unlocked look only spares loading the bundle when there is a champion; the
        # promotion itself checks again under the lock, so of two first models stored at
        # once (two `vea train` runs) only one becomes champion.
        if first_becomes_champion and self.champion() is None:
            # ChampionChanged: another first model became champion meanwhile; this one
            # is stored all the same.
            with suppress(ChampionChanged):
                self.promote_change(version, reason="first model in the registry", expected=None)
        return version

    def record(self, event: dict[str, Any]) -> None:
        """Append an event (registration, promotion, gate decision) to the history."""
        with self._locked():
            self._append({"at": _now(), **event})

    def _append(self, event: dict[str, Any]) -> None:
        line = (json.dumps(event, sort_keys=True, default=str) + "\n").encode()
        with open(self.root / HISTORY_FILE, "a+b") as fh:
            # An append cut short by a crash leaves a last line without its newline: this
            # event then starts a line of its own, else it would be glued to the damaged
            # one and lost with it. (Appends happen under the lock: nothing writes between.)
            end = fh.seek(0, os.SEEK_END)
            if end > 0:
                fh.seek(end - 1)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
            fh.write(line)  # "a": at the end, wherever the reads left the position
            fh.flush()
            os.fsync(fh.fileno())

    def _set_champion(self, version: str) -> None:
        self._set_pointer(CHAMPION_FILE, version)

    def _set_pointer(self, name: str, version: str) -> None:
        tmp = self.root / f".{name}.{secrets.token_hex(4)}"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / name)

    def promote(
        self,
        version: str,
        *,
        reason: str = "",
        forced: bool = False,
        actor: str = "",
        expected: str | None | object = _ANY_CHAMPION,
    ) -> str | None:
        """Make `version` the champion (see ``promote_change``); returns the champion it
        replaced."""
        return self.promote_change(
            version, reason=reason, forced=forced, actor=actor, expected=expected
        ).previous

    def promote_change(
        self,
        version: str,
        *,
        reason: str = "",
        forced: bool = False,
        actor: str = "",
        expected: str | None | object = _ANY_CHAMPION,
    ) -> ChampionChange:
        """Make `version` the champion after verifying it loads (a bad bundle never serves).
        Promoting the champion again (a retried request) changes nothing (``changed``
        False, nothing recorded) and names as ``previous`` the champion its promotion
        replaced: recording it as its own predecessor would leave rollback nowhere to go
        back to.

        With ``expected`` (a version, or None for "no champion"), the promotion happens
        only if that is still the champion when the lock is held, else
        ``ChampionChanged`` and nothing changes: a promotion decided against one champion
        (a gate that judged the challenger against it) must not replace another one that
        an operator promoted meanwhile. (``version`` already the champion: nothing to do,
        whatever ``expected``.)"""
        self.load(version)
        with self._locked():
            previous = self.champion()
            if previous == version:
                return ChampionChange(version, self._replaced_by(version), changed=False)
            if expected is not _ANY_CHAMPION and previous != expected:
                raise ChampionChanged(version, expected, previous)
            self._set_champion(version)
            if self.shadow() == version:  # the shadow won: nothing left to shadow
                (self.root / SHADOW_FILE).unlink(missing_ok=True)
                self._append(
                    {"at": _now(), "event": "shadow_off", "version": version, "actor": actor}
                )
            self._append(
                {
                    "at": _now(),
                    "event": "promote",
                    "version": version,
                    "previous": previous,
                    "reason": reason,
                    "forced": forced,
                    "actor": actor,
                }
            )
            return ChampionChange(version, previous, changed=True)

    def _replaced_by(self, version: str, *, strict: bool = False) -> str | None:
        """The champion that the last promotion of ``version`` replaced.

        ``strict`` (rollback): an unreadable line after the promotion found makes it a
        ``RegistryError`` naming the line, rather than skipped. The pointer is replaced
        before its promotion is recorded, so a record cut short by a crash can be that of
        the champion now serving: skipped, rollback would go by an older promotion of the
        same version (or none) and silently serve another model than the one it replaced.
        The next promotion is recorded after the damaged line and ends the refusal."""
        for number, event in reversed(self._history_lines()):
            if event is None:
                if strict:
                    raise RegistryError(
                        f"cannot tell which champion {version} replaced: line {number} of "
                        f"the registry's {HISTORY_FILE} is unreadable (an append cut short?) "
                        "and may be the record of that promotion; promote the version to "
                        "serve instead, or repair that line"
                    )
                self._warn_unreadable(number)
                continue
            # previous == version: a retried promotion recorded by an older release.
            if (
                event.get("event") == "promote"
                and event.get("version") == version
                and event.get("previous") != version
            ):
                return event.get("previous")
        return None

    def set_shadow(self, version: str, *, actor: str = "") -> str | None:
        """Let `version` decide beside the champion on live traffic (never served);
        returns the shadow it replaced (read under the lock, as recorded)."""
        self.load(version)  # verified: a broken bundle is refused here, not in the workers
        with self._locked():
            if version == self.champion():
                raise RegistryError(f"{version} is the champion: shadow another version")
            previous = self.shadow()
            self._set_pointer(SHADOW_FILE, version)
            self._append(
                {
                    "at": _now(),
                    "event": "shadow",
                    "version": version,
                    "previous": previous,
                    "actor": actor,
                }
            )
            return previous

    def clear_shadow(self, *, actor: str = "") -> str | None:
        """Stop the shadow; returns the version that was shadowing, if any."""
        with self._locked():
            previous = self.shadow()
            if previous is not None:
                (self.root / SHADOW_FILE).unlink(missing_ok=True)
                self._append(
                    {"at": _now(), "event": "shadow_off", "version": previous, "actor": actor}
                )
            return previous

    def rollback(self, *, actor: str = "") -> str:
        """Return to the champion before the current one (see ``rollback_change``);
        returns the champion now."""
        return self.rollback_change(actor=actor).champion

    def rollback_change(self, *, actor: str = "") -> ChampionChange:
        """Return to the champion before the current one: ``previous`` is the champion
        rolled back from."""
        with self._locked():
            current = self.champion()
            if current is None:
                raise RegistryError("no champion to roll back from")
            previous = self._replaced_by(current, strict=True)
            if not previous:
                raise RegistryError(f"{current} has no earlier champion to roll back to")
            self.load(previous)
            self._set_champion(previous)
            self._append(
                {
                    "at": _now(),
                    "event": "rollback",
                    "version": previous,
                    "previous": current,
                    "actor": actor,
                }
            )
            return ChampionChange(previous, current, changed=True)
