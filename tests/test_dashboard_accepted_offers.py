"""The rate "accepted when offered" is marked by the offers whose answer was recorded.

The rate is accepted / offers with a recorded answer (an offer without one is left out,
not counted as a no), but the page marked it † ("fewer than 30 answers") by the count
of offers: an agent with 37 offers of which 2 answered (both yes) read "100.0%"
unmarked. The report now gives that base (``acceptance_n``) and the page marks by it.
"""

from __future__ import annotations

from models.value_report import ValueSettings, value_report
from service.web.dashboard import FEW_ANSWERS_MARK, MEASURE_COLUMNS, shown


def _offers(answers: list[float | None], agent: str) -> dict[str, list]:
    """Treated contacts where an activity was suggested and offered, with these
    acceptance answers (None: not recorded)."""
    n = len(answers)
    return {
        "decision_id": [f"{agent}-{i}" for i in range(n)],
        "customer_id": [f"c-{agent}-{i}" for i in range(n)],
        "activity": ["educate_usage"] * n,
        "offered": [1.0] * n,
        "accepted": answers,
        "has_outcome": [True] * n,
        "experiment_arm": ["treatment"] * n,
        "agent_id": [agent] * n,
    }


def _join(*parts: dict[str, list]) -> dict[str, list]:
    return {key: [v for part in parts for v in part[key]] for key in parts[0]}


def _agents() -> dict[str, dict]:
    columns = _join(
        _offers([1.0, 1.0] + [None] * 35, "few-answers"),  # 37 offers, 2 answered
        _offers([1.0] * 20 + [0.0] * 15, "many-answers"),  # 35 offers, all answered
    )
    report = value_report(columns, ValueSettings())
    return {row["group"]: row for row in report["by"]["agent_id"]}


def test_the_report_counts_the_offers_with_a_recorded_answer():
    agents = _agents()
    few = agents["few-answers"]
    assert (few["offered"], few["accepted"], few["acceptance"]) == (37, 2, 1.0)
    assert few["acceptance_n"] == 2
    assert agents["many-answers"]["acceptance_n"] == 35
    # A column of the tables and their CSV, after those already there.
    assert MEASURE_COLUMNS[-1] == "acceptance_n"


def test_a_rate_from_two_answers_is_marked_whatever_the_offers():
    agents = _agents()
    for language in ("en", "ja"):
        few = shown("by_agent_id", "acceptance", 1.0, language, agents["few-answers"])
        assert few == "100.0%" + FEW_ANSWERS_MARK
        many = agents["many-answers"]
        assert shown("by_agent_id", "acceptance", many["acceptance"], language, many) == "57.1%"
    # The offer rate keeps its own base: the suggestions.
    row = {"suggested": 40, "offered": 37, "acceptance_n": 2}
    assert shown("by_agent_id", "offer_rate", 0.925, "en", row) == "92.5%"
