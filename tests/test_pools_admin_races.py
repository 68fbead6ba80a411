"""Pools admin on SQLite and PostgreSQL: no acknowledged config change is lost, every
pool serves something, and a removed pool's availability report stays gone.

- A rebuild (``POST /v1/pools/rebuild``, ``vea pools rebuild``) read the config, spent
  seconds reading outcomes, then wrote back the config it had read: a ``PUT /v1/pools``
  answered 200 meanwhile was silently undone. The interleavings are forced (the PUT runs
  inside the wrapped outcome reading, or between the rebuild's read and its save), not
  timed with sleeps.
- A pool with no activities, or a lift for an activity the pool does not serve, was
  stored and did nothing.
- A removed pool's last availability report was still listed, and came back with the
  pool when it was added again within the TTL.
"""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from conftest import suite_app
from test_deletion_privileges import _superuser, table_privileges_only  # noqa: F401

from models.pools import PoolError, load_config, parse_config
from service import audit
from service import pools as use_cases
from service.auth import create_key
from service.config import PACKAGE_DIR
from service.db import audit_events, pool_availability
from training.cli import cli

VIP = {"id": "race_vip", "members": ["agent-v"], "activities": ["educate_usage"]}
OTHER = {"id": "race_other", "members": ["agent-o"], "activities": ["achieve_goals"]}


def default_pools() -> list[dict]:
    return load_config(PACKAGE_DIR / "pools.default.yaml").to_dict()["pools"]


def with_pools(*extra: dict) -> dict:
    """The default pools and ``extra``, general last."""
    pools = [p for p in default_pools() if p["id"] != "general"]
    return {"pools": [*pools, *extra, {"id": "general"}]}


def pool_ids(client, headers) -> list[str]:
    answer = client.get("/v1/pools", headers=headers)
    assert answer.status_code == 200, answer.json
    return [p["id"] for p in answer.json["pools"]]


@pytest.fixture
def admin(app, pools_from_the_file) -> tuple[dict[str, str], str]:
    """An admin key's header and its audit actor; the test's availability rows removed."""
    key_id, raw = create_key(pools_from_the_file, "admin")
    yield {"Authorization": f"Bearer {raw}"}, audit.key_actor(key_id)
    with pools_from_the_file.begin() as conn:
        conn.execute(pool_availability.delete().where(pool_availability.c.pool_id.like("race_%")))


def actions(engine, actor: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_events.c.action)
            .where(audit_events.c.actor == actor)
            .order_by(audit_events.c.id)
        )
        return [row.action for row in rows]


def put_from_another_thread(app, headers, config: dict):
    """``PUT /v1/pools`` by another client, done when this returns (a forced interleaving:
    the caller is inside the rebuild)."""
    answers = []
    thread = threading.Thread(
        target=lambda: answers.append(
            app.test_client().put("/v1/pools", json=config, headers=headers)
        )
    )
    thread.start()
    thread.join()
    (answer,) = answers
    assert answer.status_code == 200, answer.json
    return answer


# ------------------------------------------------------------------ 1. lost updates
def test_a_put_while_the_rebuild_reads_outcomes_is_kept(app, client, admin, monkeypatch):
    headers, actor = admin
    engine = app.extensions["vea"].engine
    reading = use_cases.outcome_records

    def outcomes_with_a_put_meanwhile(engine_):
        put_from_another_thread(app, headers, with_pools(VIP))
        yield from reading(engine_)

    monkeypatch.setattr(use_cases, "outcome_records", outcomes_with_a_put_meanwhile)
    rebuilt = client.post("/v1/pools/rebuild", json={"dry_run": False}, headers=headers)
    assert rebuilt.status_code == 200, rebuilt.json
    assert "race_vip" in [p["id"] for p in rebuilt.json["pools"]]
    assert "race_vip" in pool_ids(client, headers)  # the old code wrote the file's back
    assert actions(engine, actor) == ["pools.update", "pools.rebuild"]


def test_a_put_between_the_rebuilds_read_and_its_save_is_rebuilt_on(
    app, client, admin, monkeypatch
):
    """The rebuild reads the config and rebuilds it; a PUT commits before it saves: the
    save sees the config changed and the rebuild is made again on the PUT's config."""
    headers, actor = admin
    rebuild_pools, calls = use_cases.rebuild_pools, []

    def a_put_before_the_first_save(config, *args, **kwargs):
        result = rebuild_pools(config, *args, **kwargs)
        if not calls:
            put_from_another_thread(app, headers, with_pools(VIP))
        calls.append([p.id for p in config.pools])
        return result

    monkeypatch.setattr(use_cases, "rebuild_pools", a_put_before_the_first_save)
    rebuilt = client.post("/v1/pools/rebuild", json={"dry_run": False}, headers=headers)
    assert rebuilt.status_code == 200, rebuilt.json
    assert len(calls) == 2 and "race_vip" not in calls[0] and "race_vip" in calls[1]
    assert "race_vip" in pool_ids(client, headers)
    assert actions(app.extensions["vea"].engine, actor) == ["pools.update", "pools.rebuild"]


def test_a_config_that_keeps_changing_refuses_the_rebuild(app, client, admin, monkeypatch):
    headers, actor = admin
    rebuild_pools, puts = use_cases.rebuild_pools, iter([VIP, OTHER, VIP, OTHER])

    def a_put_before_every_save(config, *args, **kwargs):
        result = rebuild_pools(config, *args, **kwargs)
        put_from_another_thread(app, headers, with_pools(next(puts)))
        return result

    monkeypatch.setattr(use_cases, "rebuild_pools", a_put_before_every_save)
    refused = client.post("/v1/pools/rebuild", json={"dry_run": False}, headers=headers)
    assert refused.status_code == 409, refused.json
    error = refused.json["error"]
    assert error["code"] == "conflict"
    assert error["message"].startswith("nothing stored: the pools config changed each of the 3")
    assert "run the rebuild again" in error["message"]
    # The third PUT is what is stored (VIP), and no rebuild was recorded.
    assert "race_vip" in pool_ids(client, headers)
    assert actions(app.extensions["vea"].engine, actor) == ["pools.update"] * 3


def test_put_with_if_match_stores_only_over_the_version_it_names(client, admin):
    headers, _ = admin
    first = client.get("/v1/pools", headers=headers)
    assert first.headers["ETag"] == '"file"'  # nothing stored: the file's config
    stored = client.put(
        "/v1/pools", json=with_pools(VIP), headers={**headers, "If-Match": first.headers["ETag"]}
    )
    assert stored.status_code == 200, stored.json
    assert stored.headers["ETag"] != first.headers["ETag"]
    assert client.get("/v1/pools", headers=headers).headers["ETag"] == stored.headers["ETag"]

    # Another admin's edit of the version read before: refused, the stored one kept.
    stale = client.put(
        "/v1/pools", json=with_pools(OTHER), headers={**headers, "If-Match": first.headers["ETag"]}
    )
    assert stale.status_code == 412, stale.json
    assert stale.json["error"]["code"] == "precondition_failed"
    assert stale.json["error"]["message"].startswith("nothing stored: the pools config was stored")
    assert "race_vip" in pool_ids(client, headers)

    for bad in ("2024-01-01", '"yesterday"', '"file", "x"', '"2024-01-01T00:00:00+09:00Z"'):
        answer = client.put(
            "/v1/pools", json=with_pools(OTHER), headers={**headers, "If-Match": bad}
        )
        assert answer.status_code == 412, (bad, answer.json)
        assert (
            "If-Match must be the one ETag GET /v1/pools answered"
            in answer.json["error"]["message"]
        )
    again = client.put(
        "/v1/pools", json=with_pools(OTHER), headers={**headers, "If-Match": stored.headers["ETag"]}
    )
    assert again.status_code == 200, again.json
    # Without If-Match a PUT replaces whatever is stored, as before.
    assert client.put("/v1/pools", json=with_pools(VIP), headers=headers).status_code == 200


def test_save_config_refuses_to_write_over_a_config_it_did_not_read(
    pools_from_the_file, monkeypatch
):
    engine = pools_from_the_file
    file_config = load_config(PACKAGE_DIR / "pools.default.yaml")
    config, source, read_at = use_cases.read_config(engine, file_config)
    assert (source, read_at) == ("file", None)
    first = use_cases.save_config(engine, parse_config(with_pools(VIP)), actor="a")
    with pytest.raises(use_cases.ConfigChanged, match="stored at .* by a since it was read"):
        use_cases.save_config(engine, config, actor="b", read_at=read_at)
    assert use_cases.read_config(engine, file_config)[2] == first
    # Every store changes the version, even when the clock stands still or steps back.
    monkeypatch.setattr(use_cases, "utcnow", lambda: datetime(2000, 1, 1))
    second = use_cases.save_config(engine, config, actor="b", read_at=first)
    assert second > first
    assert use_cases.read_config(engine, file_config)[0].to_dict() == config.to_dict()


# --------------------------------------------------------------------------- CLI
def test_vea_pools_rebuild_keeps_a_config_stored_meanwhile(
    database_url, pools_from_the_file, monkeypatch
):
    """As the API's: the config stored while `vea pools rebuild` read the outcomes (by a
    PUT's own use case, as another process would) is rebuilt on, not overwritten."""
    engine = pools_from_the_file
    reading = use_cases.outcome_records

    def outcomes_with_a_put_meanwhile(engine_):
        use_cases.save_config(engine, parse_config(with_pools(VIP)), actor="k-other")
        yield from reading(engine_)

    monkeypatch.setattr(use_cases, "outcome_records", outcomes_with_a_put_meanwhile)
    result = CliRunner().invoke(cli, ["pools", "rebuild"], env={"VEA_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    assert "stored: every worker routes with it" in result.stderr
    assert "race_vip" in [p["id"] for p in use_cases.stored(engine)["config"]["pools"]]
    assert use_cases.stored(engine)["updated_by"].startswith("cli")


def test_vea_pools_rebuild_refuses_when_the_config_keeps_changing(
    database_url, pools_from_the_file, monkeypatch
):
    engine = pools_from_the_file
    rebuild_pools = use_cases.rebuild_pools

    def a_put_before_every_save(config, *args, **kwargs):
        use_cases.save_config(engine, parse_config(with_pools(VIP)), actor="k-other")
        return rebuild_pools(config, *args, **kwargs)

    monkeypatch.setattr(use_cases, "rebuild_pools", a_put_before_every_save)
    result = CliRunner().invoke(cli, ["pools", "rebuild"], env={"VEA_DATABASE_URL": database_url})
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: nothing stored: the pools config changed each of the 3 times")
    assert line.endswith("run vea pools rebuild again")
    assert use_cases.stored(engine)["updated_by"] == "k-other"


# ------------------------------------------------------------- 2. pools that serve
@pytest.mark.parametrize(
    ("pool", "field"),
    [
        ({"id": "race_b2b", "members": ["a1"]}, "activities"),
        ({"id": "race_b2b", "members": ["a1"], "activities": []}, "activities"),
        ({"id": "race_b2b", "membership": "proficiency"}, "activities"),
        (
            {"id": "race_b2b", "segments": ["enterprise"], "members": ["a1"],
             "lift": {"validate_purchase": 2.0}},
            "lift.validate_purchase",
        ),
        (
            {"id": "race_b2b", "members": ["a1"], "activities": ["educate_usage"],
             "lift": {"advise_new_uses": 2.0}},
            "lift.advise_new_uses",
        ),
        (
            {"id": "race_b2b", "membership": "proficiency", "activities": ["educate_usage"],
             "lift": {"educate_usage": 1.2, "achieve_goals": 1.1}},
            "lift.achieve_goals",
        ),
    ],
)  # fmt: skip
def test_a_pool_that_would_serve_nothing_is_refused(client, admin, tmp_path, pool, field):
    headers, _ = admin
    answer = client.put("/v1/pools", json=with_pools(pool), headers=headers)
    assert answer.status_code == 422, answer.json
    message = answer.json["error"]["message"]
    assert message.startswith(f"pool 'race_b2b': {field}"), message
    assert answer.json["error"]["fields"] == {"pools": [message]}
    assert "race_b2b" not in pool_ids(client, headers)

    path = tmp_path / "pools.yaml"
    path.write_text(yaml.safe_dump(with_pools(pool)))
    with pytest.raises(PoolError) as refused:
        load_config(path)
    assert str(refused.value).startswith(f"{path}: pool 'race_b2b': {field}")


def test_the_shipped_pools_and_general_still_load():
    config = load_config(PACKAGE_DIR / "pools.default.yaml")
    proficiency = [p for p in config.pools if p.membership == "proficiency"]
    assert proficiency and all(p.activities for p in proficiency)
    # general lists no activity (it takes them all), and its lift may name any.
    parse_config({"pools": [{"id": "general", "lift": {"educate_usage": 1.1}}]})


# ------------------------------------------------------------ 3. removed pools' reports
def report(client, pool: str, **figures):
    desk = client.application.extensions["vea"].engine
    key = {"Authorization": f"Bearer {create_key(desk, 'desktop')[1]}"}
    body = {"agents_free": 1, "queue_length": 0, "agents_staffed": 2, **figures}
    return client.put(f"/v1/pools/{pool}/availability", json=body, headers=key)


def listed(client, headers) -> list[str]:
    return [a["pool_id"] for a in client.get("/v1/pools", headers=headers).json["availability"]]


def test_a_removed_pools_report_is_neither_listed_nor_back_with_the_pool(app, client, admin):
    headers, _ = admin
    router = app.extensions["vea"].pools
    assert client.put("/v1/pools", json=with_pools(VIP, OTHER), headers=headers).status_code == 200
    assert report(client, "race_vip").status_code == 200
    assert report(client, "race_other").status_code == 200
    assert {"race_vip", "race_other"} <= set(listed(client, headers))

    assert client.put("/v1/pools", json=with_pools(OTHER), headers=headers).status_code == 200
    assert "race_vip" not in listed(client, headers)
    assert "race_other" in listed(client, headers)  # a pool kept keeps its report
    assert report(client, "race_vip").status_code == 404

    # Back within the TTL: no report until the platform posts one.
    assert client.put("/v1/pools", json=with_pools(VIP, OTHER), headers=headers).status_code == 200
    assert "race_vip" not in listed(client, headers)
    router.refresh(force=True)
    # No report at all (its wait "unknown"), not a stale one ("availability stale").
    assert "race_vip" not in router.availability()
    assert report(client, "race_vip", agents_free=0).status_code == 200
    (vip,) = [
        a
        for a in client.get("/v1/pools", headers=headers).json["availability"]
        if a["pool_id"] == "race_vip"
    ]
    assert vip["agents_free"] == 0 and vip["stale"] is False


def test_a_report_posted_as_its_pool_was_removed_does_not_come_back(
    app, client, admin, monkeypatch
):
    """The report's request read the config with the pool, then the pool was removed, then
    the report was stored: it does not come back with the pool either."""
    headers, _ = admin
    assert client.put("/v1/pools", json=with_pools(VIP), headers=headers).status_code == 200
    storing = use_cases.report_availability

    def removed_meanwhile(*args, **kwargs):
        put_from_another_thread(app, headers, with_pools())
        return storing(*args, **kwargs)

    monkeypatch.setattr(use_cases, "report_availability", removed_meanwhile)
    assert report(client, "race_vip").status_code == 200
    monkeypatch.undo()
    assert "race_vip" not in listed(client, headers)
    assert client.put("/v1/pools", json=with_pools(VIP), headers=headers).status_code == 200
    assert "race_vip" not in listed(client, headers)


@pytest.mark.postgres
def test_a_role_that_may_not_delete_reports_withdraws_them(
    table_privileges_only,  # noqa: F811
    postgres,
    registry_dir,
    compile_cache,
):
    """The service's role needs no DELETE on pool_availability (/readyz asks for SELECT,
    INSERT and UPDATE only): a removed pool's report is withdrawn by an UPDATE."""
    url = table_privileges_only
    database, role = sa.make_url(url).database, sa.make_url(url).username
    with _superuser(postgres, database) as conn:
        conn.execute(f"REVOKE DELETE ON pool_availability FROM {role}")
    app = suite_app(url, registry_dir, compile_cache)
    try:
        client = app.test_client()
        engine = app.extensions["vea"].engine
        headers = {"Authorization": f"Bearer {create_key(engine, 'admin')[1]}"}
        assert client.put("/v1/pools", json=with_pools(VIP), headers=headers).status_code == 200
        assert report(client, "race_vip").status_code == 200
        removed = client.put("/v1/pools", json=with_pools(), headers=headers)
        assert removed.status_code == 200, removed.json
        assert client.put("/v1/pools", json=with_pools(VIP), headers=headers).status_code == 200
        assert "race_vip" not in listed(client, headers)
    finally:
        app.extensions["vea"].close()
