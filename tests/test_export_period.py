"""`vea export` refuses a period that selects nothing, as `vea report` does."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from training.cli import cli


@pytest.mark.parametrize(
    ("since", "until"),
    [("2026-02-01", "2026-01-01"), ("2026-01-01", "2026-01-01")],
)
def test_an_inverted_or_empty_period_is_refused_and_nothing_written(
    tmp_path, monkeypatch, since, until
):
    """It exited 0 with a header-only file, which reads as "no decisions were made". It
    is refused before the database is opened (this one has no tables)."""
    monkeypatch.setenv("VEA_DATABASE_URL", f"sqlite:///{tmp_path / 'vea.db'}")
    out = tmp_path / "e.csv"
    result = CliRunner().invoke(
        cli, ["export", "--since", since, "--until", until, "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert "Invalid value for --since: must be before --until" in result.output
    assert not out.exists()
    report = CliRunner().invoke(cli, ["report", "--from", since, "--to", until])
    assert report.exit_code == 2 and "must be before --to" in report.output


def test_a_period_in_order_still_exports(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setenv("VEA_DATABASE_URL", sqlite_url)
    out = tmp_path / "e.csv"
    result = CliRunner().invoke(
        cli, ["export", "--since", "2026-01-01", "--until", "2026-02-01", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and "exported " in result.output
