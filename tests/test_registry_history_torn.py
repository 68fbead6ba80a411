"""A history line cut short by a crash loses no later event and names itself.

An append cut short (a crash mid-write) left a last line without its newline: the next
event was glued onto it, and both were lost, and every read of the history (rollback, the
dashboard's gates) then failed with ``Expecting ',' delimiter: line 1 column 26``, naming
neither the file nor the line.
"""

from __future__ import annotations

import copy
import logging
from functools import lru_cache

import pytest

from models.registry import HISTORY_FILE, Registry, RegistryError
from training.fit import train_bundle
from training.simulate import simulate

TORN = '{"at": "2026-11-27T22:3'  # as the audit found it: no closing brace, no newline


@lru_cache(maxsize=1)
def _bundle():
    return train_bundle(
        simulate(rows=1200, seed=11)[0], learner="s", seed=0, num_threads=1, progress=False
    )


@pytest.fixture
def registry(tmp_path):
    return Registry(tmp_path / "registry")


@pytest.fixture
def warnings():
    """The registry's log records (the service's logging setup may stop them propagating
    to pytest's own capture)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("vea.registry")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _add(registry, count):
    return [registry.add(copy.deepcopy(_bundle())) for _ in range(count)]


def _tear(registry, text=TORN):
    with open(registry.root / HISTORY_FILE, "a") as fh:
        fh.write(text)


def test_the_event_after_a_torn_line_starts_a_line_of_its_own(registry, warnings):
    first, second = _add(registry, 2)
    _tear(registry)
    registry.promote(second, reason="after the crash")

    lines = (registry.root / HISTORY_FILE).read_text().splitlines()
    assert lines[-2] == TORN  # left as it was, for whoever looks
    events = registry.history()
    assert events[-1]["event"] == "promote" and events[-1]["version"] == second
    assert [e["event"] for e in events] == ["register", "promote", "register", "promote"]
    said = [r.getMessage() for r in warnings]
    assert said == [
        f"{registry.root / HISTORY_FILE} line {len(lines) - 1} is not a readable event "
        "(an append cut short?): skipped"
    ]


def test_rollback_goes_by_the_records_after_a_torn_line(registry):
    first, second = _add(registry, 2)
    _tear(registry)
    registry.promote(second)
    assert registry.rollback() == first
    assert registry.champion() == first


def test_rollback_refuses_when_the_torn_line_may_be_the_promotion_it_would_undo(registry):
    """first -> second -> third, then second again, its record cut short by a crash (the
    pointer is replaced before the record is appended). Skipping the line, rollback would
    go by second's first promotion, back to first, and serve neither the model second
    replaced (third) nor say anything was wrong."""
    first, second, third = _add(registry, 3)
    registry.promote(second)
    registry.promote(third)
    registry.promote(second)
    path = registry.root / HISTORY_FILE
    text = path.read_text()
    path.write_text(text[: text.rindex("\n", 0, -1) + 1 + 40])  # the last record cut short
    before = path.read_text()
    line = len(before.splitlines())

    with pytest.raises(RegistryError, match=f"line {line} of the registry's {HISTORY_FILE}"):
        registry.rollback()
    assert registry.champion() == second and path.read_text() == before  # nothing changed

    # The next promotion is recorded after the damaged line: rollback works again.
    registry.promote(third)
    assert registry.rollback() == second


def test_a_retried_promotion_reads_past_a_torn_line(registry):
    first, second = _add(registry, 2)
    registry.promote(second)
    _tear(registry)
    change = registry.promote_change(second)  # the champion already: nothing recorded
    assert (change.previous, change.changed) == (first, False)
