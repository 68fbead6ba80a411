"""The organic-value report through the API and `vea report --organic`: activities agents
offered without vea's suggestion, counted from stored decisions and outcomes."""

from __future__ import annotations

import json
import uuid

from click.testing import CliRunner

from models.reasons import activity_name
from service.auth import create_key
from tests.test_pages import _cells, log_in

ORGANIC = "advise_new_uses"


def post_contact(client, headers, segment: str, issue: str, activity, top: bool) -> str:
    """A decision, then an outcome in which the agent offered ``activity`` (None: the one
    vea suggested, or validate_purchase when it suggested none). Returns the suggestion."""
    decision = client.post(
        "/v1/decisions",
        json={
            "interaction_id": uuid.uuid4().hex,
            "customer": {"customer_id": uuid.uuid4().hex, "segment": segment, "tenure_months": 4},
            "contact": {"channel": "voice", "issue_type": issue},
        },
        headers=headers,
    )
    assert decision.status_code == 201, decision.json
    answer = decision.json
    suggested = answer["suggested_activity"]
    offered = activity or (suggested if suggested != "none" else "validate_purchase")
    score = 7 if top else 2
    outcome = client.post(
        f"/v1/decisions/{answer['decision_id']}/outcome",
        json={"activity": offered, "offered": True, "ves_confidence": score, "ves_ability": score},
        headers=headers,
    )
    assert outcome.status_code == 201, outcome.json
    return suggested


def test_agents_own_successes_are_counted_and_flagged(own_app):  # noqa: F811
    client = own_app.test_client()
    engine = own_app.extensions["vea"].engine
    desktop = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    manager = {"Authorization": f"Bearer {create_key(engine, 'manager')[1]}"}
    # Elsewhere, attempts mostly fail: the baseline.
    for _ in range(30):
        post_contact(client, desktop, "basic", "billing", None, top=False)
    # premium / how_to: agents offer advise_new_uses and customers report value.
    suggested = [
        post_contact(client, desktop, "premium", "how_to", ORGANIC, top=True) for _ in range(40)
    ]
    organic_attempts = sum(s != ORGANIC for s in suggested)

    answer = client.get("/v1/reports/organic", headers=manager)
    assert answer.status_code == 200, answer.json
    report = answer.json
    assert report["situation"] == ["segment", "issue_type"] and report["contacts"] == 70
    (cell,) = [
        r
        for r in report["rows"]
        if r["situation"] == {"segment": "premium", "issue_type": "how_to"}
        and r["activity"] == ORGANIC
    ]
    assert cell["organic_attempts"] == cell["organic_successes"] == organic_attempts
    assert cell["suggested_share"] == (40 - organic_attempts) / 40
    assert cell["organic_success_rate"] == 1.0 and cell["contacts"] == 40
    assert cell["candidate"] == (organic_attempts >= 30 and cell["suggested_share"] < 0.5)
    assert report["baseline_success_rate"] < cell["interval"][0]

    by_channel = client.get("/v1/reports/organic?by=channel&min_attempts=1", headers=manager).json
    assert by_channel["situation"] == ["channel"]
    assert {r["situation"]["channel"] for r in by_channel["rows"]} == {"voice"}

    for query, field in [
        ("by=agent_id", "by"),
        ("by=segment,segment", "by"),
        ("min_attempts=0", "min_attempts"),
        ("form=2026-01-01", "form"),
    ]:
        refused = client.get(f"/v1/reports/organic?{query}", headers=manager)
        assert refused.status_code == 422, query
        assert field in refused.json["error"]["fields"], refused.json
    assert client.get("/v1/reports/organic", headers=desktop).status_code == 403

    # The dashboard's table, in both languages, and its CSV.
    page_client = own_app.test_client()
    log_in(page_client, manager["Authorization"].removeprefix("Bearer "))
    # The page names the situation's segment and issue type (it showed "premium / how_to");
    # the CSV keeps the ids.
    for language, title, name, situation in [
        ("en", "Value agents find on their own", activity_name(ORGANIC, "en"), "premium / how-to"),
        (
            "ja",
            "エージェントが自発的に生んだ価値",
            activity_name(ORGANIC, "ja"),
            "プレミアム / 使い方",
        ),
    ]:
        page = page_client.get(f"/dashboard?period=all&lang={language}").get_data(as_text=True)
        assert title in page
        situations = _cells(page, "organic", "situation")
        shown = list(zip(situations, _cells(page, "organic", "activity"), strict=True))
        assert (situation, name) in shown
        index = shown.index((situation, name))
        assert _cells(page, "organic", "candidate")[index] == ("✓" if cell["candidate"] else "·")
        assert _cells(page, "organic", "organic_success_rate")[index] == "100.0%"
    csv = page_client.get("/dashboard/organic.csv?period=all").get_data().decode("utf-8-sig")
    assert csv.startswith("situation,activity,organic_attempts,organic_success_rate,")
    assert f"premium / how_to,{ORGANIC},{organic_attempts},1.0," in csv

    from training.cli import cli

    env = {"VEA_DATABASE_URL": str(engine.url.render_as_string(hide_password=False))}
    runner = CliRunner()
    text = runner.invoke(cli, ["report", "--organic"], env=env)
    assert text.exit_code == 0, text.output
    assert f"{organic_attempts} organic attempts" in text.stdout
    assert "premium / how_to" in text.stdout and ORGANIC in text.stdout
    as_json = runner.invoke(cli, ["report", "--organic", "--json"], env=env)
    assert json.loads(as_json.stdout)["rows"] == report["rows"]
    bad = runner.invoke(cli, ["report", "--organic", "--by", "agent_id"], env=env)
    assert bad.exit_code == 2 and "--by" in bad.output
