"""The CLI's dates take the forms the reports' API takes (models.schema.DATE_FORMS): the
README promised them "on every report", but `vea report --from 2026-11-28T10:29+09:00`
and `vea export --since ...Z` were refused (click's three fixed formats), so an operator
in Japan could not ask for a month in JST."""

from __future__ import annotations

from datetime import datetime

import click
import pytest
from click.testing import CliRunner

from models.schema import parse_instant
from service.cli import INSTANT
from training.cli import cli


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-01", datetime(2026, 11, 1)),
        ("2026-11-01T09:30", datetime(2026, 11, 1, 9, 30)),
        ("2026-11-01 09:30:15", datetime(2026, 11, 1, 9, 30, 15)),
        ("2026-11-01T09:30:15.25Z", datetime(2026, 11, 1, 9, 30, 15, 250000)),
        ("2026-11-01T09:30+09:00", datetime(2026, 11, 1, 0, 30)),
        ("2026-11-01T00:30-05:00", datetime(2026, 11, 1, 5, 30)),
    ],
)
def test_every_form_of_the_api_as_naive_utc(text, moment):
    assert parse_instant(text) == moment
    assert INSTANT.convert(text, None, None) == moment


@pytest.mark.parametrize("text", ["20261101", "2026-W44", "yesterday", "2026-11-01T9:30"])
def test_other_forms_are_refused_naming_the_forms(text):
    with pytest.raises(click.BadParameter, match="must be a date YYYY-MM-DD"):
        INSTANT.convert(text, None, None)


def test_the_commands_take_them(sqlite_url, tmp_path):
    env = {"VEA_DATABASE_URL": sqlite_url}
    runner = CliRunner()
    report = runner.invoke(
        cli,
        ["report", "--from", "2026-11-01T00:00+09:00", "--to", "2026-11-02T00:00+09:00"],
        env=env,
    )
    assert report.exit_code == 0, report.output
    out = tmp_path / "x.csv"
    exported = runner.invoke(
        cli, ["export", "--out", str(out), "--since", "2026-11-01T00:00:00Z"], env=env
    )
    assert exported.exit_code == 0, exported.output
    audit = runner.invoke(cli, ["audit", "--since", "2026-11-01T09:30+09:00"], env=env)
    assert audit.exit_code == 0, audit.output
    retrain = runner.invoke(cli, ["retrain", "--since", "2026-W44"], env=env)
    assert retrain.exit_code == 2 and "must be a date YYYY-MM-DD" in retrain.output
