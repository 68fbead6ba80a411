"""The dashboard's faster reads give the same figures as the straightforward ones.

``service.export.decision_frame`` builds its frame column by column and decodes the
stored features and times for all rows at once, ``_join_events`` sets the rows of
customers without events at once, and ``service.reports._columns`` converts whole
columns: at 100,000 decisions the page went from 11-17 s to a few (``bench/dashboard.py``).
Here the old row-by-row implementation is kept as the reference and both run on the same
few thousand decisions (outcomes, events at the windows' edges, extra features) on each
backend: the frames must be equal value for value and dtype for dtype, and the value,
drift and organic sections equal too.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from models.registry import Registry
from models.schema import COLUMN_BY_NAME, CONTEXT_FEATURES
from models.value_report import UPGRADES_WITHOUT_VALUE
from service import export, reports
from service.db import (
    READ_ONLY,
    customer_events,
    decisions,
    make_engine,
    outcomes,
    upgrade,
    utcnow,
)


# ------------------------------------------------------------ the reference
def _reference_read(conn: sa.Connection, since, until, contact_policy: bool) -> tuple:
    condition = sa.true()
    if since is not None:
        condition = sa.and_(condition, decisions.c.occurred_at >= since)
    if until is not None:
        condition = sa.and_(condition, decisions.c.occurred_at < until)
    joined = decisions.outerjoin(outcomes, outcomes.c.decision_id == decisions.c.decision_id)
    policy = (
        (
            decisions.c.response[("contact_policy", "allow_attempt")].label("attempt_allowed"),
            decisions.c.response[("contact_policy", "blocked_activities")].label(
                "blocked_activities"
            ),
        )
        if contact_policy
        else ()
    )
    query = (
        sa.select(
            *(
                decisions.c[name]
                for name in (
                    "decision_id",
                    "interaction_id",
                    "customer_id",
                    "occurred_at",
                    "channel",
                    "issue_type",
                    "language",
                    "features",
                    "suggested_activity",
                    "propensity",
                    "pool_id",
                    "pool_propensity",
                    "model_version",
                    "experiment_arm",
                    "degraded",
                    "openness",
                    "best_activity",
                    "shadow_version",
                    "shadow_activity",
                )
            ),
            outcomes.c.decision_id.label("outcome_id"),
            outcomes.c.activity.label("delivered_activity"),
            *(
                outcomes.c[name]
                for name in (
                    "offered",
                    "accepted",
                    "ve_success",
                    "ves_confidence",
                    "ves_ability",
                    "resolved",
                    "handle_time_s",
                    "csat",
                    "nps",
                    "ces",
                    "agent_id",
                )
            ),
            outcomes.c.pool_id.label("outcome_pool_id"),
            *policy,
        )
        .select_from(joined)
        .where(condition)
        .order_by(decisions.c.occurred_at, decisions.c.decision_id)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    events: list[dict[str, Any]] = []
    if rows:
        first = min(r["occurred_at"] for r in rows)
        events = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(
                    customer_events.c.customer_id,
                    customer_events.c.type,
                    customer_events.c.occurred_at,
                    customer_events.c.value,
                ).where(customer_events.c.occurred_at >= first)
            )
        ]
    return rows, events


def _bool(value: Any) -> float:
    return math.nan if value is None else float(bool(value))


def reference_frame(engine, since=None, until=None, now=None, contact_policy=False):
    """``decision_frame`` as it was: a dict per row, then ``from_records``."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        rows, events = _reference_read(conn, since, until, contact_policy)
    now = now or utcnow()
    records = []
    extra_names: set[str] = set()
    for r in rows:
        features = dict(r["features"] or {})
        record: dict[str, Any] = {name: features.get(name) for name in CONTEXT_FEATURES}
        for name, value in features.items():
            if name not in record and name not in COLUMN_BY_NAME:
                record[name] = value
                extra_names.add(name)
        record.update(
            interaction_id=r["interaction_id"],
            customer_id=r["customer_id"],
            occurred_at=r["occurred_at"],
            channel=r["channel"] or features.get("channel"),
            issue_type=r["issue_type"] or features.get("issue_type"),
            language=features.get("language") or r["language"],
            activity=r["suggested_activity"],
            propensity=r["propensity"],
            agent_id=r["agent_id"],
            pool_id=r["outcome_pool_id"] or r["pool_id"],
            ve_success=_bool(r["ve_success"]),
            ves_confidence=r["ves_confidence"],
            ves_ability=r["ves_ability"],
            accepted=_bool(r["accepted"]),
            offered=_bool(r["offered"]),
            handle_time_s=r["handle_time_s"],
            csat=r["csat"],
            nps=r["nps"],
            ces=r["ces"],
            decision_id=r["decision_id"],
            model_version=r["model_version"],
            experiment_arm=r["experiment_arm"],
            pool_propensity=r["pool_propensity"],
            routed_pool_id=r["pool_id"],
            openness=r["openness"],
            degraded=float(bool(r["degraded"])),
            delivered_activity=r["delivered_activity"],
            resolved=_bool(r["resolved"]),
            best_activity=r["best_activity"],
            shadow_version=r["shadow_version"],
            shadow_activity=r["shadow_activity"],
            has_outcome=r["outcome_id"] is not None,
        )
        if contact_policy:
            record.update(
                export._contact_policy(r.get("attempt_allowed"), r.get("blocked_activities"))
            )
        records.append(record)
    columns = [*export.CANONICAL, *export.VEA_ONLY, *sorted(extra_names)]
    frame = pd.DataFrame.from_records(records, columns=[*columns, "has_outcome"])
    _reference_join_events(frame, events, now)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"]).dt.tz_localize("UTC")
    for name in (
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
    ):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


def _reference_join_events(frame: pd.DataFrame, events: list[dict], now: datetime) -> None:
    names = (*export.RETENTION_WINDOWS, "upgraded", "upgrade_revenue_60d", UPGRADES_WITHOUT_VALUE)
    out = {name: np.full(len(frame), np.nan) for name in names}
    by_customer: dict[str, list] = {}
    revenue: dict[str, list] = {}
    for e in events:
        by_customer.setdefault(e["customer_id"], []).append((e["occurred_at"], e["type"]))
        if e["type"] == "upgraded":
            revenue.setdefault(e["customer_id"], []).append((e["occurred_at"], e["value"]))
    for i, (customer, at) in enumerate(
        zip(frame["customer_id"], frame["occurred_at"], strict=True)
    ):
        later = [(t, kind) for t, kind in by_customer.get(customer, ()) if t >= at]
        for name, days in export.RETENTION_WINDOWS.items():
            end = at + timedelta(days=days)
            if now < end and not any(kind in export.STAY_EVENTS and t >= end for t, kind in later):
                continue
            churned = any(kind in export.CHURN_EVENTS and t <= end for t, kind in later)
            out[name][i] = 0.0 if churned else 1.0
            if name == "retained_60d":
                values = [v for t, v in revenue.get(customer, ()) if at <= t <= end]
                out["upgrade_revenue_60d"][i] = float(sum(v for v in values if v is not None))
                out[UPGRADES_WITHOUT_VALUE][i] = float(sum(v is None for v in values))
        end = at + timedelta(days=export.UPGRADE_WINDOW_DAYS)
        if now >= end:
            out["upgraded"][i] = float(any(k == "upgraded" and t <= end for t, k in later))
    for name in names:
        frame[name] = out[name]


def reference_columns(frame: pd.DataFrame) -> dict[str, list]:
    return {
        name: [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in col]
        for name, col in ((c, frame[c].tolist()) for c in frame.columns)
    }


# ----------------------------------------------------------------- the data
@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def filled(request, tmp_path_factory, trained_registry):
    """A database of its own (the suite's shared one holds other tests' rows) with 2,000
    bench decisions, a few with extra features, and events on the windows' edges. Filled
    once for the module's tests on each backend: they read it, and the one test that
    changes rows puts them back."""
    from bench.dashboard import fill

    registry_dir = trained_registry  # read only, for the versions (the tests' copies hold them)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('equivalence') / 'equivalence.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(
            f"vea_equiv_{uuid.uuid4().hex[:8]}"
        )
    upgrade(url)
    champion = Registry(registry_dir).champion()
    fill(url, 2000, champion, seed=11)
    engine = make_engine(url)
    now = utcnow()
    with engine.begin() as conn:
        first = conn.execute(
            sa.select(decisions.c.decision_id, decisions.c.customer_id, decisions.c.occurred_at)
            .order_by(decisions.c.occurred_at)
            .limit(40)
        ).all()
        for n, (decision_id, _customer, _at) in enumerate(first[:10]):
            features = {"channel": "chat", "plan": f"p{n % 3}", "score": n * 0.5}
            if n % 2:
                features["loyalty_tier"] = n
            conn.execute(
                decisions.update()
                .where(decisions.c.decision_id == decision_id)
                .values(features=features, channel=None, issue_type=None)
            )
        edges = []
        for n, (_id, customer, at) in enumerate(first):
            kind = ("churned", "renewed", "retained", "upgraded")[n % 4]
            for days in (0, 30, 60, 90):
                moment = at + timedelta(days=days)
                edges.append(
                    {
                        "customer_id": customer,
                        "type": kind,
                        "occurred_at": moment,
                        "value": None if n % 3 == 0 else 12.5,
                        "recorded_at": now,
                        "payload": {},
                    }
                )
        conn.execute(customer_events.insert(), edges)
        # Three model versions: the champion, the other one, one the registry lost.
        other = next(
            v["version"] for v in Registry(registry_dir).versions() if v["version"] != champion
        )
        ids = [d for (d,) in conn.execute(sa.select(decisions.c.decision_id))]
        for version, chosen in ((other, ids[::7]), ("gone-version", ids[3::50])):
            conn.execute(
                decisions.update()
                .where(decisions.c.decision_id.in_(chosen))
                .values(model_version=version)
            )
    yield engine
    engine.dispose()


MOMENTS = (timedelta(0), timedelta(days=45), timedelta(days=75), timedelta(days=120))


@pytest.mark.parametrize("later", MOMENTS)
def test_decision_frame_equals_the_row_by_row_reference(filled, later):
    now = utcnow() + later
    for contact_policy in (False, True):
        new = export.decision_frame(filled, now=now, contact_policy=contact_policy)
        old = reference_frame(filled, now=now, contact_policy=contact_policy)
        assert len(new) == 2000
        assert list(new.columns) == list(old.columns)
        assert list(new.dtypes) == list(old.dtypes)
        pd.testing.assert_frame_equal(new, old, check_exact=True)
    # The extra features are columns; some customers' events decided their retention.
    assert {"plan", "score", "loyalty_tier"} <= set(new.columns)
    if later >= timedelta(days=45):
        assert set(new["retained_30d"].dropna()) == {0.0, 1.0}


def test_a_period_and_an_empty_one_equal_the_reference(filled):
    now = utcnow()
    since, until = now - timedelta(days=10), now - timedelta(days=3)
    new = export.decision_frame(filled, since, until, now=now)
    old = reference_frame(filled, since, until, now=now)
    assert 0 < len(new) < 2000
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    empty_new = export.decision_frame(filled, now + timedelta(days=1), now=now)
    empty_old = reference_frame(filled, now + timedelta(days=1), now=now)
    assert empty_new.empty
    assert list(empty_new.columns) == list(empty_old.columns)


def test_the_sections_equal_the_reference(filled, registry_dir, monkeypatch):
    from service.config import Settings

    settings = Settings.from_env(overrides={"registry": str(registry_dir)})
    registry = Registry(registry_dir)
    now = utcnow() + timedelta(days=70)  # 30- and 60-day windows closed for some rows
    frame = export.decision_frame(filled, now=now)
    assert reports._columns(frame) == reference_columns(frame)

    def sections() -> dict[str, Any]:
        return {
            "value": reports.value(filled, settings, None, None, frame=frame),
            "drift": reports.drift(filled, settings, registry, None, None, frame=frame),
            "organic": reports.organic(filled, None, None, frame=frame),
        }

    new = sections()
    # The shadow comparison's economics, per row as before (each version's, read once).
    shadow = reports._shadow(filled, settings, frame, None, None)
    versions = frame["model_version"].astype(str).tolist()
    assert len(set(versions)) == 3
    economics = reports._economics_of(settings, set(versions))
    expected_costs = np.array([economics[v].action_costs() for v in versions])
    np.testing.assert_array_equal(shadow["costs"], expected_costs.reshape(len(frame), -1))
    np.testing.assert_array_equal(
        shadow["value_of_success"], np.array([economics[v].value_of_success for v in versions])
    )
    monkeypatch.setattr(reports, "_columns", reference_columns)
    frame = reference_frame(filled, now=now)
    old = sections()
    assert repr(new) == repr(old)


# -------------------------------------------------------------------- the cache
def test_a_page_seen_again_is_kept_until_new_data_or_its_age_limit(
    app, client, keys, new_id, monkeypatch
):
    from service.web import dashboard
    from tests.test_dashboard_reads import _frame_reads, _post_contact
    from tests.test_pages import log_in, raw_key

    _post_contact(client, keys, new_id)
    log_in(client, raw_key(keys["manager"]))
    first, reads = _frame_reads(app, client, "/dashboard?period=all")
    assert reads == 1
    # Seen again (another language, a download of its table): the sections are kept.
    again, reads = _frame_reads(app, client, "/dashboard?period=all")
    assert (again, reads) == (first, 0)
    assert _frame_reads(app, client, "/dashboard/uplift.csv?period=all")[1] == 0
    # A new outcome changes the data version: the next view reads and shows it.
    _post_contact(client, keys, new_id)
    _, reads = _frame_reads(app, client, "/dashboard?period=all")
    assert reads == 1
    # What the version cannot see shows once the kept sections are older than the limit.
    monkeypatch.setattr(dashboard, "CACHE_SECONDS", 0.0)
    assert _frame_reads(app, client, "/dashboard?period=all")[1] == 1


def test_the_cache_is_bounded_and_forgets_the_oldest(monkeypatch):
    from service.web import dashboard

    cache = dashboard._SectionCache()
    for n in range(dashboard.CACHE_ENTRIES + 5):
        cache.put(("period", n), {"available": True, "data": n})
    assert len(cache._entries) == dashboard.CACHE_ENTRIES
    assert cache.get(("period", 0)) is None
    kept = cache.get(("period", dashboard.CACHE_ENTRIES + 4))
    assert kept == {"available": True, "data": dashboard.CACHE_ENTRIES + 4}
    kept["data"] = "changed by a caller"
    assert cache.get(("period", dashboard.CACHE_ENTRIES + 4))["data"] != "changed by a caller"


# ----------------------------------------------- the computations, against the reference
# ``models.value_report`` reads a frame's numbers, flags and times as arrays
# (``reports.FrameColumns``), groups each table's rows in one sort, and counts customers
# by integer codes; ``models.drift`` counts a feature's values at once; the shadow rows
# are aligned by an index. The figures must equal those of the code before
# (``tests/dashboard_reference.py``) to the last digit.
EXPERIMENT = "equivalence-experiment"


def _settings(registry_dir, **overrides):
    from service.config import Settings

    return Settings.from_env(overrides={"registry": str(registry_dir), **overrides})


def _arms_by_the_hash(engine) -> Callable[[], None]:
    """The stored arms as the service assigns them under ``EXPERIMENT``: a 20% holdout,
    then 30% from the middle of the period on (the report finds and dates the change).
    Returns what puts the arms stored before back (the module's tests share the rows)."""
    from models.exploration import holdout_draw

    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(
                decisions.c.decision_id, decisions.c.customer_id, decisions.c.experiment_arm
            ).order_by(decisions.c.occurred_at)
        ).all()
        for n, (decision_id, customer, _arm) in enumerate(rows):
            share = 0.2 if n < len(rows) // 2 else 0.3
            arm = "holdout" if holdout_draw(customer, EXPERIMENT) < share else "treatment"
            conn.execute(
                decisions.update()
                .where(decisions.c.decision_id == decision_id)
                .values(experiment_arm=arm)
            )

    def restore() -> None:
        with engine.begin() as conn:
            conn.execute(
                decisions.update()
                .where(decisions.c.decision_id == sa.bindparam("stored_id"))
                .values(experiment_arm=sa.bindparam("stored_arm")),
                [{"stored_id": d, "stored_arm": arm} for d, _customer, arm in rows],
            )

    return restore


@pytest.mark.parametrize("variant", ["default", "hashed arms", "weighted reward"])
def test_the_value_report_equals_the_reference(filled, registry_dir, variant, request):
    from models.schema import Reward
    from tests import dashboard_reference as reference

    overrides: dict[str, Any] = {}
    reward = None
    if variant == "hashed arms":
        request.addfinalizer(_arms_by_the_hash(filled))
        overrides = {"holdout_share": 0.3, "experiment": EXPERIMENT}
    if variant == "weighted reward":
        reward = Reward("weighted", (("ve_success", 1.0), ("accepted", 0.5)))
        overrides = {"success_measures": "ve_success,retained_60d"}
    settings = _settings(registry_dir, **overrides)
    now = utcnow() + timedelta(days=70)  # 60-day windows closed for some rows: ROI known
    periods = [(None, None), (utcnow() - timedelta(days=12), utcnow() - timedelta(days=2))]
    for since, until in periods:
        frame = export.decision_frame(filled, since, until, now=now)
        new = reports.value(filled, settings, since, until, reward=reward, frame=frame)
        old = reference.value(filled, settings, since, until, reward=reward, frame=frame)
        assert repr(new) == repr(old)
    # The data reaches every part compared: groups, shadow versions, ROI, the SRM's run.
    assert len(new["by"]["agent_id"]) > 100
    assert {c["shadow_version"] for c in old["shadow"]["comparisons"]}
    assert old["roi"]["per_customer"]["value"] is not None
    if variant == "hashed arms":
        full = reference.value(filled, settings, None, None, frame=export.decision_frame(filled))
        assert (
            full["srm"]["share_changes"] == 1 and full["srm"]["share_history"][1]["changed_after"]
        )


def test_an_empty_period_and_bare_lists_equal_the_reference(filled, registry_dir):
    from models.value_report import value_report
    from tests import dashboard_reference as reference

    settings = _settings(registry_dir)
    later = utcnow() + timedelta(days=1)
    empty = export.decision_frame(filled, later)
    assert empty.empty
    new = reports.value(filled, settings, later, None, frame=empty)
    assert repr(new) == repr(reference.value(filled, settings, later, None, frame=empty))
    # Plain lists (a log read from a file, ``vea report``) give the same report too, and
    # without the optional columns (times, customers, arms) as well.
    frame = export.decision_frame(filled)
    lists = reports._columns(frame)
    value_settings = reports.value_settings(settings)
    assert repr(value_report(lists, value_settings)) == repr(
        reference.value_report(lists, value_settings)
    )
    bare = {k: v for k, v in lists.items() if k not in ("occurred_at", "customer_id")}
    assert repr(value_report(bare, value_settings)) == repr(
        reference.value_report(bare, value_settings)
    )


def test_drift_equals_the_reference(filled, registry_dir):
    from tests import dashboard_reference as reference

    settings = _settings(registry_dir)
    registry = Registry(registry_dir)
    frame = export.decision_frame(filled)
    new = reports.drift(filled, settings, registry, None, None, frame=frame)
    old = reference.drift(filled, settings, registry, None, None, frame=frame)
    assert new["has_reference"] and len(new["features"]) >= 5
    assert repr(new) == repr(old)


def test_feature_shares_are_counted_as_before():
    from models.drift import _live_shares, reference_histogram
    from tests import dashboard_reference as reference

    rng = np.random.default_rng(5)
    numbers = rng.normal(size=500)
    numeric = reference_histogram(numbers.tolist(), numeric=True)
    live = rng.normal(0.3, 1.2, size=400)
    live[::7] = np.nan
    categories = reference_histogram(["a", "b", "b", None, "c"] * 20, numeric=False)
    cases = [
        (numeric, live),  # an array of numbers, NaN missing
        (numeric, [None if np.isnan(v) else float(v) for v in live]),  # the same as a list
        (numeric, [3, None, 1, float("nan"), 7]),  # whole numbers, None and NaN
        (categories, ["a", None, "z", float("nan"), "b", 1, "c", "a"]),  # unseen, missing
    ]
    for histogram, values in cases:
        assert _live_shares(histogram, values) == reference._live_shares(histogram, values)


def test_times_read_at_once_are_the_times_read_one_by_one():
    from models.value_report import _order, _timestamp

    moments = [
        datetime(2026, 3, 1, 12, 0, 0, 123456),
        datetime(1969, 12, 31, 23, 59, 59, 999999),  # before the epoch
        datetime(2199, 12, 31, 23, 59, 59, 1),
        None,
    ]
    times = np.array([np.datetime64("NaT") if m is None else m for m in moments], "M8[us]")
    read = _order({"occurred_at": times}, len(moments))
    expected = [np.inf if m is None else _timestamp(m) for m in moments]
    assert read.tolist() == expected


def test_texts_group_and_order_as_numpy_text_did():
    """Groups and customers are ranked without numpy's text arrays, which drop trailing
    NULs and order by code point: the same groups in the same order (the API refuses
    control characters, but a log read from a file may hold anything)."""
    from models.value_report import ValueSettings, value_report
    from tests import dashboard_reference as reference

    rng = np.random.default_rng(9)
    n = 400
    texts = ["a", "a\x00", "b", "B", "é", "ä", "a b", "", "z\x00\x00", "日本"]
    columns = {
        "decision_id": [f"d{i}" for i in range(n)],
        "customer_id": [texts[i % len(texts)] + str(i % 37) for i in range(n)],
        "segment": [texts[int(k)] for k in rng.integers(len(texts), size=n)],
        "agent_id": [None if i % 11 == 0 else texts[i % len(texts)] for i in range(n)],
        "experiment_arm": ["holdout" if i % 5 == 0 else "treatment" for i in range(n)],
        "activity": ["none" if i % 3 == 0 else "educate_usage" for i in range(n)],
        "ve_success": rng.integers(0, 2, size=n).astype(float).tolist(),
        "offered": rng.integers(0, 2, size=n).astype(float).tolist(),
        "handle_time_s": rng.uniform(60, 600, size=n).tolist(),
        "retained_60d": rng.integers(0, 2, size=n).astype(float).tolist(),
    }
    settings = ValueSettings(holdout_share=0.2, experiment="texts")
    assert repr(value_report(columns, settings)) == repr(reference.value_report(columns, settings))
