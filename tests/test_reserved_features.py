"""Extra features named like vea's own columns: refused by POST /v1/decisions, left out of
reports and exports when stored before; and a period's many extra-feature names do not
make a report's frame a column each. On both backends."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from service.export import FRAME_COLUMNS, MAX_EXTRA_FEATURES
from tests.test_api_decisions import decision_body

PERIOD = {"from": "2019-08-01", "to": "2019-08-02"}
AT = "2019-08-01T09:00:00+00:00"


def _headers(app, role: str) -> dict[str, str]:
    from service.auth import create_key

    return {"Authorization": "Bearer " + create_key(app.extensions["vea"].engine, role)[1]}


def _decide(client, headers, new_id, features=None) -> str:
    body = decision_body(new_id, occurred_at=AT)
    if features is not None:
        body["features"] = features
    response = client.post("/v1/decisions", json=body, headers=headers)
    assert response.status_code == 201, response.json
    decision_id = response.json["decision_id"]
    outcome = {"offered": False, "ves_confidence": 6, "ves_ability": 7, "agent_id": "a-1"}
    recorded = client.post(f"/v1/decisions/{decision_id}/outcome", json=outcome, headers=headers)
    assert recorded.status_code == 201, recorded.json
    return decision_id


def test_every_name_of_vea_s_own_columns_is_refused_naming_it(client, keys, new_id):
    for name in sorted(FRAME_COLUMNS):
        body = decision_body(new_id)
        body["features"] = {"plan": "gold", name: "holdout"}
        response = client.post("/v1/decisions", json=body, headers=keys["desktop"])
        assert response.status_code == 422, (name, response.json)
        error = response.json["error"]
        assert error["code"] == "validation_error"
        assert name in " ".join(error["fields"]["features"]), error


def test_stored_reserved_names_leave_the_report_and_the_export_whole(own_app, new_id, tmp_path):
    """Rows stored before the API refused these names (the audit's: experiment_arm,
    has_outcome, decision_id, openness, nps): the report answered 500 for their period."""
    from service.db import decisions
    from service.export import decision_frame, export_log

    client, desktop = own_app.test_client(), _headers(own_app, "desktop")
    plain = _decide(client, desktop, new_id, {"plan": "gold"})
    spoiled = _decide(client, desktop, new_id, {"plan": "silver"})
    engine = own_app.extensions["vea"].engine
    with engine.begin() as conn:
        stored = conn.execute(
            sa.select(decisions.c.features).where(decisions.c.decision_id == spoiled)
        ).scalar_one()
        reserved = {name: "holdout" for name in FRAME_COLUMNS if name not in stored}
        conn.execute(
            decisions.update()
            .where(decisions.c.decision_id == spoiled)
            .values(features={**stored, **reserved})
        )

    report = client.get(
        "/v1/reports/value", query_string=PERIOD, headers=_headers(own_app, "manager")
    )
    assert report.status_code == 200, report.json
    assert report.json["with_outcome"] == 2

    frame = decision_frame(engine, now=pd.Timestamp("2026-01-01").to_pydatetime())
    assert frame.columns.is_unique
    rows = frame.set_index("decision_id")
    assert rows.loc[spoiled, "experiment_arm"] in ("treatment", "holdout")
    assert bool(rows.loc[spoiled, "has_outcome"])
    assert rows.loc[spoiled, "plan"] == "silver" and rows.loc[plain, "plan"] == "gold"

    result = export_log(engine, tmp_path / "log.csv")
    assert result.rows == 2
    written = pd.read_csv(tmp_path / "log.csv")
    assert set(written["decision_id"]) == {plain, spoiled}
    assert "plan" in written.columns and not any(c.endswith(".1") for c in written.columns)


def test_a_report_frame_holds_the_common_extra_features_and_the_export_all(
    own_app, new_id, tmp_path
):
    """Each decision sends the model's feature and 49 names of its own: the report's frame
    keeps at most MAX_EXTRA_FEATURES, the model's among them; the export keeps them all."""
    from service.export import decision_frame, export_log

    client, desktop = own_app.test_client(), _headers(own_app, "desktop")
    for n in range(4):
        own = {f"x{n}_{k}": k for k in range(MAX_EXTRA_FEATURES - 1)}
        _decide(client, desktop, new_id, {"plan": "gold", **own})
    engine = own_app.extensions["vea"].engine
    frame = decision_frame(engine)
    extra = [c for c in frame.columns if c not in FRAME_COLUMNS]
    assert len(extra) <= MAX_EXTRA_FEATURES and "plan" in extra
    assert (frame["plan"] == "gold").all()

    report = client.get(
        "/v1/reports/value", query_string=PERIOD, headers=_headers(own_app, "manager")
    )
    assert report.status_code == 200, report.json

    export_log(engine, tmp_path / "log.csv")
    written = pd.read_csv(tmp_path / "log.csv", nrows=1)
    assert len([c for c in written.columns if c not in FRAME_COLUMNS]) == 1 + 4 * 49
