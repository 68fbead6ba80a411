"""Service settings, read from ``VEA_*`` environment variables.

``Settings.from_env()`` is called once by the app factory; tests pass overrides as a
mapping to ``create_app(config=...)``. Every setting has a default that runs on a fresh
clone with zero set-up (SQLite under ``var/``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from models.contact_policy import ContactPolicy
from models.exploration import ExplorationConfig
from models.value_report import ValueSettings

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_VAR_DIR = Path("var")


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


@dataclass(frozen=True)
class Settings:
    # gunicorn (service/gunicorn_conf.py): address, sync worker processes, and whether
    # the master applies pending migrations before the workers start.
    bind: str = "127.0.0.1:8000"
    workers: int = 2
    # Threads per worker: 1 (default) runs gunicorn's sync worker; more runs gthread,
    # which overlaps requests waiting on PostgreSQL's commit fsync (about twice the
    # throughput at concurrency 16 here) but showed long latency tails (p99 > 1 s)
    # under wrk on this machine, so it is opt-in.
    threads: int = 1
    auto_migrate: bool = True
    # Persistence: SQLite file under var/ by default, PostgreSQL in production.
    database_url: str = f"sqlite:///{DEFAULT_VAR_DIR / 'vea.db'}"
    # Model registry directory (the training CLI writes it; the service only reads it,
    # except for promote/rollback).
    # SQLite commit durability: FULL (default: a 2xx survives a power cut) or NORMAL.
    sqlite_synchronous: str = "FULL"
    # SQLite: seconds between background WAL checkpoints (0: SQLite's own, inline).
    # Short rounds keep each copy-back and its sync small: a commit's own sync queues
    # behind the database file's on the same disk (p99 at 16 concurrent: ~16 vs ~19 ms).
    sqlite_checkpoint_s: float = 0.25
    # Seconds a request waits for a pooled database connection before answering as if
    # the database were down (decisions degraded, writes 503 + Retry-After).
    db_pool_timeout_s: float = 5.0
    registry: str = str(DEFAULT_VAR_DIR / "registry")
    # Natively compiled forests (models.compiled), shared by all workers; "" disables.
    compile_cache: str = str(DEFAULT_VAR_DIR / "cache" / "compiled")
    # Agent pools (models.pools): the YAML file used until a config is stored in the
    # database (PUT /v1/pools, `vea pools rebuild`), and the self-service content
    # catalogue (empty: the one shipped in models/content).
    pools: str = str(PACKAGE_DIR / "pools.default.yaml")
    self_service_content: str = ""
    # Routing (models.matching): never route to a pool whose expected wait passes
    # `routing_max_wait_s`; each second of wait costs `routing_wait_cost_per_s` (value
    # units); without a wait from the platform one is estimated from the queue and
    # `routing_mean_handle_s`. Availability older than `availability_ttl_s` is ignored.
    # A pool's value is discounted by the chance the customer is still there after its
    # wait, exp(-wait / `routing_patience_s`) (customers' mean patience; 0 disables).
    routing_max_wait_s: float = 60.0
    routing_wait_cost_per_s: float = 0.02
    routing_mean_handle_s: float = 420.0
    routing_patience_s: float = 180.0
    # Pool exploration (models.matching): pools within the wait limit whose expected value
    # is within `pool_exploration_margin` (value units) of the best are drawn among, each
    # with at least `pool_exploration_floor`; the pool's probability is logged as
    # `pool_propensity` for off-policy evaluation of routing. 0 (default): off.
    pool_exploration_margin: float = 0.0
    pool_exploration_floor: float = 0.05
    availability_ttl_s: float = 120.0
    # How often each worker re-reads the pools config and availability (one query).
    pools_poll_s: float = 1.0
    # Proficiency rebuild: attempts an agent needs at an activity before joining a pool.
    proficiency_min_contacts: int = 30
    # How often each worker checks whether the champion changed (one stat call).
    champion_poll_s: float = 2.0
    # A shadow challenger (``vea models shadow``) decides after the served answer; calls
    # over this budget count as slow, and a shadow that is often slow or failing is
    # skipped for a minute.
    shadow_budget_ms: float = 5.0
    # Requests larger than this are refused with 413.
    max_body_bytes: int = 64 * 1024
    # Per API key: token bucket of `rate_limit_burst` tokens refilled at
    # `rate_limit_per_s`, shared by the workers of one gunicorn master (see
    # `shared_state_dir`). 0 disables the limit.
    rate_limit_per_s: float = 200.0
    rate_limit_burst: int = 400
    # Brute force: per client address, every failed key check takes a token
    # from a bucket of `auth_failures_burst` refilled at `auth_failures_per_s`; an address
    # with an empty bucket gets 429 for any key not verified before. 0 disables.
    auth_failures_per_s: float = 0.2
    auth_failures_burst: int = 20
    # Where the workers of one gunicorn master share state (the rate-limit buckets);
    # gunicorn's master makes a fresh directory per start (service/gunicorn_conf.py), or
    # empties this one when set: one directory per master. Empty: each process keeps its
    # own.
    shared_state_dir: str = ""
    # Verified API keys are cached this long, so a revoked key stops working within it.
    key_cache_s: float = 5.0
    # A contact of the same customer within this many minutes continues the earlier one.
    continuation_window_min: float = 24 * 60.0
    # Contact policy (models.contact_policy).
    decline_days: int = 14
    max_attempts_per_week: int = 2  # a negative value disables the cap
    allow_negative_complaints: bool = False
    negative_sentiment_threshold: float = -0.3
    # Seconds a client should wait before retrying a write the database could not take.
    retry_after_s: int = 5
    # One JSON line per request on stderr (method, route, status, ms, request id).
    access_log: bool = True
    log_level: str = "INFO"
    # Learning loop (models.exploration): how the served activity is drawn around the
    # best one (none | epsilon | softmax; its probability is logged for off-policy
    # evaluation), and the randomized holdout: this share of customers, by a stable hash
    # of the customer id salted with the experiment name, always gets `none`.
    exploration: str = "none"
    epsilon: float = 0.1
    softmax_temperature: float = 1.0
    propensity_floor: float = 0.01
    holdout_share: float = 0.0
    experiment: str = "vea-holdout-1"
    # Value report (service.reports): money values for the ROI, and the success measures
    # declared before the experiment (comma list, or a YAML file with `declared_at`).
    value_of_retention: float = 200.0
    cost_per_second: float = 0.02
    success_measures: str = "ve_success,retained_60d,ves"
    success_measures_declared_at: str = ""
    value_config: str = ""
    # Drift (service.reports): PSI above this is flagged (0.1 watch, 0.25 act).
    drift_psi_threshold: float = 0.2
    # Pages (/desk, /dashboard): signs the session cookie. Every worker and instance must
    # share it; empty: gunicorn's master draws one per start (service/gunicorn_conf.py),
    # a bare create_app() one per app, so logins do not survive a restart.
    secret_key: str = ""
    # A page login (API key exchanged for a session cookie) lasts this long.
    session_hours: float = 12.0
    # Send the session cookie only over HTTPS (set behind a TLS-terminating proxy).
    secure_cookies: bool = False

    def __post_init__(self) -> None:
        # Fail at start-up, not on the first decision.
        self.exploration_config()
        if not 0.0 <= self.holdout_share < 1.0:
            raise ValueError("holdout_share must be in [0, 1)")
        if self.pool_exploration_margin < 0 or not 0 < self.pool_exploration_floor <= 0.5:
            raise ValueError("pool_exploration_margin must be >= 0, its floor in (0, 0.5]")
        try:
            ValueSettings(declared_at=self.success_measures_declared_at or None)
        except ValueError as exc:
            raise ValueError(f"VEA_SUCCESS_MEASURES_DECLARED_AT: {exc}") from None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Defaults, then ``VEA_<NAME>`` variables, then explicit overrides (tests)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"VEA_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(f.default)
            try:
                values[f.name] = _bool(raw) if kind is bool else kind(raw)
            except ValueError as exc:
                raise ValueError(f"VEA_{f.name.upper()}: {exc}") from None
        settings = replace(cls(), **values)
        if overrides:
            known = {f.name for f in fields(cls)}
            unknown = set(overrides) - known
            if unknown:
                raise ValueError(f"unknown settings: {sorted(unknown)}")
            settings = replace(settings, **dict(overrides))
        return settings

    def contact_policy(self) -> ContactPolicy:
        return ContactPolicy(
            decline_days=self.decline_days,
            max_attempts_per_week=(
                self.max_attempts_per_week if self.max_attempts_per_week >= 0 else None
            ),
            allow_negative_complaints=self.allow_negative_complaints,
            negative_sentiment_threshold=self.negative_sentiment_threshold,
        )

    def exploration_config(self) -> ExplorationConfig:
        return ExplorationConfig(
            mode=self.exploration,
            epsilon=self.epsilon,
            temperature=self.softmax_temperature,
            floor=self.propensity_floor,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def worker_threads(self) -> int:
        return max(1, self.threads)

    def shared_state_path(self, name: str) -> str | None:
        """``name`` in the directory the workers share, or None without one."""
        return os.path.join(self.shared_state_dir, name) if self.shared_state_dir else None
