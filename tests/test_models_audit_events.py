"""Promotions and rollbacks are answered and audited as the registry recorded them.

The rollback endpoint read the champion before taking the registry's lock: a rollback
running meanwhile made it answer and audit ``model.rollback V1, previous V1`` while the
history recorded a real V2 -> V1. Promoting the champion again changed nothing in the
history but wrote a ``model.promote`` audit event each time.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from test_audit import _events, _key_id, _mine

from models.registry import Registry


def _promote(client, headers, version):
    answer = client.post(f"/v1/models/{version}/promote", json={}, headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json


def _back_and_forth(client, headers, registry):
    """A history where each of two versions replaced the other: a rollback from either
    goes to the other one (first -> other -> first -> other)."""
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    _promote(client, headers, other)
    _promote(client, headers, first)
    _promote(client, headers, other)
    return first, other


def another_change_first(monkeypatch, registry_dir, change=None) -> list:
    """Make another change of the registry (another worker, the CLI, an operator; a
    rollback unless ``change`` says otherwise) run just before the next one takes the
    registry's lock; the list gets what that change returned."""
    original, raced = Registry._locked, []
    change = change or (lambda registry: registry.rollback(actor="elsewhere"))

    @contextmanager
    def after_another_change(self):
        if not raced:
            raced.append(None)  # the other change takes the lock as it always did
            raced[0] = change(Registry(registry_dir))
        with original(self):
            yield

    monkeypatch.setattr(Registry, "_locked", after_another_change)
    return raced


def test_a_rollback_racing_another_is_answered_and_audited_as_recorded(
    client, keys, registry_dir, monkeypatch
):
    registry = Registry(registry_dir)
    first, other = _back_and_forth(client, keys["engineer"], registry)

    # Another rollback runs just before this request's own takes the registry's lock:
    # other -> first, then this one first -> other.
    raced = another_change_first(monkeypatch, registry_dir)
    rolled = client.post("/v1/models/rollback", json={}, headers=keys["admin"])
    assert raced == [first]
    assert rolled.status_code == 200, rolled.json
    recorded = registry.history()[-1]
    assert (recorded["event"], recorded["version"], recorded["previous"]) == (
        "rollback",
        other,
        first,
    )
    assert (rolled.json["champion"], rolled.json["previous"]) == (other, first)
    audited = _mine(_events(client, keys["admin"]), _key_id(keys["admin"]))
    assert [(e["action"], e["target"], e["details"]) for e in audited] == [
        ("model.rollback", other, {"previous": first})
    ]


def test_concurrent_rollbacks_each_report_the_change_recorded(registry_dir):
    registry = Registry(registry_dir)
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    for version in (other, first, other):
        registry.promote(version)
    changes, errors = [], []

    def roll() -> None:
        try:
            changes.append(Registry(registry_dir).rollback_change(actor="t"))
        except Exception as exc:  # noqa: BLE001 - counted below
            errors.append(exc)

    threads = [threading.Thread(target=roll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    recorded = [
        (e["version"], e["previous"]) for e in registry.history() if e["event"] == "rollback"
    ]
    assert sorted((c.champion, c.previous) for c in changes) == sorted(recorded)
    assert all(c.changed and c.champion != c.previous for c in changes)


def test_promoting_the_champion_again_is_answered_but_not_audited(client, keys, registry_dir):
    registry = Registry(registry_dir)
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    promoted = _promote(client, keys["engineer"], other)
    history = registry.history()
    retried = _promote(client, keys["engineer"], other)
    assert retried["champion"] == other and retried["previous"] == promoted["previous"] == first
    assert registry.history() == history  # nothing changed
    audited = _mine(_events(client, keys["admin"]), _key_id(keys["engineer"]))
    assert [(e["action"], e["target"], e["details"]["previous"]) for e in audited] == [
        ("model.promote", other, first)
    ]


def test_registry_promote_change_says_whether_anything_changed(registry_dir):
    registry = Registry(registry_dir)
    first = registry.champion()
    other = next(v for v in registry.version_ids() if v != first)
    change = registry.promote_change(other)
    assert (change.champion, change.previous, change.changed) == (other, first, True)
    again = registry.promote_change(other)
    assert (again.champion, again.previous, again.changed) == (other, first, False)
    assert registry.promote(other) == first  # the old answer, for the CLI and retrain
    back = registry.rollback_change()
    assert (back.champion, back.previous, back.changed) == (first, other, True)


def test_set_shadow_returns_the_shadow_it_replaced(registry_dir):
    """The shadow endpoint answers and audits ``previous`` from this, read under the
    registry's lock (it read the pointer before taking it, like rollback)."""
    registry = Registry(registry_dir)
    other = next(v for v in registry.version_ids() if v != registry.champion())
    assert registry.set_shadow(other) is None
    assert registry.set_shadow(other) == other
    assert registry.history()[-1]["previous"] == other
