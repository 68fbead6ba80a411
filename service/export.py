"""``vea export``: the service's stored decisions, outcomes and customer events as the
canonical interaction log (design section 4), ready for ``vea train`` / ``vea retrain``.

One row per decision: what the model saw (the stored features), what was served
(``activity``) and with which probability (``propensity``: exploration's exact mass, 1 in
the holdout), the arm and the model version, joined to its outcome and to the customer
events that followed it (retention). Decisions without a success label yet are left out
of a training export and counted, so the caller can say how many are still pending.

The rules a row must obey come from ``models.schema`` (the same ones
``training.loading.validate_log`` applies); the service never imports ``training``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from models.activities import ACTIONS, NONE
from models.exploration import HOLDOUT, candidates
from models.schema import (
    CATEGORICAL_FEATURES,
    COLUMN_BY_NAME,
    CONTEXT_FEATURES,
    LOG_COLUMNS,
    VEA_EXPORT_COLUMNS,
)
from models.tables import TableShape, table_format, write_chunks
from models.value_report import UPGRADES_WITHOUT_VALUE
from service.db import READ_ONLY, customer_events, decisions, outcomes, surveys, utcnow

# Export columns: the canonical log, then the columns only vea's own logs carry.
CANONICAL = LOG_COLUMNS
VEA_ONLY = VEA_EXPORT_COLUMNS
# Every column the frames of this module give a value of vea's own. An extra feature of
# one of these names would be a second column of that name (reports and exports failed
# on it) or overwrite vea's value: POST /v1/decisions refuses them (service.schemas), and
# one stored before is left out of the frames.
FRAME_COLUMNS = frozenset((*CANONICAL, *VEA_ONLY, "has_outcome"))
# At most this many extra features a decision may send (POST /v1/decisions), and a
# report's frame holds: each distinct name was a column of every row, and 200 decisions
# with 50 names of their own each made a frame of 10,000 columns (2 s, +245 MB).
MAX_EXTRA_FEATURES = 50
RETENTION_WINDOWS = {"retained_30d": 30, "retained_60d": 60, "retained_90d": 90}
# A customer who churned within the window was not retained; one whose window has
# closed without a churn event was. `retained`/`renewed` after the window also count.
CHURN_EVENTS = ("churned",)
STAY_EVENTS = ("retained", "renewed")
UPGRADE_WINDOW_DAYS = 90
# Decisions `vea export` reads, builds and writes at a time: its memory is that of a
# chunk (about 80 MB above the command's own), whatever the period's size.
CHUNK_ROWS = 5_000
# Customers' events asked for at a time (an IN list, within every SQLite's limit).
EVENT_CUSTOMERS = 500
# The columns ``_build`` converts once the frame is built: their dtype is the same in
# any chunk, and they are not rebuilt from the values read.
_FLOATS = (
    "tenure_months",
    "sentiment",
    "propensity",
    "pool_propensity",
    "openness",
    "prior_contacts_30d",
    "ves_confidence",
    "ves_ability",
    "csat",
    "nps",
    "ces",
    "handle_time_s",
)
_CONVERTED = frozenset((*_FLOATS, "occurred_at"))


class ExportError(ValueError):
    """An export that would write rows breaking the canonical log's rules."""


@dataclass(frozen=True)
class ExportResult:
    rows: int
    pending: int  # decisions in the period without an outcome yet
    path: Path | None = None
    without_ves: int = 0  # exported outcomes with no VES answer (ve_success empty)
    # Of the pending decisions, those with survey answers that wait for the agent's
    # outcome (POST .../survey came first): they are exported once it is recorded.
    surveys_pending: int = 0


def _query(since: datetime | None, until: datetime | None, contact_policy: bool) -> sa.Select:
    """The period's decisions joined to their outcomes, in the export's order."""
    condition = sa.true()
    if since is not None:
        condition = sa.and_(condition, decisions.c.occurred_at >= since)
    if until is not None:
        condition = sa.and_(condition, decisions.c.occurred_at < until)
    joined = decisions.outerjoin(outcomes, outcomes.c.decision_id == decisions.c.decision_id)
    return (
        sa.select(
            decisions.c.decision_id,
            decisions.c.interaction_id,
            decisions.c.customer_id,
            # Both as the database stores them, decoded below for all rows at once: the
            # driver's and SQLAlchemy's decoding row by row took half of the read.
            sa.type_coerce(decisions.c.occurred_at, sa.String).label("occurred_at"),
            decisions.c.channel,
            decisions.c.issue_type,
            decisions.c.language,
            sa.cast(decisions.c.features, sa.Text).label("features"),
            decisions.c.suggested_activity,
            decisions.c.propensity,
            decisions.c.pool_id,
            decisions.c.pool_propensity,
            decisions.c.model_version,
            decisions.c.experiment_arm,
            decisions.c.degraded,
            decisions.c.openness,
            decisions.c.best_activity,
            decisions.c.shadow_version,
            decisions.c.shadow_activity,
            outcomes.c.decision_id.label("outcome_id"),
            outcomes.c.activity.label("delivered_activity"),
            outcomes.c.offered,
            outcomes.c.accepted,
            outcomes.c.ve_success,
            outcomes.c.ves_confidence,
            outcomes.c.ves_ability,
            outcomes.c.resolved,
            outcomes.c.handle_time_s,
            outcomes.c.csat,
            outcomes.c.nps,
            outcomes.c.ces,
            outcomes.c.agent_id,
            outcomes.c.pool_id.label("outcome_pool_id"),
            # Two fields of the stored answer, extracted by the database: parsing every
            # answer would cost more than the rest of the row. Only the export reads them.
            *(
                (
                    decisions.c.response[("contact_policy", "allow_attempt")].label(
                        "attempt_allowed"
                    ),
                    decisions.c.response[("contact_policy", "blocked_activities")].label(
                        "blocked_activities"
                    ),
                )
                if contact_policy
                else ()
            ),
        )
        .select_from(joined)
        .where(condition)
        .order_by(decisions.c.occurred_at, decisions.c.decision_id)
    )


def _decode(names: list[str], rows: list) -> dict[str, Any]:
    """The rows read by ``_query`` as a list per column, times and features decoded."""
    # Column lists straight from the rows: a dict per row cost more than the query.
    columns: dict[str, Any] = {name: [] for name in names}
    if rows:
        columns = dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))
    # SQLite stores times as ISO text (PostgreSQL's driver gives datetimes already).
    columns["occurred_at"] = pd.to_datetime(
        pd.Series(columns["occurred_at"], dtype=object), format="ISO8601"
    )
    columns["features"] = [
        orjson.loads(f) if isinstance(f, str | bytes) else f for f in columns["features"]
    ]
    return columns


def _events(
    conn: sa.Connection, columns: dict[str, Any], customers: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """The customer events from the first of the rows' decisions on (a decision's
    retention and upgrades come from its customer's events at or after it): all
    customers', or only ``customers``' (a chunk's). In the order they were recorded, so a
    customer's upgrade values are summed in the same order whichever way they are read."""
    if not len(columns["decision_id"]):
        return []
    first = columns["occurred_at"].min().to_pydatetime()
    query = (
        sa.select(
            customer_events.c.customer_id,
            customer_events.c.type,
            customer_events.c.occurred_at,
            customer_events.c.value,
        )
        .where(customer_events.c.occurred_at >= first)
        .order_by(customer_events.c.id)
    )
    if customers is None:
        return [dict(r._mapping) for r in conn.execute(query)]
    # The erasure's batches of ids (PostgreSQL: one array parameter, which its generic
    # plan still looks up in the index). Imported here: service.deletion imports this.
    from service.deletion import _in_batch

    wanted = sorted(set(customers))
    events: list[dict[str, Any]] = []
    for start in range(0, len(wanted), EVENT_CUSTOMERS):
        batch = wanted[start : start + EVENT_CUSTOMERS]
        where = _in_batch(conn, customer_events.c.customer_id, batch)
        events += [dict(r._mapping) for r in conn.execute(query.where(where))]
    return events


def _read(
    conn: sa.Connection,
    since: datetime | None,
    until: datetime | None,
    contact_policy: bool = False,
) -> tuple:
    result = conn.execute(_query(since, until, contact_policy))
    columns = _decode(list(result.keys()), result.all())
    return columns, _events(conn, columns)


def _chunks(
    conn: sa.Connection,
    since: datetime | None,
    until: datetime | None,
    contact_policy: bool,
    events: bool,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``_read``'s columns and events ``CHUNK_ROWS`` decisions at a time, streamed (a
    server-side cursor on PostgreSQL), with the events of each chunk's customers when
    ``events``. At least one chunk: an empty one for an empty period (its layout)."""
    query = _query(since, until, contact_policy).execution_options(yield_per=CHUNK_ROWS)
    result = conn.execute(query)
    names = list(result.keys())
    read = False
    for rows in result.partitions():
        read = True
        columns = _decode(names, rows)
        del rows  # the driver's rows and the features' text: the columns hold the rest
        chunk_events = _events(conn, columns, columns["customer_id"]) if events else []
        yield columns, chunk_events
    if not read:
        yield _decode(names, []), []


@contextmanager
def _snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read-only connection whose statements all see the same data: the export reads
    the period twice (what its columns hold, then its rows) and each chunk's events, and
    a decision, outcome or erasure committed in between must not make them differ."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        if conn.dialect.name == "sqlite":
            # Deferred: the first read fixes the snapshot and takes no lock (WAL), so
            # the service goes on writing; the WAL cannot restart from its beginning
            # meanwhile (it grows by the writes made while the export reads).
            conn.exec_driver_sql("BEGIN")
        else:
            conn.execution_options(isolation_level="REPEATABLE READ")
        yield conn


def _bool(value: Any) -> float:
    return math.nan if value is None else float(bool(value))


def decision_frame(
    engine: sa.Engine,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
    contact_policy: bool = False,
    extras: int | None = MAX_EXTRA_FEATURES,
) -> pd.DataFrame:
    """Every stored decision of the period joined to its outcome and later events (rows
    without an outcome included); columns ``CANONICAL + VEA_ONLY`` plus extra features,
    at most ``extras`` of them (``extra_features``; None: all).
    ``contact_policy``: also read what the contact policy allowed (``attempt_allowed``,
    ``blocked_activities``; empty otherwise), which only training needs."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        rows, events = _read(conn, since, until, contact_policy)
    return _build(rows, events, now or utcnow(), contact_policy, extras=extras)


@dataclass(frozen=True)
class _Layout:
    """How ``_build`` builds one chunk of a period's decisions so that every chunk is
    what the same rows are in a frame of the whole period. ``extra_names``: the period's
    extra features (None: the chunk's own). ``dtypes``: each column's dtype in the whole
    period, in place of pandas' inference from the chunk's values (a chunk whose ints
    are all present would be int64 where the period's column, with one missing, is
    float64 and written 3.0). None: the columns of the features keep their values as
    given (object), for ``TableShape`` to see each value's kind."""

    extra_names: tuple[str, ...] | None = None
    dtypes: Mapping[str, Any] | None = None


def _build(
    rows: dict[str, Any],
    events: list[dict[str, Any]],
    now: datetime,
    contact_policy: bool,
    layout: _Layout | None = None,
    extras: int | None = None,
) -> pd.DataFrame:
    """``decision_frame``'s frame of rows read by ``_read`` (all of a period's) or by
    ``_chunks`` (one chunk, with its ``layout``). ``extras``: as ``decision_frame``'s,
    when the layout does not name the extra features."""
    # Built column by column (a list per column, not a dict per row): at 100,000 decisions
    # the per-row records took seconds of a dashboard's page.
    features = [f or {} for f in rows["features"]]
    data: dict[str, list] = {name: [f.get(name) for f in features] for name in CONTEXT_FEATURES}
    # Extra features the caller sent (declared in a spec) travel along as columns; a
    # decision without one has it missing (NaN), as a record without the key had.
    if layout is not None and layout.extra_names is not None:
        extra_names = list(layout.extra_names)
    else:
        extra_names = extra_features(features, extras)
    for name in extra_names:
        data[name] = [f.get(name, math.nan) for f in features]
    data.update(
        interaction_id=rows["interaction_id"],
        customer_id=rows["customer_id"],
        occurred_at=rows["occurred_at"],
        channel=[c or f.get("channel") for c, f in zip(rows["channel"], features, strict=True)],
        issue_type=[
            c or f.get("issue_type") for c, f in zip(rows["issue_type"], features, strict=True)
        ],
        language=[f.get("language") or c for c, f in zip(rows["language"], features, strict=True)],
        activity=rows["suggested_activity"],
        propensity=rows["propensity"],
        agent_id=rows["agent_id"],
        pool_id=[o or d for o, d in zip(rows["outcome_pool_id"], rows["pool_id"], strict=True)],
        ve_success=[_bool(v) for v in rows["ve_success"]],
        ves_confidence=rows["ves_confidence"],
        ves_ability=rows["ves_ability"],
        accepted=[_bool(v) for v in rows["accepted"]],
        offered=[_bool(v) for v in rows["offered"]],
        handle_time_s=rows["handle_time_s"],
        csat=rows["csat"],
        nps=rows["nps"],
        ces=rows["ces"],
        decision_id=rows["decision_id"],
        model_version=rows["model_version"],
        experiment_arm=rows["experiment_arm"],
        pool_propensity=rows["pool_propensity"],
        routed_pool_id=rows["pool_id"],
        openness=rows["openness"],
        degraded=[float(bool(v)) for v in rows["degraded"]],
        delivered_activity=rows["delivered_activity"],
        resolved=[_bool(v) for v in rows["resolved"]],
        best_activity=rows["best_activity"],
        shadow_version=rows["shadow_version"],
        shadow_activity=rows["shadow_activity"],
        has_outcome=[o is not None for o in rows["outcome_id"]],
    )
    if contact_policy:
        policies = [
            _contact_policy(allowed, blocked)
            for allowed, blocked in zip(
                rows["attempt_allowed"], rows["blocked_activities"], strict=True
            )
        ]
        data["attempt_allowed"] = [p["attempt_allowed"] for p in policies]
        data["blocked_activities"] = [p["blocked_activities"] for p in policies]
    columns = [*CANONICAL, *VEA_ONLY, *extra_names, "has_outcome"]
    n = len(rows["decision_id"])
    # A column no row set (the retention ones, filled below; the contact policy when not
    # asked) is all missing, as in a frame built from records without the key.
    frame = pd.DataFrame(
        {name: data[name] if name in data else [math.nan] * n for name in columns},
        columns=columns,
    )
    _join_events(frame, events, now)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"]).dt.tz_localize("UTC")
    for name in _FLOATS:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    if layout is not None:
        _conform(frame, data, layout, extra_names)
    return frame


def extra_features(features: list[dict[str, Any]], limit: int | None) -> list[str]:
    """The extra features of the decisions' stored ``features`` (not a context feature or
    a column of vea's own: ``FRAME_COLUMNS``), sorted. ``limit``: at most that many, those
    the most decisions carry (ties by name). A model's features come with every decision,
    so a report's frame keeps them (drift reads them), while names only a few decisions
    sent are not made a column each. The export for training keeps all (``limit`` None)."""
    names = {name for f in features for name in f} - FRAME_COLUMNS
    if limit is not None and len(names) > limit:
        counts = Counter(name for f in features for name in f if name in names)
        names = set(sorted(names, key=lambda name: (-counts[name], name))[:limit])
    return sorted(names)


def _conform(
    frame: pd.DataFrame, data: dict[str, list], layout: _Layout, extra_names: list[str]
) -> None:
    """The columns of ``frame`` taken as read (``data``) rebuilt from their values with
    the layout's dtypes: what the whole period's inference made of these values."""
    if layout.dtypes is None:
        if frame.empty:
            return  # no value to see; and a whole period without rows is as inferred
        wanted: Mapping[str, Any] = {n: object for n in (*CATEGORICAL_FEATURES, *extra_names)}
    else:
        wanted = layout.dtypes
    for name, dtype in wanted.items():
        if name in data and name not in _CONVERTED and frame[name].dtype != dtype:
            frame[name] = pd.Series(data[name], index=frame.index, dtype=dtype)


def _contact_policy(allowed: Any, blocked: Any) -> dict[str, Any]:
    """The export's ``attempt_allowed`` (1.0/0.0) and ``blocked_activities`` (the blocked
    activities, comma-separated, "" for none) from the stored answer's contact policy;
    NaN and None for an answer without one."""
    if allowed is None:
        return {"attempt_allowed": math.nan, "blocked_activities": None}
    return {
        "attempt_allowed": float(bool(allowed)),
        "blocked_activities": ",".join(sorted(str(a) for a in blocked or ())),
    }


def _join_events(frame: pd.DataFrame, events: list[dict[str, Any]], now: datetime) -> None:
    """Retention and upgrades from the customer events after each decision, known once
    the window has closed: a churn (or an upgrade) inside a window still open is not
    reported yet, else a recent period would hold its churners and none of the customers
    who stay, and read as losing everyone (and learning would see the same bias)."""
    n = len(frame)
    names = (*RETENTION_WINDOWS, "upgraded", "upgrade_revenue_60d", UPGRADES_WITHOUT_VALUE)
    # Filled as arrays and set as columns once: a cell write into the frame (``iat``) costs
    # more than the whole row's logic, and a report reads every decision of its period.
    out = {name: np.full(n, np.nan) for name in names}
    by_customer: dict[str, list[tuple[datetime, str]]] = {}
    revenue: dict[str, list[tuple[datetime, float | None]]] = {}
    for e in events:
        by_customer.setdefault(e["customer_id"], []).append((e["occurred_at"], e["type"]))
        if e["type"] == "upgraded":
            revenue.setdefault(e["customer_id"], []).append((e["occurred_at"], e["value"]))
    # A decision of a customer without any event: every window that has closed was kept
    # (no churn), with no upgrade and no revenue. Set for all rows at once; the rows of
    # customers with events are then worked out one by one below.
    at = frame["occurred_at"].to_numpy(dtype="datetime64[us]")
    now64 = np.datetime64(now, "us")
    for name, days in RETENTION_WINDOWS.items():
        closed = now64 >= at + np.timedelta64(days, "D")
        out[name][closed] = 1.0
        if name == "retained_60d":
            out["upgrade_revenue_60d"][closed] = 0.0
            out[UPGRADES_WITHOUT_VALUE][closed] = 0.0
    out["upgraded"][now64 >= at + np.timedelta64(UPGRADE_WINDOW_DAYS, "D")] = 0.0
    with_events = np.flatnonzero(frame["customer_id"].isin(list(by_customer)).to_numpy())
    moments = pd.DatetimeIndex(at[with_events]).to_pydatetime()
    customers = frame["customer_id"].to_numpy()[with_events]
    for i, customer, at_i in zip(with_events, customers, moments, strict=True):
        _events_of_one(out, i, at_i, by_customer[customer], revenue.get(customer, ()), now)
    for name in names:
        frame[name] = out[name]


def _events_of_one(
    out: dict[str, np.ndarray],
    i: int,
    at: datetime,
    events: list[tuple[datetime, str]],
    revenue: Any,
    now: datetime,
) -> None:
    """Row ``i`` of ``_join_events``'s columns for a decision whose customer has events."""
    later = [(t, kind) for t, kind in events if t >= at]
    for name, days in RETENTION_WINDOWS.items():
        end = at + timedelta(days=days)
        # A renewal dated after the end closes the window too (a clock a little ahead).
        if now < end and not any(kind in STAY_EVENTS and t >= end for t, kind in later):
            out[name][i] = math.nan
            if name == "retained_60d":
                out["upgrade_revenue_60d"][i] = math.nan
                out[UPGRADES_WITHOUT_VALUE][i] = math.nan
            continue
        churned = any(kind in CHURN_EVENTS and t <= end for t, kind in later)
        out[name][i] = 0.0 if churned else 1.0
        if name == "retained_60d":
            # Known when the 60-day retention is, so the net value has both or neither.
            values = [v for t, v in revenue if at <= t <= end]
            # An upgrade sent without a value adds 0 and is counted apart: the revenue
            # is then a lower bound, and the report says so.
            out["upgrade_revenue_60d"][i] = float(sum(v for v in values if v is not None))
            out[UPGRADES_WITHOUT_VALUE][i] = float(sum(v is None for v in values))
    end = at + timedelta(days=UPGRADE_WINDOW_DAYS)
    if now >= end:
        upgraded = any(kind == "upgraded" and t <= end for t, kind in later)
        out["upgraded"][i] = 1.0 if upgraded else 0.0


def shadow_inputs(
    engine: sa.Engine, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """For the decisions of the period that a shadow challenger also decided: the
    champion's expected value of every action for that contact (``q_<action>``, from the
    stored answer; ``none`` from ``expected_value_none``) and whether logging could have
    served each action (``can_<action>``): the holdout only ever gets `none`; a decision
    served with probability 1 (no exploration, degraded) only its own action; an explored
    one any candidate (``models.exploration.candidates``: learned, not blocked, attempt
    allowed)."""
    condition = decisions.c.shadow_activity.is_not(None)
    if since is not None:
        condition = sa.and_(condition, decisions.c.occurred_at >= since)
    if until is not None:
        condition = sa.and_(condition, decisions.c.occurred_at < until)
    query = sa.select(
        decisions.c.decision_id,
        decisions.c.suggested_activity,
        decisions.c.propensity,
        decisions.c.experiment_arm,
        decisions.c.response,
        decisions.c.shadow,
    ).where(condition)
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        # Mappings of the result, not a dict per row: a row's _mapping lists its keys
        # again each time, which took longer than the rest of the row.
        rows = conn.execute(query).mappings().all()
    records = []
    for r in rows:
        response = r["response"] or {}
        values = {
            a.get("activity"): a.get("expected_value") for a in response.get("activities", [])
        }
        # The champion's value of `none` is not part of its stored answer; when the
        # decision stores it beside the shadow's, it is used, else 0 (as the policy does
        # for an unknown `none`). DR stays unbiased either way: the propensities are known.
        none_value = (r["shadow"] or {}).get("champion_expected_value_none")
        if none_value is None:
            none_value = response.get("expected_value_none", 0.0)
        policy = response.get("contact_policy") or {}
        possible = candidates(
            values,
            float(none_value or 0.0),
            blocked=frozenset(policy.get("blocked_activities") or ()),
            allow_attempt=bool(policy.get("allow_attempt", True)),
        )
        record: dict[str, Any] = {"decision_id": r["decision_id"]}
        for action in ACTIONS:
            value = none_value if action == NONE else values.get(action)
            record[f"q_{action}"] = math.nan if value is None else float(value)
            if r["experiment_arm"] == HOLDOUT:
                can = action == NONE
            elif r["propensity"] is not None and r["propensity"] >= 1.0 - 1e-9:
                can = action == r["suggested_activity"]
            else:
                can = action in possible or action == r["suggested_activity"]
            record[f"can_{action}"] = can
        records.append(record)
    columns = ["decision_id", *(f"q_{a}" for a in ACTIONS), *(f"can_{a}" for a in ACTIONS)]
    return pd.DataFrame.from_records(records, columns=columns)


def check_rows(frame: pd.DataFrame, first_row: int = 1) -> None:
    """The canonical rules of ``models.schema`` on every present value; raise ExportError
    naming the row and field (the service's stored data should never break them).
    ``first_row``: the number of the frame's first row in the export (a later chunk)."""
    problems: list[str] = []
    for name in frame.columns:
        column = COLUMN_BY_NAME.get(name)
        if column is None:
            continue
        values = frame[name]
        present = values.notna().to_numpy()
        if column.kind in ("float", "int", "binary"):
            numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            bad = present & ~np.isfinite(numeric)
            if column.kind in ("int", "binary"):
                bad |= present & np.isfinite(numeric) & (numeric != np.floor(numeric))
            if column.kind == "binary":
                bad |= present & ~np.isin(numeric, (0.0, 1.0))
            if column.minimum is not None:
                low = (
                    numeric <= column.minimum
                    if column.exclusive_minimum
                    else (numeric < column.minimum)
                )
                bad |= present & low
            if column.maximum is not None:
                bad |= present & (numeric > column.maximum)
        elif column.allowed is not None:
            bad = present & ~values.isin(column.allowed).to_numpy()
        else:
            continue
        for row in np.flatnonzero(bad)[:5]:
            problems.append(f"row {row + first_row}, field {name}: {values.iloc[row]!r}")
    for name in ("activity", "propensity"):
        if name in frame and frame[name].isna().any():
            problems.append(f"field {name}: missing on {int(frame[name].isna().sum())} rows")
    if problems:
        raise ExportError("export breaks the log rules: " + "; ".join(problems))


def training_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Decisions with an outcome, and how many have none yet. An outcome without VES
    answers keeps ``ve_success`` empty: that reward is unknown for it and training leaves
    it out, while ``accepted`` or a retention reward learn from it."""
    recorded = frame["has_outcome"].fillna(False).astype(bool).to_numpy()
    out = frame.loc[recorded].drop(columns=["has_outcome"]).reset_index(drop=True)
    return out, int((~recorded).sum())


def export_log(
    engine: sa.Engine,
    out: str | Path,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> ExportResult:
    """Write the labelled decisions of the period to ``out``; an empty period writes the
    header only (0 rows) so downstream tools see the layout.

    The period is read ``CHUNK_ROWS`` decisions at a time, twice in one snapshot: first
    what its columns hold (their dtypes, Parquet's schema, CSV's time precision) and the
    log's rules, then chunk by chunk into the file; the file is what one frame of the
    whole period would give (``decision_frame``), a year of decisions never in memory."""
    try:
        table_format(out)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc
    now = now or utcnow()
    whole, labelled = TableShape(absent=math.nan), TableShape(absent=math.nan)
    rows = pending = without_ves = 0
    with _snapshot(engine) as conn:
        for columns, _ in _chunks(conn, since, until, contact_policy=True, events=False):
            # Events change no column's kind (retention is a number either way).
            frame = _build(columns, [], now, contact_policy=True, layout=_Layout())
            whole.add(frame)
            kept, left = training_rows(frame)
            check_rows(kept, first_row=rows + 1)
            labelled.add(kept)
            rows, pending = rows + len(kept), pending + left
            without_ves += int(kept["ve_success"].isna().sum())
        layout = _Layout(
            extra_names=tuple(sorted(set(whole.columns) - FRAME_COLUMNS)), dtypes=whole.dtypes()
        )

        def chunks() -> Iterator[pd.DataFrame]:
            for columns, events in _chunks(conn, since, until, contact_policy=True, events=True):
                yield training_rows(_build(columns, events, now, True, layout))[0]

        try:
            path = write_chunks(chunks(), out, labelled)
        except ValueError as exc:  # pyarrow's refusal of a column it cannot store
            raise ExportError(str(exc)) from exc
    return ExportResult(
        rows=rows,
        pending=pending,
        path=path,
        without_ves=without_ves,
        surveys_pending=surveys_pending(engine, since, until) if pending else 0,
    )


def surveys_pending(engine: sa.Engine, since: datetime | None, until: datetime | None) -> int:
    """Decisions of the period with survey answers but no outcome yet (left out of the
    export and the report until the agent's outcome brings them in)."""
    query = (
        sa.select(sa.func.count())
        .select_from(decisions.join(surveys, surveys.c.decision_id == decisions.c.decision_id))
        .where(~sa.exists().where(outcomes.c.decision_id == decisions.c.decision_id))
    )
    if since is not None:
        query = query.where(decisions.c.occurred_at >= since)
    if until is not None:
        query = query.where(decisions.c.occurred_at < until)
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        return conn.execute(query).scalar_one()
