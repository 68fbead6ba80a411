"""The audit log of administrative actions: written with the change (keys, erasure,
prune, pools: in the change's own transaction) or right after it (models), never naming
an erased customer, read with `vea audit` and `GET /v1/audit` (admin only, a page at a
time: limit and cursor), and never pruned."""

from __future__ import annotations

import json
import uuid
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
    """Every event of the period, read page by page (the suite's database holds more
    than one page)."""
    return [event for page in _pages(client, admin, limit=1000, **query) for event in page]


def _pages(client, admin, **query) -> list[list[dict]]:
    """The period's events as the API pages them, following ``next`` to the end."""
    pages, cursor = [], None
    while True:
        answer = client.get(
            "/v1/audit",
            query_string={**query, **({"cursor": cursor} if cursor else {})},
            headers=admin,
        )
        assert answer.status_code == 200, answer.get_json()
        pages.append(answer.get_json()["events"])
        cursor = answer.get_json()["next"]
        if cursor is None:
            return pages
        assert len(pages) < 1000, "the pages never end"


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
    assert event["details"] == {"decisions": 1, "outcomes": 0, "surveys": 0, "events": 0}
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
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) >= {"from", "to", "limit", "cursor"}
    limit = parameters["limit"]["schema"]
    assert (limit["default"], limit["minimum"], limit["maximum"]) == (100, 1, 1000)
    assert {"200", "401", "403", "422"} <= set(operation["responses"])
    answer = spec["components"]["schemas"]["Audit"]
    assert "next" in answer["required"] and answer["properties"]["next"]["nullable"] is True


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


# -------------------------------------------------------------------- paging
def _insert(engine, rows: list[tuple[datetime, str]]) -> list[int]:
    """Events at the given times (naive UTC) by ``actor``; their ids, as inserted."""
    with engine.begin() as conn:
        return [
            conn.execute(
                audit_events.insert().values(occurred_at=at, actor=actor, action="key.create")
            ).inserted_primary_key[0]
            for at, actor in rows
        ]


def _window() -> tuple[datetime, dict[str, str]]:
    """A minute of 1980 no other test writes to (so pages hold only this test's events)."""
    start = datetime(1980, 1, 1) + timedelta(minutes=uuid.uuid4().int % 4_000_000)
    return start, {
        "from": start.isoformat() + "Z",
        "to": (start + timedelta(minutes=1)).isoformat() + "Z",
    }


def test_the_audit_api_reads_a_long_log_page_by_page(app, client, keys):
    engine = app.extensions["vea"].engine
    start, window = _window()
    # Events sharing a time (to the microsecond), events a microsecond apart in the same
    # millisecond (what the answers show) and times out of order (a clock set back): each
    # comes exactly once, in the order recorded.
    same = start + timedelta(seconds=1, microseconds=123_456)
    times = [
        start + timedelta(seconds=5),
        same,
        same,
        same + timedelta(microseconds=1),
        same,
        start + timedelta(seconds=2),
        start,
    ]
    expected = _insert(engine, [(at, f"pager-{i}") for i, at in enumerate(times)])

    pages = _pages(client, keys["admin"], limit=2, **window)
    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [e["id"] for page in pages for e in page] == expected
    # A page that holds exactly the rest says there is no next one.
    (whole,) = _pages(client, keys["admin"], limit=len(times), **window)
    assert [e["id"] for e in whole] == expected
    # Events appended meanwhile do not shift the pages read: the cursor is a position.
    first = client.get(
        "/v1/audit", query_string={"limit": 3, **window}, headers=keys["admin"]
    ).get_json()
    _insert(engine, [(start - timedelta(seconds=1) + timedelta(minutes=1), "pager-late")])
    rest = client.get(
        "/v1/audit",
        query_string={"limit": 100, "cursor": first["next"], **window},
        headers=keys["admin"],
    ).get_json()
    assert [e["id"] for e in first["events"] + rest["events"]][: len(expected)] == expected
    assert rest["events"][-1]["actor"] == "pager-late" and rest["next"] is None
    # An event recorded later with an earlier time is not put behind the pages read.
    _insert(engine, [(start, "pager-earlier-time")])
    after = client.get(
        "/v1/audit", query_string={"cursor": first["next"], **window}, headers=keys["admin"]
    ).get_json()
    assert after["events"][-1]["actor"] == "pager-earlier-time"


def test_a_log_shipper_resumes_after_the_last_page(app, client, keys):
    """``next`` is null on the last page; ``resume`` is where to ask again later, and
    what was recorded meanwhile comes then, once."""
    engine = app.extensions["vea"].engine
    start, window = _window()

    def ask(**query) -> dict:
        answer = client.get("/v1/audit", query_string={**query, **window}, headers=keys["admin"])
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    nothing_yet = ask()
    assert nothing_yet == {"events": [], "next": None, "resume": None}
    first = _insert(engine, [(start, "shipper-0"), (start + timedelta(seconds=1), "shipper-1")])
    read = ask(limit=100)
    assert [e["id"] for e in read["events"]] == first and read["next"] is None
    assert ask(cursor=read["resume"]) == {"events": [], "next": None, "resume": read["resume"]}
    later = _insert(engine, [(start + timedelta(seconds=2), "shipper-2")])
    after = ask(cursor=read["resume"])
    assert [e["id"] for e in after["events"]] == later
    assert ask(cursor=after["resume"])["events"] == []
    # A page that is not the last resumes where it ended, like its next.
    head = ask(limit=1)
    assert head["resume"] == head["next"]


def test_the_audit_api_pages_100_events_by_default(app, client, keys):
    start, window = _window()
    _insert(
        app.extensions["vea"].engine,
        [(start + timedelta(milliseconds=i), "bulk") for i in range(101)],
    )
    first = client.get("/v1/audit", query_string=window, headers=keys["admin"]).get_json()
    assert len(first["events"]) == 100 and first["next"]
    second = client.get(
        "/v1/audit", query_string={**window, "cursor": first["next"]}, headers=keys["admin"]
    ).get_json()
    assert len(second["events"]) == 1 and second["next"] is None
    most = client.get(
        "/v1/audit", query_string={**window, "limit": 1000}, headers=keys["admin"]
    ).get_json()
    assert len(most["events"]) == 101 and most["next"] is None


@pytest.mark.parametrize(
    "query, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "MjAyNi0wMS0wMXxhYmM"}, "cursor"),  # base64 of "2026-01-01|abc"
        ({"cursor": "MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHwx"}, "cursor"),  # with a zone
        ({"cursor": ""}, "cursor"),
        ({"cursor": "A" * 101}, "cursor"),
        # An id past the INTEGER column (was a 500: out of range for either database).
        ({"cursor": "MjAyNi0wMS0wMVQwMDowMDowMHwyMTQ3NDgzNjQ4"}, "cursor"),  # id 2**31
        ({"cursor": "MjAyNi0wMS0wMVQwMDowMDowMHw5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, "cursor"),
        ({"cursor": "YWZ0ZXI6MA"}, "cursor"),  # after:0
        ({"cursor": "YWZ0ZXI6MjE0NzQ4MzY0OA"}, "cursor"),  # after:2147483648
        ({"cursor": "YWZ0ZXI6LTE"}, "cursor"),  # after:-1
        ({"cursor": "YWZ0ZXI6MV8w"}, "cursor"),  # after:1_0
        ({"cursor": "YWZ0ZXI6IDU"}, "cursor"),  # "after: 5"
        ({"cursor": "YWZ0ZXI6"}, "cursor"),  # after:
    ],
)
def test_a_bad_limit_or_cursor_is_422(client, keys, query, field):
    answer = client.get("/v1/audit", query_string=query, headers=keys["admin"])
    assert answer.status_code == 422, answer.get_json()
    error = answer.get_json()["error"]
    assert set(error) == {"code", "message", "fields"} and field in error["fields"]


def test_a_cursor_past_the_end_of_the_log_is_422_not_resumed_from(client, keys, tmp_path):
    """The log is append-only, so no cursor handed out lies past its last event: one
    that does comes from another database or from before a restore of an older backup.
    Answered empty with itself as ``resume``, a shipper kept it and skipped every event
    recorded until the ids caught up."""
    beyond = audit.encode_cursor(audit.MAX_EVENT_ID)
    answer = client.get("/v1/audit", query_string={"cursor": beyond}, headers=keys["admin"])
    assert answer.status_code == 422, answer.get_json()
    assert "past the end of the log" in answer.get_json()["error"]["fields"]["cursor"][0]
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    result = CliRunner().invoke(cli, ["audit", "--cursor", audit.encode_cursor(1)], env=env)
    assert result.exit_code != 0 and "past the end of the log" in result.output, result.output
    assert "--cursor" in result.output


def test_the_cursor_round_trips_the_position():
    assert audit.decode_cursor(audit.encode_cursor(42)) == audit.Position(42)
    top = audit.MAX_EVENT_ID
    assert audit.decode_cursor(audit.encode_cursor(top)) == audit.Position(top)
    # A cursor issued before migration 0014 (time|id, base64) still reads as its place.
    moment = datetime(2026, 3, 4, 5, 6, 7, 891_234)
    assert audit.decode_cursor("MjAyNi0wMy0wNFQwNTowNjowNy44OTEyMzR8NDI") == audit.Position(
        42, moment
    )


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
    assert events[2]["details"] == {"decisions": 0, "outcomes": 0, "surveys": 0, "events": 0}
    assert "customer-to-forget" not in vea("audit", "--json").stdout

    table = vea("audit").stdout
    assert "key.revoke" in table and "cli:ops-anna" in table
    promoted = next(line for line in table.splitlines() if "model.promote" in line)
    assert promoted.split()[1:4] == ["cli:ops-anna", "model.promote", other]
    assert json.loads(promoted.split(None, 4)[4]) == events[4]["details"]
    tomorrow = f"{utcnow() + timedelta(days=1):%Y-%m-%d}"
    assert json.loads(vea("audit", "--since", tomorrow, "--json").stdout) == []


def test_vea_audit_keeps_long_cells_apart(vea, monkeypatch):
    """A cell longer than its column (an OS user's long name, a model version of 28
    characters, as `vea train` names them) never runs into the next one."""
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "night-shift-operations-lead")
    registry = Registry(vea.registry)
    other = next(v for v in registry.version_ids() if v != registry.champion())
    vea("models", "promote", other, "--registry", str(vea.registry))
    engine = make_engine(vea.url)
    audit.record_now(
        engine,
        actor="cli:night-shift-operations-lead",
        action="model.rollback",
        target="20261127T044724Z-177bc4-cf9d",
        details={"previous": other},
    )
    engine.dispose()
    lines = vea("audit").stdout.splitlines()
    assert lines[0].split() == ["time", "(UTC)", "actor", "action", "target", "details"]
    for line, (action, target) in zip(
        lines[1:],
        [("model.promote", other), ("model.rollback", "20261127T044724Z-177bc4-cf9d")],
        strict=True,
    ):
        cells = line.split(None, 4)
        assert cells[1:4] == ["cli:night-shift-operations-lead", action, target], line
        assert json.loads(cells[4])["previous"]


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


# ------------------------------------------------------------------------ CLI
def test_vea_audit_pages_as_the_api_does(app, database_url):
    """`vea audit --limit N` prints a page and the command for the next one (its cursor,
    the period kept); following it reads every event of the period exactly once;
    `--json` then prints the API's page ({events, next}); `--until` ends the period."""
    engine = app.extensions["vea"].engine
    start, _ = _window()
    same = start + timedelta(seconds=1, microseconds=5)
    times = [start + timedelta(seconds=9), same, same, start]
    expected = _insert(engine, [(at, f"cli-pager-{i}") for i, at in enumerate(times)])
    period = ["--since", start.isoformat(), "--until", (start + timedelta(minutes=1)).isoformat()]
    runner = CliRunner()
    env = {"VEA_DATABASE_URL": database_url}
    seen, command = [], ["audit", *period, "--limit", "3", "--json"]
    while True:
        result = runner.invoke(cli, command, env=env)
        assert result.exit_code == 0, result.output
        page = json.loads(result.stdout)
        seen += [e["id"] for e in page["events"]]
        if page["next"] is None:
            break
        command = ["audit", *period, "--limit", "3", "--cursor", page["next"], "--json"]
    assert seen == expected
    # The table says how to go on, with the same period.
    table = runner.invoke(cli, ["audit", *period, "--limit", "2"], env=env)
    assert table.exit_code == 0 and table.stdout.count("cli-pager-") == 2
    more = table.stderr.strip().splitlines()[-1]
    assert more.startswith(f"more events: vea audit --since {start.isoformat()} --until ")
    assert " --limit 2 --cursor " in more
    following = runner.invoke(cli, more.removeprefix("more events: vea ").split(), env=env)
    assert following.exit_code == 0 and following.stdout.count("cli-pager-") == 2
    assert "more events" not in following.stderr
    # Without --limit or --cursor: every event of the period, as before (a JSON list).
    until = ["--since", start.isoformat(), "--until", (start + timedelta(seconds=5)).isoformat()]
    whole = json.loads(runner.invoke(cli, ["audit", *until, "--json"], env=env).stdout)
    assert [e["id"] for e in whole] == expected[1:]
    bad = runner.invoke(cli, ["audit", "--cursor", "not-a-cursor"], env=env)
    assert bad.exit_code == 2 and "not a cursor" in bad.output
    assert runner.invoke(cli, ["audit", "--limit", "0"], env=env).exit_code == 2
    backwards = ["audit", "--since", until[3], "--until", until[1]]
    assert runner.invoke(cli, backwards, env=env).exit_code == 2
