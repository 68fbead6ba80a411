"""The dashboard's data version (``service.web.dashboard._data_version``), asked on every
view, costs the same at any size: each table's latest write is the end of an index
(migration 0015) and the rows written just before it a short range of it; no table is
read whole. It still changes with every write the kept sections depend on: a decision,
outcome, survey answer or event stored, replaced or deleted, and a write committed after
a later-stamped one."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from service.db import customer_events, decisions, make_engine, outcomes, surveys, utcnow

INDEXED = {
    "decisions": "ix_decisions_created_at",
    "outcomes": "ix_outcomes_recorded_at",
    "surveys": "ix_surveys_updated_at",
    "customer_events": "customer_events_pkey",  # PostgreSQL's name; SQLite: its rowid
    "audit_events": "audit_events_pkey",
}


def _version(app) -> tuple:
    from service.web import dashboard

    with app.app_context():
        version = dashboard._data_version()
    assert version is not None
    return version


def _decision(n: int, customer: str, at) -> dict:
    return {
        "decision_id": f"dv{n:030d}",
        "interaction_id": f"dv-{n}",
        "customer_id": customer,
        "occurred_at": at,
        "created_at": at,
        "features": {"channel": "chat"},
        "suggested_activity": "none",
        "propensity": 1.0,
        "model_version": "m",
        "openness": 0.5,
        "response": {},
    }


def test_every_kind_of_write_changes_the_version(own_app):
    from service.deletion import forget_customer

    engine = own_app.extensions["vea"].engine
    now = utcnow()
    seen = [_version(own_app)]

    def changed() -> None:
        version = _version(own_app)
        assert version not in seen
        assert _version(own_app) == version  # and stays put without a write
        seen.append(version)

    with engine.begin() as conn:
        conn.execute(decisions.insert(), [_decision(1, "c-1", now), _decision(2, "c-2", now)])
    changed()
    # Stored after a decision stamped later, but committed now (another worker's batch).
    with engine.begin() as conn:
        conn.execute(decisions.insert(), [_decision(3, "c-2", now - timedelta(seconds=5))])
    changed()
    with engine.begin() as conn:  # decided again: the row is replaced, stamped now
        conn.execute(
            decisions.update()
            .where(decisions.c.decision_id == _decision(3, "", now)["decision_id"])
            .values(created_at=utcnow(), suggested_activity="educate_usage")
        )
    changed()
    with engine.begin() as conn:
        conn.execute(
            outcomes.insert().values(
                decision_id=_decision(1, "", now)["decision_id"],
                activity="none",
                offered=False,
                occurred_at=now,
                recorded_at=utcnow(),
                payload={},
            )
        )
    changed()
    survey_id = _decision(2, "", now)["decision_id"]
    with engine.begin() as conn:
        conn.execute(
            surveys.insert().values(
                decision_id=survey_id, ves_confidence=5, recorded_at=now, updated_at=utcnow()
            )
        )
    changed()
    with engine.begin() as conn:  # a later answer to the same survey
        conn.execute(
            surveys.update()
            .where(surveys.c.decision_id == survey_id)
            .values(ves_ability=6, updated_at=utcnow())
        )
    changed()
    with engine.begin() as conn:
        conn.execute(
            customer_events.insert().values(
                customer_id="c-2", type="renewed", occurred_at=now, recorded_at=now, payload={}
            )
        )
    changed()
    # An erasure deletes rows without writing any of them: its audit record tells.
    assert forget_customer(engine, "c-1")["decisions"] == 1
    changed()


def test_the_version_reads_indexes_only(own_app):
    """EXPLAIN on each backend: every latest write and every recent span is searched in
    an index (or SQLite's rowid), never a scan of the table."""
    from bench.dashboard import fill
    from service.web import dashboard

    engine = own_app.extensions["vea"].engine
    fill(str(engine.url.render_as_string(hide_password=False)), 500, "m", seed=2)
    backend = engine.dialect.name
    with engine.connect() as conn:
        if backend == "postgresql":
            # A table of a few hundred rows is cheaper read whole, and PostgreSQL does so;
            # ruled out, the plan must still find an index for each part. (At 100,000
            # decisions it picks them by itself: ``bench/dashboard.py`` prints the plan.)
            conn.exec_driver_sql("SET enable_seqscan = off")
        latest = tuple(conn.execute(dashboard.latest_writes_query()).one())
        plans = []
        for query in (dashboard.latest_writes_query(), dashboard.recent_writes_query(latest)):
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            explain = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
            rows = conn.exec_driver_sql(explain + sql).all()
            plans.append("\n".join(str(row[-1]) for row in rows))
    plan = "\n".join(plans)
    if backend == "sqlite":
        assert " SCAN " not in f" {plan} ".replace("SCAN CONSTANT ROW", ""), plan
        for table in ("decisions", "outcomes", "surveys"):
            assert f"SEARCH {table} USING COVERING INDEX {INDEXED[table]}" in plan, plan
        assert "SEARCH customer_events" in plan and "SEARCH audit_events" in plan, plan
    else:
        assert "Seq Scan" not in plan, plan
        for table, index in INDEXED.items():
            assert f"using {index} on {table}" in plan, plan


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_indexes_come_and_go_with_migration_0015(tmp_path, backend):
    from service.db import downgrade, upgrade

    url = f"sqlite:///{tmp_path / 'indexes.db'}"
    upgrade(url)

    def indexes() -> set[str]:
        engine = make_engine(url)
        try:
            inspector = sa.inspect(engine)
            return {
                ix["name"]
                for table in ("decisions", "outcomes", "surveys")
                for ix in inspector.get_indexes(table)
            }
        finally:
            engine.dispose()

    wanted = {INDEXED[t] for t in ("decisions", "outcomes", "surveys")}
    assert wanted <= indexes()
    downgrade(url, "0014")
    assert not wanted & indexes()
