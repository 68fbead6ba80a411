"""The Makefile as an operator uses it: `make clean` never erases what `make run` serves
(the SQLite database with its keys and outcomes, the model registry)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(target: str) -> list[list[str]]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, check=True
    ).stdout
    return [shlex.split(line) for line in out.splitlines() if line.startswith("rm ")]


def _removes(commands: list[list[str]], path: str) -> bool:
    """Whether some rm removes ``path`` or a directory holding it."""
    return any(
        path == arg or path.startswith(arg.rstrip("/") + "/")
        for command in commands
        for arg in command[1:]
        if not arg.startswith("-")
    )


def test_clean_keeps_the_database_and_the_registry():
    commands = _dry_run("clean")
    assert _removes(commands, ".venv") and _removes(commands, "var/cache/compiled")
    for kept in ("var/vea.db", "var/vea.db-wal", "var/registry/champion"):
        assert not _removes(commands, kept), kept


def test_clean_data_is_the_explicit_way_to_erase_them():
    assert _removes(_dry_run("clean-data"), "var/vea.db")
