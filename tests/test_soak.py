"""A shortened soak (``bench/soak.py``, about 40 s of load): decisions and outcomes at a
steady rate against real gunicorn on a private PostgreSQL, with every fault of the long
run (``make soak``) during it: SIGKILL of a worker, a PostgreSQL restart, promotion and
rollback, the champion bundle corrupted on disk and restored. Afterwards every decision
and outcome acknowledged with a 2xx is in the database as sent, no decision got a 5xx,
and each fault was survived (the service recovered by itself).
"""

from __future__ import annotations

import pytest

from bench.soak import SoakConfig, report, run_soak
from tests.conftest import postgres_bindir

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_short_soak_with_faults_loses_nothing(registry_dir, capsys):
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL server binaries not found")
    config = SoakConfig(
        rate=80.0,
        seconds=40.0,
        backend="postgresql",
        faults=True,
        threads=8,
        durability="relaxed",  # the machine's fsync latency is not under test here
        registry=registry_dir,
        quiet=True,
    )
    figures = run_soak(config)
    with capsys.disabled():
        print("\n" + report(figures))
        if not figures["ok"]:
            print("gunicorn log (tail):\n" + figures.get("log_tail", ""))

    assert figures["faults_run"] == 6
    assert [f["fault"] for f in figures["faults"] if not f["survived"]] == []
    assert figures["decision_5xx"] == 0
    assert figures["outcome_5xx_not_503"] == 0
    assert figures["decisions_lost"] == 0 and figures["decisions_differing"] == 0
    assert figures["outcomes_lost"] == 0 and figures["outcomes_differing"] == 0
    # one outcome row per decision: nothing double counted
    assert figures["outcome_rows"] == figures["outcomes_stored"]
    assert figures["unexpected"] == []
    assert figures["abandoned"] == {}
    # the load was really held: at least half the target rate overall
    assert figures["requests_per_s"] >= config.rate / 2, figures["requests_per_s"]
    assert figures["outcomes_acknowledged"] >= 0.5 * config.rate / 2 * config.seconds
    assert figures["ok"]
