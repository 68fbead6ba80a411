"""Click commands of the service, attached to the top-level ``vea`` CLI:
``serve``, ``db upgrade``, ``keys create`` / ``keys revoke``, ``export``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from service.config import Settings


@click.command("serve")
@click.option("--bind", default=None, help="HOST:PORT (default: VEA_BIND or 127.0.0.1:8000)")
@click.option(
    "--workers", type=int, default=None, help="worker processes (default: VEA_WORKERS or 2)"
)
def serve(bind: str | None, workers: int | None) -> None:
    """Run the API under gunicorn (service/gunicorn_conf.py)."""
    if bind:
        os.environ["VEA_BIND"] = bind
    if workers:
        os.environ["VEA_WORKERS"] = str(workers)
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
    os.execv(sys.executable, argv)  # gunicorn becomes this process (signals, exit code)


@click.group("db")
def db() -> None:
    """The service database (VEA_DATABASE_URL)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema (Alembic); safe to run repeatedly."""
    from service.db import upgrade

    settings = Settings.from_env()
    upgrade(settings.database_url, revision)
    click.echo(f"database at revision {revision}: {_safe_url(settings.database_url)}")


@click.group("keys")
def keys() -> None:
    """API keys (stored hashed)."""


@keys.command("create")
@click.option(
    "--role",
    type=click.Choice(["desktop", "engineer", "admin"]),
    required=True,
    help="desktop: decisions/outcomes/events; engineer: models; admin: everything",
)
@click.option("--label", default="", help="who or what uses the key")
def keys_create(role: str, label: str) -> None:
    """Create a key and print it (shown once; only its hash is stored)."""
    from service.auth import create_key
    from service.db import make_engine

    engine = make_engine(Settings.from_env().database_url)
    try:
        key_id, key = create_key(engine, role, label)
    finally:
        engine.dispose()
    click.echo(f"key id {key_id} (role {role}):", err=True)
    click.echo(key)


@keys.command("revoke")
@click.argument("key_or_id")
def keys_revoke(key_or_id: str) -> None:
    """Disable a key, given the key or its id (takes effect within VEA_KEY_CACHE_S)."""
    from service.auth import revoke_key
    from service.db import make_engine

    engine = make_engine(Settings.from_env().database_url)
    try:
        done = revoke_key(engine, key_or_id)
    finally:
        engine.dispose()
    if not done:
        raise click.ClickException("no active key matches")
    click.echo("revoked")


@click.command("export")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help=".parquet or .csv")
@click.option(
    "--since",
    type=click.DateTime(),
    default=None,
    help="Only decisions at or after this UTC date/time (default: all).",
)
@click.option("--until", type=click.DateTime(), default=None, help="Only decisions before this.")
def export(out: str, since, until) -> None:
    """Stored decisions, outcomes and customer events as the canonical log (with
    propensities, arms and model versions), ready for `vea train`."""
    from service.db import make_engine
    from service.export import ExportError, export_log

    if Path(out).suffix.lower() not in (".csv", ".parquet"):
        raise click.BadParameter("use a .csv or .parquet file name", param_hint="--out")
    engine = make_engine(Settings.from_env().database_url)
    try:
        result = export_log(engine, out, since=since, until=until)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(f"exported {result.rows} decisions with outcomes to {out}")
    if result.pending:
        click.echo(
            f"note: {result.pending} decisions in the period have no outcome yet and were left out",
            err=True,
        )
    if result.rows == 0:
        click.echo("note: no decisions with outcomes in the period", err=True)


def _safe_url(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


commands = [serve, db, keys, export]
