"""Route a decision to an agent pool, from the pools file (``VEA_POOLS_FILE``).

Static routing by activity and channel; proficiency-based pools and live availability
belong to the pools issue, which will replace this module's table, not its output
shape ``{pool, reason, fallbacks}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from models.activities import NONE, VALUE_ACTIVITIES


@dataclass(frozen=True)
class Pool:
    id: str
    activities: frozenset[str]
    channels: frozenset[str] | None  # None: every channel


@dataclass(frozen=True)
class PoolTable:
    pools: tuple[Pool, ...]
    default_pool: str
    self_service_pool: str | None

    @classmethod
    def load(cls, path: str | Path) -> PoolTable:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        pools = []
        for entry in data.get("pools") or []:
            activities = frozenset(entry.get("activities") or ())
            unknown = activities - set(VALUE_ACTIVITIES)
            if unknown:
                raise ValueError(f"pool {entry.get('id')!r}: unknown activities {sorted(unknown)}")
            channels = entry.get("channels")
            pools.append(
                Pool(str(entry["id"]), activities, frozenset(channels) if channels else None)
            )
        ids = {p.id for p in pools}
        default = str(data.get("default_pool") or "general")
        self_service = data.get("self_service_pool")
        for name in (default, self_service):
            if name is not None and name not in ids:
                raise ValueError(f"pools file names pool {name!r} but does not define it")
        return cls(tuple(pools), default, self_service)

    def route(self, activity: str, channel: str | None) -> dict:
        if channel == "self_service" and self.self_service_pool:
            return {
                "pool": self.self_service_pool,
                "reason": "self-service channel: deliver digital content"
                + ("" if activity == NONE else f" for {activity}"),
                "fallbacks": [],
            }
        if activity == NONE:
            return {
                "pool": self.default_pool,
                "reason": "no value attempt: effortless resolution",
                "fallbacks": [],
            }
        matching = [
            p.id
            for p in self.pools
            if activity in p.activities
            and (p.channels is None or channel in p.channels)
            and p.id != self.self_service_pool
        ]
        if not matching:
            return {
                "pool": self.default_pool,
                "reason": f"no pool serves {activity}: default pool",
                "fallbacks": [],
            }
        return {
            "pool": matching[0],
            "reason": f"pool serving {activity}",
            "fallbacks": [*matching[1:], self.default_pool],
        }
