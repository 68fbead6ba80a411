"""The pages (/login, /desk, /dashboard) through Flask's test client: access by role,
CSRF, desk rendering and its input errors, outcomes, dashboard sections and CSV."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import uuid
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from service.db import outcomes

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def raw_key(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def log_in(client, key: str, next_path: str = "") -> str:
    """Sign in; return the session's CSRF token."""
    page = client.get("/login").get_data(as_text=True)
    token = CSRF.search(page).group(1)
    answer = client.post("/login", data={"key": key, "csrf_token": token, "next": next_path})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    # A login starts a new session with a new token.
    return CSRF.search(client.get("/login").get_data(as_text=True)).group(1)


def desk_url(**overrides) -> str:
    params = {
        "interaction_id": uuid.uuid4().hex,
        "customer_id": uuid.uuid4().hex,
        "channel": "chat",
        "issue_type": "inquiry",
        "segment": "premium",
        "tenure_months": "2",
        **overrides,
    }
    return "/desk?" + "&".join(f"{k}={v}" for k, v in params.items() if v is not None)


@pytest.fixture
def desk_client(client, keys):
    token = log_in(client, raw_key(keys["desktop"]))
    client.csrf = token
    return client


# ------------------------------------------------------------------- access
def test_pages_need_a_login(client):
    answer = client.get(desk_url())
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=")
    assert client.get("/dashboard").status_code == 302


def test_a_wrong_key_is_refused(client):
    page = client.get("/login").get_data(as_text=True)
    token = CSRF.search(page).group(1)
    answer = client.post("/login", data={"key": "vea_nope_nope", "csrf_token": token})
    assert answer.status_code == 401
    assert "not valid" in answer.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302


def test_login_needs_the_csrf_token(client, keys):
    client.get("/login")
    answer = client.post("/login", data={"key": raw_key(keys["desktop"])})
    assert answer.status_code == 403


def test_login_never_redirects_off_site(client, keys):
    page = client.get("/login").get_data(as_text=True)
    token = CSRF.search(page).group(1)
    answer = client.post(
        "/login",
        data={"key": raw_key(keys["manager"]), "csrf_token": token, "next": "//evil.example/"},
    )
    assert answer.headers["Location"] == "/dashboard"


def test_agents_cannot_open_the_dashboard_and_managers_not_the_desk(client, keys):
    log_in(client, raw_key(keys["desktop"]))
    answer = client.get("/dashboard")
    assert answer.status_code == 403
    assert answer.mimetype == "text/html"
    assert client.get("/dashboard/uplift.csv").status_code == 403
    other = client.application.test_client()
    log_in(other, raw_key(keys["manager"]))
    assert other.get(desk_url()).status_code == 403
    assert other.get("/dashboard").status_code == 200


def test_a_revoked_key_ends_its_session(app, desk_client, keys):
    from service.auth import revoke_key

    assert desk_client.get(desk_url()).status_code == 200
    revoke_key(app.extensions["vea"].engine, raw_key(keys["desktop"]))
    assert desk_client.get(desk_url()).status_code == 302


# --------------------------------------------------------------------- desk
def test_desk_renders_a_decision_in_english_and_japanese(desk_client):
    url = desk_url()
    english = desk_client.get(url, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert english.status_code == 200
    text = english.get_data(as_text=True)
    assert 'lang="en"' in text
    assert "Openness" in text and "Record" in text
    japanese = desk_client.get(url + "&lang=ja")
    assert japanese.status_code == 200
    text = japanese.get_data(as_text=True)
    assert 'lang="ja"' in text
    assert "受容度" in text or "手間なく解決" in text


def test_browser_language_is_the_default(desk_client):
    text = desk_client.get(desk_url(), headers={"Accept-Language": "ja,en;q=0.5"}).get_data(
        as_text=True
    )
    assert 'lang="ja"' in text


def test_an_upset_complaint_shows_only_resolve(desk_client):
    answer = desk_client.get(desk_url(issue_type="complaint", sentiment="-0.8"))
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert 'id="resolve"' in text
    for absent in ('id="openness"', 'id="suggestion"', 'id="reasons"', 'id="route"'):
        assert absent not in text


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"interaction_id": None}, "interaction_id"),
        ({"customer_id": None, "channel": None}, "customer_id, channel"),
        ({"channel": "fax"}, "channel"),
        ({"tenure_months": "soon"}, "tenure_months"),
        ({"sentiment": "7"}, "sentiment"),
        ({"prior_contacts_30d": "1.5"}, "prior_contacts_30d"),
        ({"interaction_id": "x" * 200}, "interaction_id"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"switching_effort": "medium"}, "switching_effort"),
        ({"customer_id": "a%00b"}, "NUL"),
        ({"agent_id": "a" * 129}, "agent_id"),  # every button press would then fail
    ],
)
def test_desk_explains_missing_or_malformed_parameters(desk_client, overrides, expected):
    answer = desk_client.get(desk_url(**overrides))
    assert answer.status_code == 400
    text = answer.get_data(as_text=True)
    assert 'id="desk-problem"' in text
    assert expected in text


def test_desk_reads_an_unencoded_time_offset(app, desk_client):
    """A desktop that writes "+09:00" into the link unencoded sends " 09:00" (a "+" in a
    query string is a space): the contact is decided at that time, not refused."""
    from service.db import decisions

    page = desk_client.get(desk_url(occurred_at="2026-11-01T10:00:00+09:00"))
    assert page.status_code == 200, page.get_data(as_text=True)
    decision_id = _decision_id(page.get_data(as_text=True))
    with app.extensions["vea"].engine.connect() as conn:
        stored = conn.execute(
            sa.select(decisions.c.occurred_at).where(decisions.c.decision_id == decision_id)
        ).scalar_one()
    assert stored.isoformat().startswith("2026-11-01T01:00:00"), stored
    # Anything else with a space is still refused, naming the parameter.
    bad = desk_client.get(desk_url(occurred_at="yesterday+09:00"))
    assert bad.status_code == 400 and "occurred_at" in bad.get_data(as_text=True)


def test_desk_without_any_parameter_waits_for_a_contact(desk_client):
    """A plain sign-in lands on /desk: an agent who signs in before the first call was
    told the link was "incomplete or malformed" (a 400) though nothing was wrong."""
    for url, words in (("/desk?lang=en", "No contact open"), ("/desk?lang=ja", "開いている")):
        answer = desk_client.get(url)
        assert answer.status_code == 200
        text = answer.get_data(as_text=True)
        assert 'id="desk-idle"' in text and words in text and "desk-problem" not in text
    # A link with some details but not the required ones is still a clear 400.
    answer = desk_client.get("/desk?interaction_id=i-1&lang=en")
    assert answer.status_code == 400
    assert "missing: customer_id, channel" in answer.get_data(as_text=True)


def test_desk_shows_the_earlier_channel_of_a_continued_contact(desk_client):
    customer = uuid.uuid4().hex
    desk_client.get(desk_url(customer_id=customer, channel="chat", issue_type="how_to"))
    page = desk_client.get(
        desk_url(customer_id=customer, channel="voice", issue_type="how_to")
    ).get_data(as_text=True)
    if 'id="resolve"' in page:
        pytest.skip("this model answers the contact quietly: nothing else is shown")
    assert 'id="earlier"' in page
    assert "chat contact" in page
    assert "continues a chat contact" not in page  # shown once, as its own card


def test_desk_opens_a_stored_decision_by_id(desk_client):
    decision_id = _decision_id(desk_client.get(desk_url()).get_data(as_text=True))
    answer = desk_client.get(f"/desk?decision_id={decision_id}&lang=ja")
    assert answer.status_code == 200
    assert decision_id in answer.get_data(as_text=True)


def test_desk_accepts_posted_details_and_redirects_to_the_decision(desk_client):
    form = {
        "interaction_id": uuid.uuid4().hex,
        "customer_id": uuid.uuid4().hex,
        "channel": "voice",
        "issue_type": "how_to",
        "agent_id": "a-post",
    }
    answer = desk_client.post("/desk", data=form)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/desk?decision_id=")
    page = desk_client.get(answer.headers["Location"])
    assert page.status_code == 200
    assert 'data-agent-id="a-post"' in page.get_data(as_text=True)
    assert desk_client.post("/desk", data={"channel": "voice"}).status_code == 400


def test_desk_unknown_decision_id_is_404(desk_client):
    assert desk_client.get("/desk?decision_id=deadbeef").status_code == 404


def _decision_id(page: str) -> str:
    return re.search(r'data-decision-id="([0-9a-f]+)"', page).group(1)


def test_desk_records_an_outcome(app, desk_client):
    page = desk_client.get(desk_url(agent_id="agent-7")).get_data(as_text=True)
    decision_id = _decision_id(page)
    body = {
        "decision_id": decision_id,
        "status": "accepted",
        "ves_confidence": 6,
        "ves_ability": 7,
        "agent_id": "agent-7",
    }
    answer = desk_client.post(
        "/desk/outcome", json=body, headers={"X-CSRF-Token": desk_client.csrf}
    )
    assert answer.status_code == 201, answer.get_json()
    with app.extensions["vea"].engine.connect() as conn:
        row = conn.execute(sa.select(outcomes).where(outcomes.c.decision_id == decision_id)).one()
    assert row.ves_confidence == 6 and row.ves_ability == 7 and row.agent_id == "agent-7"
    # The same click again is idempotent; a different one is refused clearly.
    again = desk_client.post("/desk/outcome", json=body, headers={"X-CSRF-Token": desk_client.csrf})
    assert again.status_code == 200
    other = desk_client.post(
        "/desk/outcome",
        json={**body, "status": "declined"},
        headers={"X-CSRF-Token": desk_client.csrf},
    )
    assert other.status_code == 409


def test_desk_outcome_needs_csrf_and_valid_input(desk_client):
    page = desk_client.get(desk_url()).get_data(as_text=True)
    decision_id = _decision_id(page)
    body = {"decision_id": decision_id, "status": "offered"}
    refused = desk_client.post("/desk/outcome", json=body)
    assert refused.status_code == 403
    assert "CSRF" in refused.get_json()["error"]["message"]
    headers = {"X-CSRF-Token": desk_client.csrf}
    bad = desk_client.post("/desk/outcome", json={**body, "status": "maybe"}, headers=headers)
    assert bad.status_code == 422
    for odd in (["offered"], {"offered": True}, 1):  # a list was a 500 (unhashable)
        bad = desk_client.post("/desk/outcome", json={**body, "status": odd}, headers=headers)
        assert bad.status_code == 422, odd
    bad = desk_client.post("/desk/outcome", json={**body, "ves_ability": 9}, headers=headers)
    assert bad.status_code == 422
    missing = desk_client.post(
        "/desk/outcome", json={**body, "decision_id": "f" * 32}, headers=headers
    )
    assert missing.status_code == 404


# ---------------------------------------------------------------- dashboard
@pytest.fixture
def manager_client(app, keys):
    client = app.test_client()
    log_in(client, raw_key(keys["manager"]))
    return client


def test_dashboard_renders_every_section(manager_client):
    answer = manager_client.get("/dashboard?period=all")
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    for marker in ('id="chart-data"', 'id="table-uplift"', 'id="table-by_activity"'):
        assert marker in text
    assert "vendor/chart.umd.min.js" in text


def test_dashboard_bad_period_is_explained_not_a_500(manager_client):
    answer = manager_client.get("/dashboard?from=yesterday")
    assert answer.status_code == 200
    assert "Period: “From” must be a date written YYYY-MM-DD" in answer.get_data(as_text=True)


def test_dashboard_shows_not_available_when_a_source_fails(manager_client, monkeypatch):
    from service.web import dashboard

    def broken(*_args):
        raise RuntimeError("drift report not deployed")

    monkeypatch.setattr(dashboard, "_drift", broken)
    text = manager_client.get("/dashboard").get_data(as_text=True)
    assert 'data-section="drift"' in text
    assert "drift report not deployed" in text


def test_csv_download(app, desk_client, keys):
    page = desk_client.get(desk_url(agent_id="a-csv")).get_data(as_text=True)
    desk_client.post(
        "/desk/outcome",
        json={"decision_id": _decision_id(page), "status": "skipped"},
        headers={"X-CSRF-Token": desk_client.csrf},
    )
    manager = app.test_client()
    log_in(manager, raw_key(keys["manager"]))
    answer = manager.get("/dashboard/by_channel.csv?period=all")
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data().decode("utf-8-sig"))))
    assert rows and {"group", "n", "ves", "success_rate"} <= set(rows[0])
    assert manager.get("/dashboard/nonsense.csv").status_code == 404


def test_static_assets_are_served_locally(client):
    for path in ("/static/vea.css", "/static/desk.js", "/static/vendor/chart.umd.min.js"):
        assert client.get(path).status_code == 200, path


def test_dashboard_shows_the_retrain_gate_evaluation(manager_client, registry_dir):
    from models.registry import Registry

    Registry(registry_dir).record(
        {
            "event": "gate",
            "decision": "refuse",
            "challenger": "v-challenger",
            "champion": "v-champion",
            "rows": 1234,
            "improvement": {"value": 0.01, "ci_low": -0.02, "ci_high": 0.04},
            "challenger_value": {"value": 0.31},
            "champion_value": {"value": 0.30},
            "reason": "refused: the 95% interval does not lie above zero",
            "reward": "accepted",
        }
    )
    text = manager_client.get("/dashboard").get_data(as_text=True)
    assert 'id="table-gates"' in text and "v-challenger" in text
    answer = manager_client.get("/dashboard/gates.csv")
    assert "v-challenger,v-champion,1234,0.31,0.3,0.01,-0.02,0.04,accepted" in answer.get_data(
        as_text=True
    )


def _cells(page: str, table: str, column: str) -> list[str]:
    """The shown text of one column of one dashboard table."""
    section = re.search(rf'id="table-{table}">(.*?)</section>', page, re.S).group(1)
    columns = re.findall(r'<th scope="col"[^>]*data-column="([^"]+)"', section)
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>")[1], re.S)
    index = columns.index(column)
    # A row's first cell is its header (th scope=row), the others data cells; a cell in
    # the other language than the page's holds its text in a span with that lang.
    cells = [re.findall(r"<(?:th|td)\b[^>]*>(.*?)</(?:th|td)>", r, re.S)[index] for r in rows]
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in cells]


def _body_cells(page: str) -> list[str]:
    """The shown text of every row's cells, its header (th scope=row) included."""
    found = re.findall(r'<(?:td|th scope="row")\b[^>]*>(.*?)</t[dh]>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in found]


ACTIVITY_IDS = {
    "validate_purchase",
    "anticipate_needs",
    "achieve_goals",
    "educate_usage",
    "advise_new_uses",
    "none",
}
GATE_REASONS = {
    "challenger better: the 95% interval of the DR improvement is above zero": (
        "挑戦モデルが優位: DR推定による改善の95%区間がゼロを上回っています"
    ),
    "refused: the 95% interval of the DR improvement does not lie above zero": (
        "却下: DR推定による改善の95%区間がゼロを上回っていません"
    ),
    "refused: effective sample size 12 < 200: the logs barely cover the challenger's "
    "choices (explore more or wait for more data)": (
        "却下: 有効サンプルサイズ 12 < 200。ログが挑戦モデルの選択をほとんど"
        "カバーしていません（探索を増やすか、データが貯まるのを待ってください）"
    ),
    "40 rows < --min-rows 500": "40 行 < --min-rows 500: 行数が足りないため再学習していません",
    "a wording the page does not know": "（原文）a wording the page does not know",
}


def test_japanese_dashboard_shows_names_not_ids(app, desk_client, keys, registry_dir):
    from models.registry import Registry
    from service.web import content

    for _ in range(4):
        page = desk_client.get(desk_url(agent_id="a-ja", tenure_months="30")).get_data(as_text=True)
        desk_client.post(
            "/desk/outcome",
            json={"decision_id": _decision_id(page), "status": "accepted", "ves_confidence": 6},
            headers={"X-CSRF-Token": desk_client.csrf},
        )
    registry = Registry(registry_dir)
    decisions = ["promote", "refuse", "refuse", "skipped", "refuse"]
    for decision, reason in zip(decisions, GATE_REASONS, strict=True):
        registry.record({"event": "gate", "decision": decision, "reason": reason})
    manager = app.test_client()
    log_in(manager, raw_key(keys["manager"]))
    page = manager.get("/dashboard?period=all&lang=ja").get_data(as_text=True)

    names = content.ACTIVITY_NAMES["ja"]
    shown = _cells(page, "by_activity", "group")
    assert shown and set(shown) <= set(names.values())
    cells = _cells(page, "pools", "activities")
    assert "すべての活動" in cells  # the general pool takes every activity
    pools = [p for p in cells if p != "すべての活動"]
    assert pools and all(set(p.split("、")) <= set(names.values()) for p in pools)
    assert _cells(page, "calibration", "band") == ["低", "中", "高"]
    assert sorted(set(_cells(page, "gates", "decision"))) == sorted({"昇格", "却下", "未実施"})
    assert set(_cells(page, "gates", "reason")) == set(GATE_REASONS.values())
    assert "受容度モデルの学習行数" in page and ">openness_rows<" not in page
    shown_cells = _body_cells(page)
    for raw in ACTIVITY_IDS | {"low", "medium", "high", "promote", "refuse", "skipped"}:
        assert not any(raw in c.split() for c in shown_cells), raw
    # The activity chart labels its bars by name too.
    chart = json.loads(re.search(r'id="chart-data">(.*?)</script>', page, re.S).group(1))
    assert {bar["group"] for bar in chart["by_activity"]} <= set(names.values())

    # The English page names them too (a manager reads names, not ids); the CSV keeps
    # the ids.
    english = manager.get("/dashboard?period=all&lang=en").get_data(as_text=True)
    shown = set(_cells(english, "by_activity", "group"))
    assert shown and shown <= set(content.ACTIVITY_NAMES["en"].values())
    assert _cells(english, "calibration", "band") == ["low", "medium", "high"]
    assert set(_cells(english, "gates", "reason")) == set(GATE_REASONS)
    assert sorted(set(_cells(english, "gates", "decision"))) == ["not run", "promoted", "refused"]
    english_cells = _body_cells(english)
    for raw in ACTIVITY_IDS - {"none"}:
        assert not any(raw in c.split() for c in english_cells), raw
    by_activity = (
        manager.get("/dashboard/by_activity.csv?period=all").get_data().decode("utf-8-sig")
    )
    assert {row["group"] for row in csv.DictReader(io.StringIO(by_activity))} <= ACTIVITY_IDS
    gates = list(csv.DictReader(io.StringIO(manager.get("/dashboard/gates.csv").text)))
    assert {row["decision"] for row in gates} == {"promote", "refuse", "skipped"}


def test_japanese_dashboard_explains_a_bad_period_in_japanese(manager_client):
    text = manager_client.get("/dashboard?from=garbage&lang=ja").get_data(as_text=True)
    assert "期間: 「開始」の日付は YYYY-MM-DD の形式で指定してください" in text
    assert "Invalid isoformat" not in text and "period:" not in text
    text = manager_client.get("/dashboard?from=2026-06-10&to=2026-06-01&lang=ja").get_data(
        as_text=True
    )
    assert "開始日は終了日より前にしてください" in text
    english = manager_client.get("/dashboard?from=garbage&lang=en").get_data(as_text=True)
    assert (
        "Period: “From” must be a date written YYYY-MM-DD (showing the default period)." in english
    )
    # A well-formed date out of range is told as such, not as a format to use.
    for out_of_range in ("from=1969-12-31", "to=2200-01-01"):
        text = manager_client.get(f"/dashboard?{out_of_range}&lang=ja").get_data(as_text=True)
        assert "は1970年から2199年までの日付にしてください（既定の期間を表示しています）" in text, (
            out_of_range
        )
        assert "YYYY-MM-DD の形式" not in text
        english = manager_client.get(f"/dashboard?{out_of_range}&lang=en").get_data(as_text=True)
        assert "must be a date between 1970 and 2199 (showing the default period)." in english


def test_cli_creates_manager_keys_that_open_the_dashboard(app, database_url):
    from click.testing import CliRunner

    from service.cli import keys as keys_group

    result = CliRunner().invoke(
        keys_group, ["create", "--role", "manager"], env={"VEA_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    client = app.test_client()
    log_in(client, key)
    assert client.get("/dashboard").status_code == 200
    assert client.get(desk_url()).status_code == 403


def test_period_presets_and_custom_dates():
    from datetime import datetime

    from service.web.dashboard import period_of

    now = datetime(2026, 6, 30, 12)
    period, error = period_of({"period": "7"}, now)
    assert error is None and period["start"] == datetime(2026, 6, 23, 12)
    period, error = period_of({}, now)
    assert period["key"] == "30" and error is None
    period, _ = period_of({"period": "all"}, now)
    assert period["start"] is None and period["end"] is None
    period, error = period_of({"from": "2026-06-01", "to": "2026-06-10"}, now)
    assert error is None
    assert (period["start"], period["end"]) == (datetime(2026, 6, 1), datetime(2026, 6, 11))
    period, error = period_of({"from": "2026-06-10", "to": "2026-06-01"}, now)
    assert error and period["key"] == "30"
    # One day; a time ends the period where it says (as in the API); offsets convert.
    period, error = period_of({"from": "2026-06-10", "to": "2026-06-10"}, now)
    assert error is None and period["end"] == datetime(2026, 6, 11)
    period, error = period_of({"from": "2026-06-10T00:00+09:00", "to": "2026-06-10T12:00"}, now)
    assert error is None
    assert (period["start"], period["end"]) == (datetime(2026, 6, 9, 15), datetime(2026, 6, 10, 12))


def test_weekly_trend_buckets_start_on_monday():
    import pandas as pd

    from service.web.dashboard import trend_buckets

    times = pd.Series(
        pd.to_datetime(["2026-11-23T00:00Z", "2026-11-24T10:00Z", "2026-11-29T23:59Z"])
    )
    weeks = trend_buckets(times, weekly=True).dt.date.astype(str).tolist()
    assert weeks == ["2026-11-23"] * 3  # Monday to Sunday, labelled by the Monday
    days = trend_buckets(times, weekly=False).dt.date.astype(str).tolist()
    assert days == ["2026-11-23", "2026-11-24", "2026-11-29"]


def test_csv_downloads_name_their_period(manager_client):
    from datetime import datetime

    from service.web.dashboard import csv_filename, period_of

    now = datetime(2026, 6, 30, 12)
    custom, _ = period_of({"from": "2026-06-01", "to": "2026-06-10"}, now)
    assert csv_filename("by_agent_id", custom) == "vea-by_agent_id-2026-06-01_2026-06-10.csv"
    preset, _ = period_of({"period": "7"}, now)
    assert csv_filename("trend", preset, now) == "vea-trend-2026-06-23_2026-06-30.csv"
    everything, _ = period_of({"period": "all"}, now)
    assert csv_filename("uplift", everything, now) == "vea-uplift-start_2026-06-30.csv"
    answer = manager_client.get("/dashboard/uplift.csv?from=2026-06-01&to=2026-06-10")
    disposition = answer.headers["Content-Disposition"]
    assert 'filename="vea-uplift-2026-06-01_2026-06-10.csv"' in disposition


@pytest.mark.parametrize(
    ("query", "download_status"),
    [
        ("to=9999-12-31", 422),  # overflowed the +1 day: 500
        ("from=2026-06-01T00:00:00%2B09:00&to=2026-06-10", 200),  # aware and naive: 500
        ("from=0001-01-01", 422),
        ("to=2026-13-01", 422),
    ],
)
def test_a_bad_period_never_fails_the_page_or_its_csv(manager_client, query, download_status):
    page = manager_client.get(f"/dashboard?{query}")
    assert page.status_code == 200
    # A download of a period it cannot read is refused naming the parameter (422, see
    # tests/test_dashboard_period.py), never a 500.
    download = manager_client.get(f"/dashboard/by_channel.csv?{query}")
    assert download.status_code == download_status


def test_cells_read_in_their_units():
    from service.web.dashboard import cell, shown

    assert [cell("nps", v) for v in (-1.714, -19.4, 10.0)] == ["-1.7", "-19.4", "10.0"]
    assert [cell("roi", v) for v in (39.9, -2.179, 46815.73)] == ["39.90", "-2.18", "46,815.73"]
    rate = {"measure": "ve_success"}
    assert shown("uplift", "treated", 0.154, "en", rate) == "15.4%"
    assert shown("uplift", "value", 0.0662, "en", rate) == "+6.6 pp"
    assert shown("uplift", "value", 0.327, "en", {"measure": "ves"}) == "0.33"
    assert shown("treated_vs_holdout", "value", -4.84, "en", {"measure": "nps"}) == "-4.8"
    assert shown("roi", "value", 40.674, "en", {"measure": "per_contact"}) == "40.67"
    assert shown("uplift", "measure", "retained_60d", "en") == "Retained 60 days"
    assert shown("by_experiment_arm", "group", "holdout", "en") == "holdout (control group)"


def test_the_roi_table_and_its_csv(manager_client):
    page = manager_client.get("/dashboard?period=all").get_data(as_text=True)
    assert 'id="table-roi"' in page and "Programme costs" in page
    roi = manager_client.get("/dashboard/roi.csv").get_data().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(roi)))
    # Upgrade revenue (part of the net value per customer) comes last: the other rows keep
    # their places.
    measures = [r["measure"] for r in rows]
    assert measures == ["per_customer", "per_contact", "total", "upgrade_revenue"]
    assert all(float(r["value_of_retention"]) > 0 for r in rows)


def test_no_control_group_is_explained_to_a_manager(manager_client, make_app, keys):
    """The default app has no holdout: the page says so in plain words and keeps the
    setting for the administrator in small print; with a holdout but no control-group
    outcome in the period, it says that instead."""
    empty = "/dashboard?from=1990-01-01&to=1990-01-02"  # the database is shared by the tests
    page = manager_client.get(empty).get_data(as_text=True)
    message = re.search(r'id="no-holdout">(.*?)</p>', page, re.S).group(1)
    assert "Ask your administrator" in message and "VEA_" not in message
    assert "<small>For administrators: set VEA_HOLDOUT_SHARE" in page
    with_holdout = make_app(holdout_share=0.3).test_client()
    log_in(with_holdout, raw_key(keys["manager"]))
    page = with_holdout.get(empty).get_data(as_text=True)
    message = re.search(r'id="no-holdout">(.*?)</p>', page, re.S).group(1)
    assert "No control-group contacts" in message and "VEA_HOLDOUT_SHARE" not in page


def test_a_failing_database_section_shows_no_statement_or_values(manager_client, monkeypatch):
    """A database error's text quotes the statement and its values (on PostgreSQL, the
    row): the page names only the kind of error."""
    from sqlalchemy.exc import IntegrityError

    from service.web import dashboard

    def broken(*_args):
        raise IntegrityError("SELECT * FROM decisions WHERE customer_id = ?", ["cust-secret"], None)

    monkeypatch.setattr(dashboard, "_drift", broken)
    text = manager_client.get("/dashboard").get_data(as_text=True)
    assert 'data-section="drift"' in text and "IntegrityError (database error)" in text
    assert "cust-secret" not in text and "SELECT" not in text


# ------------------------------------------------------------ accessibility (HTML)
# Kana and kanji: what makes a text Japanese (punctuation such as （） is shared).
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
VOID_ELEMENTS = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}


class _Page(HTMLParser):
    """Each text node of a page with the language it is read in (the nearest lang), and
    the page's tables as rows of (tag, attributes) cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, str | None]] = []  # (tag, language)
        self.texts: list[tuple[str, str | None, str]] = []  # (language, tag, text)
        self.tables: list[dict] = []
        self.ids: dict[str, str] = {}  # id -> tag of an element with text, for labels
        self._named: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        language = attributes.get("lang") or (self.open[-1][1] if self.open else None)
        if tag == "table":
            self.tables.append({"attributes": attributes, "head": [], "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("th", "td") and self.tables and self.tables[-1]["rows"]:
            in_head = any(t == "thead" for t, _ in self.open)
            cell = (tag, attributes)
            (self.tables[-1]["head"] if in_head else self.tables[-1]["rows"][-1]).append(cell)
        if tag in VOID_ELEMENTS:
            return
        self.open.append((tag, language))
        self._named.append(attributes.get("id") or "")

    def handle_endtag(self, tag):
        while self.open:
            closed, _ = self.open.pop()
            self._named.pop()
            if closed == tag:
                break
        if tag == "thead" and self.tables:
            self.tables[-1]["rows"].pop()  # the header row is in "head"

    def handle_data(self, data):
        if not self.open or self.open[-1][0] in ("script", "style", "title"):
            return
        if data.strip():
            self.texts.append((self.open[-1][1], self.open[-1][0], data.strip()))
            for named in self._named:
                if named:
                    self.ids[named] = data.strip()


def parsed(page: str) -> _Page:
    reader = _Page()
    reader.feed(page)
    return reader


def misread_fragments(page: str) -> list[tuple[str | None, str]]:
    """Text a screen reader would read in the wrong language: on a Japanese page, English
    (a lowercase Latin letter, no kana or kanji) outside a lang="en" element, or Japanese
    inside one; on an English page, Japanese (kana or kanji, no lowercase Latin letter)
    outside a lang="ja" element. Acronyms alone (VES, CSV) are read as letters either way."""
    wrong = []
    for language, _tag, text in parsed(page).texts:
        japanese, lowercase = bool(JAPANESE.search(text)), bool(re.search(r"[a-z]", text))
        english_in_japanese = language == "ja" and lowercase and not japanese
        japanese_in_english = language == "en" and japanese and not lowercase
        if english_in_japanese or japanese_in_english:
            wrong.append((language, text))
    return wrong


def table_header_problems(page: str) -> list[str]:
    """What keeps a screen reader from naming a table and the row and column of a cell:
    a table with neither caption nor aria-labelledby (naming an element with text), a
    column header without scope=col, a row whose first cell is not th scope=row or
    whose other cells are not data cells."""
    reader = parsed(page)
    problems = []
    for number, table in enumerate(reader.tables):
        labelled = table["attributes"].get("aria-labelledby")
        if not (labelled and reader.ids.get(labelled)) and "<caption" not in page:
            problems.append(f"table {number}: no caption or aria-labelledby with text")
        for tag, attributes in table["head"]:
            if tag != "th" or attributes.get("scope") != "col":
                problems.append(f"table {labelled}: column header {tag} {attributes}")
        for row in table["rows"]:
            first, *rest = row
            if first[0] != "th" or first[1].get("scope") != "row":
                problems.append(f"table {labelled}: row starts with {first[0]} {first[1]}")
            if any(tag != "td" for tag, _ in rest):
                problems.append(f"table {labelled}: a header inside a row")
    return problems


def test_every_dashboard_table_names_its_rows_and_columns(app, desk_client, keys):
    for _ in range(2):  # a row in every results table
        page = desk_client.get(desk_url(agent_id="a-rows")).get_data(as_text=True)
        desk_client.post(
            "/desk/outcome",
            json={"decision_id": _decision_id(page), "status": "accepted", "ves_confidence": 6},
            headers={"X-CSRF-Token": desk_client.csrf},
        )
    manager = app.test_client()
    log_in(manager, raw_key(keys["manager"]))
    for language in ("en", "ja"):
        page = manager.get(f"/dashboard?period=all&lang={language}").get_data(as_text=True)
        tables = parsed(page).tables
        assert len(tables) >= 10 and all(t["rows"] for t in tables[:3]), language
        assert table_header_problems(page) == [], language
    # The row header names the row: the activity, by name.
    from service.web import content

    names = set(content.ACTIVITY_NAMES["ja"].values())
    assert set(_cells(page, "by_activity", "group")) <= names


def test_a_japanese_desk_marks_english_it_shows(
    app, desk_client, keys, monkeypatch, pools_from_the_file
):
    """A talk track only written in English, a pool with an English name only, the pool's
    id: read in English on the Japanese desk (lang="en"), the rest in Japanese."""
    from service.web import content

    english_track = "Let me show you a faster way to do that."
    tracks = {
        "tracks": {a: {"default": {"en": english_track}} for a in content.ACTIVITY_NAMES["en"]}
    }
    monkeypatch.setattr(content, "talk_tracks", lambda: tracks)
    pools = {"pools": [{"id": "general", "name": {"en": "Front line"}}]}
    assert desk_client.put("/v1/pools", json=pools, headers=keys["admin"]).status_code == 200
    for _ in range(10):
        page = desk_client.get(desk_url(tenure_months="30") + "&lang=ja").get_data(as_text=True)
        if 'data-quiet="false"' in page:
            break
    else:
        pytest.skip("the test model made no suggestion")
    assert f'<blockquote class="talk-track" lang="en">{english_track}</blockquote>' in page
    assert '<strong class="pool-name" data-pool="general" lang="en">Front line</strong>' in page
    assert '<small class="muted pool-id" lang="en">general</small>' in page
    assert misread_fragments(page) == []
    # The same decision on the English desk: nothing to mark, nothing misread.
    english = desk_client.get(f"/desk?decision_id={_decision_id(page)}&lang=en")
    text = english.get_data(as_text=True)
    assert misread_fragments(text) == []
    assert len(re.findall(r'\slang="ja"', text)) == 1  # the 日本語 switch only


def test_an_english_error_on_a_japanese_page_is_marked(manager_client, monkeypatch):
    from service.web import dashboard

    def broken(*_args):
        raise RuntimeError("drift report not deployed")

    monkeypatch.setattr(dashboard, "_drift", broken)
    page = manager_client.get("/dashboard?lang=ja").get_data(as_text=True)
    assert '<span lang="en">RuntimeError: drift report not deployed</span>' in page
    assert misread_fragments(page) == []
