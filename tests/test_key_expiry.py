"""API keys with an expiry: an expired key gets a 401 that says it expired (API and page
login), its page sessions end, the per-worker key cache never keeps it alive, and
`vea keys create --expires-in/--expires` and `vea keys list` handle it."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from service.auth import KeyExpired, KeyStore, create_key
from service.db import api_keys, make_engine, utcnow
from training.cli import cli

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _expire_now(engine: sa.Engine, key_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            api_keys.update()
            .where(api_keys.c.key_id == key_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


# ----------------------------------------------------------------------- API
def test_an_expired_key_gets_a_401_saying_it_expired(app, client):
    engine = app.extensions["vea"].engine
    _, past = create_key(engine, "desktop", expires_at=utcnow() - timedelta(minutes=1))
    _, future = create_key(engine, "desktop", expires_at=utcnow() + timedelta(days=1))

    assert client.get("/v1/pools", headers=_bearer(future)).status_code == 200
    answer = client.get("/v1/pools", headers=_bearer(past))
    assert answer.status_code == 401
    message = answer.get_json()["error"]["message"]
    assert "expired" in message and "invalid" not in message
    assert "invalid_token" in answer.headers["WWW-Authenticate"]
    # An unknown key is still "invalid", not "expired".
    unknown = client.get("/v1/pools", headers=_bearer("vea_000000000000_nope"))
    assert "expired" not in unknown.get_json()["error"]["message"]


def test_the_key_cache_does_not_keep_an_expired_key_alive(make_app):
    app = make_app(key_cache_s=3600.0)  # cached for an hour: expiry must still bite
    client = app.test_client()
    _, key = create_key(
        app.extensions["vea"].engine, "desktop", expires_at=utcnow() + timedelta(seconds=1.5)
    )
    assert client.get("/v1/pools", headers=_bearer(key)).status_code == 200
    time.sleep(1.6)
    answer = client.get("/v1/pools", headers=_bearer(key))
    assert answer.status_code == 401
    assert "expired" in answer.get_json()["error"]["message"]


def test_the_cache_checks_expiry_without_a_query(database_url):
    engine = make_engine(database_url)
    wall = [utcnow()]
    queries: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    try:
        _, key = create_key(engine, "admin", expires_at=wall[0] + timedelta(hours=1))
        store = KeyStore(lambda: engine, cache_s=3600.0, wall_clock=lambda: wall[0])
        queries.clear()
        assert store.verify(key) is not None
        assert store.verify(key) is not None
        assert len(queries) == 1  # the second check came from the cache
        wall[0] += timedelta(hours=1)
        with pytest.raises(KeyExpired):
            store.verify(key)
        assert len(queries) == 1  # expiry is held in the cache, no query to learn it
    finally:
        engine.dispose()


# --------------------------------------------------------------------- pages
def _login(client, key: str):
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    return client.post("/login", data={"key": key, "csrf_token": token})


def test_the_page_login_says_an_expired_key_expired(app, client):
    engine = app.extensions["vea"].engine
    _, key = create_key(engine, "manager", expires_at=utcnow() - timedelta(minutes=1))
    answer = _login(client, key)
    assert answer.status_code == 401
    assert "expired" in answer.get_data(as_text=True)


def test_a_page_session_ends_when_its_key_expires(app, client):
    engine = app.extensions["vea"].engine
    key_id, key = create_key(engine, "manager", expires_at=utcnow() + timedelta(days=1))
    assert _login(client, key).status_code == 302
    assert client.get("/dashboard").status_code == 200
    _expire_now(engine, key_id)
    answer = client.get("/dashboard")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")


# ----------------------------------------------------------------------- CLI
@pytest.fixture
def vea(tmp_path):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}"}

    def run(*argv: str, ok: bool = True):
        result = CliRunner().invoke(cli, list(argv), env=env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run("db", "upgrade")
    run.url = env["VEA_DATABASE_URL"]
    return run


def test_keys_create_with_an_expiry_and_list_marks_expired_keys(vea):
    soon = vea("keys", "create", "--role", "desktop", "--expires-in", "30")
    assert "expires 20" in soon.stderr
    dated = vea("keys", "create", "--role", "manager", "--expires", "2099-01-31")
    forever = vea("keys", "create", "--role", "admin").stdout.strip()
    soon_id = soon.stdout.strip().split("_")[1]
    dated_id = dated.stdout.strip().split("_")[1]

    listed = {k["key_id"]: k for k in json.loads(vea("keys", "list", "--json").stdout)}
    assert listed[dated_id]["expires_at"] == "2099-01-31T00:00:00.000Z"
    assert listed[forever.split("_")[1]]["expires_at"] is None
    in_30 = utcnow() + timedelta(days=30)
    assert listed[soon_id]["expires_at"][:10] == f"{in_30:%Y-%m-%d}"
    assert not any(k["expired"] for k in listed.values())

    engine = make_engine(vea.url)
    try:
        _expire_now(engine, soon_id)
    finally:
        engine.dispose()
    lines = {line.split()[0]: line for line in vea("keys", "list").stdout.splitlines()[1:]}
    assert "(expired)" in lines[soon_id]
    assert "never" in lines[forever.split("_")[1]]
    assert "2099-01-31" in lines[dated_id] and "(expired)" not in lines[dated_id]
    active = json.loads(vea("keys", "list", "--active", "--json").stdout)
    assert soon_id not in {k["key_id"] for k in active}
    assert dated_id in {k["key_id"] for k in active}
    assert soon_id not in vea("keys", "list", "--active").stdout


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--expires-in", "-3"], "above 0"),
        (["--expires-in", "0"], "above 0"),
        (["--expires-in", "soon"], "soon"),
        (["--expires", "2020-01-01"], "not in the future"),
        (["--expires", "31/01/2099"], "not a date"),
        (["--expires", "2099-02-30"], "not a date"),
        (["--expires-in", "3", "--expires", "2099-01-01"], "not both"),
    ],
)
def test_keys_create_refuses_a_bad_expiry(vea, argv, said):
    result = vea("keys", "create", "--role", "admin", *argv, ok=False)
    assert result.exit_code == 2
    assert said in result.output
    assert "Traceback" not in result.output
    assert "no keys" in vea("keys", "list").stderr  # nothing was created
