"""The dashboard's CSV downloads start with UTF-8's byte order mark.

Without it Excel on Japanese Windows reads a CSV as Shift-JIS: Japanese agent ids, issue
types and the gate reasons of the Japanese download showed as mojibake. `vea score`'s
CSV has the mark for this reason; the dashboard's now too. Readers that know it
(``utf-8-sig``, pandas, spreadsheets) take the file as before.
"""

from __future__ import annotations

import csv
import io

import pytest

from tests.test_pages import manager_client  # noqa: F401 - fixture

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("table", ["by_agent_id", "uplift", "trend", "pools", "gates", "models"])
def test_every_download_starts_with_the_byte_order_mark(manager_client, table):  # noqa: F811
    answer = manager_client.get(f"/dashboard/{table}.csv?period=all&lang=ja")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    data = answer.get_data()
    assert data.startswith(BOM) and not data.startswith(BOM * 2)
    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert header and header[0].isascii() and header[0].isidentifier()


def test_japanese_text_survives_a_reader_of_the_mark(manager_client, registry_dir):  # noqa: F811
    from models.registry import Registry

    reason = "refused: the 95% interval of the DR improvement does not lie above zero"
    Registry(registry_dir).record({"event": "gate", "decision": "refuse", "reason": reason})
    data = manager_client.get("/dashboard/gates.csv?lang=ja").get_data()
    (row,) = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert row["at"].startswith("20") and row["decision"] == "refuse"  # "at", not "\ufeffat"
    assert row["reason"] == "却下: DR推定による改善の95%区間がゼロを上回っていません"
