"""A destination that cannot be written (a full disk, a directory no file can be made
in) is one ``Error:`` line naming the path and the reason, exit 1, and leaves nothing
behind: `vea db backup` printed "unexpected OperationalError (a bug ...)" and left its
``.partial-journal`` beside the target.

A full disk is made without root: a child process whose files may not grow past a few
KiB (RLIMIT_FSIZE; Python ignores SIGXFSZ, so the write fails as on a full disk)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from service.db import upgrade
from training.cli import cli

ROOT = Path(__file__).resolve().parents[1]
# Not a multiple of SQLite's page size: the write that crosses it is cut short, which
# SQLite reports as "database or disk is full".
LIMIT = 64 * 1024 + 1000


def _big_database(tmp_path: Path) -> str:
    """A migrated database several times larger than LIMIT."""
    path = tmp_path / "live" / "vea.db"
    path.parent.mkdir()
    url = sa.URL.create("sqlite", database=str(path)).render_as_string()
    upgrade(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE ballast (b BLOB)"))
        conn.execute(sa.text("INSERT INTO ballast VALUES (zeroblob(1048576))"))
    engine.dispose()
    return url


def _small_files() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def test_a_backup_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    url = _big_database(tmp_path)
    target = tmp_path / "backups"
    target.mkdir()
    out = target / "b.db"

    done = subprocess.run(
        [sys.executable, "-c", "from training.cli import cli; cli()", "db", "backup"]
        + ["--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "VEA_DATABASE_URL": url},
        capture_output=True,
        text=True,
        preexec_fn=_small_files,  # noqa: PLW1509 - only sets a limit, no threads involved
        check=False,
    )

    assert done.returncode == 1, done.stdout + done.stderr
    # SQLite's own words for the failed write ("disk I/O error", "database or disk is
    # full"): which one depends on where the copy hits the limit.
    assert done.stderr.startswith(f"Error: cannot write the backup to {out}: "), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "bug" not in done.stderr
    assert list(target.iterdir()) == []


def test_a_backup_into_a_directory_where_no_file_can_be_made_is_one_line(tmp_path):
    url = _big_database(tmp_path)
    # /proc takes no new files, even from root (a chmod 0500 directory would not stop
    # the root the tests run as).
    out = Path("/proc") / f"vea-backup-{os.getpid()}.db"

    done = CliRunner().invoke(
        cli, ["db", "backup", "--out", str(out)], env={"VEA_DATABASE_URL": url}
    )

    assert done.exit_code == 1, done.output
    assert done.output.startswith(f"Error: cannot write the backup to {out}: "), done.output
    assert len(done.output.strip().splitlines()) == 1, done.output
    assert "bug" not in done.output
    assert not list(Path("/proc").glob(f".vea-backup-{os.getpid()}.db*"))


def _migrated(tmp_path: Path) -> str:
    url = sa.URL.create("sqlite", database=str(tmp_path / "vea.db")).render_as_string()
    upgrade(url)
    return url


def test_an_export_under_a_file_names_the_folder_that_is_a_file(tmp_path):
    url = _migrated(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "afile" / "x.csv"

    done = CliRunner().invoke(cli, ["export", "--out", str(out)], env={"VEA_DATABASE_URL": url})

    assert done.exit_code == 1, done.output
    assert done.output == f"Error: cannot write {out}: Not a directory: {out.parent}\n"


def test_an_export_into_a_directory_where_no_file_can_be_made_is_one_line(tmp_path):
    url = _migrated(tmp_path)
    out = Path("/proc") / f"vea-export-{os.getpid()}.csv"

    done = CliRunner().invoke(cli, ["export", "--out", str(out)], env={"VEA_DATABASE_URL": url})

    assert done.exit_code == 1, done.output
    assert done.output.startswith(f"Error: cannot write {out}: "), done.output
    assert len(done.output.strip().splitlines()) == 1, done.output
    assert "bug" not in done.output
    assert not list(Path("/proc").glob(f".vea-export-{os.getpid()}.csv*"))


COMMANDS_ON_THE_DATABASE = [
    ["keys", "list"],
    ["keys", "create", "--role", "admin", "--label", "night shift"],
    ["export", "--out", "{dir}/e.csv"],
    ["db", "prune", "--before", "2020-01-01", "--yes"],
    ["db", "erase-customer", "c-1", "--yes"],
    ["audit"],
    ["report"],
]


def test_a_mistyped_sqlite_path_is_named_and_nothing_is_created(tmp_path):
    url = sa.URL.create("sqlite", database=str(tmp_path / "typo.db")).render_as_string()
    for argv in COMMANDS_ON_THE_DATABASE:
        argv = [arg.format(dir=tmp_path) for arg in argv]

        done = CliRunner().invoke(cli, argv, env={"VEA_DATABASE_URL": url})

        assert done.exit_code == 1, (argv, done.output)
        assert done.output == (
            f"Error: VEA_DATABASE_URL: no database at {tmp_path / 'typo.db'}: run "
            "`vea db upgrade` to create it (or correct the path)\n"
        ), argv
        assert list(tmp_path.iterdir()) == [], argv

    # vea db upgrade still creates it, and the commands then work on it.
    assert CliRunner().invoke(cli, ["db", "upgrade"], env={"VEA_DATABASE_URL": url}).exit_code == 0
    done = CliRunner().invoke(cli, ["keys", "list"], env={"VEA_DATABASE_URL": url})
    assert done.exit_code == 0, done.output


def test_score_into_a_folder_that_is_a_file_is_one_line(tmp_path, registry_dir):
    """`vea score` writes with the same table writer: it ended in a traceback."""
    from training.simulate import simulate

    log, _truth = simulate(rows=200, seed=3)
    data = tmp_path / "log.csv"
    log.to_csv(data, index=False)
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "afile" / "x.csv"
    argv = ["score", "--data", str(data), "--out", str(out), "--registry", str(registry_dir)]
    done = CliRunner().invoke(cli, argv, env={"VEA_COMPILE_CACHE": ""})
    assert done.exit_code == 1, done.output
    assert f"Error: cannot write {out}: Not a directory: {out.parent}\n" in done.output
    assert "Traceback" not in done.output and "bug" not in done.output


def test_a_model_promotion_with_a_mistyped_database_path_makes_no_database(tmp_path, registry_dir):
    """The promotion is the registry's; its audit event goes to the service database if
    there is one, and a path with no database gets none made (as the other commands)."""
    from models.registry import Registry

    registry = Registry(registry_dir)
    other = next(v for v in registry.version_ids() if v != registry.champion())
    folder = tmp_path / "db"
    folder.mkdir()
    url = sa.URL.create("sqlite", database=str(folder / "typo.db")).render_as_string()
    argv = ["models", "promote", other, "--registry", str(registry_dir)]
    done = CliRunner().invoke(cli, argv, env={"VEA_DATABASE_URL": url})
    assert done.exit_code == 0, done.output
    assert registry.champion() == other
    assert list(folder.iterdir()) == []


def test_tables_written_are_owner_only_and_leave_no_temporary_file(tmp_path):
    """A log or scored table holds customer ids, as a backup does (0600): it was written
    with the umask's mode (usually 0644, every local user), under a fixed temporary name
    two writers of one path shared."""
    import stat

    import pandas as pd

    from models.tables import write_table

    frame = pd.DataFrame({"customer_id": ["c-1", "c-2"], "n": [1, 2]})
    for name in ("log.csv", "log.parquet"):
        written = write_table(frame, tmp_path / name)
        assert stat.S_IMODE(written.stat().st_mode) == 0o600, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "log.parquet"]


def test_a_key_label_is_refused_rather_than_cut_or_split_across_lines(tmp_path):
    url = _migrated(tmp_path)
    for label, problem in (("x" * 101, "at most 100 characters"), ("a\nb", "line breaks")):
        done = CliRunner().invoke(
            cli, ["keys", "create", "--role", "desktop", "--label", label],
            env={"VEA_DATABASE_URL": url},
        )  # fmt: skip
        assert done.exit_code == 2 and problem in done.output, done.output
    done = CliRunner().invoke(
        cli, ["keys", "create", "--role", "desktop", "--label", "x" * 100],
        env={"VEA_DATABASE_URL": url},
    )  # fmt: skip
    assert done.exit_code == 0, done.output
