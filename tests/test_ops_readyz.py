"""/readyz for a load balancer: 503 with a reason while the database's schema is behind
the code (a release started before `vea db upgrade`), ready again once it is upgraded."""

from __future__ import annotations

from service.api.health import schema_check
from service.db import migration_revisions, upgrade


def test_a_schema_behind_the_code_is_not_ready_until_upgraded(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    upgrade(url, "0005")
    client = make_app(database_url=url).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503, ready.json
    assert ready.json["checks"]["database"]["ok"] is False
    assert any("0005" in r and "vea db upgrade" in r for r in ready.json["reasons"])
    upgrade(url)
    again = client.get("/readyz")
    assert again.status_code == 200, again.json
    assert (
        again.json["checks"]["database"]["detail"] == f"schema revision {migration_revisions()[-1]}"
    )


def test_a_schema_newer_than_the_code_stays_ready():
    """During a rolling release the new instances migrate first; the old ones go on."""
    revisions = ("0001", "0002")
    assert schema_check("0002", revisions)[0] is True
    assert schema_check("0001", revisions)[0] is False
    assert schema_check(None, revisions)[0] is False
    ok, detail = schema_check("0003", revisions)
    assert ok and "newer" in detail


def test_an_exhausted_connection_pool_says_so_with_retry_after(make_app):
    """It answered the error handler's generic 503 ("database busy"), not /readyz's
    documented body with its reasons."""
    app = make_app(db_pool_timeout_s=0.2, retry_after_s=7)
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    engine = app.extensions["vea"].engine
    held = []
    try:
        while True:
            try:
                held.append(engine.connect())
            except Exception:  # noqa: BLE001 - the pool's own TimeoutError once it is empty
                break
        ready = client.get("/readyz")
    finally:
        for conn in held:
            conn.close()
    assert ready.status_code == 503, ready.json
    assert ready.headers["Retry-After"] == "7"
    assert ready.json["ready"] is False and ready.json["degraded"] is True
    assert "database pool exhausted" in ready.json["checks"]["database"]["detail"]
    assert ready.json["checks"]["model"]["ok"] is True
    assert any("database pool exhausted" in r for r in ready.json["reasons"])
    assert client.get("/readyz").status_code == 200  # the connections are back
