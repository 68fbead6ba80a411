"""Route each decision to an agent pool: the pools config and live availability shared
through the database, and ``models.matching`` to choose.

Every worker keeps the config and the availability reports in memory and re-reads them
at most every ``pools_poll_s`` seconds (two small queries), so the decision path never
waits on them; if the database cannot be read the last copy keeps routing. Until a
config is stored (``PUT /v1/pools``, ``vea pools rebuild``) the ``VEA_POOLS`` file is used.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from models.economics import Economics
from models.matching import Availability, RoutingRules, route
from models.pools import PoolConfig, PoolError, load_catalogue, load_config, parse_config
from service.config import Settings
from service.db import READ_ONLY, pool_availability, pool_config, utcnow

log = logging.getLogger("vea.routing")

CONFIG_ROW = sa.select(pool_config.c.config, pool_config.c.updated_at).where(pool_config.c.id == 1)
AVAILABILITY_ROWS = sa.select(pool_availability)


class PoolRouter:
    def __init__(
        self,
        settings: Settings,
        engine_getter: Callable[[], sa.Engine],
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.file_config = load_config(settings.pools)
        self.catalogue = load_catalogue(settings.self_service_content or None)
        self._engine = engine_getter
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self.config: PoolConfig = self.file_config
        self.source = "file"
        self.updated_at: datetime | None = None
        self.reports: dict[str, dict[str, Any]] = {}
        # Why the stored config is not the one routing uses (None when it is).
        self.problem: str | None = None
        self._refused_at: datetime | None = None

    # ---------------------------------------------------------------- shared state
    def refresh(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._checked_at < self.settings.pools_poll_s:
            return
        with self._lock:
            if not force and now - self._checked_at < self.settings.pools_poll_s:
                return
            self._checked_at = now
            try:
                with self._engine().connect().execution_options(**{READ_ONLY: True}) as conn:
                    row = conn.execute(CONFIG_ROW).first()
                    reports = {r.pool_id: dict(r._mapping) for r in conn.execute(AVAILABILITY_ROWS)}
            except DBAPIError as exc:
                # Unreachable or not migrated yet: keep routing with what we have.
                log.warning("pools not refreshed", extra={"error": type(exc).__name__})
                return
            if row is not None and row.updated_at not in (self.updated_at, self._refused_at):
                try:
                    self.config = parse_config(row.config)
                    self.source, self.updated_at = "database", row.updated_at
                    self.problem = None
                except PoolError as exc:
                    # Writers validate what they store, but a config stored by an older
                    # release can fail checks added since: route with the last good one
                    # and say so once (and on /readyz), not at every poll.
                    self._refused_at = row.updated_at
                    self.problem = (
                        f"the stored pools config is refused ({exc}): routing uses the "
                        f"{self.source} config; PUT a corrected one (GET /v1/pools says why)"
                    )
                    log.error("stored pools config refused", extra={"error": str(exc)})
            elif row is None:
                self.config, self.source, self.updated_at = self.file_config, "file", None
                self.problem = None
            self.reports = reports

    def availability(self) -> dict[str, Availability]:
        """Fresh and stale reports per pool (a stale one is marked and ignored)."""
        cutoff = self._now() - timedelta(seconds=self.settings.availability_ttl_s)
        return {
            pool_id: Availability.of_report(r, stale=r["reported_at"] < cutoff)
            for pool_id, r in self.reports.items()
        }

    # --------------------------------------------------------------------- routing
    def rules(self, economics: Economics | None) -> RoutingRules:
        economics = economics or Economics()
        s = self.settings
        return RoutingRules(
            value_of_success=economics.value_of_success,
            cost_per_second=economics.cost_per_second,
            extra_handle_time_s=dict(economics.extra_handle_time_s),
            wait_cost_per_s=s.routing_wait_cost_per_s,
            max_wait_s=s.routing_max_wait_s,
            mean_handle_s=s.routing_mean_handle_s,
            patience_s=s.routing_patience_s if s.routing_patience_s > 0 else None,
            explore_margin=s.pool_exploration_margin,
            explore_floor=s.pool_exploration_floor,
        )

    def route(
        self,
        activity: str,
        result: Mapping[str, Any],
        features: Mapping[str, Any],
        *,
        channel: str | None,
        language: str | None,
        blocked: Collection[str] = (),
        economics: Economics | None = None,
        decision_id: str | None = None,
        reason_language: str | None = None,
        holdout: bool = False,
    ) -> dict[str, Any]:
        """The route of a decision (``models.matching.route``'s answer).

        With pool exploration on, the pool is drawn by the decision id (the same id always
        draws the same pool); without one a fresh random key is drawn, so the draw is
        still logged with its exact probability but cannot be replayed from the id."""
        self.refresh()
        if decision_id is None and self.settings.pool_exploration_margin > 0:
            decision_id = secrets.token_hex(16)
        return route(
            self.config,
            activity=activity,
            activities=result.get("activities") or [],
            openness=float(result["openness"]["score"]),
            channel=channel,
            language=language,
            segment=features.get("segment"),
            availability=self.availability(),
            rules=self.rules(economics),
            catalogue=self.catalogue,
            blocked=blocked,
            none_value=float(result.get("expected_value_none") or 0.0),
            decision_id=decision_id,
            reason_language=reason_language,
            holdout=holdout,
        )
