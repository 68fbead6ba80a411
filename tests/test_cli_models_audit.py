"""`vea models promote|rollback|shadow` audit the change the registry recorded.

The CLI read the champion (or the shadow) before the registry took its lock: a change
racing it was audited with a stale ``previous`` (a rollback as "V1, previous V1" while the
history recorded V2 -> V1), and promoting the champion again was audited as a change
that never happened. The API does this right (tests/test_models_audit_events.py).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from models.registry import Registry
from tests.test_models_audit_events import another_change_first
from training.cli import cli


@pytest.fixture
def database(tmp_path, monkeypatch) -> str:
    """A migrated service database the CLI records its model changes in."""
    url = f"sqlite:///{tmp_path / 'vea.db'}"
    monkeypatch.setenv("VEA_DATABASE_URL", url)
    _vea("db", "upgrade")
    return url


def _vea(*argv: str):
    result = CliRunner().invoke(
        cli, list(argv), env={"VEA_COMPILE_CACHE": ""}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


def _audited(url: str) -> list[tuple]:
    from service.audit import list_events
    from service.db import make_engine

    engine = make_engine(url)
    try:
        return [(e["action"], e["target"], e["details"]) for e in list_events(engine)]
    finally:
        engine.dispose()


def _versions(registry_dir) -> tuple[str, str]:
    registry = Registry(registry_dir)
    first = registry.champion()
    return first, next(v for v in registry.version_ids() if v != first)


def test_promoting_the_champion_again_is_said_and_not_audited(registry_dir, database):
    first, other = _versions(registry_dir)
    _vea("models", "promote", other, "--registry", str(registry_dir))
    again = _vea("models", "promote", other, "--registry", str(registry_dir))
    assert f"champion: {other} (already the champion)" in again.output
    assert _audited(database) == [
        ("model.promote", other, {"previous": first, "reason": "manual promotion"})
    ]


def test_a_rollback_racing_another_is_audited_as_recorded(registry_dir, database, monkeypatch):
    first, other = _versions(registry_dir)
    registry = Registry(registry_dir)
    for version in (other, first, other):  # each replaced the other: rollback goes to and fro
        registry.promote(version)

    # Another rollback runs just before this command's own takes the registry's lock:
    # other -> first, then this one first -> other.
    raced = another_change_first(monkeypatch, registry_dir)
    rolled = _vea("models", "rollback", "--registry", str(registry_dir))
    assert raced == [first]
    recorded = registry.history()[-1]
    assert (recorded["event"], recorded["version"], recorded["previous"]) == (
        "rollback",
        other,
        first,
    )
    assert _audited(database) == [("model.rollback", other, {"previous": first})]
    assert f"champion: {other} (was {first})" in rolled.output


def test_a_shadow_set_meanwhile_is_audited_as_the_one_replaced(registry_dir, database, monkeypatch):
    _first, other = _versions(registry_dir)
    raced = another_change_first(
        monkeypatch, registry_dir, lambda registry: registry.set_shadow(other, actor="elsewhere")
    )
    _vea("models", "shadow", other, "--registry", str(registry_dir))
    assert raced == [None]
    assert Registry(registry_dir).history()[-1]["previous"] == other
    assert _audited(database) == [("model.shadow", other, {"previous": other})]
