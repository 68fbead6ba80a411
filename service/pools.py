"""Pools use cases: read and store the config, availability reports, and the proficiency
rebuild from stored outcomes (or from an offline log).

The config and the last rebuild live in one row of ``pool_config`` and availability in
``pool_availability``, so every worker and instance routes with the same pools
(``service.routing.PoolRouter`` re-reads them every ``pools_poll_s``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from models.activities import VALUE_ACTIVITIES
from models.matching import Availability, RoutingRules, expected_wait, wait_capacity
from models.pools import (
    ALL_AGENTS,
    GENERAL,
    PoolConfig,
    PoolError,
    id_problem,
    name_in,
    parse_config,
)
from models.proficiency import Proficiency, Rebuild, aggregate, estimate, rebuild_pools
from models.schema import COLUMN_BY_NAME, Column
from service import audit
from service.db import (
    READ_ONLY,
    begin_write,
    decisions,
    iso_utc,
    outcomes,
    pool_availability,
    pool_config,
    utcnow,
)


# ------------------------------------------------------------------------ config
class StoredConfigRefused(PoolError):
    """The stored config fails today's rules (stored by an older release): PUT a new one."""


class ConfigChanged(Exception):
    """The stored config is not the one the writer read (another writer stored one since):
    nothing was stored, so no acknowledged change is overwritten."""

    def __init__(self, stored_at: datetime | None, stored_by: str | None) -> None:
        self.stored_at, self.stored_by = stored_at, stored_by
        if stored_at is None:
            what = "the stored pools config was removed"
        else:
            what = f"the pools config was stored at {iso_utc(stored_at)} by {stored_by or '-'}"
        super().__init__(f"{what} since it was read")


class Unchecked(Enum):
    """``save_config(read_at=UNCHECKED)``: a writer that read nothing it writes back (a
    ``PUT /v1/pools`` without ``If-Match`` replaces the whole config)."""

    UNCHECKED = "unchecked"


UNCHECKED = Unchecked.UNCHECKED
# The ETag of the config when none is stored (the file's routes).
FILE_VERSION = "file"
# reported_at of the availability report of a pool that left the config (or came back):
# older than any TTL, so routing ignores it, and ``describe`` lists it no more. The
# service's database role may UPDATE pool_availability, not DELETE from it.
log = logging.getLogger("vea.pools")

WITHDRAWN = datetime(1970, 1, 1)


def leniently(read: Callable[[bool], PoolConfig], what: str) -> PoolConfig:
    """A pools config as stored or deployed: ``read(strict)``, and when today's rules
    refuse what an earlier release accepted (a pool that serves nothing, a lift for an
    activity its pool does not serve), read as that release routed it, with a warning:
    refused, an upgrade stopped the service on its VEA_POOLS file or routed with the file
    instead of the stored config. Writers (PUT, a rebuild) keep the rules."""
    try:
        return read(True)
    except PoolError as exc:
        config = read(False)  # a real fault is still refused
        log.warning(
            "the %s pools config breaks a rule of this release, read as before: %s; store "
            "a corrected one",
            what,
            exc,
        )
        return config


def stored(engine: sa.Engine) -> Mapping[str, Any] | None:
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        row = conn.execute(sa.select(pool_config).where(pool_config.c.id == 1)).first()
    return None if row is None else dict(row._mapping)


def read_config(
    engine: sa.Engine, file_config: PoolConfig
) -> tuple[PoolConfig, str, datetime | None]:
    """``current_config`` and the stored config's ``updated_at`` (None: none is stored), from
    one read: what a writer that reads the config passes to ``save_config(read_at=...)``.
    ``StoredConfigRefused`` when the stored config fails today's rules."""
    row = stored(engine)
    if row is None:
        return file_config, "file", None
    try:
        config = leniently(lambda strict: parse_config(row["config"], strict), "stored")
    except PoolError as exc:
        raise StoredConfigRefused(str(exc)) from None
    return config, "database", row["updated_at"]


def current_config(engine: sa.Engine, file_config: PoolConfig) -> tuple[PoolConfig, str]:
    """The stored config (``"database"``) or the file's (``"file"``)."""
    config, source, _ = read_config(engine, file_config)
    return config, source


def version_tag(read_at: datetime | None) -> str:
    """The ETag of the config read at ``read_at`` (``read_config``'s third value)."""
    return FILE_VERSION if read_at is None else read_at.isoformat(timespec="microseconds") + "Z"


def version_of(tag: str) -> datetime | None:
    """``read_at`` back from ``version_tag``; ``ValueError`` when ``tag`` is none of them."""
    if tag == FILE_VERSION:
        return None
    moment = datetime.fromisoformat(tag.removesuffix("Z"))
    if not tag.endswith("Z") or moment.tzinfo is not None:
        raise ValueError(tag)
    return moment


def config_at(url: str, file_config: PoolConfig) -> tuple[PoolConfig, str]:
    """``current_config`` of the service database at ``url``, for a command that does not
    otherwise use it (``vea evaluate --routing``): the config the service routes with and
    ``vea pools show`` shows. The file's when there is no such database yet (a SQLite file
    that does not exist is not created) or it has no pools table (not upgraded)."""
    from pathlib import Path

    from service.db import make_engine, sqlite_file

    path = sqlite_file(url)
    if path and not Path(path).exists():
        return file_config, "file"
    engine = make_engine(url)
    try:
        if not sa.inspect(engine).has_table(pool_config.name):
            return file_config, "file"
        return current_config(engine, file_config)
    finally:
        engine.dispose()


def stored_form(config: PoolConfig) -> dict[str, Any]:
    """``config`` as stored (and as a pools file holds it), read back with the routers' own
    rules (``parse_config``): ``PoolError`` naming the pool and field if they would refuse
    it. A refused stored config leaves every router on its last good one, silently, so no
    writer (``PUT /v1/pools``, a rebuild, ``vea pools rebuild``) may store one."""
    data = config.to_dict()
    parse_config(data)
    return data


def save_config(
    engine: sa.Engine,
    config: PoolConfig,
    *,
    actor: str = "",
    proficiency: list[dict[str, Any]] | None = None,
    keep_proficiency: bool = True,
    audit_event: audit.Event | None = None,
    read_at: datetime | None | Unchecked = UNCHECKED,
) -> datetime:
    """Store ``config`` for every worker; returns its timestamp (``updated_at``, which
    every store changes). ``PoolError`` (nothing stored) when the routers would refuse to
    read it (``stored_form``).

    ``read_at``: the ``updated_at`` of the stored config the writer computed ``config``
    from (``read_config``; None: none was stored). If another writer stored one since,
    ``ConfigChanged`` and nothing stored: writing back what was read would silently undo
    that acknowledged change. The check and the write are one transaction (the row
    locked), so two writers cannot both pass it.

    ``audit_event`` is written in the same transaction: a config that could not be
    stored has no event, and a stored one always has its event. So are the availability
    reports of pools the config drops or adds back withdrawn (``WITHDRAWN``): a removed
    pool's last report is neither listed nor, on its return, routed with."""
    data = stored_form(config)
    ids = {pool.id for pool in config.pools}
    for _ in range(2):
        try:
            with begin_write(engine) as conn:
                row = conn.execute(
                    sa.select(
                        pool_config.c.config, pool_config.c.updated_at, pool_config.c.updated_by
                    )
                    .where(pool_config.c.id == 1)
                    .with_for_update()
                ).first()
                before = None if row is None else row.updated_at
                if read_at is not UNCHECKED and before != read_at:
                    raise ConfigChanged(before, None if row is None else row.updated_by)
                now = utcnow()
                if before is not None and now <= before:
                    now = before + timedelta(microseconds=1)  # a clock step back: still new
                values: dict[str, Any] = {"config": data, "updated_at": now, "updated_by": actor}
                if proficiency is not None or not keep_proficiency:
                    values["proficiency"] = proficiency
                if row is None:
                    conn.execute(pool_config.insert().values(id=1, **values))
                    kept = ids
                else:
                    conn.execute(pool_config.update().where(pool_config.c.id == 1).values(**values))
                    kept = ids & _pool_ids(row.config)
                _withdraw_reports(conn, kept)
                if audit_event is not None:
                    audit_event.write(conn)
                return now
        except IntegrityError:  # another writer inserted the first row meanwhile
            continue
    raise RuntimeError("could not store the pools config")


def _pool_ids(data: Any) -> set[str]:
    """The pool ids of a stored config (read leniently: it may predate today's rules)."""
    entries = data.get("pools") if isinstance(data, Mapping) else None
    return {e.get("id") for e in entries or () if isinstance(e, Mapping)} - {None}


def _withdraw_reports(conn: sa.Connection, kept: set[str]) -> None:
    """Withdraw every availability report but those of ``kept``: the pools in both the
    stored config and the new one. A pool added back gets no report from before its
    removal (one posted as it was removed included)."""
    conn.execute(
        pool_availability.update()
        .where(pool_availability.c.pool_id.not_in(sorted(kept)))
        .where(pool_availability.c.reported_at != WITHDRAWN)
        .values(
            agents_free=None,
            queue_length=None,
            expected_wait_s=None,
            agents_staffed=None,
            reported_at=WITHDRAWN,
        )
    )


def _upsert(
    engine: sa.Engine,
    table: sa.Table,
    key: dict[str, Any],
    values: dict[str, Any],
    also: Callable[[sa.Connection], None] | None = None,
) -> None:
    """Update the row, or insert it, then run ``also`` in the same transaction; a
    concurrent insert of the same key retries the update (SQLite and PostgreSQL alike, no
    dialect-specific ON CONFLICT)."""
    condition = sa.and_(*(table.c[k] == v for k, v in key.items()))
    for _ in range(2):
        try:
            with begin_write(engine) as conn:
                if not conn.execute(table.update().where(condition).values(**values)).rowcount:
                    conn.execute(table.insert().values(**key, **values))
                if also is not None:
                    also(conn)
                return
        except IntegrityError:
            continue
    raise RuntimeError(f"could not store {table.name} {key}")


def describe(engine: sa.Engine, config: PoolConfig, source: str, ttl_s: float) -> dict[str, Any]:
    """What ``GET /v1/pools`` answers: the config, where it comes from, the availability
    of every pool and a summary of the last proficiency rebuild."""
    row = stored(engine)
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        # Only the config's pools: a removed pool's last report is no pool's availability.
        reports = conn.execute(
            sa.select(pool_availability).where(
                pool_availability.c.pool_id.in_(sorted(config.by_id())),
                pool_availability.c.reported_at != WITHDRAWN,
            )
        ).all()
    cutoff = utcnow() - timedelta(seconds=ttl_s)
    proficiency = (row or {}).get("proficiency") or []
    return {
        "source": source,
        "updated_at": iso_utc(row["updated_at"]) if row else None,
        "updated_by": row["updated_by"] if row else None,
        "pools": config.to_dict()["pools"],
        "availability": [
            {**availability_answer(r._mapping, ttl_s), "stale": r.reported_at < cutoff}
            for r in reports
        ],
        "proficiency": proficiency,
    }


def membership_of(pool: Mapping[str, Any]) -> str:
    """How a pool's agents are chosen, as the API, the dashboard and ``vea pools show``
    say it: ``static`` (listed), ``proficiency`` (``vea pools rebuild``) or, for
    ``general``, ``all_agents`` (whatever an older answer or file wrote for it)."""
    return ALL_AGENTS if pool.get("id") == GENERAL else str(pool.get("membership"))


def pool_name(pool: Mapping[str, Any], language: str | None) -> str:
    """A pool (as answered: a mapping with ``id`` and maybe ``name``) by its name in
    ``language``, else in English, else by its id."""
    return name_in(pool.get("name"), language, str(pool.get("id")))


def member_count(pool: Mapping[str, Any]) -> int | None:
    """How many agents the pool lists; None for ``general``, which every agent answers
    (vea does not know the roster, so no number would be true)."""
    return None if pool.get("id") == GENERAL else len(pool.get("members") or [])


def pool_line(pool: Mapping[str, Any]) -> str:
    """One pool as ``vea pools show`` prints it."""
    lift = ", ".join(f"{a} {v:.2f}" for a, v in (pool.get("lift") or {}).items()) or "-"
    count = member_count(pool)
    members = "every agent (the last fallback)" if count is None else f"{count} members"
    line = f"  {pool['id']:<18} {membership_of(pool):<11} {members}  lift: {lift}"
    names = pool.get("name") or {}
    if names:  # a terminal reads every language given (ids stay the first column)
        line += "  name: " + " / ".join(names[language] for language in sorted(names))
    return line


# ------------------------------------------------------------------ availability
def availability_lines(
    config: PoolConfig, reports: list[Mapping[str, Any]], rules: RoutingRules
) -> list[str]:
    """Each pool's last availability report and the wait routing reads from it, as ``vea
    pools show`` prints them (``reports`` as ``describe`` answers them)."""
    by_pool = {report["pool_id"]: report for report in reports}
    lines = []
    for pool in config.pools:
        report = by_pool.get(pool.id)
        if report is None:
            lines.append(f"  {pool.id:<18} no report: wait unknown (valued without a wait)")
            continue
        given = [
            f"{label} {report[key]}"
            for key, label in (
                ("agents_free", "free"),
                ("queue_length", "queue"),
                ("agents_staffed", "staffed"),
                ("expected_wait_s", "platform's wait"),
            )
            if report[key] is not None
        ]
        if report["agents_staffed"] is None:
            # Told apart from "staffed 0", which closes the pool.
            given.append("staffed not reported")
        status = Availability.of_report(report, stale=report["stale"])
        wait = expected_wait(pool, status, rules)
        if report["stale"]:
            read = "stale: ignored, wait unknown"
        elif status.unstaffed:
            read = "nobody staffed: not routed to, nor a fallback"
        elif wait is None:
            read = "wait unknown"
        else:
            over = f", over the {rules.max_wait_s:.0f} s limit" if wait > rules.max_wait_s else ""
            read = f"expected wait {wait:.0f} s{over}"
            if report["expected_wait_s"] is None and wait > 0:
                read += f" ({wait_capacity(pool, status)} agents)"
        lines.append(
            f"  {pool.id:<18} {', '.join(given)}: {read}  (reported {report['reported_at']})"
        )
    return lines


def availability_answer(row: Mapping[str, Any], ttl_s: float) -> dict[str, Any]:
    return {
        "pool_id": row["pool_id"],
        "agents_free": row["agents_free"],
        "queue_length": row["queue_length"],
        "expected_wait_s": row["expected_wait_s"],
        "agents_staffed": row["agents_staffed"],
        "reported_at": iso_utc(row["reported_at"]),
        "expires_at": iso_utc(row["reported_at"] + timedelta(seconds=ttl_s)),
    }


def report_availability(
    engine: sa.Engine, config: PoolConfig, pool_id: str, body: Mapping[str, Any], ttl_s: float
) -> dict[str, Any]:
    if pool_id not in config.by_id():
        raise PoolError(f"unknown pool {pool_id!r}")
    values = {
        "agents_free": body.get("agents_free"),
        "queue_length": body.get("queue_length"),
        "expected_wait_s": body.get("expected_wait_s"),
        "agents_staffed": body.get("agents_staffed"),
        "reported_at": utcnow(),
    }
    _upsert(engine, pool_availability, {"pool_id": pool_id}, values)
    return availability_answer({"pool_id": pool_id, **values}, ttl_s)


# ------------------------------------------------------------------------ rebuild
OUTCOME_ROWS = (
    sa.select(outcomes.c.agent_id, outcomes.c.activity, outcomes.c.ve_success, decisions.c.response)
    .join(decisions, decisions.c.decision_id == outcomes.c.decision_id)
    .where(
        outcomes.c.offered.is_(True),
        outcomes.c.agent_id.is_not(None),
        outcomes.c.ve_success.is_not(None),
        outcomes.c.activity.in_(VALUE_ACTIVITIES),
    )
)


def outcome_records(engine: sa.Engine) -> Iterator[tuple[str, str, float, float | None]]:
    """``(agent, activity, success, predicted probability)`` for every stored attempt:
    the probability is the one the serving model gave that activity in the decision."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        result = conn.execution_options(yield_per=2000).execute(OUTCOME_ROWS)
        for row in result:
            predicted = None
            for item in (row.response or {}).get("activities") or []:
                if item.get("activity") == row.activity:
                    predicted = item.get("success_probability")
                    break
            yield row.agent_id, row.activity, float(row.ve_success), predicted


def measure(
    records: Iterable[tuple[str, str, float, float | None]], min_contacts: int
) -> list[Proficiency]:
    """Every agent's proficiency per activity from ``records`` (``outcome_records``,
    ``log_records``): the slow part of a rebuild, independent of the pools config."""
    cells = aggregate(
        (agent, activity, success, p)
        for agent, activity, success, p in records
        if p is not None and math.isfinite(float(p))
    )
    return estimate(cells, min_contacts=min_contacts)


# A rebuild retried on a config stored meanwhile this many times in all, then refused.
REBUILD_ATTEMPTS = 3


def store_rebuild(
    engine: sa.Engine,
    file_config: PoolConfig,
    proficiency: list[Proficiency],
    min_contacts: int,
    *,
    actor: str,
    audit_event: audit.Event,
) -> Rebuild:
    """Rebuild the stored config (else the file's) from ``proficiency`` and store it.

    The config is read after the outcomes (``measure``), and stored only if it is still
    the one read (``save_config(read_at=...)``): a ``PUT /v1/pools`` made meanwhile is
    rebuilt on, never overwritten. ``ConfigChanged`` (nothing stored) when the config
    changed before every one of ``REBUILD_ATTEMPTS`` saves; ``PoolError`` as
    ``save_config``, ``StoredConfigRefused`` as ``read_config``."""

    def attempt() -> Rebuild:
        config, _, read_at = read_config(engine, file_config)
        result = rebuild_pools(config, proficiency, min_contacts=min_contacts)
        save_config(
            engine,
            result.config,
            actor=actor,
            proficiency=[p.to_dict() for p in result.proficiency],
            audit_event=audit_event,
            read_at=read_at,
        )
        return result

    for _ in range(REBUILD_ATTEMPTS - 1):
        try:
            return attempt()
        except ConfigChanged:
            continue  # rebuilt on the config stored meanwhile, with the same outcomes
    return attempt()


def rebuild_answer(result: Rebuild, stored_: bool) -> dict[str, Any]:
    members = {p.id: list(p.members) for p in result.config.pools if p.id != GENERAL}
    return {
        "stored": stored_,
        "changes": result.changes,
        "members": members,
        "agents": len({p.agent_id for p in result.proficiency}),
        "qualified": sum(p.qualified for p in result.proficiency),
        "pools": result.config.to_dict()["pools"],
    }


# ------------------------------------------------------------------- offline log
# A model's predicted success probability, as the rebuild reads it from a log.
PROBABILITY = Column("probability", "float", minimum=0.0, maximum=1.0)


def log_records(
    path: str, *, prob_column: str | None = None, bundle: Any = None
) -> list[tuple[str, str, float, float | None]]:
    """Attempts from a canonical log file (CSV or Parquet) for an offline rebuild.

    The model's probability of each row's activity comes from ``prob_column``, else from
    ``p_<activity>`` columns (as ``vea score`` writes them), else from scoring the rows
    with ``bundle`` (a loaded model bundle).

    Values are held to the canonical log's rules (``models.schema``) and agent ids to the
    outcome endpoint's (``models.pools.id_problem``): ``PoolError`` naming the column and
    the row (1-based, of the file's data rows) of the first bad value, and how many more,
    rather than proficiencies made of a probability of 1.7 or a ve_success of 5."""
    import numpy as np
    import pandas as pd

    from models.activities import ACTIONS

    if path.lower().endswith(".parquet"):
        frame = pd.read_parquet(path)
    else:  # ids as written: agent 007 is not agent 7
        frame = pd.read_csv(path, dtype={"agent_id": "string", "activity": "string"})
    missing = {"agent_id", "activity", "ve_success"} - set(frame.columns)
    if missing:
        raise PoolError(f"{path}: missing columns {sorted(missing)}")
    frame = frame.reset_index(drop=True)
    rows = np.arange(len(frame))  # each kept row's position in the file
    check = _LogCheck(path)
    check.values(frame["activity"], COLUMN_BY_NAME["activity"], rows, required=True)
    success = check.values(frame["ve_success"], COLUMN_BY_NAME["ve_success"], rows)
    offered = None
    if "offered" in frame.columns:
        offered = check.values(frame["offered"], COLUMN_BY_NAME["offered"], rows)
    agents = frame["agent_id"].astype("string")
    check.ids(agents, "agent_id", rows)
    keep = frame["activity"].isin(VALUE_ACTIVITIES).to_numpy(dtype=bool, na_value=False)
    keep = keep & agents.notna().to_numpy() & ~np.isnan(success)
    if offered is not None:
        keep &= np.where(np.isnan(offered), 1.0, offered).astype(bool)
    rows = rows[keep]
    frame = frame[keep].reset_index(drop=True)
    agents, success = agents[keep].reset_index(drop=True), success[keep]
    activity = frame["activity"].astype(str).to_numpy()
    if prob_column is not None:
        if prob_column not in frame.columns:
            raise PoolError(f"{path}: no column {prob_column!r}")
        predicted = check.values(frame[prob_column], PROBABILITY, rows, name=prob_column)
        check.present(predicted, prob_column, rows)
    elif all(f"p_{a}" in frame.columns for a in VALUE_ACTIVITIES):
        predicted = np.full(len(frame), np.nan)
        for a in VALUE_ACTIVITIES:  # each row's own activity's column, named as such
            mine = activity == a
            values = frame[f"p_{a}"][mine]
            predicted[mine] = check.values(values, PROBABILITY, rows[mine], name=f"p_{a}")
            check.present(predicted[mine], f"p_{a}", rows[mine])
    elif bundle is not None:
        if bundle.ranker is None:
            raise PoolError("the model has no activity ranker: it cannot score activities")
        scored = bundle.ranker.predict_proba(bundle.encoder.transform(frame))
        codes = pd.Index(ACTIONS).get_indexer(activity)
        predicted = scored[np.arange(len(frame)), codes]
        name = f"the model {bundle.version}'s probability"
        check.values(pd.Series(predicted), PROBABILITY, rows, name=name)
        check.present(predicted, name, rows)
    else:
        raise PoolError(
            f"{path}: no predicted probabilities: give --prob-column, p_<activity> columns "
            "(vea score) or --model"
        )
    return list(zip(agents.astype(str), activity, success, predicted, strict=True))


class _LogCheck:
    """The checks of ``log_records``: the first bad value of a column stops the rebuild
    with one line naming the column, the row and what was found."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, name: str, rows: Any, bad: Any, what: str, values: Any = None) -> None:
        import numpy as np

        where = np.flatnonzero(np.asarray(bad, dtype=bool))
        if not where.size:
            return
        first = int(where[0])
        got = "" if values is None else f" (got {_shown(values.iloc[first])})"
        more = f"; {where.size - 1} more rows like it" if where.size > 1 else ""
        raise PoolError(
            f"{self.path}: row {int(rows[first]) + 1}, column {name}: {what}{got}{more}"
        )

    def values(
        self, values: Any, column: Column, rows: Any, *, name: str = "", required: bool = False
    ) -> Any:
        """``values`` checked against ``column``'s rule; numbers as floats (NaN: empty)."""
        import numpy as np
        import pandas as pd

        name = name or column.name
        values = values.reset_index(drop=True)
        present = values.notna().to_numpy()
        if required:
            self.fail(name, rows, ~present, "missing")
        if column.kind == "category":
            allowed = column.allowed or ()
            unknown = present & ~values.isin(allowed).to_numpy(dtype=bool, na_value=False)
            self.fail(
                name, rows, unknown, f"unknown activity (use one of {', '.join(allowed)})", values
            )
            return values
        if pd.api.types.is_bool_dtype(values):
            x = values.astype(float).to_numpy()
        else:
            x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        self.fail(name, rows, present & np.isnan(x), "not a number", values)
        self.fail(name, rows, np.isinf(x), "not a finite number", values)
        with np.errstate(invalid="ignore"):
            if column.kind == "binary":
                self.fail(name, rows, present & ~np.isin(x, (0.0, 1.0)), "must be 0 or 1", values)
            if column.minimum is not None:
                low = x <= column.minimum if column.exclusive_minimum else x < column.minimum
                op = ">" if column.exclusive_minimum else ">="
                self.fail(name, rows, low, f"must be {op} {column.minimum:g}", values)
            if column.maximum is not None:
                self.fail(name, rows, x > column.maximum, f"must be <= {column.maximum:g}", values)
        return x

    def present(self, x: Any, name: str, rows: Any) -> None:
        import numpy as np

        self.fail(
            name,
            rows,
            np.isnan(np.asarray(x, dtype=float)),
            "missing: the model's probability of the row's activity is needed for every attempt",
        )

    def ids(self, values: Any, name: str, rows: Any) -> None:
        """Every given id as the outcome endpoint takes an ``agent_id`` (empty: none)."""
        for i, value in enumerate(values):
            if value is None or value is values.dtype.na_value:
                continue
            problem = id_problem(str(value))
            if problem is not None:
                more = sum(
                    v is not values.dtype.na_value and id_problem(str(v)) is not None
                    for v in values[i + 1 :]
                )
                raise PoolError(
                    f"{self.path}: row {int(rows[i]) + 1}, column {name}: {problem}, "
                    f"as the outcome endpoint's agent_id (got {_shown(str(value))})"
                    + (f"; {more} more rows like it" if more else "")
                )


def _shown(value: Any) -> str:
    """A value as written: ``'abc'``, ``1.7``, ``5`` (not ``5.0`` nor ``np.float64``)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    shown = repr(value)
    return shown if len(shown) <= 60 else f"{shown[:40]}... ({len(str(value))} characters)"


def proficiency_table(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """Lines of ``vea pools show``: proficiency with its 90% interval, best first."""
    lines = [
        f"{'agent':<16} {'activity':<18} {'contacts':>8} {'O/E':>6}  {'90% interval':<15} pool?"
    ]
    for p in sorted(items, key=lambda p: (p["activity"], -p["estimate"], p["agent_id"])):
        lines.append(
            f"{p['agent_id']:<16} {p['activity']:<18} {p['contacts']:>8} {p['estimate']:>6.2f}  "
            f"[{p['low']:.2f}, {p['high']:.2f}]    {'yes' if p['qualified'] else ''}"
        )
    return lines
