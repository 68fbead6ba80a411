"""Route each decision to an agent pool: the pools config and live availability shared
through the database, and ``models.matching`` to choose.

Every worker keeps the config and the availability reports in memory and re-reads them
at most every ``pools_poll_s`` seconds (the config, the reports, and a count of the
decisions routed since them), so only the decision that refreshes waits on them; if the
database cannot be read the last copy keeps routing. Until a config is stored (``PUT
/v1/pools``, ``vea pools rebuild``) the ``VEA_POOLS`` file is used.

A report says what the platform saw when it was made, not the contacts routed since: each
of those took one of its free agents or joined the queue (``models.matching.
expected_wait``). The stored decisions are the count every worker and instance shares;
each refresh counts the decisions stored since the last one (``RoutedSince``), and between
refreshes a worker adds its own routes, so a burst within one worker counts at once.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from models.economics import Economics
from models.matching import Availability, RoutingRules, route
from models.pools import PoolConfig, PoolError, load_catalogue, load_config, parse_config
from service.config import Settings
from service.db import READ_ONLY, decisions, pool_availability, pool_config, utcnow
from service.pools import WITHDRAWN, leniently

log = logging.getLogger("vea.routing")

CONFIG_ROW = sa.select(pool_config.c.config, pool_config.c.updated_at).where(pool_config.c.id == 1)
# A withdrawn report (its pool left the config: service.pools.WITHDRAWN) is no report: a
# pool added back reads "wait unknown" until the platform reports again, not "stale".
AVAILABILITY_ROWS = sa.select(pool_availability).where(pool_availability.c.reported_at != WITHDRAWN)
# The route() calls of one decision (the served route, then the routes exploration logs
# for the other activities it could have drawn) follow each other within this: they see
# the availability the first one saw and count once. (The same contact decided again this
# soon, on the same thread, is counted once too.)
SAME_DECISION_S = 5.0
# A decision is stored within milliseconds of its ``created_at``: one created this long
# before a refresh is taken as stored or never to be, and not read again (``RoutedSince``).
# One stored later still (an overloaded database) is counted by its own worker until its
# next refresh and by no other; each refresh reads the decisions of the last SETTLE_S
# seconds, so its cost grows with it.
SETTLE_S = 5.0


@dataclass(frozen=True)
class RoutedSince:
    """The stored decisions routed to a pool since its report (``reported_at``).

    Those created up to ``settled_until`` are counted once (``settled``) and only the
    later ones again at each refresh (``recent``): a refresh reads the decisions of the
    last seconds (``SETTLE_S`` and the time since the last refresh), not of the report's
    whole life (up to ``availability_ttl_s``)."""

    reported_at: datetime
    settled: int
    settled_until: datetime
    recent: int

    @property
    def count(self) -> int:
        return self.settled + self.recent


def routed_counts(
    conn: sa.Connection, since: Mapping[str, datetime], settle_at: datetime
) -> dict[str, tuple[int, int]]:
    """``{pool: (decisions, of which created up to settle_at)}`` for the decisions routed
    to each pool of ``since`` and created after its time there.

    One range scan of ``ix_decisions_created_at`` from the earliest of those times."""
    created = decisions.c.created_at
    after = sa.case(
        {pool: sa.literal(moment, sa.DateTime()) for pool, moment in since.items()},
        value=decisions.c.pool_id,
    )
    rows = conn.execute(
        sa.select(
            decisions.c.pool_id,
            sa.func.count(),
            sa.func.sum(sa.case((created <= sa.literal(settle_at, sa.DateTime()), 1), else_=0)),
        )
        .where(
            created > sa.literal(min(since.values()), sa.DateTime()),
            decisions.c.pool_id.in_(list(since)),
            created > after,
        )
        .group_by(decisions.c.pool_id)
    )
    return {row[0]: (int(row[1]), int(row[2] or 0)) for row in rows}


class PoolRouter:
    def __init__(
        self,
        settings: Settings,
        engine_getter: Callable[[], sa.Engine],
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.file_config = leniently(
            lambda strict: load_config(settings.pools, strict), "VEA_POOLS"
        )
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
        # Per pool with a fresh report at the last refresh: the stored decisions routed
        # to it since; and this worker's routes since that refresh (not all stored yet).
        self.routed: dict[str, RoutedSince] = {}
        self._routed_here: dict[str, int] = {}
        # Held while a route is chosen and counted (not while the database is read): two
        # threads of a worker never both take the same free agent.
        self._routing = threading.Lock()
        self._decision = threading.local()  # the availability a decision's routes see

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
                    routed = self._count_routed(conn, reports)
            except DBAPIError as exc:
                # Unreachable or not migrated yet: keep routing with what we have.
                log.warning("pools not refreshed", extra={"error": type(exc).__name__})
                return
            if row is not None and row.updated_at not in (self.updated_at, self._refused_at):
                try:
                    self.config = leniently(
                        lambda strict: parse_config(row.config, strict), "stored"
                    )
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
            with self._routing:
                # The stored count holds this worker's routes up to now (a sync worker's
                # are all committed; a thread's still in flight is counted by the next).
                self.reports, self.routed, self._routed_here = reports, routed, {}

    def _count_routed(
        self, conn: sa.Connection, reports: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, RoutedSince]:
        """The stored decisions routed to each pool with a fresh report since it, counting
        again only those created after the last refresh's settled time (all of them for a
        report that is new here)."""
        now = self._now()
        fresh_after = now - timedelta(seconds=self.settings.availability_ttl_s)
        settle_at = now - timedelta(seconds=SETTLE_S)
        since: dict[str, datetime] = {}
        settled: dict[str, int] = {}
        for pool_id, report in reports.items():
            reported_at = report["reported_at"]
            if reported_at < fresh_after:
                continue  # stale: ignored when routing, nothing to count
            held = self.routed.get(pool_id)
            if held is not None and held.reported_at == reported_at:
                # Counted before: only the decisions after its settled time are read.
                since[pool_id], settled[pool_id] = held.settled_until, held.settled
            else:
                since[pool_id], settled[pool_id] = reported_at, 0
        found = routed_counts(conn, since, settle_at) if since else {}
        routed = {}
        for pool_id, after in since.items():
            total, newly_settled = found.get(pool_id, (0, 0))
            routed[pool_id] = RoutedSince(
                reported_at=reports[pool_id]["reported_at"],
                settled=settled[pool_id] + newly_settled,
                settled_until=max(settle_at, after),
                recent=total - newly_settled,
            )
        return routed

    def availability(self) -> dict[str, Availability]:
        """Fresh and stale reports per pool (a stale one is marked and ignored), with the
        contacts routed to each pool since its report: stored, and this worker's since the
        last refresh."""
        cutoff = self._now() - timedelta(seconds=self.settings.availability_ttl_s)
        return {
            pool_id: Availability.of_report(
                r, stale=r["reported_at"] < cutoff, routed_since=self._routed_since(pool_id)
            )
            for pool_id, r in self.reports.items()
        }

    def _routed_since(self, pool_id: str) -> int:
        held = self.routed.get(pool_id)
        return (held.count if held is not None else 0) + self._routed_here.get(pool_id, 0)

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
        still logged with its exact probability but cannot be replayed from the id.

        The route counts as a contact sent to its pool (``availability``). The calls of one
        decision after its first (the routes exploration logs for the activities it did
        not draw) see the availability the first one saw, so the logged probabilities are
        those of the decision served, and count nothing."""
        self.refresh()
        if decision_id is None and self.settings.pool_exploration_margin > 0:
            decision_id = secrets.token_hex(16)
        seen = self._decision

        def choose(config: PoolConfig, availability: Mapping[str, Availability]) -> dict[str, Any]:
            return route(
                config,
                activity=activity,
                activities=result.get("activities") or [],
                openness=float(result["openness"]["score"]),
                channel=channel,
                language=language,
                segment=features.get("segment"),
                availability=availability,
                rules=self.rules(economics),
                catalogue=self.catalogue,
                blocked=blocked,
                none_value=float(result.get("expected_value_none") or 0.0),
                decision_id=decision_id,
                reason_language=reason_language,
                holdout=holdout,
            )

        if (
            decision_id is not None
            and getattr(seen, "decision_id", None) == decision_id
            and self._clock() - seen.at <= SAME_DECISION_S
        ):
            return choose(seen.config, seen.availability)
        with self._routing:
            config, availability = self.config, self.availability()
            answer = choose(config, availability)
            pool = answer["pool"]
            self._routed_here[pool] = self._routed_here.get(pool, 0) + 1
        seen.decision_id, seen.at = decision_id, self._clock()
        seen.config, seen.availability = config, availability
        return answer
