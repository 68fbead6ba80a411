"""The audit log of administrative actions: written with the change (keys, erasure,
prune, pools) or right after it (models), never naming an erased customer, read with
`vea audit` and `GET /v1/audit` (admin only), and never pruned. A pools change and its
event are one transaction."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from models.registry import Registry
from service import audit
from service.auth import create_key, list_keys
from service.db import audit_events, make_engine, pool_config, utcnow
from tests.test_api_pools import POOLS
from training.cli import cli


def _key_id(headers: dict[str, str]) -> str:
    return headers["Authorization"].split("_")[1]


def _events(client, admin, **query) -> list[dict]:
    answer = client.get("/v1/audit", query_string=query, headers=admin)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["events"]


def _mine(events: list[dict], actor: str) -> list[dict]:
    return [e for e in events if e["actor"] == actor]


# ----------------------------------------------------------------------- API
def test_an_erasure_is_audited_without_the_customer_id(app, client, keys, new_id):
    customer = new_id("audited-customer-")
    body = {
        "interaction_id": new_id(),
        "customer": {"customer_id": customer, "tenure_months": 2},
        "contact": {"channel": "chat", "issue_type": "inquiry", "language": "en"},
    }
    assert client.post("/v1/decisions", json=body, headers=keys["desktop"]).status_code == 201
    erased = client.delete(f"/v1/customers/{customer}", headers=keys["admin"])
    assert erased.status_code == 200, erased.get_json()

    admin_id = _key_id(keys["admin"])
    (event,) = _mine(_events(client, keys["admin"]), admin_id)
    assert event["action"] == "customer.erase"
    assert event["target"] is None
    assert event["details"] == {"decisions": 1, "outcomes": 0, "events": 0}
    with app.extensions["vea"].engine.connect() as conn:
        stored = [str(tuple(row)) for row in conn.execute(sa.select(audit_events))]
    assert not any(customer in row for row in stored)  # never stored after its erasure


def test_pools_and_model_changes_are_audited(client, keys, registry_dir):
    assert client.put("/v1/pools", json=POOLS, headers=keys["admin"]).status_code == 200
    registry = Registry(registry_dir)
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    promoted = client.post(
        f"/v1/models/{other}/promote", json={"reason": "audit"}, headers=keys["engineer"]
    )
    assert promoted.status_code == 200, promoted.get_json()
    assert client.post("/v1/models/rollback", json={}, headers=keys["engineer"]).status_code == 200

    events = _events(client, keys["admin"])
    assert [e["action"] for e in _mine(events, _key_id(keys["admin"]))] == ["pools.update"]
    by_engineer = _mine(events, _key_id(keys["engineer"]))
    assert [(e["action"], e["target"]) for e in by_engineer] == [
        ("model.promote", other),
        ("model.rollback", first),
    ]
    assert by_engineer[0]["details"]["previous"] == first


def test_the_audit_api_is_for_admins_and_reads_a_period(client, keys):
    for role in ("desktop", "engineer", "manager"):
        assert client.get("/v1/audit", headers=keys[role]).status_code == 403
    assert client.get("/v1/audit").status_code == 401

    assert client.put("/v1/pools", json=POOLS, headers=keys["admin"]).status_code == 200
    admin_id = _key_id(keys["admin"])
    now = utcnow()
    window = {
        "from": (now - timedelta(minutes=5)).isoformat() + "Z",
        "to": (now + timedelta(minutes=5)).isoformat() + "Z",
    }
    assert len(_mine(_events(client, keys["admin"], **window), admin_id)) == 1
    later = {"from": (now + timedelta(minutes=5)).isoformat() + "Z"}
    assert _mine(_events(client, keys["admin"], **later), admin_id) == []

    reversed_ = client.get(
        "/v1/audit",
        query_string={"from": window["to"], "to": window["from"]},
        headers=keys["admin"],
    )
    assert reversed_.status_code == 422
    assert "from" in reversed_.get_json()["error"]["fields"]
    bad = client.get("/v1/audit", query_string={"from": "yesterday"}, headers=keys["admin"])
    assert bad.status_code == 422 and "from" in bad.get_json()["error"]["fields"]
    unknown = client.get("/v1/audit", query_string={"since": "2026-01-01"}, headers=keys["admin"])
    assert unknown.status_code == 422


def test_the_audit_api_is_documented(client):
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/v1/audit"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"from", "to"}
    assert {"200", "401", "403", "422"} <= set(operation["responses"])


# -------------------------------------------------------------- transactions
def test_the_event_is_written_in_the_changes_transaction(database_url, monkeypatch):
    engine = make_engine(database_url)
    label = f"audit-rollback-{utcnow():%H%M%S%f}"

    def broken(*_args, **_kwargs):
        raise RuntimeError("the audit log cannot be written")

    monkeypatch.setattr(audit, "record", broken)
    try:
        with pytest.raises(RuntimeError):
            create_key(engine, "admin", label)
        # No key without its audit event.
        assert label not in {k["label"] for k in list_keys(engine)}
    finally:
        engine.dispose()


@pytest.fixture
def pools_from_the_file(app):
    """No stored pools config before and after (the API suite shares one database)."""
    engine = app.extensions["vea"].engine

    def clear():
        with engine.begin() as conn:
            conn.execute(pool_config.delete())
        app.extensions["vea"].pools.refresh(force=True)

    clear()
    yield engine
    clear()


def test_a_pools_change_and_its_event_commit_together(
    client, keys, monkeypatch, pools_from_the_file
):
    admin_id = _key_id(keys["admin"])
    real_record = audit.record

    def broken(*_args, **_kwargs):
        raise RuntimeError("the audit log cannot be written")

    monkeypatch.setattr(audit, "record", broken)
    failed = client.put("/v1/pools", json=POOLS, headers=keys["admin"])
    assert failed.status_code == 500
    # Not stored: no change without its event.
    assert client.get("/v1/pools", headers=keys["admin"]).get_json()["source"] == "file"
    rebuilt = client.post("/v1/pools/rebuild", json={}, headers=keys["admin"])
    assert rebuilt.status_code == 500
    assert client.get("/v1/pools", headers=keys["admin"]).get_json()["source"] == "file"

    monkeypatch.setattr(audit, "record", real_record)
    assert client.put("/v1/pools", json=POOLS, headers=keys["admin"]).status_code == 200
    stored = client.get("/v1/pools", headers=keys["admin"]).get_json()
    (event,) = _mine(_events(client, keys["admin"]), admin_id)
    assert (event["action"], event["details"]) == ("pools.update", {"pools": 3})
    assert stored["source"] == "database" and stored["updated_by"] == admin_id


def test_a_pools_change_that_fails_records_no_event(pools_from_the_file):
    from models.pools import parse_config
    from service import pools as use_cases

    engine = pools_from_the_file
    label = f"never-{utcnow():%H%M%S%f}"
    event = audit.Event(label, "pools.update")

    def failing(conn):
        audit.record(conn, label, "pools.update")
        raise RuntimeError("the config write failed after the event")

    config = parse_config(POOLS)
    values = {"config": config.to_dict(), "updated_at": utcnow(), "updated_by": label}
    with pytest.raises(RuntimeError, match="after the event"):
        use_cases._upsert(engine, pool_config, {"id": 1}, values, also=failing)
    with pytest.raises(ValueError):  # an event that cannot be written stops the change
        use_cases.save_config(engine, config, audit_event=audit.Event(label, "no.such"))
    assert use_cases.stored(engine) is None
    assert not [e for e in audit.list_events(engine) if e["actor"] == label]
    use_cases.save_config(engine, config, actor=label, audit_event=event)
    assert use_cases.stored(engine)["updated_by"] == label
    assert [e["action"] for e in audit.list_events(engine) if e["actor"] == label] == [
        "pools.update"
    ]


# ----------------------------------------------------------------------- CLI
@pytest.fixture
def vea(tmp_path, registry_dir):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}", "USER": "ops-anna"}

    def run(*argv: str):
        result = CliRunner().invoke(cli, list(argv), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    run("db", "upgrade")
    run.url = env["VEA_DATABASE_URL"]
    run.registry = registry_dir
    return run


def test_cli_actions_are_audited_and_read_with_vea_audit(vea, monkeypatch):
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "ops-anna")
    key_id = vea("keys", "create", "--role", "desktop", "--expires-in", "7").stdout.split("_")[1]
    vea("keys", "revoke", key_id)
    vea("db", "erase-customer", "customer-to-forget", "--yes")
    vea("db", "prune", "--before", "2020-01-01", "--yes")
    registry = Registry(vea.registry)
    other = next(v for v in registry.version_ids() if v != registry.champion())
    vea("models", "promote", other, "--registry", str(vea.registry))

    events = json.loads(vea("audit", "--json").stdout)
    assert [(e["action"], e["target"]) for e in events] == [
        ("key.create", key_id),
        ("key.revoke", key_id),
        ("customer.erase", None),
        ("data.prune", "2020-01-01T00:00:00.000Z"),
        ("model.promote", other),
    ]
    assert {e["actor"] for e in events} == {"cli:ops-anna"}
    assert events[0]["details"]["role"] == "desktop" and events[0]["details"]["expires_at"]
    assert events[2]["details"] == {"decisions": 0, "outcomes": 0, "events": 0}
    assert "customer-to-forget" not in vea("audit", "--json").stdout

    table = vea("audit").stdout
    assert "key.revoke" in table and "cli:ops-anna" in table
    tomorrow = f"{utcnow() + timedelta(days=1):%Y-%m-%d}"
    assert json.loads(vea("audit", "--since", tomorrow, "--json").stdout) == []


def test_prune_leaves_the_audit_log_alone(vea):
    engine = make_engine(vea.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                audit_events.insert().values(
                    occurred_at=datetime(2019, 5, 1), actor="cli", action="key.create"
                )
            )
    finally:
        engine.dispose()
    vea("db", "prune", "--before", "2020-01-01", "--yes")
    events = json.loads(vea("audit", "--json").stdout)
    assert [e["occurred_at"][:10] for e in events] == ["2019-05-01", f"{utcnow():%Y-%m-%d}"]
    from service.cli import db

    assert not any("audit" in name for name in db.commands)  # no command deletes from it
