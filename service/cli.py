"""Click commands of the service, attached to the top-level ``vea`` CLI:
``serve``, ``db upgrade``, ``keys create`` / ``keys revoke``, ``export``, ``report``,
``pools rebuild`` / ``pools show``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import click
import sqlalchemy as sa

from models.opportunities import DEFAULT_SITUATION, SITUATION_FEATURES, parse_situation
from models.opportunities import MIN_ATTEMPTS as ORGANIC_MIN_ATTEMPTS
from models.tables import os_reason
from service.audit import DEFAULT_PAGE as AUDIT_PAGE
from service.audit import MAX_PAGE as AUDIT_MAX_PAGE
from service.audit import Event, Position, cli_actor, record_now
from service.config import Settings, safe_url


@contextmanager
def service_database(url: str | None = None) -> Iterator[sa.Engine]:
    """An engine on the service database (``url`` or VEA_DATABASE_URL), disposed of after
    the command's work."""
    from service.db import make_engine, missing_sqlite_file

    url = url or Settings.from_env().database_url
    # SQLite creates a missing file on connect: a mistyped path left an empty database
    # (and its .writelock) behind, which a later backup took for a foreign database.
    # Only `vea db upgrade` (and vea serve) create the database.
    path = missing_sqlite_file(url)
    if path is not None:
        raise click.ClickException(
            f"VEA_DATABASE_URL: no database at {path}: run `vea db upgrade` to create it "
            "(or correct the path)"
        )
    engine = make_engine(url)
    try:
        yield engine
    except sa.exc.DatabaseError as exc:
        raise _corrupt_database(url, exc) from None
    finally:
        engine.dispose()


def _corrupt_database(url: str, exc: sa.exc.DatabaseError) -> click.ClickException:
    """A damaged database file ("file is not a database") as one ``Error:`` line naming
    it, exit 1; any other database error is raised again as it is."""
    from service.db import corrupt_reason, is_corrupt

    if not is_corrupt(exc):
        raise exc
    return click.ClickException(f"VEA_DATABASE_URL: {safe_url(url)} is {corrupt_reason(exc)}")


class InputError(click.ClickException):
    """A refused command-line input: one ``Error: ...`` line and exit 2 (click's code for
    a usage error), without click's usage lines."""

    exit_code = 2


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Click's usage errors (an unknown, missing or malformed option, and the command's own
    checks of its input) as one line naming the option: scripts and cron logs get one
    line, and exit 2 still tells a refused input from a failure (exit 1)."""
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:  # `vea keys` alone: the help, as before
        raise
    except click.UsageError as exc:
        # A missing choice lists its values one per line: one line, same words.
        raise InputError(" ".join(exc.format_message().split())) from None


class _OneLineErrors:
    """Parsing (``make_context``) and running (``invoke``) of a command or group, and of
    every subcommand of a group, with usage errors as one line (``_one_line_errors``)."""

    def make_context(self, *args, **kwargs):
        with _one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        with _one_line_errors():
            return super().invoke(ctx)


class OneLineErrorGroup(_OneLineErrors, click.Group):
    pass


class OneLineErrorCommand(_OneLineErrors, click.Command):
    pass


@click.command("serve")
@click.option("--bind", default=None, help="HOST:PORT (default: VEA_BIND or 127.0.0.1:8000)")
@click.option(
    "--workers", type=int, default=None, help="worker processes (default: VEA_WORKERS or 2)"
)
def serve(bind: str | None, workers: int | None) -> None:
    """Run the API under gunicorn (service/gunicorn_conf.py)."""
    if bind:
        os.environ["VEA_BIND"] = bind
    if workers is not None:  # 0 is refused at start-up, not silently ignored
        os.environ["VEA_WORKERS"] = str(workers)
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
    # gunicorn becomes this process (signals, exit code); fixed argv, no shell input.
    os.execv(sys.executable, argv)  # nosec B606 # constant argv, nothing from a request


class Instant(click.ParamType):
    """A date or date-time in the forms the reports' API takes (``models.schema.DATE_FORMS``:
    ``2026-11-01``, ``2026-11-01T09:30``, ``...:00Z``, ``...+09:00``), as naive UTC: an
    operator in Japan asks for a month in JST as the API is asked."""

    name = "date"

    def convert(self, value, param, ctx):
        from models.schema import parse_instant

        if isinstance(value, datetime):
            return value
        try:
            return parse_instant(value)
        except ValueError as exc:
            self.fail(f"{value!r} {exc}", param, ctx)


INSTANT = Instant()


@click.group("db", cls=OneLineErrorGroup)
def db() -> None:
    """The service database (VEA_DATABASE_URL)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision to reach.")
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema (Alembic); safe to run repeatedly."""
    from alembic.util import CommandError

    from service.db import SchemaNewerThanCode, SchemaPastRevision, upgrade

    settings = Settings.from_env()
    try:
        before, after = upgrade(settings.database_url, revision)
    except sa.exc.DatabaseError as exc:
        raise _corrupt_database(settings.database_url, exc) from None
    except SchemaPastRevision as exc:
        raise click.ClickException(str(exc)) from None
    except SchemaNewerThanCode as exc:
        # A rolled-back release: say what happened and what to run, not Alembic's
        # "Can't locate revision".
        raise click.ClickException(
            f"{exc}. Upgrade with the release that migrated it; this one's `vea serve` "
            "serves it as it is"
        ) from None
    except CommandError as exc:
        # Alembic's refusals (an unknown revision above all) as one line, not a traceback:
        # exit 2 for a revision the migrations do not have, 1 for anything else.
        message = " ".join(str(exc).split())
        if not _known_revision(revision):
            raise click.BadParameter(message, param_hint="'--revision'") from None
        raise click.ClickException(message) from None
    moved = f" (from {before or 'an empty database'})" if before != after else " (up to date)"
    click.echo(f"database at revision {after}{moved}: {safe_url(settings.database_url)}")
    from service.db import loose_mode

    if note := loose_mode(settings.database_url):
        click.echo(f"note: {note}", err=True)


def _known_revision(revision: str) -> bool:
    """Whether ``revision`` names migrations vea ships (``head``, ``0008``...); a relative
    one (``+1``, ``-1``) counts as known: only the database's state can refuse it."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from service.db import alembic_config

    if any(sign in revision for sign in "+-"):
        return True
    try:
        ScriptDirectory.from_config(alembic_config("sqlite://")).get_revisions(revision)
    except CommandError:
        return False
    return True


@db.command("downgrade")
@click.option("--revision", required=True, help="The older revision to go back to (base: none).")
@click.option("--yes", is_flag=True, help="Drop what the later migrations added (no prompt).")
def db_downgrade(revision: str, yes: bool) -> None:
    """Undo the migrations after REVISION, to run an older release that stops on this
    schema. Irreversible: the tables and columns those migrations added are dropped with
    their data (take a backup first: vea db backup). Without --yes, says what would be
    dropped and changes nothing."""
    from service.db import (
        SchemaNewerThanCode,
        downgrade,
        migration_revisions,
        migration_summaries,
        schema_revision,
    )

    url = Settings.from_env().database_url
    known = migration_revisions()
    if revision != "base" and revision not in known:
        raise click.BadParameter(
            f"no migration {revision!r}: one of {', '.join(known)}, or base",
            param_hint="'--revision'",
        )
    try:
        before = schema_revision(url)
    except sa.exc.DatabaseError as exc:
        raise _corrupt_database(url, exc) from None
    if before is not None and before not in known:
        raise click.ClickException(str(SchemaNewerThanCode(before, known[-1])))
    at = -1 if before is None else known.index(before)
    to = -1 if revision == "base" else known.index(revision)
    if at == to:
        click.echo(f"database at revision {before or revision} (already): {safe_url(url)}")
        return
    if at < to:
        where = f"revision {before}" if before else "no revision (an empty database)"
        raise click.ClickException(
            f"the database is at {where}, older than {revision}: nothing to downgrade "
            f"(vea db upgrade --revision {revision} goes up)"
        )
    summaries = migration_summaries()
    undone = "; ".join(f"{r} ({summaries[r]})" for r in reversed(known[to + 1 : at + 1]))
    lost = f"downgrading {safe_url(url)} from {before} to {revision} undoes {undone}"
    if not yes:
        raise click.UsageError(
            f"{lost}: the tables and columns they added are dropped with their data; "
            "confirm with --yes (after vea db backup)"
        )
    downgrade(url, revision)
    click.echo(f"database at revision {schema_revision(url) or 'none'} (from {before}): {lost}")


@db.command("erase-customer")
@click.argument("customer_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
@click.option(
    "--new-ledger",
    is_flag=True,
    help="Start a new erasure ledger although this database recorded erasures before "
    "(only when the ledger they went to is lost for good).",
)
def db_erase_customer(customer_id: str, yes: bool, new_ledger: bool) -> None:
    """Erase every decision, outcome, survey and event stored for CUSTOMER_ID (right to
    deletion).

    Irreversible. Aggregates built earlier (pool proficiency, trained models) and files
    exported earlier are not changed. Also DELETE /v1/customers/{customer_id}."""
    from service.deletion import forget_customer

    if not 1 <= len(customer_id) <= 128:
        raise click.BadParameter("a customer id is 1-128 characters", param_hint="'CUSTOMER_ID'")
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("erasure is irreversible: confirm with --yes")
        click.confirm(f"erase everything stored for customer {customer_id!r}?", abort=True)
    from service.erasure_ledger import ErasureLedger, LedgerError

    ledger = ErasureLedger(Settings.from_env().erasure_ledger_path())
    with service_database() as engine:
        try:
            deleted = forget_customer(
                engine, customer_id, actor=cli_actor(), ledger=ledger, new_ledger=new_ledger
            )
        except LedgerError as exc:
            raise click.ClickException(f"{exc}: nothing was erased") from None
    click.echo(f"erased {_erased(deleted)} (recorded in the erasure ledger {ledger.path})")


@db.command("reapply-erasures")
@click.option(
    "--ledger",
    "ledgers",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="An erasure ledger to read, its key beside it (repeatable: one per host that "
    "kept its own). Default: VEA_ERASURE_LEDGER's.",
)
@click.option("--yes", is_flag=True, help="Erase them; without it, only count them.")
def db_reapply_erasures(ledgers: tuple[Path, ...], yes: bool) -> None:
    """After restoring a backup: erase again every customer the erasure ledger holds.

    A restored backup brings back the customers erased after it was taken; the
    erasure ledger (VEA_ERASURE_LEDGER, outside the database) holds every erasure.
    This deletes, as erase-customer does, what each such customer had stored up to
    their erasure (a later contact is a new record and stays). Without --yes, a dry
    run: how many stored customers match. No ledger file is an error (nothing to
    reapply, or the wrong file)."""
    from service.deletion import reapply_erasures
    from service.erasure_ledger import ErasureLedger, LedgerError

    paths = list(ledgers) or [Settings.from_env().erasure_ledger_path()]
    for path in paths:
        if not path.is_file():
            raise click.ClickException(
                f"no erasure ledger at {path}: if no customer was ever erased there is "
                "nothing to reapply; otherwise give the ledger's file (--ledger, "
                "VEA_ERASURE_LEDGER)"
            )
    with service_database() as engine:
        try:
            found = reapply_erasures(
                engine, [ErasureLedger(p) for p in paths], apply=yes, actor=cli_actor()
            )
        except LedgerError as exc:
            raise click.ClickException(str(exc)) from None
    recorded = f"{found.erasures} erasures in the ledger {', '.join(map(str, paths))}"
    if found.torn:
        recorded += f", {found.torn} unreadable lines left out (writes that failed)"
    if not yes:
        click.echo(f"dry run: {found.customers} stored customers match ({recorded})")
        click.echo("erase them with --yes")
        return
    click.echo(f"erased again {found.customers} customers: {_erased(found.deleted)} ({recorded})")


def _erased(deleted: dict[str, int]) -> str:
    return (
        f"{deleted['decisions']} decisions, {deleted['outcomes']} outcomes, "
        f"{deleted['surveys']} surveys and {deleted['events']} events"
    )


@db.command("backup")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The backup file to write (never over an existing file).",
)
def db_backup(out: Path) -> None:
    """Back up VEA_DATABASE_URL's database to a new file while the service runs.

    SQLite: an online copy of the database file (SQLite's backup API), checked
    for integrity. Restore: stop the service, vea db restore --from FILE.

    PostgreSQL: runs pg_dump, which must be on PATH (the PostgreSQL client tools,
    of the server's major version or newer), on the service's own URL (any form
    it takes, postgresql+psycopg:// too), with the password in pg_dump's
    environment, never on its command line; the database role needs SELECT on
    every table and sequence. The file is pg_dump's custom format, one consistent
    snapshot. Restore into an empty database: createdb NEWDB, point
    VEA_DATABASE_URL at it, vea db restore --from FILE.

    The file is written whole or not at all; the row counts printed are those of
    the backup. Back up the model registry (VEA_REGISTRY) too, and the erasure
    ledger apart: never restore it with the database (vea db restore erases
    again the customers it holds)."""
    from service.backup import backup

    try:
        counts = backup(Settings.from_env().database_url, out)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup written to {out}: " + ", ".join(f"{n} {t}" for t, n in counts.items()))


@db.command("restore")
@click.option(
    "--from",
    "source",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The backup to restore (vea db backup's file).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
def db_restore(source: Path, yes: bool) -> None:
    """Restore a backup made by vea db backup, migrate it to this release's schema and
    erase again the customers the erasure ledger holds (a backup still has those erased
    after it was taken).

    SQLite: the backup is checked (integrity, vea's tables, a schema revision this
    release knows) and copied in place of the database; the database it replaces is
    renamed beside it, with its -wal and -shm, as DB.before-restore-TIME (nothing in it
    is lost). Refused while a vea service has the database open: stop it first.

    PostgreSQL: pg_restore (on PATH) into VEA_DATABASE_URL's database, which must hold
    none of vea's tables (createdb NEWDB, point VEA_DATABASE_URL at it): the database
    in use is never overwritten."""
    from service.backup import restore
    from service.db import SchemaNewerThanCode, upgrade, utcnow
    from service.deletion import reapply_erasures
    from service.erasure_ledger import ErasureLedger, LedgerError

    settings = Settings.from_env()
    url = settings.database_url
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "a restore replaces the database's contents with the backup's: confirm with --yes"
            )
        click.confirm(f"restore {source} into {safe_url(url)}?", abort=True)
    try:
        done = restore(url, source, now=utcnow())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if done.set_aside is not None:
        click.echo(f"the database replaced is kept as {done.set_aside}")
    try:
        before, after = upgrade(url)
    except SchemaNewerThanCode as exc:
        raise click.ClickException(
            f"restored {source}, but {exc}: serve it with the release that wrote it "
            "(its erased customers are not erased again yet: vea db reapply-erasures --yes)"
        ) from None
    counts = ", ".join(f"{n} {t}" for t, n in done.counts.items())
    moved = f", migrated from {before} to {after}" if before != after else ""
    click.echo(f"restored {source} into {safe_url(url)}: {counts}{moved}")
    ledger = ErasureLedger(settings.erasure_ledger_path())
    with service_database(url) as engine:
        if ledger.path.is_file():
            try:
                found = reapply_erasures(engine, [ledger], apply=True, actor=cli_actor())
            except LedgerError as exc:
                raise click.ClickException(
                    f"{exc}: the backup is restored, but its erased customers are not erased "
                    "again: run vea db reapply-erasures --yes once the ledger is readable"
                ) from None
            click.echo(
                f"erased again {found.customers} customers of the {found.erasures} erasures "
                f"in the ledger {ledger.path}: {_erased(found.deleted)}"
            )
        else:
            click.echo(
                f"no erasure ledger at {ledger.path}: no customer was erased here since the "
                "ledger began (erasures made on another host: vea db reapply-erasures "
                "--ledger FILE --yes)"
            )
        record_now(
            engine,
            cli_actor(),
            "data.restore",
            source.name[:128],
            {"counts": done.counts, "set_aside": done.set_aside.name if done.set_aside else None},
        )
    click.echo("run your retention's vea db prune again: the backup holds what was pruned since")


@db.command("prune")
@click.option(
    "--before",
    type=INSTANT,
    required=True,
    help="Delete decisions, their outcomes and surveys, and events that happened before "
    "this UTC date.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts, cron).")
def db_prune(before, yes: bool) -> None:
    """Data retention: delete what happened before a date (at least 90 days ago, so
    every stored contact has its retention outcome). Irreversible. The audit log is not
    pruned (it is append-only)."""
    from service.deletion import MIN_RETENTION_DAYS, check_cutoff, prune_before

    try:
        check_cutoff(before)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--before'") from None
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("pruning is irreversible: confirm with --yes")
        click.confirm(
            f"delete everything that happened before {before:%Y-%m-%d %H:%M}?", abort=True
        )
    with service_database() as engine:
        deleted = prune_before(engine, before, actor=cli_actor())
    click.echo(
        f"deleted {deleted['decisions']} decisions, {deleted['outcomes']} outcomes, "
        f"{deleted['surveys']} surveys and {deleted['events']} events before {before:%Y-%m-%d %H:%M} UTC "
        f"(minimum retention {MIN_RETENTION_DAYS} days)"
    )


@click.group("keys", cls=OneLineErrorGroup)
def keys() -> None:
    """API keys (stored hashed)."""


def _key_label(_ctx, _param, value: str) -> str:
    """A label `vea keys list` can show on its row: at most 100 characters (it was cut
    there silently), no line break or other control character (one split the table)."""
    if len(value) > MAX_KEY_LABEL:
        raise click.BadParameter(f"at most {MAX_KEY_LABEL} characters (got {len(value)})")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise click.BadParameter("must not hold line breaks or other control characters")
    return value


MAX_KEY_LABEL = 100


@keys.command("create")
@click.option(
    "--role",
    type=click.Choice(["desktop", "engineer", "manager", "admin"]),
    required=True,
    help="desktop: decisions/outcomes/events and the agent desk; engineer: models; "
    "manager: reports and the value dashboard; admin: everything",
)
@click.option(
    "--label", default="", callback=_key_label, help="who or what uses the key (<= 100 chars)"
)
@click.option(
    "--expires-in",
    "expires_in",
    type=int,
    default=None,
    metavar="DAYS",
    help="The key stops working this many days from now (default: never).",
)
@click.option(
    "--expires",
    "expires_on",
    default=None,
    metavar="YYYY-MM-DD",
    help="The key stops working at the start of this day (UTC).",
)
def keys_create(role: str, label: str, expires_in: int | None, expires_on: str | None) -> None:
    """Create a key and print it (shown once; only its hash is stored)."""
    from service.auth import create_key
    from service.db import iso_utc

    expires_at = _key_expiry(expires_in, expires_on)
    with service_database() as engine:
        key_id, key = create_key(engine, role, label, expires_at=expires_at, actor=cli_actor())
    until = f", expires {iso_utc(expires_at)}" if expires_at else ""
    click.echo(f"key id {key_id} (role {role}{until}):", err=True)
    click.echo(key)


def _key_expiry(expires_in: int | None, expires_on: str | None) -> datetime | None:
    """The expiry (naive UTC) asked for, or None; a bad value is a one-line CLI error."""
    from service.db import utcnow

    if expires_in is not None and expires_on is not None:
        raise click.UsageError("give --expires-in or --expires, not both")
    now = utcnow()
    if expires_in is not None:
        if expires_in <= 0:
            raise click.BadParameter(
                f"{expires_in} is not a number of days above 0", param_hint="'--expires-in'"
            )
        if expires_in > 36_500:
            raise click.BadParameter(
                f"{expires_in} is over 36500 days (leave it out for a key that never expires)",
                param_hint="'--expires-in'",
            )
        return now + timedelta(days=expires_in)
    if expires_on is not None:
        try:
            day = datetime.strptime(expires_on, "%Y-%m-%d")
        except ValueError:
            raise click.BadParameter(
                f"{expires_on!r} is not a date YYYY-MM-DD", param_hint="'--expires'"
            ) from None
        if day <= now:
            raise click.BadParameter(
                f"{expires_on} is not in the future (UTC)", param_hint="'--expires'"
            )
        return day
    return None


@keys.command("list")
@click.option("--active", is_flag=True, help="Leave revoked and expired keys out.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def keys_list(active: bool, as_json: bool) -> None:
    """Every key's id, role, label, creation, revocation and expiry time (secrets are never
    stored); an expired key's expiry is marked "(expired)"."""
    from service.auth import list_keys

    with service_database() as engine:
        found = list_keys(engine, include_revoked=not active)
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    if not found:
        click.echo("no keys: create one with vea keys create --role ROLE", err=True)
        return
    click.echo(
        f"{'key id':<14}{'role':<10}{'created (UTC)':<26}{'revoked (UTC)':<26}"
        f"{'expires (UTC)':<36}label"
    )
    for key in found:
        expires = key["expires_at"] or "never"
        if key["expired"]:
            expires = f"{expires} (expired)"
        click.echo(
            f"{key['key_id']:<14}{key['role']:<10}{key['created_at']:<26}"
            f"{key['revoked_at'] or '-':<26}{expires:<36}{key['label']}"
        )


@keys.command("revoke")
@click.argument("key_or_id")
def keys_revoke(key_or_id: str) -> None:
    """Disable a key, given the key or its id (takes effect within VEA_KEY_CACHE_S)."""
    from service.auth import revoke_key

    with service_database() as engine:
        done = revoke_key(engine, key_or_id, actor=cli_actor())
    if not done:
        raise click.ClickException("no active key matches")
    click.echo("revoked")


@click.command("export")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help=".parquet or .csv")
@click.option(
    "--since",
    type=INSTANT,
    default=None,
    help="Only decisions at or after this UTC date/time (default: all).",
)
@click.option("--until", type=INSTANT, default=None, help="Only decisions before this.")
def export(out: str, since, until) -> None:
    """Stored decisions, outcomes and customer events as the canonical log (with
    propensities, arms and model versions), ready for `vea train`."""
    from service.export import ExportError, export_log

    if Path(out).suffix.lower() not in (".csv", ".parquet"):
        raise click.BadParameter("use a .csv or .parquet file name", param_hint="--out")
    # An empty or inverted period selects nothing: refused, as `vea report` refuses it,
    # not exported as a header-only file that reads as "no decisions were made".
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("must be before --until", param_hint="--since")
    with service_database() as engine:
        try:
            result = export_log(engine, out, since=since, until=until)
        except ExportError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:  # a full disk, no permission: the operator's to fix
            raise click.ClickException(f"cannot write {out}: {os_reason(exc, out)}") from None
    click.echo(f"exported {result.rows} decisions with outcomes to {out}")
    if result.pending:
        click.echo(
            f"note: {result.pending} decisions in the period have no outcome yet and were left out",
            err=True,
        )
    if result.surveys_pending:
        click.echo(
            f"note: {result.surveys_pending} of them have survey answers waiting for the "
            "agent's outcome: they are exported once it is recorded",
            err=True,
        )
    if result.without_ves:
        click.echo(
            f"note: {result.without_ves} outcomes have no VES answers (ve_success empty): "
            "the ve_success reward leaves them out, accepted and retention rewards use them",
            err=True,
        )
    if result.rows == 0:
        click.echo("note: no decisions with outcomes in the period", err=True)


@click.command("report")
@click.option("--from", "start", type=INSTANT, default=None, help="Period start (UTC).")
@click.option("--to", "end", type=INSTANT, default=None, help="Period end (exclusive).")
@click.option("--json", "as_json", is_flag=True, help="The full report as JSON (as the API).")
@click.option(
    "--reward",
    default=None,
    help="The reward to report: ve_success (default), accepted, retained_30d|60d|90d, "
    "upgraded or weighted.",
)
@click.option(
    "--reward-weights", default=None, help="For --reward weighted: ve_success=1,accepted=0.5"
)
@click.option(
    "--organic",
    is_flag=True,
    help="Instead: where agents enhance value without vea's suggestion, by situation, and "
    "the candidates to suggest next (as GET /v1/reports/organic).",
)
@click.option(
    "--by",
    default=",".join(DEFAULT_SITUATION),
    show_default=True,
    help=f"With --organic: the features of a situation, from {', '.join(SITUATION_FEATURES)}.",
)
@click.option(
    "--min-attempts",
    type=click.IntRange(1),
    default=ORGANIC_MIN_ATTEMPTS,
    show_default=True,
    help="With --organic: organic attempts with a result a candidate needs.",
)
def report(
    start, end, as_json: bool, reward, reward_weights, organic: bool, by: str, min_attempts: int
) -> None:
    """The value report: measures by group, uplift over the holdout, ROI, shadow."""

    from models.schema import RewardError, parse_reward
    from service import reports
    from service.schemas import ValueReportSchema

    if start is not None and end is not None and start >= end:
        raise click.BadParameter("must be before --to", param_hint="--from")
    if organic:
        _organic_report(start, end, by, min_attempts, as_json, reward or reward_weights)
        return
    chosen = None
    if reward is not None or reward_weights is not None:
        try:
            chosen = parse_reward(reward, reward_weights)
        except RewardError as exc:
            raise click.BadParameter(str(exc), param_hint="--reward") from None
    settings = Settings.from_env()
    with service_database(settings.database_url) as engine:
        result = ValueReportSchema().dump(
            reports.value(engine, settings, start, end, reward=chosen)
        )
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(_report_text(result))


def _organic_report(start, end, by: str, min_attempts: int, as_json: bool, reward) -> None:
    from service import reports
    from service.schemas import OrganicReportSchema

    if reward:
        raise click.UsageError(
            "--reward and --reward-weights are for the value report, not --organic"
        )
    try:
        situation = parse_situation(by)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--by") from None
    settings = Settings.from_env()
    with service_database(settings.database_url) as engine:
        result = OrganicReportSchema().dump(
            reports.organic(engine, start, end, situation=situation, min_attempts=min_attempts)
        )
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(_organic_text(result))


def _organic_text(result: dict) -> str:
    period = result["period"]
    lines = [
        f"period {period['from'] or 'start of data'} to {period['to'] or 'now'} "
        "(UTC, end exclusive)",
        f"{result['organic_attempts']} organic attempts (offered without vea's suggestion) in "
        f"{result['contacts']} contacts; every attempt's success "
        f"{_percent(result['baseline_success_rate'])} ({result['attempts_with_result']} "
        f"with a result); {result['candidates']} candidates (at least "
        f"{result['min_attempts']} with a result)",
    ]
    if result["rows"]:
        lines.append("")
        lines.append(
            f"  {' / '.join(result['situation']):<32} {'activity':<18} {'tried':>6} "
            f"{'success':>8} {'95% interval':>15} {'vea suggests':>12}"
        )
    for row in result["rows"]:
        situation = " / ".join(row["situation"].values())
        interval = (
            f"[{_percent(row['interval'][0])}, {_percent(row['interval'][1])}]"
            if row["interval"]
            else "-"
        )
        lines.append(
            f"{'*' if row['candidate'] else ' '} {situation:<32} {row['activity']:<18} "
            f"{row['organic_attempts']:>6} {_percent(row['organic_success_rate']):>8} "
            f"{interval:>15} {_percent(row['suggested_share']):>12}"
        )
    lines.append("")
    lines.append("* candidate. " + result["note"])
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _money(value) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _srm_shares(srm: dict) -> list[str]:
    """The holdout share the sample ratio check expected and where it came from, and each
    run of a share that changed in the period (the message says it in prose; an operator
    splitting the period needs the times)."""
    if srm.get("expected_share") is None:
        return []
    source = {
        "configured": "VEA_HOLDOUT_SHARE; no decision says otherwise",
        "decisions": "read from the decisions",
        "unchecked": "VEA_HOLDOUT_SHARE, unchecked: the arms do not follow VEA_EXPERIMENT",
    }.get(srm.get("share_source"), srm.get("share_source"))
    lines = [
        f"  expected holdout share {_percent(srm['expected_share'])} ({source}; configured "
        f"{_percent(srm['configured_share'])}), share changes in the period "
        f"{'-' if srm.get('share_changes') is None else srm['share_changes']}"
    ]
    if srm.get("share_changes"):
        for run in srm.get("share_history") or []:
            after = f" (changed after {run['changed_after']})" if run.get("changed_after") else ""
            lines.append(
                f"    {_percent(run['share'])} from {run['from'] or '?'} to {run['to'] or '?'}"
                f"{after}, {run['decisions']} decisions"
            )
    return lines


def _report_text(result: dict) -> str:
    from models.value_report import uplift_shown

    o = result["overall"]
    period = result["period"]
    lines = [
        f"period {period['from'] or 'start of data'} to {period['to'] or 'now'} "
        "(UTC, end exclusive)",
        f"decisions {result['decisions']} (with outcome {result['with_outcome']}, "
        f"pending {result['pending']}"
        + (
            f", {result['surveys_pending']} of them with survey answers waiting for it)"
            if result.get("surveys_pending")
            else ")"
        ),
        f"success {_fmt(o['success_rate'])}  VES {_fmt(o['ves_confidence'])}/"
        f"{_fmt(o['ves_ability'])}  acceptance {_fmt(o['acceptance'])}  "
        f"handle {_fmt(o['handle_time_s'])} s  CSAT {_fmt(o['csat'])}  "
        f"NPS {_fmt(o['nps'])} ({o['nps_n']} answers)  CES {_fmt(o['ces'])} "
        f"({o['ces_n']} answers)  retained 60d {_fmt(o['retained_60d'])}",
        "uplift treated - holdout (95% CI):",
    ]
    for name, u in result["uplift"].items():
        if not uplift_shown(name, result):
            continue
        mark = " (pre-declared)" if u["pre_declared"] else ""
        lines.append(
            f"  {name:<13} {_fmt(u['value'])} [{_fmt(u['ci_low'])}, {_fmt(u['ci_high'])}]"
            f"  contacts {u['n_treated']}/{u['n_holdout']}"
            f", customers {u['units_treated']}/{u['units_holdout']}{mark}"
        )
    srm = result.get("srm")
    if srm:
        lines.append(f"{'WARNING' if srm['mismatch'] else 'sample ratio'}: {srm['message']}")
        lines.extend(_srm_shares(srm))
    lines.append("treated vs holdout (treated - holdout, 95% CI):")
    for name, d in result["treated_vs_holdout"].items():
        lines.append(
            f"  {name:<13} {_fmt(d['treated'])} vs {_fmt(d['holdout'])}: {_fmt(d['value'])} "
            f"[{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]  answers {d['n_treated']}/"
            f"{d['n_holdout']}, customers {d['units_treated']}/{d['units_holdout']}"
        )
    roi = result["roi"]
    lines.append(
        f"ROI per contact {_money(roi['value'])} [{_money(roi['ci_low'])}, "
        f"{_money(roi['ci_high'])}], total {_money(roi['total'])} [{_money(roi['total_ci_low'])}"
        f", {_money(roi['total_ci_high'])}] over {roi['treated_customers']} treated customers "
        f"({roi['treated_contacts']} contacts)"
    )
    upgrades = roi.get("upgrade_revenue")
    if upgrades and roi.get("upgrades_valued"):
        lines.append(
            f"  upgrade revenue per customer in it (60 days) {_money(upgrades['value'])} "
            f"[{_money(upgrades['ci_low'])}, {_money(upgrades['ci_high'])}]"
        )
        unvalued = roi.get("upgrades_without_value") or {}
        if roi.get("upgrade_revenue_note"):
            lines.append(
                f"  upgrades without a value (counted 0): treated {unvalued.get('treated')}, "
                f"holdout {unvalued.get('holdout')}"
            )
            lines.append(f"  NOTE: {roi['upgrade_revenue_note']}")
    if roi["units_holdout"] and not roi["enough_data"]:
        lines.append(
            f"not enough data for intervals: at least {result['min_customers']} customers per "
            f"arm are needed (treated {roi['units_treated']}, holdout {roi['units_holdout']})"
        )
    warning = result["holdout_offers"]["warning"]
    if warning:
        lines.append(f"WARNING: {warning}")
    lines.append(f"success measures: {result['success_measures']['note']}")
    reward = result.get("reward") or {}
    if reward:
        lines.append(
            f"reward: {reward.get('label') or reward.get('name')} "
            f"(known {reward.get('known')}, still unknown {reward.get('unknown')})"
        )
    if result["by"]["activity"]:
        lines.append("by activity (treated contacts; answers behind each rate):")
    for item in result["by"]["activity"]:
        lines.append(
            f"  {item['group']:<18} n={item['n']:<6} success {_fmt(item['success_rate'])} "
            f"({item['success_n']})  NPS {_fmt(item['nps'])} ({item['nps_n']})  retained "
            f"{_fmt(item['retained_60d'])} ({item['retained_60d_n']})"
        )
    for dimension in ("pool_id", "agent_id"):
        groups = result["by"].get(dimension) or []
        if groups:
            lines.append(
                f"offers by {dimension.removesuffix('_id')} (counts; offered when suggested, "
                "accepted when offered):"
            )
        for item in groups:
            lines.append(
                f"  {item['group']:<18} suggested {item['suggested']}  "
                f"offered {item['offered']} ({_percent(item['offer_rate'])})  "
                f"accepted {item['accepted']} ({_percent(item['acceptance'])})"
            )
    for comparison in (result.get("shadow") or {}).get("comparisons", []):
        gain = comparison["improvement"]
        lines.append(
            f"shadow {comparison['shadow_version']} on {comparison['rows']} decisions: "
            f"{_fmt(gain['value'])} [{_fmt(gain['ci_low'])}, {_fmt(gain['ci_high'])}] "
            f"vs champion; {comparison['verdict']}"
        )
    return "\n".join(lines)


# What an offline rebuild needs from each row: who handled it, what was tried, and
# whether it worked. `vea score` writes predictions only, so its output is not enough.
REBUILD_LOG_COLUMNS = ("activity", "agent_id", "ve_success")


def _check_rebuild_log(path: str) -> None:
    """Refuse a --log without outcomes and agent ids, saying which log is needed."""
    import pandas as pd

    try:
        if path.lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            columns = set(pq.read_schema(path).names)
        else:
            columns = set(pd.read_csv(path, nrows=0).columns)
    except UnicodeDecodeError as exc:
        raise click.ClickException(_not_utf8(path)) from exc
    except (OSError, ValueError):  # the full read reports it with its detail
        return
    missing = sorted(set(REBUILD_LOG_COLUMNS) - columns)
    if not missing:
        return
    scored = {"openness", "suggested_activity"} <= columns
    raise click.ClickException(
        f"{path}: missing columns {missing}: --log needs decisions with their outcomes and "
        "agent ids (columns activity, agent_id, ve_success), e.g. "
        "`vea export --out var/log.parquet`"
        + (
            "; this looks like `vea score` output, which has predictions but no outcomes"
            if scored
            else ""
        )
        + ". The model's probabilities come from p_<activity> columns in that log, "
        "--prob-column COL, or --model VERSION|champion to score it"
    )


def _not_utf8(path: str) -> str:
    return (
        f"{path}: not UTF-8 text; convert it, e.g. `iconv -f SHIFT_JIS -t UTF-8` "
        "(name the file's real encoding)"
    )


@click.group("pools")
def pools() -> None:
    """Agent pools: proficiency from outcomes and pool membership."""


@pools.command("rebuild")
@click.option(
    "--log",
    "log_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Offline: a log of decisions with outcomes and agent ids (CSV/Parquet, e.g. a "
    "`vea export`) instead of the stored outcomes.",
)
@click.option(
    "--prob-column",
    default=None,
    help="With --log: the model's success probability of each row's activity.",
)
@click.option(
    "--model",
    default=None,
    help="With --log: score the rows with this model "
    "version (or 'champion') when the log has no probabilities.",
)
@click.option("--registry", default=None, help="Model registry (default: VEA_REGISTRY).")
@click.option(
    "--min-contacts",
    type=click.IntRange(min=1),
    default=None,
    help="Attempts before an agent can join (default: VEA_PROFICIENCY_MIN_CONTACTS).",
)
@click.option("--dry-run", is_flag=True, help="Print what would change; store nothing.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the new pools config to this YAML file instead of the database.",
)
def pools_rebuild(log_path, prob_column, model, registry, min_contacts, dry_run, out) -> None:
    """Recompute agent proficiency and the proficiency pools; print what changed."""
    import yaml

    from models.pools import PoolError, load_config
    from service import pools as use_cases

    if not log_path and (prob_column or model):
        # Without --log the rebuild reads the stored outcomes with the probabilities the
        # serving model gave them: these options would be silently ignored.
        raise click.UsageError("--prob-column and --model need --log")
    settings = Settings.from_env()
    min_contacts = min_contacts or settings.proficiency_min_contacts
    with service_database(settings.database_url) as engine:
        try:
            file_config = load_config(settings.pools, strict=False)
            config, _ = use_cases.current_config(engine, file_config)
            if log_path:
                _check_rebuild_log(log_path)
                bundle = None
                if model:
                    from models.registry import Registry

                    root = Path(registry or settings.registry)
                    if not root.is_dir():
                        raise click.ClickException(
                            f"--registry {root}: the model registry folder does not exist"
                        )
                    reg = Registry(root)
                    version = reg.champion() if model == "champion" else model
                    if version is None:
                        raise click.ClickException(
                            f"--model champion: the registry {root} has no champion"
                        )
                    bundle = reg.load(version)
                try:
                    records = use_cases.log_records(
                        log_path, prob_column=prob_column, bundle=bundle
                    )
                except UnicodeDecodeError as exc:  # past the header: a clear message still
                    raise click.ClickException(_not_utf8(log_path)) from exc
            else:
                records = list(use_cases.outcome_records(engine))
            proficiency = use_cases.measure(records, min_contacts)
        except PoolError as exc:
            raise click.ClickException(str(exc)) from exc
        stored = False
        try:
            if out or dry_run:
                result = use_cases.rebuild_pools(config, proficiency, min_contacts=min_contacts)
                pools_file = use_cases.stored_form(result.config)  # as VEA_POOLS reads it
            else:
                # Rebuilds the config as stored now, not as read before the outcomes, and
                # stores it only if it is still that one: a PUT /v1/pools made meanwhile is
                # kept. The event in the config's own transaction, as the API's rebuild: a
                # stored config always has it, one that failed records nothing.
                actor = cli_actor()
                result = use_cases.store_rebuild(
                    engine,
                    file_config,
                    proficiency,
                    min_contacts,
                    actor=actor,
                    audit_event=Event(actor, "pools.rebuild"),
                )
                stored = True
        except use_cases.StoredConfigRefused as exc:
            raise click.ClickException(str(exc)) from exc
        except PoolError as exc:  # a config the routers would refuse: nothing written
            raise InputError(f"the rebuilt pools config cannot be used: {exc}") from None
        except use_cases.ConfigChanged as exc:
            raise click.ClickException(
                "nothing stored: the pools config changed each of the "
                f"{use_cases.REBUILD_ATTEMPTS} times the rebuild went to store its result "
                f"(last: {exc}); run vea pools rebuild again"
            ) from None
        for line in result.changes or ["no changes"]:
            click.echo(line)
        qualified = sum(p.qualified for p in result.proficiency)
        agents = len({p.agent_id for p in result.proficiency})
        click.echo(f"{agents} agents measured, {qualified} qualified agent-activities", err=True)
        if result.proficiency and not any(p.contacts >= min_contacts for p in result.proficiency):
            most = max(result.proficiency, key=lambda p: p.contacts)
            click.echo(
                f"nobody can join a pool yet: an agent needs {min_contacts} offered attempts "
                "with VES answers at an activity (--min-contacts); the most so far is "
                f"{most.contacts} ({most.agent_id} at {most.activity})",
                err=True,
            )
        if out:
            Path(out).write_text(yaml.safe_dump(pools_file, allow_unicode=True))
            click.echo(f"wrote {out}", err=True)
        elif stored:
            click.echo("stored: every worker routes with it within VEA_POOLS_POLL_S", err=True)


@pools.command("show")
@click.option("--json", "as_json", is_flag=True, help="As GET /v1/pools answers.")
def pools_show(as_json: bool) -> None:
    """Pools, members, lift and every agent's proficiency with its 90% interval."""
    import json

    from models.matching import RoutingRules
    from models.pools import load_config
    from service import pools as use_cases

    settings = Settings.from_env()
    with service_database(settings.database_url) as engine:
        config, source = use_cases.current_config(engine, load_config(settings.pools, strict=False))
        described = use_cases.describe(engine, config, source, settings.availability_ttl_s)
    if as_json:
        click.echo(json.dumps(described, indent=2, ensure_ascii=False))
        return
    click.echo(
        f"pools from the {source}"
        + (f" ({described['updated_at']})" if described["updated_at"] else "")
    )
    for pool in described["pools"]:
        click.echo(use_cases.pool_line(pool))
    click.echo(
        f"availability (a report older than {settings.availability_ttl_s:g} s is ignored; "
        f"a wait without the platform's is (queue + 1) x {settings.routing_mean_handle_s:g} s "
        "/ agents):"
    )
    rules = RoutingRules(
        max_wait_s=settings.routing_max_wait_s, mean_handle_s=settings.routing_mean_handle_s
    )
    for line in use_cases.availability_lines(config, described["availability"], rules):
        click.echo(line)
    if described["proficiency"]:
        click.echo("\n".join(use_cases.proficiency_table(described["proficiency"])))
    else:
        click.echo("no proficiency measured yet: run `vea pools rebuild`")


class _AuditCursor(click.ParamType):
    """The ``next`` an earlier page printed (as ``GET /v1/audit``'s), decoded."""

    name = "cursor"

    def convert(self, value, param, ctx):
        from service.audit import decode_cursor

        try:
            return value, decode_cursor(value)
        except ValueError:
            self.fail("not a cursor: pass the one an earlier page printed", param, ctx)


@click.command("audit", cls=OneLineErrorCommand)
@click.option(
    "--since",
    type=INSTANT,
    default=None,
    help="Only events at or after this UTC date (or time).",
)
@click.option(
    "--until", type=INSTANT, default=None, help="Only events before this UTC date (or time)."
)
@click.option(
    "--limit",
    type=click.IntRange(1, AUDIT_MAX_PAGE),
    default=None,
    help=f"At most this many events (a page, as GET /v1/audit's limit; at most "
    f"{AUDIT_MAX_PAGE}); the command then prints the cursor of the next page. Default: all.",
)
@click.option(
    "--cursor",
    type=_AuditCursor(),
    default=None,
    help=f"The next page: the cursor the previous page printed (same --since/--until; "
    f"{AUDIT_PAGE} events unless --limit).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON instead of a table: a list of the events, or with --limit/--cursor the "
    "API's page ({events, next, resume}).",
)
def audit(
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    cursor: tuple[str, Position] | None,
    as_json: bool,
) -> None:
    """The audit log of administrative actions (keys, erasures, pruning, pools, models),
    in the order recorded. Append-only: nothing deletes from it, `vea db prune` included."""
    from service.audit import CursorPastTheEnd, list_events, page_events

    if since is not None and until is not None and since >= until:
        raise click.BadParameter("must be before --until", param_hint="'--since'")
    paged = limit is not None or cursor is not None
    page = None
    with service_database() as engine:
        if paged:
            try:
                page = page_events(
                    engine,
                    since,
                    until,
                    limit=limit or AUDIT_PAGE,
                    after=cursor[1] if cursor else None,
                )
            except CursorPastTheEnd as exc:
                raise click.BadParameter(str(exc), param_hint="'--cursor'") from None
            events = page.events
        else:
            events = list_events(engine, since=since, until=until)
    following = page.next if page else None
    if as_json:
        answer = page._asdict() if page else events
        click.echo(json.dumps(answer, ensure_ascii=False, indent=2))
        return
    if not events:
        click.echo("no audit events", err=True)
    rows = [
        (
            event["occurred_at"],
            event["actor"],
            event["action"],
            event["target"] or "-",
            json.dumps(event["details"], sort_keys=True) if event["details"] else "",
        )
        for event in events
    ]
    # Each column as wide as its longest cell and two spaces more (a model version is 28
    # characters, an actor `cli:<OS user>` any length): no cell runs into the next.
    header = ("time (UTC)", "actor", "action", "target", "details")
    widths = [
        max(len(cell) for cell in column) + 2
        for column in list(zip(header, *rows, strict=True))[:-1]
    ]
    for row in [header, *rows] if rows else []:
        click.echo(
            "".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=False)) + row[-1]
        )
    if following:
        # The whole command for the next page, the period included: a cursor is a
        # position within that period.
        period = "".join(
            f" --{name} {moment.isoformat()}"
            for name, moment in (("since", since), ("until", until))
            if moment is not None
        )
        click.echo(
            f"more events: vea audit{period} --limit {limit or AUDIT_PAGE} --cursor {following}",
            err=True,
        )


commands = [serve, db, keys, export, report, pools, audit]
