"""The dashboard's CSV downloads against spreadsheet formula injection: a text cell that
a spreadsheet would read as a formula is written with a leading ``'``; numbers stay
numbers."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.test_pages import log_in, raw_key

SEGMENT = "=1+2"
AGENT = '=HYPERLINK("http://x","a")'


def _rows(client, name: str) -> list[dict[str, str]]:
    answer = client.get(f"/dashboard/{name}.csv?period=all")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(answer.get_data().decode("utf-8-sig"))))


@pytest.fixture
def served(client, keys, new_id):
    """Decisions and outcomes whose desktop-given strings read as formulas."""
    for _ in range(3):
        body = {
            "interaction_id": new_id("i-"),
            "customer": {"customer_id": new_id("c-"), "tenure_months": 2, "segment": SEGMENT},
            "contact": {"channel": "chat", "issue_type": "inquiry"},
        }
        decision = client.post("/v1/decisions", json=body, headers=keys["desktop"])
        assert decision.status_code == 201, decision.json
        outcome = {
            "offered": True,
            "accepted": True,
            "ves_confidence": 7,
            "ves_ability": 6,
            "handle_time_s": 250.0,
            "agent_id": AGENT,
        }
        answer = client.post(
            f"/v1/decisions/{decision.json['decision_id']}/outcome",
            json=outcome,
            headers=keys["desktop"],
        )
        assert answer.status_code == 201, answer.json
    log_in(client, raw_key(keys["manager"]))
    return client


def test_desktop_strings_that_start_a_formula_are_escaped(served):
    by_segment = {row["group"]: row for row in _rows(served, "by_segment")}
    assert SEGMENT not in by_segment
    row = by_segment["'" + SEGMENT]
    # Numbers are written as numbers, not escaped.
    assert int(row["n"]) >= 3 and float(row["ves"]) == pytest.approx(6.5)
    assert float(row["handle_time_s"]) == pytest.approx(250.0)
    by_agent = {row["group"]: row for row in _rows(served, "by_agent_id")}
    assert AGENT not in by_agent
    assert int(by_agent["'" + AGENT]["n"]) >= 3


def test_negative_numbers_stay_numbers_and_text_is_escaped(served, registry_dir):
    from models.registry import Registry

    Registry(registry_dir).record(
        {
            "event": "gate",
            "decision": "refuse",
            "challenger": "-v-challenger",
            "champion": "@v-champion",
            "rows": 500,
            "improvement": {"value": -0.01, "ci_low": -0.05, "ci_high": 0.03},
            "challenger_value": {"value": 0.29},
            "champion_value": {"value": 0.30},
            "reason": "+refused",
            "reward": "ve_success",
        }
    )
    (row,) = _rows(served, "gates")
    assert (row["challenger"], row["champion"], row["reason"]) == (
        "'-v-challenger",
        "'@v-champion",
        "'+refused",
    )
    assert (row["value"], row["ci_low"]) == ("-0.01", "-0.05")
    assert float(row["ci_low"]) == -0.05


@pytest.mark.parametrize(
    "text",
    [
        "=1+2",
        "+1",
        "-1",
        "@SUM(A1)",
        "\tx",
        "\rx",
        " =1+2",
        "\u3000=1",
        "＝1+2",
        "＋1",
        "－1",
        "＠SUM(A1)",
    ],
)
def test_every_formula_start_is_escaped(text):
    from service.web.dashboard import csv_safe, to_csv

    assert csv_safe(text) == "'" + text
    table = {"columns": ["group", "n"], "rows": [{"group": text, "n": -2}]}
    (row,) = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert row == {"group": "'" + text, "n": "-2"}


@pytest.mark.parametrize(
    "value", [-0.05, -3, 0, 1.5, True, None, "premium", "a=b", "1-2", " a", "日本"]
)
def test_numbers_and_plain_text_are_left_alone(value):
    from service.web.dashboard import csv_safe

    assert csv_safe(value) is value


def test_a_carriage_return_inside_a_cell_cannot_start_a_new_row():
    from service.web.dashboard import to_csv

    table = {"columns": ["group", "n"], "rows": [{"group": "x\r=1+2", "n": 1}]}
    text = to_csv(table)
    # Quoted, so a spreadsheet keeps it in one cell instead of a row starting "=1+2".
    assert '"x\r=1+2",1' in text
    assert list(csv.DictReader(io.StringIO(text))) == [{"group": "x\r=1+2", "n": "1"}]


def test_csv_headers_stay_ids_and_explanations_follow_the_language(served, registry_dir):
    """A manager downloading the Japanese page's CSV gets the machine ids as headers and
    id cells (stable for spreadsheets and scripts, as documented), and the retrain gate's
    reason, an explanation for a person, in Japanese; the page's links carry its
    language."""
    from models.registry import Registry

    reason = "refused: the 95% interval of the DR improvement does not lie above zero"
    Registry(registry_dir).record(
        {"event": "gate", "decision": "refuse", "reason": reason, "reward": "ve_success"}
    )
    page = served.get("/dashboard?period=all&lang=ja").get_data(as_text=True)
    link = re.search(r'href="(/dashboard/gates\.csv\?[^"]*)"', page).group(1)
    assert "lang=ja" in link.split("?")[1].split("&amp;"), link
    english = served.get("/dashboard/gates.csv?period=all&lang=en").get_data().decode("utf-8-sig")
    japanese = served.get("/dashboard/gates.csv?period=all&lang=ja").get_data().decode("utf-8-sig")
    assert english.splitlines()[0] == japanese.splitlines()[0]
    assert japanese.splitlines()[0].startswith("at,decision,challenger,champion,rows")
    (en_row,) = list(csv.DictReader(io.StringIO(english)))
    (ja_row,) = list(csv.DictReader(io.StringIO(japanese)))
    assert en_row["reason"] == reason
    assert ja_row["reason"] == "却下: DR推定による改善の95%区間がゼロを上回っていません"
    assert ja_row["decision"] == en_row["decision"] == "refuse"  # an id, not a word
    assert ja_row["reward"] == "ve_success"
    # Every other table: the same headers in both languages.
    for name in ("uplift", "roi", "by_segment", "pools"):
        en = served.get(f"/dashboard/{name}.csv?period=all&lang=en").get_data(as_text=True)
        ja = served.get(f"/dashboard/{name}.csv?period=all&lang=ja").get_data(as_text=True)
        assert en.splitlines()[0] == ja.splitlines()[0], name


def test_a_gate_whose_promotion_was_skipped_reads_stale_not_promoted(served, registry_dir):
    """retrain's gate passed, then the champion changed while it ran, so the challenger
    was stored but not promoted (promote_skipped): the gates table said "promoted"."""
    from models.registry import Registry

    registry = Registry(registry_dir)
    for challenger in ("v-skipped", "v-promoted"):
        registry.record(
            {"event": "gate", "decision": "promote", "challenger": challenger, "champion": "v-a"}
        )
    registry.record(
        {"event": "promote_skipped", "version": "v-skipped", "gated_against": "v-a",
         "champion": "v-b", "forced": False, "reason": "the champion changed"}
    )  # fmt: skip
    decisions = {row["challenger"]: row["decision"] for row in _rows(served, "gates")}
    assert decisions == {"v-skipped": "stale", "v-promoted": "promote"}
    page = served.get("/dashboard?period=all&lang=en").get_data(as_text=True)
    assert "passed, not promoted (the champion changed meanwhile)" in page
    japanese = served.get("/dashboard?period=all&lang=ja").get_data(as_text=True)
    assert "合格・未昇格（実行中にチャンピオンが変更）" in japanese
