"""The value dashboard (``/dashboard``) for CX managers, and a CSV of each of its tables.

Every section comes from the same use cases as the JSON API (value and drift reports,
pools, the model registry). A section whose source fails or does not exist yet shows a
"not available yet" panel instead of failing the page: the dashboard must stay usable
while parts of the learning loop are still being rolled out.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import functools
import gc
import io
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pandas as pd
import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, render_template, request
from marshmallow import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import TooManyRequests

from models.reasons import listed
from models.value_report import uplift_shown
from service import heavy
from service.db import (
    READ_ONLY,
    audit_events,
    customer_events,
    decisions,
    outcomes,
    surveys,
    to_naive_utc,
    utcnow,
)
from service.errors import ApiError
from service.export import decision_frame
from service.schemas import DATE_RANGE_MESSAGE, ReportQuerySchema
from service.state import state
from service.web import content
from service.web.session import page_access

log = logging.getLogger("vea.dashboard")

PERIODS = {"7": 7, "30": 30, "90": 90, "all": None}
DEFAULT_PERIOD = "30"
MEASURE_COLUMNS = (
    "n",
    "ves",
    "ves_confidence",
    "ves_ability",
    "ves_n",
    "success_rate",
    "success_n",
    "suggested",
    "offered",
    "offer_rate",
    "accepted",
    "acceptance",
    "handle_time_s",
    "csat",
    "csat_n",
    "nps",
    "nps_n",
    "ces",
    "ces_n",
    "retained_60d",
    "retained_60d_n",
    # Last, so the columns a script already reads keep their places.
    "acceptance_n",
)
# A mean and the column counting the answers behind it: below MIN_ANSWERS the page marks
# the value (it moves a lot by chance; an agent's "NPS -50" from 24 answers is noise).
ANSWERS_OF = {
    "ves": "ves_n",
    "ves_confidence": "ves_n",
    "ves_ability": "ves_n",
    "success_rate": "success_n",
    "csat": "csat_n",
    "nps": "nps_n",
    "ces": "ces_n",
    "retained_60d": "retained_60d_n",
    "success": "success_n",
    # Offers whose answer was recorded: 2 answers of 37 offers made "100%" look settled.
    "acceptance": "acceptance_n",
    "offer_rate": "suggested",
}
MIN_ANSWERS = 30
FEW_ANSWERS_MARK = " †"
RATE_COLUMNS = {
    "share",
    "organic_success_rate",
    "success_low",
    "success_high",
    "suggested_share",
    "success_rate",
    "offer_rate",
    "acceptance",
    "retained_60d",
}
# Columns whose unit depends on their table, read as the column named here: the
# calibration's predicted and observed are success rates (%), the proficiency's observed
# and expected are counts of successes (an agent's 2 successes read "200.0%").
TABLE_UNITS = {
    ("calibration", "predicted"): "share",
    ("calibration", "observed"): "share",
    ("proficiency", "observed"): "successes",
    ("proficiency", "expected"): "expected_successes",
}
# Fixed decimals, so a column reads alike whatever the size of its values (NPS read
# -1.714 beside -19.4); money ("roi") with two.
DECIMALS = {
    "ves": 2,
    "ves_confidence": 2,
    "ves_ability": 2,
    "csat": 2,
    "ces": 2,
    "nps": 1,
    "handle_time_s": 1,
    "roi": 2,
    # An agent's successes are whole; the successes expected a sum of probabilities.
    "successes": 0,
    "expected_successes": 2,
}
# The prices the net value assumes (the value config's): money, so two decimals, but a
# fraction of a cent is kept (a cost of 0.004 per second, 14.40 an hour, read as 0.00).
PRICE_COLUMNS = ("value_of_retention", "cost_per_second")
# Measures that are shares of contacts: in the comparison tables their arms read as
# percentages and their differences as percentage points (every reward is in [0, 1]).
RATE_MEASURES = {"ve_success", "retained_60d", "reward", "upgraded"}
# A difference of two shares: "pp" is English shorthand a Japanese reader does not use.
PERCENTAGE_POINTS = {"en": " pp", "ja": "ポイント"}
COMPARED_COLUMNS = {"treated", "holdout", "value", "ci_low", "ci_high"}
# The columns of a treated-vs-holdout comparison (``models.value_report.difference``): the
# uplift and the treated-vs-holdout tables.
COMPARISON_COLUMNS = (
    "measure",
    "treated",
    "holdout",
    "value",
    "ci_low",
    "ci_high",
    "n_treated",
    "n_holdout",
    "units_treated",
    "units_holdout",
    "enough_data",
)
GROUPS = ("activity", "segment", "issue_type", "channel", "pool_id", "agent_id")
# Table cells holding ids that the page shows by name: (table, column) -> kind of id
# (content.display_name). The CSV keeps the ids: they are what the API and exports use.
NAMED_COLUMNS = {
    ("by_activity", "group"): "activity",
    ("proficiency", "activity"): "activity",
    ("pools", "activities"): "activities",
    ("pools", "membership"): "membership",
    ("calibration", "band"): "band",
    ("gates", "decision"): "gate_decision",
    ("gates", "reason"): "gate_reason",
    ("uplift", "measure"): "measure",
    ("treated_vs_holdout", "measure"): "measure",
    ("roi", "measure"): "measure",
    ("by_experiment_arm", "group"): "arm",
    # Segments, issue types and channels as the desk's reasons say them (個人, 使い方,
    # チャット; in English how-to, not how_to); a deployment's own values as written.
    ("by_segment", "group"): "category",
    ("by_issue_type", "group"): "category",
    ("by_channel", "group"): "category",
    ("drift", "feature"): "feature",
    ("drift", "level"): "drift_level",
    ("organic", "activity"): "activity",
}
# A row may say how the page shows some of its cells (text already in the page's
# language, e.g. a pool by its configured name); the CSV never writes it.
SHOWN = "_shown"
# The pools table's activities cell of `general`, which takes every activity: the CSV
# writes this id (as membership `all_agents`), the page its name below.
ALL_ACTIVITIES = "all_activities"
ALL_ACTIVITIES_NAMES = {"en": "all activities", "ja": "すべての活動"}
# Free text meant for a person (an explanation, not an id): the CSV writes it in the
# page's language, while its headers and id cells stay the machine ids for scripts.
FREE_TEXT_COLUMNS = {("gates", "reason"): "gate_reason"}
# The downloads start with UTF-8's byte order mark, as `vea score`'s CSV: without it
# Excel (Japanese Windows) reads the file as Shift-JIS and shows Japanese agent ids,
# issue types and gate reasons as mojibake.
CSV_BOM = "\ufeff"
# A text cell starting with one of these opens as a formula in Excel or LibreOffice
# (OWASP "CSV injection"); segments, agent ids and the like come from the desktop.
# Spreadsheets skip leading spaces and read the full-width signs of Japanese input as
# the ASCII ones, so those count too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


# --------------------------------------------------------------------- period
class PeriodProblem(NamedTuple):
    """Why a period's query parameters were not taken: the parameter (``period``,
    ``from`` or ``to``), what is wrong in the API's words (its field messages are
    English), and the page's message for it (a key of ``content.LABELS``)."""

    field: str
    detail: str
    label: str


def period_of(
    args: Any, now: datetime | None = None, language: str = "en"
) -> tuple[dict[str, Any], str | None]:
    """The page's period (``read_period``) and, when its parameters were not taken, the
    message saying so in the page's language (the page then shows the default preset)."""
    period, problem = read_period(args, now)
    return period, period_message(problem, language)


def period_message(problem: PeriodProblem | None, language: str) -> str | None:
    """The page's message for a period it could not take, naming the field by the
    form's label for it, or None."""
    if problem is None:
        return None
    labels = content.LABELS[language]
    return labels[problem.label].format(detail=problem.detail, field=labels[problem.field])


def period_form(args: Any, period: dict[str, Any], problem: PeriodProblem | None) -> dict:
    """What the period form shows (``key`` selected, ``from``, ``to``, each field's input
    ``types``, the ``invalid`` fields, the ``step`` of time inputs): the period shown;
    after dates it could not take, the dates as typed under "Custom dates", marked, to be
    corrected (they were cleared, the list showing a preset while the figures were the
    default's); a preset chosen then replaces them.

    A period given with times of day (a link: ``from=2026-11-27T12:00+09:00``) shows
    them, in UTC, in date-and-time fields, which Apply sends back as they are: in date
    fields the browser dropped them, showing empty fields, and Apply then reset the
    period to the default unsaid."""
    if problem is None or problem.field == "period":
        invalid = [] if problem is None else ["period"]
        texts = [period["from"].strip(), period["to"].strip()]
        if period["key"] == CUSTOM and any(t and not DATE_ONLY.fullmatch(t) for t in texts):
            moments = [m for m in (period["start"], period["end"]) if m is not None]
            fractions = any(m.microsecond for m in moments)
            seconds = any(m.second for m in moments)
            return {
                "key": CUSTOM,
                "from": time_field(period["start"]),
                "to": time_field(period["end"]),
                "types": {"from": "datetime-local", "to": "datetime-local"},
                "invalid": invalid,
                # A time with seconds must be a step of the field, or the browser refuses
                # to submit it (its default step is a minute).
                "step": "0.001" if fractions else "1" if seconds else None,
            }
        return {
            "key": period["key"],
            "from": period["from"],
            "to": period["to"],
            "types": {"from": "date", "to": "date"},
            "invalid": invalid,
            "step": None,
        }
    typed = {name: args.get(name) or "" for name in ("from", "to")}
    # The order is wrong between the two: either may be the one to change.
    invalid = ["from", "to"] if problem.label == "period_order" else [problem.field]
    return {
        "key": CUSTOM,
        **typed,
        # A date field keeps only a valid date: anything else typed is shown as text, to
        # be corrected where it is seen.
        "types": {
            name: "date"
            if not text or (DATE_ONLY.fullmatch(text.strip()) and name not in invalid)
            else "text"
            for name, text in typed.items()
        },
        "invalid": invalid,
        "step": None,
    }


def time_field(moment: datetime | None) -> str:
    """A UTC instant as a date-and-time field's value (``YYYY-MM-DDTHH:MM``, with the
    seconds and milliseconds it has); the form sends it back as naive, so UTC."""
    return "" if moment is None else _written(moment, "T", exact=True)


def period_line(period: dict[str, Any], language: str) -> str:
    """The period the figures cover, to the minute and in UTC, in the page's language:
    a link's times of day are said, and a date's day is seen to be a UTC day."""
    words = PAGE_WORDS[language]
    exact = period["key"] == CUSTOM  # a preset's start is the clock's: the minute will do
    start, end = period["start"], period["end"]
    if start is not None and end is not None:
        return words["period_span"].format(
            start=_written(start, " ", exact), end=_written(end, " ", exact)
        )
    if start is not None:
        return words["period_since"].format(start=_written(start, " ", exact))
    if end is not None:
        return words["period_until"].format(end=_written(end, " ", exact))
    return words["period_all"]


def _written(moment: datetime, sep: str, exact: bool) -> str:
    """``moment`` to the minute, or (``exact``) with the seconds and milliseconds it has."""
    timespec = "minutes"
    if exact and moment.microsecond:
        timespec = "milliseconds"
    elif exact and moment.second:
        timespec = "seconds"
    return moment.isoformat(sep=sep, timespec=timespec)


def read_period(
    args: Any, now: datetime | None = None
) -> tuple[dict[str, Any], PeriodProblem | None]:
    """``({key, from, to, start, end}, problem)``: a preset (``period``: 7/30/90 days or
    all) or explicit dates (key ``custom``), ``YYYY-MM-DD`` or an ISO date-time
    (``service.schemas.DATE_FORMS``), read by the fields of the API's report query
    (years 1970-2199; an offset is converted to UTC, a naive time is UTC). A bare ``to`` date includes that
    whole day (a date picker's last day); a ``to`` with a time ends there, as in the API.
    Parameters that cannot be read give the default preset and the ``PeriodProblem``:
    the page says it, a CSV download answers 422 with it.

    The dates are the period when ``period`` is ``custom`` or not given (links written
    with only ``from``/``to``), or when it is the preset the form showed (``shown``: dates
    typed without touching the list), or when no ``shown`` is sent (a link, also one
    made before the list had "Custom dates"). A preset chosen on a page that showed
    dates wins: the form sends the dates along, and they used to override it unseen."""
    now = now or utcnow()
    start_text, end_text = args.get("from") or "", args.get("to") or ""
    key = args.get("period") or ""
    problem = None
    # ``shown`` absent: a link, not this page's form. Links made before the list had
    # "Custom dates" carry the preset the browser sent with them (period=7): the dates
    # are what they asked for.
    shown = args.get("shown")
    if (start_text or end_text) and (shown is None or key in ("", CUSTOM, shown)):
        fields = ReportQuerySchema().fields
        try:
            start = _instant(fields["from_"], start_text, "from")
            end = _instant(fields["to"], end_text, "to")
        except _BadInstant as exc:
            # A year out of range is said as such: "use YYYY-MM-DD" would not be the fix.
            label = "period_date_range" if exc.detail == DATE_RANGE_MESSAGE else "period_bad_date"
            problem = PeriodProblem(exc.field, exc.detail, label)
        else:
            if end is not None and DATE_ONLY.fullmatch(end_text.strip()):
                end += timedelta(days=1)
            if start and end and start >= end:
                problem = PeriodProblem("from", "must be before 'to'", "period_order")
            else:
                return {
                    "key": CUSTOM,
                    "from": start_text,
                    "to": end_text,
                    "start": start,
                    "end": end,
                }, None
    if problem is not None or key in ("", CUSTOM):  # dates not taken, or none given
        key = DEFAULT_PERIOD
    elif key not in PERIODS:
        problem = PeriodProblem("period", PERIOD_CHOICES, "period_bad_preset")
        key = DEFAULT_PERIOD
    days = PERIODS[key]
    start = now - timedelta(days=days) if days else None
    return {"key": key, "from": "", "to": "", "start": start, "end": None}, problem


# The period of explicit dates (the list's "Custom dates").
CUSTOM = "custom"
PERIOD_CHOICES = f"must be one of: {', '.join([*PERIODS, CUSTOM])}"
# A bare date: a "to" written so includes that whole day (service.schemas.DATE_FORMS
# are the forms taken at all).
DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


class _BadInstant(Exception):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field, self.detail = field, detail


def _instant(field: Any, text: str, name: str) -> datetime | None:
    try:
        return to_naive_utc(field.deserialize(text.strip())) if text.strip() else None
    except ValidationError as exc:
        raise _BadInstant(name, _message(exc)) from None


def _message(exc: ValidationError) -> str:
    messages = exc.messages
    return str(messages[0] if isinstance(messages, list) and messages else messages)


# ------------------------------------------------------------------- sections
def _section(name: str, compute: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"available": True, "data": compute()}
    except Exception as exc:  # noqa: BLE001 - one missing source must not fail the page
        # The log's formatter hides a database error's values; the page shows only its
        # kind, since its text quotes the statement and, on PostgreSQL, customer data.
        log.warning("dashboard section unavailable", extra={"section": name}, exc_info=True)
        if isinstance(exc, SQLAlchemyError):
            return {"available": False, "message": f"{type(exc).__name__} (database error)"}
        return {"available": False, "message": f"{type(exc).__name__}: {exc}"[:300]}


def _value(start, end, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    from service import reports

    st = state()
    return reports.value(st.engine, st.settings, start, end, frame=frame)


def _drift(start, end, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    from service import reports

    st = state()
    return reports.drift(st.engine, st.settings, st.models.registry, start, end, frame=frame)


def _organic(start, end, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    from service import reports

    return reports.organic(state().engine, start, end, frame=frame)


def _pools() -> dict[str, Any]:
    from service import pools as use_cases

    st = state()
    config, source = use_cases.current_config(st.engine, st.pools.file_config)
    return use_cases.describe(st.engine, config, source, st.settings.availability_ttl_s)


def _models() -> dict[str, Any]:
    models = state().models
    models.refresh()
    return {
        "champion": models.registry.champion(),
        "serving": models.version,
        "problem": models.problem,
        "versions": models.registry.versions(),
        "gates": _gates(models.registry.history()),
    }


def _value_of(entry: Any) -> Any:
    return entry.get("value") if isinstance(entry, dict) else entry


def _trend(
    start, end, frame: pd.DataFrame | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """VES and success per day (per week beyond 90 days) over decisions with an outcome,
    from the first such day to the period's end (today when open). A day or week without
    any is a row with ``n`` 0: left out, the chart joined its neighbours as if adjacent and
    a week when logging stopped did not show."""
    if frame is None:
        frame = decision_frame(state().engine, start, end)
    frame = frame[frame["has_outcome"]]
    if frame.empty:
        return []
    times = frame["occurred_at"].dt.tz_localize(None)
    now = now or utcnow()
    last = min(end - timedelta(microseconds=1), now) if end is not None else now
    first, last = times.min(), max(last, times.max())
    weekly = last - first > timedelta(days=90)
    frame = frame.assign(
        ves=(frame["ves_confidence"] + frame["ves_ability"]) / 2.0,
        success=frame["ve_success"].astype("float64"),
        bucket=trend_buckets(times, weekly=weekly),
    )
    grouped = frame.groupby("bucket").agg(
        n=("decision_id", "size"),
        ves=("ves", "mean"),
        ves_n=("ves", "count"),
        success_rate=("success", "mean"),
        success_n=("success", "count"),
    )
    bounds = trend_buckets(pd.Series([first, last]), weekly=weekly)
    every = pd.date_range(bounds.iloc[0], bounds.iloc[1], freq="7D" if weekly else "D")
    grouped = grouped.reindex(every)
    counts = ("n", "ves_n", "success_n")
    grouped[list(counts)] = grouped[list(counts)].fillna(0)
    return [
        {
            "date": bucket.date().isoformat(),
            "n": int(row.n),
            "ves": _clean(row.ves),
            "ves_n": int(row.ves_n),
            "success_rate": _clean(row.success_rate),
            "success_n": int(row.success_n),
        }
        for bucket, row in grouped.iterrows()
    ]


def trend_buckets(occurred_at: Any, weekly: bool) -> Any:
    """Each time's trend bucket (UTC): its day, or its ISO week labelled by the Monday it
    starts on (pandas' ``W-SUN`` is the week ending on Sunday; ``W-MON`` ran Tuesday to
    Monday)."""
    naive = occurred_at.dt.tz_localize(None) if occurred_at.dt.tz is not None else occurred_at
    return naive.dt.to_period("W-SUN" if weekly else "D").dt.start_time


def csv_filename(name: str, period: dict[str, Any], now: datetime | None = None) -> str:
    """``vea-<table>-<first day>_<last day>.csv`` (UTC days, both included): a download
    says which period it holds. An open start is ``start``; an open end is today."""
    first = period["start"].date().isoformat() if period["start"] else "start"
    # The end is exclusive: the last day included is the one before it (a bare `to`
    # date has been moved to the next midnight).
    end = period["end"] - timedelta(microseconds=1) if period["end"] else (now or utcnow())
    return f"vea-{name}-{first}_{end.date().isoformat()}.csv"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def gather(period: dict[str, Any], only: str | None = None) -> dict[str, Any]:
    """Every section of the page, or ``only`` the one a CSV download needs (the others
    are marked not computed, so their tables are absent). A report section not kept is
    computed in a slot of ``service.heavy`` (``heavy.Busy`` when none is free)."""
    start, end = period["start"], period["end"]
    engine = state().engine

    # The period's decisions are read once for the value, trend and drift sections: with
    # 100,000 decisions each read takes seconds, and the page made three. Not cached when
    # it fails, so each section still reports the failure on its own.
    @functools.cache
    def period_decisions() -> pd.DataFrame:
        return decision_frame(engine, start, end)

    cache = _SectionCache.of_app()
    wanted = [name for name in SECTIONS if only in (None, name)]
    # The version query only when a cached section is wanted (not for a pools CSV).
    version = _data_version() if set(wanted) & set(CACHED_SECTIONS) else None

    def key(name: str) -> tuple:
        return (period["key"], period["from"], period["to"], name, version)

    def kept(name: str) -> bool:
        return version is not None and name in CACHED_SECTIONS

    out = {name: cache.get(key(name)) if kept(name) else None for name in wanted}
    computations = {
        "value": lambda: _value(start, end, period_decisions()),
        "trend": lambda: _trend(start, end, period_decisions()),
        "drift": lambda: _drift(start, end, period_decisions()),
        "organic": lambda: _organic(start, end, period_decisions()),
        "pools": _pools,
        "models": _models,
    }
    cold = [name for name, section in out.items() if section is None]
    # A slot only for a report section to compute (kept ones, pools and models need none).
    heavy_slot = heavy.slot() if set(cold) & set(CACHED_SECTIONS) else contextlib.nullcontext()
    with heavy_slot, _cyclic_gc_paused():
        for name in cold:
            out[name] = _section(name, computations[name])
            if kept(name) and out[name]["available"]:
                cache.put(key(name), out[name])
    return {name: out.get(name, NOT_COMPUTED) for name in SECTIONS}


SECTIONS = ("value", "trend", "drift", "organic", "pools", "models")


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Python's cycle collector off while the sections are computed. Reading a period
    makes a few million objects (a row, a dict of features, the cells) that live until
    the page is done, and each full collection walked them all again: a sixth of a cold
    page at 100,000 decisions. Reference counting still frees everything at once; the
    few cycles left (pandas keeps some) are collected when it is back on. Left alone
    when something else has turned it off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# The report sections are kept per worker for a short time, keyed by the period and the
# data version: at 100,000 decisions they take seconds, and a manager reloads, switches
# language or downloads a table of the page just seen. New or changed decisions,
# outcomes, surveys or events change the version and show at the next view; what the
# version cannot see (the period's start moving with the clock, retention windows
# closing, a changed value config or registry, a write stamped more than CACHE_SECONDS
# before the latest one, as by a clock set back) shows within CACHE_SECONDS.
CACHED_SECTIONS = ("value", "trend", "drift", "organic")
CACHE_SECONDS = 60.0
CACHE_ENTRIES = 32  # sections: 4 per period, 8 periods; each a few report dicts


class _SectionCache:
    """A small LRU of computed sections, with an age limit; safe across threads."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def of_app() -> _SectionCache:
        # On the app (one per worker process), so two apps never share figures.
        return current_app.extensions.setdefault("vea.dashboard_sections", _SectionCache())

    def get(self, key: tuple) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] > CACHE_SECONDS:
                self._entries.pop(key, None)
                return None
            self._entries.move_to_end(key)
            # Copies in and out: the tables built from a section must not change the kept one.
            return copy.deepcopy(entry[1])

    def put(self, key: tuple, section: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), copy.deepcopy(section))
            self._entries.move_to_end(key)
            while len(self._entries) > CACHE_ENTRIES:
                self._entries.popitem(last=False)


# Each table's latest write, by an indexed column (migration 0015; the events' and the
# audit log's ids are their keys): any view asks, so it must cost the same at 10 million
# rows as at 10 (counting the rows, as before, read every table whole). A write raises
# it; and the rows written in the span just before it are counted, so a write committed
# after a later-stamped one (two workers' group commits, an event id drawn before
# another commits) changes the version too. Decisions, outcomes, surveys and events are
# deleted only by service.deletion, which records each deletion in the audit log in the
# same transaction: the log's latest id changes with it.
LATEST_WRITES = (
    (decisions.c.created_at, timedelta(seconds=CACHE_SECONDS)),
    (outcomes.c.recorded_at, timedelta(seconds=CACHE_SECONDS)),
    (surveys.c.updated_at, timedelta(seconds=CACHE_SECONDS)),
    (customer_events.c.id, 1000),
)


def _data_version() -> tuple | None:
    """What changes whenever a decision, outcome, survey answer or event is stored,
    replaced or deleted (``LATEST_WRITES``) (None, and no caching, when the database
    does not answer)."""
    try:
        with state().engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            latest = tuple(conn.execute(latest_writes_query()).one())
            return latest + tuple(conn.execute(recent_writes_query(latest)).one())
    except SQLAlchemyError:
        return None


def latest_writes_query() -> sa.Select:
    """Each ``LATEST_WRITES`` column's largest value, and the audit log's last id: each
    the end of an index."""
    return sa.select(
        *(sa.select(sa.func.max(column)).scalar_subquery() for column, _ in LATEST_WRITES),
        sa.select(sa.func.max(audit_events.c.id)).scalar_subquery(),
    )


def recent_writes_query(latest: tuple) -> sa.Select:
    """How many rows of each table were written in its span before its latest write
    (``latest``: the answer of ``latest_writes_query``): a short range of the index."""
    return sa.select(
        *(
            sa.select(sa.func.count()).where(column >= last - span).scalar_subquery()
            if last is not None
            else sa.literal(0)
            for (column, span), last in zip(LATEST_WRITES, latest, strict=False)
        )
    )


NOT_COMPUTED = {"available": False, "message": "not computed for this download"}
# The section each CSV table comes from (every other table: the value report), so that a
# download computes only that one: the models table read 100,000 decisions for nothing.
SECTION_OF_TABLE = {
    "trend": "trend",
    "drift": "drift",
    "calibration": "drift",
    "organic": "organic",
    "pools": "pools",
    "proficiency": "pools",
    "models": "models",
    "gates": "models",
}


# --------------------------------------------------------------------- tables
def tables(sections: dict[str, Any], language: str) -> dict[str, dict[str, Any]]:
    """Every table of the page as ``{name: {title, columns, rows}}`` (the CSV source too);
    tables whose section is unavailable are absent."""
    labels = content.LABELS[language]
    groups = content.GROUP_NAMES[language]
    out: dict[str, dict[str, Any]] = {}
    value = sections["value"]
    if value["available"]:
        data = value["data"]
        out["uplift"] = {
            "title": labels["uplift"],
            "columns": [*COMPARISON_COLUMNS, "declared", "pre_declared"],
            "rows": [
                {"measure": name, **entry}
                for name, entry in data["uplift"].items()
                if uplift_shown(name, data)
            ],
        }
        roi = data["roi"]
        per_customer = roi["per_customer"]
        out["roi"] = {
            "title": labels["roi_table"],
            "note": labels["roi_note"].format(
                value_of_retention=price(roi["value_of_retention"]),
                cost_per_second=price(roi["cost_per_second"]),
            ),
            "columns": [
                "measure",
                "treated",
                "holdout",
                "value",
                "ci_low",
                "ci_high",
                "units_treated",
                "units_holdout",
                "n_treated",
                "value_of_retention",
                "cost_per_second",
                # Last, so the columns a script already reads keep their places.
                *UNVALUED_COLUMNS.values(),
            ],
            "rows": [
                {"measure": "per_customer", **per_customer, "n_treated": None},
                {"measure": "per_contact", **{k: roi[k] for k in ROI_KEYS}},
                {
                    "measure": "total",
                    "value": roi["total"],
                    "ci_low": roi["total_ci_low"],
                    "ci_high": roi["total_ci_high"],
                    "units_treated": roi["treated_customers"],
                    "n_treated": roi["treated_contacts"],
                },
                # Part of the net value per customer: the money of their upgrades (last,
                # so the rows a script already reads keep their places).
                {
                    "measure": "upgrade_revenue",
                    **roi["upgrade_revenue"],
                    "n_treated": None,
                    # The upgrades it counted as 0 (sent without a value), per arm.
                    **{
                        column: (roi.get("upgrades_without_value") or {}).get(arm)
                        for arm, column in UNVALUED_COLUMNS.items()
                    },
                },
            ],
            "caution": unvalued_note(roi, language),
        }
        for row in out["roi"]["rows"]:
            row.update(
                value_of_retention=roi["value_of_retention"],
                cost_per_second=roi["cost_per_second"],
            )
        # CSAT, NPS, effort, handle time and upgrades: what value selling must not cost.
        out["treated_vs_holdout"] = {
            "title": labels["treated_vs_holdout"],
            "columns": list(COMPARISON_COLUMNS),
            "rows": [
                {"measure": name, **entry}
                for name, entry in data.get("treated_vs_holdout", {}).items()
            ],
        }
        out["by_experiment_arm"] = {
            "title": labels["results_by"].format(what=groups["experiment_arm"]),
            "columns": ["group", *MEASURE_COLUMNS],
            "rows": data["by"].get("experiment_arm", []),
        }
        for group in GROUPS:
            out[f"by_{group}"] = {
                "title": labels["results_by"].format(what=groups[group]),
                "note": labels["treated_only"],
                "columns": ["group", *MEASURE_COLUMNS],
                "rows": data["by"].get(group, []),
            }
    if sections["trend"]["available"]:
        out["trend"] = {
            "title": labels["trend"],
            "note": PAGE_WORDS[language]["trend_days"],
            "columns": ["date", "n", "ves", "ves_n", "success_rate", "success_n"],
            "rows": sections["trend"]["data"],
        }
    organic = sections["organic"]
    if organic["available"]:
        data = organic["data"]
        baseline = data["baseline_success_rate"]
        out["organic"] = {
            "title": labels["organic"],
            "note": labels["organic_note"].format(
                n=data["min_attempts"], baseline=cell("organic_success_rate", baseline)
            ),
            "columns": [
                "situation",
                "activity",
                "organic_attempts",
                "organic_success_rate",
                "success_low",
                "success_high",
                "suggested_share",
                "candidate",
            ],
            "rows": [
                {
                    "situation": " / ".join(row["situation"].values()),
                    # The page names the segment and issue type; the CSV keeps the ids.
                    SHOWN: {
                        "situation": " / ".join(
                            content.display_name("category", v, language)
                            for v in row["situation"].values()
                        )
                    },
                    "activity": row["activity"],
                    "organic_attempts": row["organic_attempts"],
                    "organic_success_rate": row["organic_success_rate"],
                    "success_low": row["interval"][0] if row["interval"] else None,
                    "success_high": row["interval"][1] if row["interval"] else None,
                    "suggested_share": row["suggested_share"],
                    "candidate": row["candidate"],
                }
                for row in data["rows"]
            ],
        }
    pools = sections["pools"]
    if pools["available"]:
        out["proficiency"] = {
            "title": labels["pools"],
            "columns": [
                "agent_id",
                "activity",
                "contacts",
                "observed",
                "expected",
                "estimate",
                "low",
                "high",
                "qualified",
            ],
            "rows": pools["data"].get("proficiency") or [],
        }
    if pools["available"]:
        from service.pools import member_count, membership_of, pool_name

        out["pools"] = {
            "title": labels["pool_config"],
            "columns": ["id", "activities", "membership", "members", "capacity"],
            "rows": [
                {
                    "id": p.get("id"),
                    # `general` takes every activity: its empty list would read as none.
                    "activities": ALL_ACTIVITIES
                    if p.get("all_activities")
                    else " ".join(p.get("activities") or []),
                    # `general`: every agent (all_agents, members empty in the CSV), not 0.
                    "membership": membership_of(p),
                    "members": member_count(p),
                    "capacity": p.get("capacity"),
                    SHOWN: {"id": _pool_label(pool_name(p, language), p.get("id"), language)},
                }
                for p in pools["data"].get("pools") or []
            ],
        }
        # The results by pool name the pools too (ids no longer configured stay ids).
        if "by_pool_id" in out:
            names = {p.get("id"): pool_name(p, language) for p in pools["data"].get("pools") or []}
            out["by_pool_id"]["rows"] = [
                {**r, SHOWN: {"group": names[r["group"]]}} if r.get("group") in names else r
                for r in out["by_pool_id"]["rows"]
            ]
    drift = sections["drift"]
    if drift["available"]:
        out["drift"] = {
            "title": labels["drift"],
            "columns": ["feature", "psi", "level", "drifted"],
            "rows": drift["data"]["features"],
        }
        out["calibration"] = {
            "title": labels["calibration"],
            "columns": ["band", "n", "predicted", "observed", "gap"],
            "rows": drift["data"]["calibration"],
        }
    models = sections["models"]
    if models["available"]:
        metric_names = sorted(
            {
                name
                for v in models["data"]["versions"]
                for name, m in (v.get("metrics") or {}).items()
                if isinstance(m, int | float) and not isinstance(m, bool)
            }
        )[:8]
        rows = []
        for v in models["data"]["versions"]:
            metrics = v.get("metrics") or {}
            rows.append(
                {
                    "version": v["version"],
                    "champion": v.get("is_champion", False),
                    "created_at": v.get("created_at"),
                    "learner": v.get("learner"),
                    "training_rows": v.get("training_rows"),
                    **{name: metrics.get(name) for name in metric_names},
                }
            )
        out["models"] = {
            "title": labels["model"],
            "columns": ["version", "champion", "created_at", "learner", "training_rows"]
            + metric_names,
            "rows": rows,
        }
        # The evaluation behind each model change: the retrain gate's off-policy (DR)
        # values and the 95% interval of the challenger's improvement.
        out["gates"] = {
            "title": labels["gates"],
            "columns": [
                "at",
                "decision",
                "challenger",
                "champion",
                "rows",
                "challenger_value",
                "champion_value",
                "value",
                "ci_low",
                "ci_high",
                "reward",
                "reason",
            ],
            "rows": [
                {
                    "at": g.get("at"),
                    "decision": g.get("decision"),
                    "challenger": g.get("challenger"),
                    "champion": g.get("champion"),
                    "rows": g.get("rows"),
                    "challenger_value": _value_of(g.get("challenger_value")),
                    "champion_value": _value_of(g.get("champion_value")),
                    "value": _value_of(g.get("improvement")),
                    "ci_low": (g.get("improvement") or {}).get("ci_low"),
                    "ci_high": (g.get("improvement") or {}).get("ci_high"),
                    # The outcome the values measure (older entries: the default one).
                    "reward": g.get("reward") or "ve_success",
                    "reason": g.get("reason"),
                }
                for g in models["data"].get("gates", [])
            ],
        }
    return out


def _gates(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest 20 gate decisions, newest first. A challenger the gate promoted whose
    promotion was then skipped (the champion changed while retrain ran) reads "stale",
    not "promoted"."""
    skipped = {e.get("version") for e in history if e.get("event") == "promote_skipped"}
    gates = [e for e in history if e.get("event") == "gate"][::-1][:20]
    return [
        {**g, "decision": "stale"}
        if g.get("decision") == "promote" and g.get("challenger") in skipped
        else g
        for g in gates
    ]


ROI_KEYS = ("treated", "holdout", "value", "ci_low", "ci_high", "units_treated",
            "units_holdout", "n_treated")  # fmt: skip
# The net-value table's counts of upgrades sent without a value (roi.upgrades_without_value).
UNVALUED_COLUMNS = {
    "treated": "upgrades_without_value_treated",
    "holdout": "upgrades_without_value_holdout",
}


def unvalued_note(roi: dict[str, Any], language: str) -> str | None:
    """``roi.upgrade_revenue_note`` in the page's language: which money figures upgrades
    sent without a value (counted 0) make bounds; None when the report has no note."""
    if not roi.get("upgrade_revenue_note"):
        return None
    counts = roi.get("upgrades_without_value") or {}
    treated, holdout = counts.get("treated") or 0, counts.get("holdout") or 0
    which = "both" if treated and holdout else "treated" if treated else "holdout"
    return content.LABELS[language][f"roi_unvalued_{which}"].format(
        treated=cell("n", treated), holdout=cell("n", holdout)
    )


def srm_line(srm: dict[str, Any] | None, language: str) -> dict[str, Any] | None:
    """The sample ratio check as the page says it beside the uplift: ``id``, ``alert``
    (a warning, not small print) and ``text``; None without a holdout share in force
    (``expected_share``: read from the decisions, so a period reported after the share
    changed or the holdout ended still shows the split it ran under)."""
    if not srm or not srm.get("expected_share"):
        return None
    labels = content.LABELS[language]
    total = srm["holdout_customers"] + srm["treated_customers"]
    p = srm.get("p_value")
    args = {
        "holdout": cell("n", srm["holdout_customers"]),
        "total": cell("n", total),
        "observed": cell("share", srm.get("observed_share")),
        "expected": cell("share", srm["expected_share"]),
        "p": f"{p:.2g}" if p is not None else "–",
        "both": cell("n", srm["both_arms_customers"]),
    }
    split_broken = bool(srm["tested"] and p is not None and p < srm["alpha"])
    if srm.get("share_changes"):
        # A change of share is not a broken assignment: its own words, with when it came
        # (the first decision under each new share), and the mismatch only when the split
        # fails against the shares in force too.
        runs = (srm.get("share_history") or [])[1:]
        dates = listed((_when(run.get("from")) for run in runs), language) or "?"
        text = labels["srm_share_changed"].format(dates=dates)
        if split_broken:
            text += " " + labels["srm_mismatch"].format(**args)
        return {"id": "srm-share-changed", "alert": True, "text": text}
    if srm["mismatch"]:
        text = (labels["srm_mismatch"] if srm["tested"] else labels["srm_too_few"]).format(**args)
        if srm["both_arms_customers"]:
            text += " " + labels["srm_both"].format(**args)
        return {"id": "srm-warning", "alert": True, "text": text}
    if srm["tested"]:
        return {"id": "srm-ok", "alert": False, "text": labels["srm_ok"].format(**args)}
    return {"id": "srm-untested", "alert": False, "text": labels["srm_too_few"].format(**args)}


def _when(moment: str | None) -> str:
    """A decision's time from the report (ISO, UTC) to the minute, marked UTC."""
    if not moment:
        return "?"
    return f"{moment[:10]} {moment[11:16]} UTC"


def cell(column: str, value: Any) -> str:
    """How a value reads in a table cell (the CSV keeps the raw value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "✓" if value else "·"
    if isinstance(value, float):
        if column in RATE_COLUMNS:
            return f"{value * 100:.1f}%"
        if column in DECIMALS:
            return f"{value:,.{DECIMALS[column]}f}"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def price(value: Any) -> str:
    """A price of the value config: two decimals, as all money, or as many as it has up
    to six (0.005 stays 0.005)."""
    if value is None or isinstance(value, bool):
        return cell("roi", value)
    value = float(value)
    if round(value, 2) == value:
        return f"{value:,.2f}"
    if abs(value) < 1e-6:  # six decimals would read 0. (1e-7)
        return f"{value:g}"
    return f"{value:,.6f}".rstrip("0")


def shown(
    table: str, column: str, value: Any, language: str, row: dict[str, Any] | None = None
) -> str:
    """A table cell as the page shows it: ids by their name in the page's language; a
    group's mean from fewer than ``MIN_ANSWERS`` answers marked ``FEW_ANSWERS_MARK``."""
    kind = NAMED_COLUMNS.get((table, column))
    if column in (row or {}).get(SHOWN, {}):
        return row[SHOWN][column]
    if table == "pools" and column == "members" and value is None:
        return content.LABELS[language]["all_agents"]  # general: every agent answers it
    if table == "pools" and column == "activities" and value == ALL_ACTIVITIES:
        return ALL_ACTIVITIES_NAMES[language]
    if kind is None and column == "group" and table.startswith("by_"):
        kind = "group"  # segment, channel, agent...: only the empty group is named
    if kind is not None and isinstance(value, str):
        return content.display_name(kind, value, language)
    if table == "roi" and column in PRICE_COLUMNS:
        return price(value)
    if table in ("uplift", "treated_vs_holdout", "roi") and column in COMPARED_COLUMNS:
        return _compared(table, column, value, (row or {}).get("measure"), language)
    if table == "calibration" and column == "gap" and isinstance(value, float):
        # Observed minus predicted, both shown as %: a difference of rates ("0.097" beside
        # "11.9%" and "21.7%" read as a tenth of a percent).
        return f"{value * 100:+.1f}{PERCENTAGE_POINTS[language]}"
    text = cell(TABLE_UNITS.get((table, column), column), value)
    answers = (row or {}).get(ANSWERS_OF.get(column, ""))
    counted = table.startswith("by_") or table == "trend"
    if counted and value is not None and isinstance(answers, int) and answers < MIN_ANSWERS:
        text += FEW_ANSWERS_MARK
    return text


def _pool_label(name: str, pool_id: Any, language: str) -> str:
    """A pool in the pools table: its name with the id the API, the availability posts
    and the CSV use (just the id when it has no name)."""
    if name == pool_id:
        return str(pool_id)
    return f"{name}（{pool_id}）" if language == "ja" else f"{name} ({pool_id})"


def _compared(
    table: str, column: str, value: Any, measure: str | None, language: str = "en"
) -> str:
    """A comparison cell read in its measure's unit: shares as % (their differences in
    percentage points, in the page's language), money with two decimals, other measures
    as their own column."""
    if not isinstance(value, float):
        return cell(column, value)
    if table == "roi":
        return cell("roi", value)
    if measure in RATE_MEASURES:
        if column in ("treated", "holdout"):
            return f"{value * 100:.1f}%"
        return f"{value * 100:+.1f}{PERCENTAGE_POINTS[language]}"
    return cell(measure or column, value)


def csv_safe(value: Any) -> Any:
    """A text value a spreadsheet will read as text: one that could start a formula gets
    a leading ``'``. Numbers stay numbers (the report writes negative ones itself)."""
    if isinstance(value, str) and value.lstrip(" \u3000").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(table: dict[str, Any], name: str = "", language: str = "en") -> str:
    """The table ``name`` as CSV: the machine ids as headers and in id cells, in every
    language (stable for spreadsheets and scripts); free text (``FREE_TEXT_COLUMNS``) in
    ``language``, as the page shows it."""
    free_text = {
        column: kind
        for (table_name, column), kind in FREE_TEXT_COLUMNS.items()
        if table_name == name
    }

    def written(column: str, value: Any) -> Any:
        if value is None:
            return ""
        if column in free_text and isinstance(value, str):
            value = content.display_name(free_text[column], value, language)
        return csv_safe(value)

    buffer = io.StringIO()
    # CRLF (RFC 4180) also makes the writer quote a field holding a lone carriage
    # return, which a spreadsheet would otherwise take for a row break (the text after it
    # would start a cell of its own, unescaped).
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([csv_safe(c) for c in table["columns"]])
    for row in table["rows"]:
        writer.writerow([written(c, row.get(c)) for c in table["columns"]])
    return buffer.getvalue()


# The charts' own words (legends, axes), in the page's language.
CHART_LABELS = {
    "en": {
        "ves": "VES (1-7)",
        "success_pct": "success %",
        "ci": "95% CI",
        "difference": "treated − holdout",
        "rate_axis": "difference in percentage points (rates)",
        "points_axis": "difference in VES points",
        "psi": "PSI",
        "threshold": "drift threshold {threshold}",
    },
    "ja": {
        "ves": "VES（1-7）",
        "success_pct": "成功率（%）",
        "ci": "95%信頼区間",
        "difference": "介入群 − 対照群",
        "rate_axis": "差（率はポイント）",
        "points_axis": "差（VESの点）",
        "psi": "PSI",
        "threshold": "ドリフトのしきい値 {threshold}",
    },
}


# Under the headline figures when no contact of the period has its 60-day retention yet
# (the default 30-day period never has): without it the ROI tiles showed only "–".
RETENTION_PENDING = {
    "en": "ROI and 60-day retention are not known yet for this period: a customer counts "
    "once 60 days have passed since their first contact in it. Choose a period that ended "
    "at least 60 days ago, or all time.",
    "ja": "この期間のROIと60日後の継続率はまだ分かりません。期間内の初回のお問い合わせから60日が"
    "過ぎたお客様から数えられます。60日以上前に終わる期間か、全期間を選んでください。",
}


# The page's own short texts beyond content.LABELS, by language.
PAGE_WORDS = {
    "en": {
        # Under the VES and success tiles: they pool both arms (as the report's `overall`
        # and `vea report` do), so 30% there beside the treated arm's 36% in the uplift
        # table read as a contradiction.
        "all_contacts": "all contacts, control group included",
        # The gates table lists the latest retrain decisions whatever the period: "no data
        # in this period" sent a manager looking for another period.
        "no_gates": "No retrain gate decision yet (they do not depend on the period).",
        # The period to the minute: a link's times of day were not shown anywhere.
        "period_span": "Figures for {start} to {end} UTC (the end not included).",
        "period_since": "Figures since {start} UTC.",
        "period_until": "Figures before {end} UTC.",
        "period_all": "Figures for all time.",
        # The page's days are UTC days: a manager in Tokyo choosing 1 November got
        # 09:00 to 09:00 of their own time, and nothing said so.
        "utc": "Dates and days on this page are UTC: a day runs from 00:00 to 24:00 UTC.",
        # The end of a period given with a time of day is that instant, not its whole day.
        "to_time": "To (not incl.)",
        "trend_days": "Each row is a UTC day (a week from Monday, UTC, beyond 90 days).",
    },
    "ja": {
        "all_contacts": "対照群を含む全件",
        "no_gates": "再学習ゲートの判定はまだありません（期間によりません）。",
        "period_span": "{start} から {end} まで（UTC、終わりの時刻は含みません）の集計です。",
        "period_since": "{start}（UTC）以降の集計です。",
        "period_until": "{end}（UTC）より前の集計です。",
        "period_all": "全期間の集計です。",
        "utc": "このページの日付と日はUTC（協定世界時）です。1日はUTCの0時から24時"
        "（日本時間の9時から翌日9時）です。",
        "to_time": "終了（その時刻を含まない）",
        "trend_days": "各行はUTCの1日です（90日を超える期間ではUTCの月曜日からの1週間）。",
    },
}


def retention_pending(value: dict[str, Any], language: str) -> str | None:
    """Why the ROI is empty when it is only waiting for retention windows to close: the
    period has outcomes but none with a known 60-day retention, in either arm."""
    retained = (value.get("uplift") or {}).get("retained_60d") or {}
    known = (retained.get("n_treated") or 0) + (retained.get("n_holdout") or 0)
    if value.get("with_outcome") and not known:
        return RETENTION_PENDING[language]
    return None


def _uplift_point(name: str, entry: dict[str, Any], language: str) -> dict[str, Any]:
    """One measure of the uplift chart in the unit its table row reads: a rate's
    difference in percentage points on the rate axis (the table's "+31.6 pp" was drawn
    as 0.32 beside VES's 1.05 on one axis), other measures in their own points."""
    rate = name in RATE_MEASURES
    scale = 100.0 if rate else 1.0
    return {
        "measure": content.display_name("measure", name, language),
        "axis": "rate" if rate else "points",
        **{
            key: None if entry.get(key) is None else entry[key] * scale
            for key in ("value", "ci_low", "ci_high")
        },
    }


def uplift_missing(value: dict[str, Any]) -> str:
    """The arm that keeps the period from having an uplift to draw: ``treated`` when the
    holdout has contacts with an outcome but the treated arm has not (the page said the
    holdout was missing beside a table with holdout n 2), else ``holdout``. An arm counts
    from two contacts, the fewest a difference is computed from
    (``models.value_report.difference``)."""
    entries = [e for name, e in value["uplift"].items() if uplift_shown(name, value)]
    treated = max((e.get("n_treated") or 0 for e in entries), default=0)
    holdout = max((e.get("n_holdout") or 0 for e in entries), default=0)
    return "treated" if holdout >= 2 and treated < 2 else "holdout"


def uplift_axes(points: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each axis of the uplift chart (``rate``, ``points``) as ``{min, max}``: around zero
    and every value and interval end, with zero at the same height on both (two zero lines
    at different heights made a difference above one read as below the other)."""
    spans = {}
    for axis in {p["axis"] for p in points}:
        ends = [
            p[key]
            for p in points
            if p["axis"] == axis
            for key in ("value", "ci_low", "ci_high")
            if p[key] is not None
        ]
        low, high = min([0.0, *ends]), max([0.0, *ends])
        if low == high:  # only zeros: any visible span will do
            high = 1.0
        # A margin on both sides, so zero is never an edge and the zero line shows.
        pad = (high - low) * 0.1
        spans[axis] = (low - pad, high + pad)
    # The share of each axis below zero (strictly between 0 and 1); the larger is given to
    # both, by stretching an axis's top or bottom, never cutting a value off.
    below = max(-low / (high - low) for low, high in spans.values())
    out = {}
    for axis, (low, high) in spans.items():
        high = max(high, -low * (1.0 - below) / below)
        out[axis] = {"min": -high * below / (1.0 - below), "max": high}
    return out


def charts(sections: dict[str, Any], language: str = "en") -> dict[str, Any]:
    """The few series the page's charts draw (kept small: it is embedded in the page), in
    the units the tables read, with the charts' words in the page's language."""
    labels = CHART_LABELS[language]
    out: dict[str, Any] = {"labels": labels}
    if sections["trend"]["available"]:
        out["trend"] = sections["trend"]["data"]
    if sections["value"]["available"]:
        data = sections["value"]["data"]
        uplift = [
            _uplift_point(name, entry, language)
            for name, entry in data["uplift"].items()
            if uplift_shown(name, data)
        ]
        # Without holdout contacts there is no uplift to draw (the page says why).
        if any(item["value"] is not None for item in uplift):
            out["uplift"] = uplift
            out["uplift_axes"] = uplift_axes(uplift)
        # The chart labels its bars with the group: the activity's name on this page.
        out["by_activity"] = [
            {
                "group": shown("by_activity", "group", r["group"], language),
                "success_rate": r.get("success_rate"),
                "n": r["n"],
            }
            for r in data["by"].get("activity", [])
        ]
    if sections["drift"]["available"]:
        drift = sections["drift"]["data"]
        threshold = drift["threshold"]
        highest = max((f["psi"] for f in drift["features"] if f["psi"] is not None), default=0.0)
        out["drift"] = {
            "threshold": threshold,
            "threshold_label": labels["threshold"].format(threshold=threshold),
            # The axis reaches the threshold: scaled to the largest PSI alone, a stable
            # 0.013 filled the chart and read as drift.
            "axis_max": max(threshold, highest) * 1.1,
            # Each bar named as the drift table names the feature (購入後の月数, not
            # tenure_months on the Japanese page).
            "features": [
                {**f, "label": shown("drift", "feature", f["feature"], language)}
                for f in drift["features"]
            ],
        }
    return out


# ----------------------------------------------------------------------- views
def blueprint() -> Blueprint:
    blp = Blueprint("dashboard", __name__)

    def _language() -> str:
        return content.pick_language(
            request.args.get("lang"), request.cookies.get("vea_lang"), request.accept_languages
        )

    @blp.route("/dashboard", methods=["GET"])
    @page_access("reports")
    def dashboard():
        language = _language()
        period, problem = read_period(request.args)
        try:
            sections = gather(period)
        except heavy.Busy as exc:  # the page's own words (a CSV download answers 429 JSON)
            wait = exc.retry_after_s
            message = content.LABELS[language]["busy"].format(seconds=wait)
            raise TooManyRequests(message, retry_after=wait) from None
        return render_template(
            "dashboard.html",
            language=language,
            labels=content.LABELS[language],
            group_names=content.GROUP_NAMES[language],
            period=period,
            period_error=period_message(problem, language),
            form=period_form(request.args, period, problem),
            period_line=period_line(period, language),
            sections=sections,
            tables=tables(sections, language),
            charts=charts(sections, language),
            cell=cell,
            show=lambda table, column, value, row=None: shown(table, column, value, language, row),
            min_answers=MIN_ANSWERS,
            holdout_configured=state().settings.holdout_share > 0,
            words=PAGE_WORDS[language],
            retention_pending=retention_pending(sections["value"]["data"], language)
            if sections["value"]["available"]
            else None,
            uplift_missing=uplift_missing(sections["value"]["data"])
            if sections["value"]["available"]
            else None,
            srm=srm_line(
                sections["value"]["data"].get("srm") if sections["value"]["available"] else None,
                language,
            ),
            column_label=lambda name: content.COLUMN_LABELS[language].get(name, name),
            # The CSV links carry the page's language: their free text follows it.
            query={k: period[k] for k in ("from", "to")}
            | {"period": period["key"], "lang": language},
        )

    @blp.route("/dashboard/<name>.csv", methods=["GET"])
    @page_access("reports")
    def table_csv(name: str):
        # A download has no page to say its period was not taken: answered as the API
        # answers a bad query parameter, not with another period's figures.
        period, problem = read_period(request.args)
        if problem is not None:
            raise ApiError(
                422,
                "request parameters failed validation",
                fields={problem.field: [problem.detail]},
            )
        language = _language()
        section = SECTION_OF_TABLE.get(name, "value")
        table = tables(gather(period, only=section), language).get(name)
        if table is None:
            abort(404, description=f"no table {name!r} (or its source is not available)")
        return Response(
            CSV_BOM + to_csv(table, name, language),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{csv_filename(name, period)}"'},
        )

    return blp
