"""Service settings, read from ``VEA_*`` environment variables.

``Settings.from_env()`` is called once by the app factory; tests pass overrides as a
mapping to ``create_app(config=...)``. Every setting has a default that runs on a fresh
clone with zero set-up (SQLite under ``var/``). Every value is checked when the settings
are made (``BOUNDS``, ``CHOICES``, the URL, the address and the files they name), so a
wrong one stops ``vea serve`` in gunicorn's master with ``VEA_<NAME>: ...``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from models.activities import ACTIONS
from models.contact_policy import ContactPolicy
from models.exploration import ExplorationConfig
from models.pools import PoolError, load_catalogue, load_config
from models.schema import Reward
from models.value_report import ValueSettings

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_VAR_DIR = Path("var")


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def _bool(value: str, default: bool) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    # Empty is refused like an empty number, not read as false: `VEA_AUTO_MIGRATE=` (a
    # value lost in a template) would otherwise quietly turn migrations off, and
    # `VEA_ACCESS_LOG=` the access log. Unset means the default.
    words = f"{', '.join(TRUE_WORDS)} (true) or {', '.join(FALSE_WORDS)} (false)"
    if not lowered:
        default_word = "true" if default else "false"
        raise ValueError(f"empty: give {words}, or unset it for the default ({default_word})")
    raise ValueError(f"not a boolean: {value!r} (give {words})")


@dataclass(frozen=True)
class Bounds:
    """The values a numeric setting may take: ``low`` (itself allowed unless ``above``)
    up to ``high``, always finite (``nan`` would silently turn every comparison off)."""

    low: float
    high: float = math.inf
    above: bool = False  # ``low`` itself is refused
    below: bool = False  # ``high`` itself is refused

    def problem(self, value: float) -> str | None:
        if not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        too_low = value <= self.low if self.above else value < self.low
        too_high = value >= self.high if self.below else value > self.high
        if too_low or too_high:
            low = f"> {self.low:g}" if self.above else f">= {self.low:g}"
            high = f" and {'<' if self.below else '<='} {self.high:g}"
            return f"must be {low}{'' if math.isinf(self.high) else high}, got {value!r}"
        return None


# Every numeric setting but ``max_attempts_per_week`` (any integer: negative disables the
# cap). A value outside them stops ``vea serve`` in the master, naming the variable,
# instead of a worker crashing on it later or the service quietly doing something odd
# (a negative rate limit refusing nothing, a zero pool timeout failing every request).
HOUR, DAY = 3600, 86400
MONEY = 1e6  # a price per second or a value margin, in any currency

BOUNDS: dict[str, Bounds] = {
    # Upper bounds too: a value past what the code can take started "healthy", then
    # failed every request (days past timedelta's range: OverflowError, 500) or forked
    # workers without end; these are far past any real deployment.
    "workers": Bounds(1, 256),
    "threads": Bounds(1, 256),
    "omp_num_threads": Bounds(1, 256),
    # Under gunicorn's worker timeout (30 s, service/gunicorn_conf.py), or it never acts.
    "client_timeout_s": Bounds(0, 30, above=True, below=True),
    "sqlite_checkpoint_s": Bounds(0, HOUR),
    "db_pool_timeout_s": Bounds(0, 300, above=True),
    # Under gunicorn's worker timeout too: a hung database must answer degraded first.
    "db_timeout_s": Bounds(0, 30, above=True, below=True),
    "routing_max_wait_s": Bounds(0, DAY),
    "routing_wait_cost_per_s": Bounds(0, MONEY),
    "routing_mean_handle_s": Bounds(0, DAY, above=True),
    "routing_patience_s": Bounds(0, DAY),
    "pool_exploration_margin": Bounds(0, MONEY),
    "pool_exploration_floor": Bounds(0, 0.5, above=True),
    "availability_ttl_s": Bounds(0, DAY),  # 0: every report is stale (availability unused)
    "pools_poll_s": Bounds(0, HOUR),
    "proficiency_min_contacts": Bounds(1, 1e6),
    "champion_poll_s": Bounds(0, HOUR),
    "shadow_budget_ms": Bounds(0, 10_000, above=True),
    # Below a decision's own size every call would be a 413.
    "max_body_bytes": Bounds(1024, 64 * 1024 * 1024),
    "rate_limit_per_s": Bounds(0, 1e6),
    "rate_limit_burst": Bounds(1, 1e7),
    "auth_failures_per_s": Bounds(0, 1e6),
    "auth_failures_burst": Bounds(1, 1e7),
    "heavy_concurrency": Bounds(0, 64),
    "key_cache_s": Bounds(0, HOUR),
    # History is read 30 days back (service.history.PRIOR_CONTACTS_DAYS): a longer window
    # would silently end there.
    "continuation_window_min": Bounds(0, 30 * 24 * 60),
    "decline_days": Bounds(0, 3650),
    "negative_sentiment_threshold": Bounds(-1, 1),
    "retry_after_s": Bounds(0, HOUR),
    "epsilon": Bounds(0, 1),
    "softmax_temperature": Bounds(0, above=True),
    "propensity_floor": Bounds(0, 1 / len(ACTIONS)),
    "holdout_share": Bounds(0, 1, below=True),
    "value_of_retention": Bounds(0, 1e12),
    "cost_per_second": Bounds(0, MONEY),
    "drift_psi_threshold": Bounds(0, 100, above=True),
    # Every refresh of the drift gauges reads the whole window's decisions.
    "drift_window_h": Bounds(0, 30 * 24),
    "session_hours": Bounds(0, 366 * 24, above=True),
    "trusted_proxies": Bounds(0, 10),
    "hsts_seconds": Bounds(0, 2 * 365 * DAY),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "sqlite_synchronous": ("FULL", "NORMAL"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "rate_limit_scope": ("instance", "database"),
}
DATABASE_BACKENDS = ("sqlite", "postgresql")
# VEA_* variables that are not service settings: the key `make run` prints for curl,
# docker-compose.yml's database password, and the test suite's own knobs.
OTHER_VARIABLES = frozenset(
    {
        "VEA_KEY",
        "VEA_DB_PASSWORD",
        "VEA_FUZZ_EXAMPLES",
        "VEA_FUZZ_RANDOM",
        "VEA_PG_BINDIR",
        "VEA_CHROMIUM",
        "VEA_SCREENSHOTS",
    }
)
# An origin that may frame the pages, as CSP host-sources write it: a scheme, a host (its
# leftmost label may be ``*``, any subdomain), an optional port. Not ``*`` alone (any site
# could then put the desk's buttons under its own, the clickjacking CSP exists to stop)
# nor a path (browsers match frame-ancestors on origins).
FRAME_ORIGIN = re.compile(
    r"^https?://(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?/?$"
)
# The /metrics bearer token: long enough not to be guessed, and sendable as a header.
MIN_METRICS_TOKEN_CHARS = 16
METRICS_TOKEN = re.compile(r"[!-~]+")  # visible ASCII, no space
# HOST:PORT (a name, IPv4 or [IPv6]) or unix:PATH, as gunicorn's --bind takes them.
BIND = re.compile(r"^(?:unix:.+|(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5}))$")


def variable(name: str) -> str:
    return f"VEA_{name.upper()}"


def _origins(name: str, given: list[str], example: str, separated: str) -> list[str]:
    """Each of ``given`` checked as an origin (ValueError naming the setting ``name``),
    without a trailing slash."""
    for origin in given:
        if not FRAME_ORIGIN.match(origin):
            raise ValueError(
                f"{variable(name)}: {origin!r} is not an origin: give "
                f"scheme://host[:port] (https://{example}.example.com, "
                f"https://*.example.com), {separated}; any site ('*'), paths and "
                "keywords are refused"
            )
    return [origin.rstrip("/") for origin in given]


# The fields of the VEA_VALUE_CONFIG file, each overriding its setting in the value report.
VALUE_CONFIG_KEYS = frozenset(
    {"success_measures", "declared_at", "value_of_retention", "cost_per_second", "reward"}
)


class ValueConfigError(ValueError):
    """The ``VEA_VALUE_CONFIG`` file does not read: the operator's to mend, not the
    caller's (a report asked for then cannot be made)."""


def read_value_config(path: str) -> dict[str, Any]:
    """The ``VEA_VALUE_CONFIG`` file as the ``ValueSettings`` fields it sets
    (``value_of_retention``, ``cost_per_second``, ``declared_measures``, ``declared_at``,
    ``reward``; a field left out is absent), every one checked. The one reader of the
    file: the start-up check and each value report (``service.reports.value_settings``)
    both call it, so an edit made since the start is read, or refused, the same way.

    Raises ``ValueConfigError("VEA_VALUE_CONFIG: FILE: FIELD: problem")``."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueConfigError(f"VEA_VALUE_CONFIG: {exc}") from None
    except ValueError as exc:
        # Not UTF-8 (UnicodeDecodeError), or a date YAML reads as one but no calendar has
        # (declared_at: 2026-02-30): a plain ValueError escaped as a 500 from the report.
        raise ValueConfigError(f"VEA_VALUE_CONFIG: {path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueConfigError(f"VEA_VALUE_CONFIG: {path}: not a YAML mapping")

    def refuse(field: str, problem: str) -> ValueConfigError:
        return ValueConfigError(f"VEA_VALUE_CONFIG: {path}: {field}: {problem}")

    unknown = sorted(str(key) for key in set(data) - VALUE_CONFIG_KEYS)
    if unknown:
        raise refuse(
            unknown[0], f"not a field of the value config ({', '.join(sorted(VALUE_CONFIG_KEYS))})"
        )
    out: dict[str, Any] = {}
    for name in ("value_of_retention", "cost_per_second"):
        if name not in data:
            continue
        number = data[name]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise refuse(name, f"not a number: {number!r}")
        problem = BOUNDS[name].problem(float(number))
        if problem:
            raise refuse(name, problem)
        out[name] = float(number)
    if "success_measures" in data:
        measures = data["success_measures"]
        # A plain string would be read letter by letter: a YAML list is required.
        if not isinstance(measures, list) or not all(
            isinstance(m, str) and m.strip() for m in measures
        ):
            raise refuse(
                "success_measures",
                f"a list of measure names, e.g. [ve_success, retained_60d], got {measures!r}",
            )
        out["declared_measures"] = tuple(m.strip() for m in measures)
        try:
            ValueSettings(declared_measures=out["declared_measures"])
        except ValueError as exc:
            raise refuse("success_measures", str(exc)) from None
    if "declared_at" in data:
        # YAML reads a bare 2026-01-01 as a date: its text is the ISO date.
        declared_at = None if data["declared_at"] is None else str(data["declared_at"])
        if not declared_at:
            raise refuse("declared_at", "empty: give an ISO date or date-time, or leave it out")
        try:
            ValueSettings(declared_at=declared_at)
        except ValueError as exc:  # the message names the field
            raise ValueConfigError(f"VEA_VALUE_CONFIG: {path}: {exc}") from None
        out["declared_at"] = declared_at
    if "reward" in data:
        try:
            out["reward"] = Reward.from_dict(data["reward"])
        except ValueError as exc:
            raise refuse("reward", str(exc)) from None
    return out


def safe_url(url: str) -> str:
    """A database URL fit for a message: the password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(not a URL)"


_NOT_A = {float: "not a number", int: "not a whole number"}


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
    # OpenMP threads per worker for LightGBM: 1, because its default (all cores) in each
    # of several workers collapses throughput. Read by service/gunicorn_conf.py from the
    # environment before LightGBM loads, and checked here like every setting.
    omp_num_threads: int = 1
    # Seconds a client may leave its socket idle while gunicorn reads the request line,
    # headers or body, or writes the answer (service/workers.py): its connection is then
    # closed (a 408 for a body), not left to hold a worker until gunicorn's own timeout.
    client_timeout_s: float = 5.0
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
    # Seconds a database call of a request may take (a connect, a statement, a commit)
    # before it is abandoned as if the database were down: decisions answer degraded,
    # writes 503 + Retry-After, /readyz says the database did not answer in time. For
    # a server that is hung but reachable (stopped, a lock held long), which no TCP or
    # libpq timeout ends. The connection is closed, and for as long again every call
    # fails at once (no request waits on the hung server meanwhile); then the service
    # asks it again. PostgreSQL ends a lock wait at this deadline itself (only that
    # request fails), so a call is abandoned 1 s later, when the server answers nothing;
    # SQLite waits at most this long for another process's lock (its busy timeout).
    # Heavy computations (reports, the dashboard, a pools rebuild) may wait 25 s a call.
    # Commands (`vea db ...`, `vea export`) have no deadline.
    db_timeout_s: float = 5.0
    registry: str = str(DEFAULT_VAR_DIR / "registry")
    # The erasure ledger (service.erasure_ledger): a file outside the database with one
    # line per customer erasure (a keyed hash of the id, never the id), so erasures a
    # restored backup brought back can be done again (`vea db reapply-erasures`). Its key
    # is kept beside it (erasure-ledger.key). Empty: erasures/ledger.jsonl beside the
    # registry directory (var/erasures/ledger.jsonl by default).
    erasure_ledger: str = ""
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
    # Who shares the buckets of both limits (this one and the brute-force one below):
    # "instance", the workers of one gunicorn master; "database", every instance on the
    # database (several instances behind a load balancer), leased a few tokens at a time.
    rate_limit_scope: str = "instance"
    # Brute force: per client address, every failed key check takes a token
    # from a bucket of `auth_failures_burst` refilled at `auth_failures_per_s`; an address
    # with an empty bucket gets 429 for any key not verified before, except a revoked or
    # expired one (its 401 says so: it cannot be guessed into use). 0 disables.
    auth_failures_per_s: float = 0.2
    auth_failures_burst: int = 20
    # Heavy computations over the stored decisions (the reports under /v1/reports, the
    # dashboard's uncached sections and its CSV downloads) at once per instance (the
    # workers sharing `shared_state_dir`): one more is refused at once with 429 and
    # Retry-After, so reports cannot take every worker from the decisions. 0: no limit.
    heavy_concurrency: int = 1
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
    # The gauges vea_feature_psi and vea_calibration_gap (service.drift_monitor) describe
    # the decisions of this many hours before now, whoever reads the reports. 0: none.
    drift_window_h: float = 24.0
    # Pages (/desk, /dashboard): signs the session cookie. Every worker and instance must
    # share it; empty: gunicorn's master draws one per start (service/gunicorn_conf.py),
    # a bare create_app() one per app, so logins do not survive a restart.
    secret_key: str = ""
    # Bearer token `GET /metrics` requires (Prometheus' `authorization:` with a
    # `credentials_file`). Empty: /metrics answers anyone who reaches it (bind it
    # privately). Left out of the settings' repr: it is a secret.
    metrics_token: str = field(default="", repr=False)
    # A page login (API key exchanged for a session cookie) lasts this long.
    session_hours: float = 12.0
    # Send the session cookie only over HTTPS. Requests that arrive over HTTPS (directly,
    # or through VEA_TRUSTED_PROXIES that say so) get it anyway; set this when a TLS
    # terminator in front is not among the trusted proxies.
    secure_cookies: bool = False
    # Strict-Transport-Security max-age on answers to HTTPS requests (0: not sent). Once
    # a browser saw it, it refuses plain HTTP to this host for that long: set it when the
    # host will stay on HTTPS.
    hsts_seconds: int = 0
    # Reverse proxies in front of the service (a load balancer, a TLS terminator) whose
    # X-Forwarded-For / X-Forwarded-Proto are believed: the client's address (the
    # brute-force budget is per address) is the one the nearest of them saw. 0: the
    # headers are ignored, since any client can send them.
    trusted_proxies: int = 0
    # Origins besides the service's own that may show the pages in a frame (the
    # contact-center desktop's side panel), space-separated: https://desk.example.com
    # https://*.example.com. Empty: the service's own pages only.
    frame_ancestors: str = ""
    # Origins whose links open the desk in a window or tab of its own (a desktop that
    # does not frame it), space- or comma-separated as frame_ancestors. A desk link that
    # would decide, followed from another site (the browser's Sec-Fetch-Site), opens at
    # once only from these and the frame_ancestors origins: from any other site the
    # agent confirms it first (a site cannot plant decisions under the agent's key).
    desk_link_origins: str = ""

    def __post_init__(self) -> None:
        # Fail at start-up (in gunicorn's master, before any worker), naming the variable,
        # not on the first decision.
        for name, bounds in BOUNDS.items():
            problem = bounds.problem(getattr(self, name))
            if problem:
                raise ValueError(f"{variable(name)}: {problem}")
        for name, allowed in CHOICES.items():
            if getattr(self, name).upper() not in {choice.upper() for choice in allowed}:
                raise ValueError(
                    f"{variable(name)}: must be one of {', '.join(allowed)}, "
                    f"got {getattr(self, name)!r}"
                )
        try:
            self.exploration_config()
        except ValueError as exc:
            raise ValueError(f"VEA_EXPLORATION: {exc}") from None
        match = BIND.match(self.bind)
        if match is None or (match["port"] and not 1 <= int(match["port"]) <= 65535):
            raise ValueError(
                f"VEA_BIND: must be HOST:PORT (port 1-65535) or unix:PATH, got {self.bind!r}"
            )
        self._check_database_url()
        for name in ("registry", "experiment"):
            if not getattr(self, name).strip():
                raise ValueError(f"{variable(name)}: must not be empty")
        for name in ("registry", "compile_cache"):
            path = getattr(self, name)
            if path and Path(path).exists() and not Path(path).is_dir():
                raise ValueError(f"{variable(name)}: {path} is a file, not a directory")
        if self.secret_key and len(self.secret_key) < 16:
            raise ValueError(
                "VEA_SECRET_KEY: at least 16 characters (it signs the page sessions; "
                "e.g. 64 hex digits from `openssl rand -hex 32`), or unset"
            )
        self._check_metrics_token()
        try:
            ValueSettings(declared_at=self.success_measures_declared_at or None)
        except ValueError as exc:
            raise ValueError(f"VEA_SUCCESS_MEASURES_DECLARED_AT: {exc}") from None
        try:
            ValueSettings(declared_measures=self.declared_measures())
        except ValueError as exc:
            raise ValueError(f"VEA_SUCCESS_MEASURES: {exc}") from None
        self.frame_ancestor_sources()
        self.desk_link_sources()
        self._check_files()
        self._check_erasure_ledger()

    def erasure_ledger_path(self) -> Path:
        """The erasure ledger's file: ``erasure_ledger``, or erasures/ledger.jsonl beside
        the registry directory."""
        if self.erasure_ledger:
            return Path(self.erasure_ledger)
        return Path(self.registry).parent / "erasures" / "ledger.jsonl"

    def _check_erasure_ledger(self) -> None:
        if self.erasure_ledger and not self.erasure_ledger.strip():
            raise ValueError("VEA_ERASURE_LEDGER: blank: give a file, or unset it for the default")
        path = self.erasure_ledger_path()
        if path.is_dir():
            raise ValueError(f"VEA_ERASURE_LEDGER: {path} is a directory, not a file")
        if path.parent.exists() and not path.parent.is_dir():
            raise ValueError(f"VEA_ERASURE_LEDGER: {path.parent} is a file, not a directory")

    def declared_measures(self) -> tuple[str, ...]:
        """``VEA_SUCCESS_MEASURES`` as names (comma-separated, blanks ignored)."""
        return tuple(m.strip() for m in self.success_measures.split(",") if m.strip())

    def _check_metrics_token(self) -> None:
        token = self.metrics_token
        if not token:
            return
        if len(token) < MIN_METRICS_TOKEN_CHARS:
            raise ValueError(
                f"VEA_METRICS_TOKEN: at least {MIN_METRICS_TOKEN_CHARS} characters, got "
                f"{len(token)} (e.g. 64 hex digits from `openssl rand -hex 32`), or unset"
            )
        if not METRICS_TOKEN.fullmatch(token):
            # Prometheus trims a credentials file's whitespace, and an HTTP header carries
            # visible ASCII: such a token could never match.
            raise ValueError(
                "VEA_METRICS_TOKEN: only visible ASCII characters, no spaces (e.g. 64 hex "
                "digits from `openssl rand -hex 32`)"
            )

    def frame_ancestor_sources(self) -> str:
        """The pages' CSP ``frame-ancestors`` sources: ``'self'`` and the origins of
        ``frame_ancestors``, each checked (ValueError naming the setting)."""
        origins = _origins(
            "frame_ancestors", self.frame_ancestors.split(), "desk", "space-separated"
        )
        return " ".join(["'self'", *origins])

    def desk_link_sources(self) -> tuple[str, ...]:
        """The origins whose desk links decide without the agent's confirmation: those of
        ``frame_ancestors`` and ``desk_link_origins`` (each checked as frame_ancestors',
        ValueError naming the setting), without a trailing slash."""
        sources = self.frame_ancestor_sources().split()[1:]  # not 'self'
        given = [o for o in re.split(r"[\s,]+", self.desk_link_origins.strip()) if o]
        return (
            *sources,
            *_origins("desk_link_origins", given, "desktop", "space- or comma-separated"),
        )

    def _check_database_url(self) -> None:
        url = self.database_url
        for prefix in ("postgres://", "postgresql://"):  # as service.db.normalize_url
            if url.startswith(prefix):
                url = "postgresql+psycopg://" + url[len(prefix) :]
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError:
            raise ValueError(
                "VEA_DATABASE_URL: not a database URL (sqlite:///PATH or "
                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE)"
            ) from None
        backend = parsed.get_backend_name()
        if backend not in DATABASE_BACKENDS or parsed.get_driver_name() not in (
            "pysqlite",
            "psycopg",
        ):
            raise ValueError(
                f"VEA_DATABASE_URL: {safe_url(self.database_url)} is neither SQLite "
                "(sqlite:///PATH) nor PostgreSQL (postgresql://USER:PASSWORD@HOST:PORT/DB)"
            )

    def _check_files(self) -> None:
        """The files settings name exist and read as what they are: a worker would
        otherwise fail to boot on them, or a report fail on its first request."""
        try:
            load_config(self.pools, strict=False)  # the router warns of what breaks a rule
        except (OSError, PoolError) as exc:
            raise ValueError(f"VEA_POOLS: {exc}") from None
        if self.self_service_content:
            try:
                load_catalogue(self.self_service_content)
            except (OSError, PoolError, yaml.YAMLError) as exc:
                raise ValueError(f"VEA_SELF_SERVICE_CONTENT: {exc}") from None
        if self.value_config:
            self._check_value_config()

    def _check_value_config(self) -> None:
        """The ``VEA_VALUE_CONFIG`` file, read as every report reads it
        (``read_value_config``), so a bad one stops the start, naming the file and the
        field, instead of failing the first report."""
        read_value_config(self.value_config)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        only: Collection[str] | None = None,
    ) -> Settings:
        """Defaults, then ``VEA_<NAME>`` variables, then explicit overrides (tests).

        ``only``: read just these settings' variables (the others keep their defaults),
        with the same checks: a ``vea`` command that reads a few settings refuses a bad
        one as the service would, and is not stopped by a variable it never uses."""
        environ = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        if only is not None and set(only) - known:
            raise ValueError(f"unknown settings: {sorted(set(only) - known)}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if only is not None and f.name not in only:
                continue
            raw = environ.get(f"VEA_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(f.default)
            try:
                values[f.name] = _bool(raw, f.default) if kind is bool else kind(raw)
            except ValueError as exc:
                # Python's own words ("could not convert string to float") say what
                # failed inside, not what the operator wrote wrong.
                problem = _NOT_A.get(kind)
                why = f"{problem}: {raw!r}" if problem else str(exc)
                raise ValueError(f"VEA_{f.name.upper()}: {why}") from None
        settings = replace(cls(), **values)
        if overrides:
            unknown = set(overrides) - known
            if unknown:
                raise ValueError(f"unknown settings: {sorted(unknown)}")
            settings = replace(settings, **dict(overrides))
        return settings

    @classmethod
    def unknown_variables(cls, environ: Mapping[str, str] | None = None) -> list[str]:
        """``VEA_*`` variables that are no setting (a typo is otherwise silently
        ignored), each with the closest setting's name when one is close."""
        environ = os.environ if environ is None else environ
        known = [variable(f.name) for f in fields(cls)]
        unknown = []
        for name in sorted(environ):
            if name.startswith("VEA_") and name not in known and name not in OTHER_VARIABLES:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
                unknown.append(f"{name} (did you mean {close[0]}?)" if close else name)
        return unknown

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
