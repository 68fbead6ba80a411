"""Service commands of `vea`: keys, and what a command says when a setting or the database is wrong."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from training.cli import cli


def test_keys_list_shows_roles_and_revocations_never_secrets(tmp_path):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}"}

    def vea(*argv: str):
        result = CliRunner().invoke(cli, list(argv), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    vea("db", "upgrade")
    assert "no keys" in vea("keys", "list").stderr
    desk = vea("keys", "create", "--role", "desktop", "--label", "floor 3").stdout.strip()
    admin = vea("keys", "create", "--role", "admin").stdout.strip()
    desk_id = desk.split("_")[1]
    vea("keys", "revoke", desk_id)

    table = vea("keys", "list").stdout
    assert desk not in table and admin not in table
    lines = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert set(lines) == {desk_id, admin.split("_")[1]}
    assert "desktop" in lines[desk_id] and "floor 3" in lines[desk_id]
    assert lines[desk_id].split()[3].endswith("Z")  # revoked at
    assert " - " in lines[admin.split("_")[1]]  # not revoked

    active = json.loads(vea("keys", "list", "--active", "--json").stdout)
    assert [(k["role"], k["revoked_at"]) for k in active] == [("admin", None)]
    assert set(active[0]) == {
        "key_id",
        "role",
        "label",
        "created_at",
        "revoked_at",
        "expires_at",
        "expired",
    }


def test_an_unreachable_database_is_one_line_naming_the_setting(tmp_path):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'vea.db'}"}
    for argv in (["db", "upgrade"], ["keys", "list"]):
        result = CliRunner().invoke(cli, argv, env=env)
        assert result.exit_code == 1, result.output
        assert "VEA_DATABASE_URL: cannot reach sqlite:///" in result.output
        assert "Traceback" not in result.output


def test_a_bad_drift_threshold_names_its_variable(monkeypatch):
    monkeypatch.setenv("VEA_DRIFT_PSI_THRESHOLD", "lots")
    result = CliRunner().invoke(cli, ["retrain"])
    assert result.exit_code == 1
    assert "VEA_DRIFT_PSI_THRESHOLD: not a number: 'lots'" in result.output


def test_pools_rebuild_opens_the_database_like_every_service_command(tmp_path, monkeypatch):
    """It made and disposed of its own engine by hand; now the one helper does (and
    disposes of it however the command ends)."""
    from service import cli as service_cli

    url = f"sqlite:///{tmp_path / 'vea.db'}"
    env = {"VEA_DATABASE_URL": url}
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    opened = []
    helper = service_cli.service_database

    @contextmanager
    def spy(url=None):
        with helper(url) as engine:
            opened.append(url)
            yield engine
        opened.append("disposed")

    monkeypatch.setattr(service_cli, "service_database", spy)
    result = CliRunner().invoke(cli, ["pools", "rebuild", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    assert opened == [url, "disposed"]


def test_model_changes_are_audited_in_the_database_the_service_uses_by_default(
    registry_dir, tmp_path, monkeypatch
):
    """VEA_DATABASE_URL unset: `vea models ...` and the service both use the default
    SQLite file under their working directory, so run from the service's directory the
    event lands where the service (and `vea audit`) read it."""
    from models.registry import Registry
    from service.app import create_app
    from service.audit import list_events
    from service.db import sqlite_file

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VEA_DATABASE_URL", raising=False)  # the service's default too
    env = {"VEA_COMPILE_CACHE": ""}
    first, second = sorted(v["version"] for v in Registry(registry_dir).versions())

    def vea(*argv: str):
        result = CliRunner().invoke(cli, list(argv), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    # No service database here yet: the promotion stands, says where it looked, and
    # leaves no empty database file behind.
    early = vea("models", "promote", second, "--registry", str(registry_dir))
    assert "no database at sqlite:///var/vea.db (VEA_DATABASE_URL unset" in early.stderr
    assert not (tmp_path / "var").exists()

    vea("db", "upgrade")
    promoted = vea("models", "promote", first, "--registry", str(registry_dir))
    assert "warning" not in promoted.stderr, promoted.stderr
    app = create_app({"registry": str(registry_dir), "compile_cache": "", "access_log": False})
    try:
        engine = app.extensions["vea"].engine
        assert sqlite_file(str(engine.url)) == "var/vea.db"
        events = [(e["action"], e["target"]) for e in list_events(engine)]
    finally:
        app.extensions["vea"].close()
    assert events == [("model.promote", first)]
    assert "model.promote" in vea("audit").stdout


def _latest_cutoff() -> str:
    from datetime import timedelta

    from service.db import utcnow
    from service.deletion import MIN_RETENTION_DAYS

    return (utcnow() - timedelta(days=MIN_RETENTION_DAYS)).date().isoformat()


REFUSED = [
    # Parsed by click: unknown, missing or malformed options.
    (["keys", "create"], "Missing option '--role'. Choose from: desktop, engineer, manager, admin"),
    (
        ["keys", "create", "--role", "boss"],
        "Invalid value for '--role': 'boss' is not one of 'desktop', 'engineer', 'manager', "
        "'admin'.",
    ),
    (
        ["keys", "create", "--role", "desktop", "--expires-in", "soon"],
        "Invalid value for '--expires-in': 'soon' is not a valid integer.",
    ),
    (["keys", "list", "--bogus"], "No such option '--bogus'."),
    (["keys", "rotate"], "No such command 'rotate'. Did you mean 'create'?"),
    (["db", "prune"], "Missing option '--before'."),
    (
        ["db", "prune", "--before", "notadate", "--yes"],
        "Invalid value for '--before': 'notadate' must be a date YYYY-MM-DD or a date-time "
        "YYYY-MM-DDTHH:MM[:SS][+HH:MM]",
    ),
    (["audit", "--limit", "0"], "Invalid value for '--limit': 0 is not in the range 1<=x<=1000."),
    (
        ["audit", "--cursor", "zz"],
        "Invalid value for '--cursor': not a cursor: pass the one an earlier page printed",
    ),
    # Checked by the command.
    (
        ["keys", "create", "--role", "desktop", "--expires-in", "0"],
        "Invalid value for '--expires-in': 0 is not a number of days above 0",
    ),
    (
        ["keys", "create", "--role", "desktop", "--expires-in", "40000"],
        "Invalid value for '--expires-in': 40000 is over 36500 days (leave it out for a key "
        "that never expires)",
    ),
    (
        ["keys", "create", "--role", "desktop", "--expires", "2001-01-01"],
        "Invalid value for '--expires': 2001-01-01 is not in the future (UTC)",
    ),
    (
        ["keys", "create", "--role", "desktop", "--expires", "notadate"],
        "Invalid value for '--expires': 'notadate' is not a date YYYY-MM-DD",
    ),
    (
        ["keys", "create", "--role", "desktop", "--expires-in", "3", "--expires", "2099-01-01"],
        "give --expires-in or --expires, not both",
    ),
    (["db", "prune", "--before", "2001-01-01"], "pruning is irreversible: confirm with --yes"),
    (
        ["db", "prune", "--before", "2099-01-01", "--yes"],
        "Invalid value for '--before': the cutoff must be at least 90 days ago (on or before "
        "{latest}): younger contacts still wait for their retention outcome",
    ),
    (["db", "erase-customer", "c-1"], "erasure is irreversible: confirm with --yes"),
    (
        ["db", "erase-customer", "x" * 129, "--yes"],
        "Invalid value for 'CUSTOMER_ID': a customer id is 1-128 characters",
    ),
    (
        ["audit", "--since", "2020-01-02", "--until", "2020-01-01"],
        "Invalid value for '--since': must be before --until",
    ),
    (
        ["db", "upgrade", "--revision", "bogus"],
        "Invalid value for '--revision': Can't locate revision identified by 'bogus'",
    ),
]


@pytest.mark.parametrize(
    ("argv", "said"), REFUSED, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None
)
def test_refused_input_is_one_error_line_exit_2_and_changes_nothing(tmp_path, argv, said):
    import sqlalchemy as sa

    from service.db import api_keys, audit_events, make_engine

    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(cli, argv, env=env, catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"Error: {said.format(latest=_latest_cutoff())}\n"
    # Nothing changed: no key, and no audit event (every change writes its event in the
    # change's own transaction).
    engine = make_engine(env["VEA_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            for table in (api_keys, audit_events):
                assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    finally:
        engine.dispose()


def test_a_failure_while_running_is_one_error_line_exit_1(tmp_path):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(cli, ["keys", "revoke", "nope"], env=env)
    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        "Error: no active key matches\n",
    )


def test_an_upgrade_alembic_refuses_is_one_error_line_exit_1(tmp_path):
    """A revision vea has, which the database's state makes impossible (one step past the
    newest migration): a failure, not a usage error, and no traceback."""
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(cli, ["db", "upgrade", "--revision", "+1"], env=env)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1


def test_a_group_alone_still_shows_its_help():
    result = CliRunner().invoke(cli, ["keys"])
    assert "keys [OPTIONS] COMMAND" in result.output
