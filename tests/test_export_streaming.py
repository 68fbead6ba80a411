"""`vea export` streams: the period is read, built and written a chunk at a time
(``service.export.CHUNK_ROWS``), and the file is the one a frame of the whole period
gives (``decision_frame`` -> ``training_rows`` -> ``write_table``, the export before it
streamed): CSV byte for byte, Parquet table for table. The data is chosen for what a
chunk alone would get wrong: a column's dtype (integers with a value missing in another
chunk are written 3.0), a string column empty in the first chunk (Parquet's schema), the
precision of the times (CSV writes every time with the finest any has), extra features
that appear later, a customer's decisions and events across chunk boundaries
(retention, upgrade revenue summed per customer), an erased customer.

Also here: ``models.tables.TableShape`` infers a column's dtype from chunks as pandas
does from all its values, and ``write_chunks`` writes what ``write_table`` writes.
"""

from __future__ import annotations

import math
import os
import random
import tracemalloc
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from models.tables import TableShape, write_chunks, write_table
from service import export
from service.db import customer_events, decisions, make_engine, outcomes, surveys, upgrade

NOW = datetime(2026, 6, 1, 12, 0, 0)
CUSTOMERS = [f"cust-{n}" for n in range(7)]


def _features(n: int) -> dict:
    features = {
        "channel": "chat",
        "issue_type": "billing",
        "segment": ("consumer", "smb", None)[n % 3],
        # Missing in the first chunks, a string later: a column of strings (Parquet).
        "persona": None if n < 20 else "analyst",
        # An integer everywhere but one row: float64 for the period, written 3.0.
        "switching_effort": None if n == 41 else 1 + n % 4,
        "language": "ja" if n % 5 else "en",
        "tenure_months": n % 13,
        "prior_contacts_30d": n % 3,
        "sentiment": None if n % 6 == 0 else round(0.1 * (n % 7) - 0.3, 2),
    }
    if n >= 23:
        features["plan"] = f"p{n % 3}"  # an extra feature that appears in a later chunk
    if n != 44:
        features["loyalty"] = n % 5  # integers, one missing far from the first chunk
    if n % 4 == 0:
        features["vip"] = n % 8 == 0  # booleans beside missing values: object
    features["note"] = None if n < 14 else f"note {n}, with a comma"
    return features


def _fill(engine: sa.Engine) -> None:
    """58 decisions over 150 days, about two in three with an outcome; customers'
    events of every kind; the decisions of a customer erased since."""
    from service.deletion import forget_customer

    rows, results, answers = [], [], []
    for n in range(58):
        customer = "erased-1" if n in (5, 30) else CUSTOMERS[n % len(CUSTOMERS)]
        at = NOW - timedelta(days=150) + timedelta(days=2.5 * n)
        # Whole seconds first, then milliseconds and microseconds: CSV writes every time
        # of the column with the finest precision.
        at = at.replace(microsecond=0 if n < 15 else (123000 if n < 30 else 654321))
        decision_id = f"{n:032x}"
        holdout = n % 9 == 0
        response = {"decision_id": decision_id, "activities": []}
        if n % 10 != 3:
            response["contact_policy"] = {
                "allow_attempt": n % 7 != 0,
                "blocked_activities": ["advise_new_uses"] if n % 4 == 1 else [],
            }
        rows.append(
            {
                "decision_id": decision_id,
                "interaction_id": f"i-{n}",
                "customer_id": customer,
                "occurred_at": at,
                "created_at": at,
                "channel": None if n % 8 == 2 else "voice",
                "issue_type": None if n % 8 == 3 else "how_to",
                "language": "ja",
                "features": _features(n),
                "suggested_activity": "none" if holdout else "advise_new_uses",
                "propensity": 1.0 if holdout else 0.25 + 0.01 * n,
                "pool_id": None if n % 5 == 0 else "general",
                "pool_propensity": None if n % 3 else 0.5,
                "model_version": "m1" if n < 40 else "m2",
                "experiment_arm": "holdout" if holdout else "treatment",
                "degraded": n % 11 == 0,
                "openness": 0.1 + 0.01 * n,
                "response": response,
                "best_activity": None if n < 10 else "advise_new_uses",
                # Only in the last chunks: empty strings columns before (Parquet's schema).
                "shadow_version": "m2" if n >= 50 else None,
                "shadow_activity": "none" if n >= 50 else None,
                "shadow": None,
            }
        )
        if n % 3 != 2:
            surveyed = n % 4 != 1
            results.append(
                {
                    "decision_id": decision_id,
                    "activity": "none" if holdout else "advise_new_uses",
                    "offered": not holdout,
                    "accepted": None if holdout else n % 2 == 0,
                    "ve_success": (n % 5 < 2) if surveyed else None,
                    "ves_confidence": 1 + n % 7 if surveyed else None,
                    "ves_ability": 1 + (n * 3) % 7 if surveyed else None,
                    "resolved": None if n % 7 == 3 else n % 2 == 1,
                    "handle_time_s": 100.5 + n,
                    "csat": 1 + n % 5 if surveyed else None,
                    "nps": n % 11 if n % 3 == 0 else None,
                    "ces": None,
                    "agent_id": None if n < 12 else f"agent-{n % 4}",
                    "pool_id": None if n % 4 == 0 else "billing",
                    "occurred_at": at + timedelta(minutes=5),
                    "recorded_at": at + timedelta(minutes=5),
                    "payload": {},
                }
            )
        elif n % 6 == 2:
            answers.append(
                {
                    "decision_id": decision_id,
                    "ves_confidence": 5,
                    "recorded_at": at + timedelta(hours=2),
                    "updated_at": at + timedelta(hours=2),
                }
            )
    events = []
    kinds = ("churned", "renewed", "retained", "upgraded", "upgraded", "upgraded")
    for n in range(60):
        customer = CUSTOMERS[n % len(CUSTOMERS)] if n % 13 else "erased-1"
        kind = kinds[n % len(kinds)]
        events.append(
            {
                "customer_id": customer,
                "type": kind,
                # From before the first decision to after now.
                "occurred_at": NOW - timedelta(days=170) + timedelta(days=3.1 * n),
                # Upgrade values whose float sum depends on their order.
                "value": None if n % 5 == 0 else (0.1, 0.2, 0.3, 1e16, 1.0)[n % 5],
                "recorded_at": NOW,
                "payload": {},
            }
        )
    with engine.begin() as conn:
        conn.execute(decisions.insert(), rows)
        conn.execute(outcomes.insert(), results)
        conn.execute(surveys.insert(), answers)
        conn.execute(customer_events.insert(), events)
    assert forget_customer(engine, "erased-1")["decisions"] == 2


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def varied(request, tmp_path) -> sa.Engine:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'varied.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(
            f"vea_stream_{uuid.uuid4().hex[:8]}"
        )
    upgrade(url)
    engine = make_engine(url)
    _fill(engine)
    yield engine
    engine.dispose()


def _whole_export(engine: sa.Engine, out: Path) -> tuple[int, int, int]:
    """The export as it was before it streamed: the whole period's frame, then one write."""
    frame = export.decision_frame(engine, now=NOW, contact_policy=True)
    rows, pending = export.training_rows(frame)
    export.check_rows(rows)
    write_table(rows, out)
    return len(rows), pending, int(rows["ve_success"].isna().sum())


def _small_chunks(monkeypatch) -> list[int]:
    """Chunks of 7 decisions, events asked for 2 customers at a time; the sizes read."""
    monkeypatch.setattr(export, "CHUNK_ROWS", 7)
    monkeypatch.setattr(export, "EVENT_CUSTOMERS", 2)
    sizes: list[int] = []
    decode = export._decode

    def counted(names, rows):
        sizes.append(len(rows))
        return decode(names, rows)

    monkeypatch.setattr(export, "_decode", counted)
    return sizes


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_streamed_export_is_the_whole_frames_file(varied, tmp_path, monkeypatch, suffix):
    reference = tmp_path / f"whole{suffix}"
    expected = _whole_export(varied, reference)
    sizes = _small_chunks(monkeypatch)
    out = tmp_path / "out" / f"streamed{suffix}"
    old_umask = os.umask(0o022)
    try:
        result = export.export_log(varied, out, now=NOW)
    finally:
        os.umask(old_umask)

    # Read twice (layout, then rows) in chunks of 7, never the whole period at once.
    assert max(sizes) == 7 and sum(sizes) == 2 * 56
    assert (result.rows, result.pending, result.without_ves) == expected
    assert result.rows == 38 and result.surveys_pending == 10
    assert (out.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temporary file
    if suffix == ".csv":
        assert out.read_bytes() == reference.read_bytes()
        text = pd.read_csv(out, dtype=str, keep_default_na=False)
        # What a chunk alone would have written otherwise: 3 for 3.0, no fraction.
        assert text["loyalty"].iloc[0] == "0.0"
        assert text["switching_effort"].iloc[0] == "1.0"
        assert text["occurred_at"].iloc[0].endswith(":00.000000+00:00")
    else:
        old, new = pq.read_table(reference), pq.read_table(out)
        assert new.schema.equals(old.schema) and new.equals(old)
        assert str(new.schema.field("shadow_version").type) == "large_string"
        assert str(new.schema.field("vip").type) == "bool"
        pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(reference))
    log = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert "erased-1" not in set(log["customer_id"])
    # Retention and upgrade revenue came from events of customers across chunks.
    assert set(log["retained_30d"].dropna()) == {0.0, 1.0}
    assert log["upgrade_revenue_60d"].max() > 1e15


def test_an_empty_period_writes_the_same_header_and_schema(varied, tmp_path, monkeypatch):
    later = NOW + timedelta(days=1)
    for suffix in (".csv", ".parquet"):
        frame = export.decision_frame(varied, later, now=NOW, contact_policy=True)
        write_table(export.training_rows(frame)[0], tmp_path / f"whole{suffix}")
        result = export.export_log(varied, tmp_path / f"streamed{suffix}", later, now=NOW)
        assert (result.rows, result.pending) == (0, 0)
    whole, streamed = tmp_path / "whole.csv", tmp_path / "streamed.csv"
    assert streamed.read_bytes() == whole.read_bytes()
    old, new = (
        pq.read_table(tmp_path / "whole.parquet"),
        pq.read_table(tmp_path / "streamed.parquet"),
    )
    assert new.schema.equals(old.schema) and new.num_rows == 0


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_failed_export_leaves_the_earlier_file_and_nothing_else(
    varied, tmp_path, monkeypatch, suffix
):
    _small_chunks(monkeypatch)
    out = tmp_path / "exports" / f"log{suffix}"
    out.parent.mkdir()
    out.write_bytes(b"the export of yesterday")
    build, calls = export._build, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 12:  # the fourth chunk written: three are in the file already
            raise OSError(28, "No space left on device")
        return build(*args, **kwargs)

    monkeypatch.setattr(export, "_build", failing)
    with pytest.raises(OSError, match="No space"):
        export.export_log(varied, out, now=NOW)
    assert out.read_bytes() == b"the export of yesterday"
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_a_bad_extension_is_refused_before_reading(varied, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_chunks", lambda *a, **k: pytest.fail("read"))
    with pytest.raises(export.ExportError, match="unknown output format"):
        export.export_log(varied, tmp_path / "log.xlsx", now=NOW)


# ---------------------------------------------------------------------------- memory
def _bench_database(path: Path, n: int) -> sa.Engine:
    from bench.dashboard import fill

    url = f"sqlite:///{path}"
    upgrade(url)
    fill(url, n, "bench-model", seed=5)
    return make_engine(url)


def _traced_peak(engine: sa.Engine, out: Path) -> int:
    tracemalloc.start()
    try:
        export.export_log(engine, out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_export_memory_does_not_grow_with_the_period(tmp_path, monkeypatch):
    """Four times the decisions, about the same memory: a chunk's, not the period's
    (before: the whole period's rows, columns and frame, ~4 KB a decision, so that a
    year of a contact center's decisions could not be exported at all)."""
    monkeypatch.setattr(export, "CHUNK_ROWS", 200, raising=False)
    small = _bench_database(tmp_path / "small.db", 600)
    large = _bench_database(tmp_path / "large.db", 2400)
    export.export_log(small, tmp_path / "warm.csv")  # lazy imports, caches
    peaks = {
        name: _traced_peak(e, tmp_path / f"{name}.csv")
        for name, e in (("small", small), ("large", large))
    }
    assert peaks["large"] < 1.5 * peaks["small"], peaks
    small.dispose()
    large.dispose()


# ------------------------------------------------------------------------ TableShape
KINDS = (
    lambda r: r.randint(-5, 5),
    lambda r: r.random(),
    lambda r: None,
    lambda r: math.nan,
    lambda r: r.choice("abc"),
    lambda r: r.choice([True, False]),
    lambda r: float(r.randint(0, 3)),
    lambda r: 2**63 + r.randint(0, 3),
)


@pytest.mark.parametrize("as_given", [False, True])
def test_table_shape_infers_the_dtype_of_the_whole_column(as_given):
    """From chunks of a column (inferred each, or kept as given: the export's features),
    the dtype pandas gives all the values at once. Integers past int64 only as given: a
    chunk's float64 no longer says whether its numbers were integers."""
    r = random.Random(3)
    kinds = KINDS if as_given else KINDS[:-1]
    for _ in range(1500):
        chosen = r.sample(kinds, r.randint(1, 3))
        values = [r.choice(chosen)(r) for _ in range(r.randint(1, 12))]
        cuts = sorted(r.sample(range(1, len(values)), min(len(values) - 1, r.randint(0, 3))))
        shape = TableShape()
        for start, end in zip([0, *cuts], [*cuts, len(values)], strict=True):
            part = values[start:end]
            shape.add(pd.DataFrame({"x": pd.Series(part, dtype=object) if as_given else part}))
        assert shape.dtypes()["x"] == pd.DataFrame({"x": values})["x"].dtype, (values, cuts)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_chunks_writes_what_write_table_writes(tmp_path, suffix):
    times = pd.to_datetime(
        pd.Series(["2026-01-01 00:00:00", "2026-01-02 03:04:05", "2026-01-03 00:00:00.25", None]),
        format="ISO8601",
    ).dt.tz_localize("UTC")
    whole = pd.DataFrame(
        {
            "at": times,
            "naive_day": pd.to_datetime(pd.Series(["2026-01-01", "2026-01-02", None, None])),
            "name": [None, None, "a, b", "c"],
            "count": [1.0, 2.0, math.nan, 4.0],
            "flag": [True, None, None, False],
        }
    )
    write_table(whole, tmp_path / f"whole{suffix}")
    shape = TableShape()
    chunks = [whole.iloc[:2], whole.iloc[2:3], whole.iloc[3:]]
    for chunk in chunks:
        shape.add(chunk)
    write_chunks(iter(chunks), tmp_path / f"chunks{suffix}", shape)
    if suffix == ".csv":
        assert (tmp_path / "chunks.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    else:
        old, new = (
            pq.read_table(tmp_path / "whole.parquet"),
            pq.read_table(tmp_path / "chunks.parquet"),
        )
        assert new.schema.equals(old.schema) and new.equals(old)
