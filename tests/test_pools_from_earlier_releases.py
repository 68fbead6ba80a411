"""Configs an earlier release accepted and today's rules refuse (a pool that serves
nothing, a lift for an activity its pool does not serve: b27ef3c) are read as they
routed then, with a warning, wherever a config is read (the VEA_POOLS file at start, the
stored config); only writers (PUT /v1/pools, a rebuild) refuse them. Refused on read, an
upgrade stopped the service on its pools file, or routed with the file instead of the
stored config (its value pools lost), found by the session's reviewer."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import yaml

from models.pools import PoolError, parse_config
from service.db import pool_config, utcnow

EARLIER = {
    "pools": [
        {"id": "general"},
        {
            "id": "vip_old",
            "activities": ["validate_purchase"],
            "members": ["a1"],
            "lift": {"validate_purchase": 1.5, "educate_usage": 1.2},  # a stray lift
        },
        {"id": "inert_old", "members": ["a2"]},  # serves nothing
    ]
}


def test_the_rules_hold_for_writers_and_not_for_readers():
    with pytest.raises(PoolError, match="lift.educate_usage"):
        parse_config(EARLIER)
    config = parse_config(EARLIER, strict=False)
    vip = next(p for p in config.pools if p.id == "vip_old")
    assert vip.lift_for("validate_purchase") == 1.5 and "educate_usage" not in vip.lift
    assert {p.id for p in config.pools} == {"general", "vip_old", "inert_old"}


def test_a_pools_file_of_an_earlier_release_still_starts_the_service(
    make_app, tmp_path, captured_logs
):
    path = tmp_path / "pools.yaml"
    path.write_text(yaml.safe_dump(EARLIER))
    app = make_app(pools=str(path))
    router = app.extensions["vea"].pools
    assert {p.id for p in router.file_config.pools} == {"general", "vip_old", "inert_old"}
    assert "lift.educate_usage" in captured_logs.getvalue()


def test_a_stored_config_of_an_earlier_release_routes_as_stored(make_app, own_url):
    app = make_app(database_url=own_url)
    engine = app.extensions["vea"].engine
    with engine.begin() as conn:
        conn.execute(pool_config.insert().values(id=1, config=EARLIER, updated_at=utcnow()))
    router = app.extensions["vea"].pools
    router.refresh(force=True)
    assert router.source == "database" and router.problem is None
    assert "vip_old" in {p.id for p in router.config.pools}
    admin = app.test_client()
    from service.auth import create_key

    key = {"Authorization": f"Bearer {create_key(engine, 'admin')[1]}"}
    listed = admin.get("/v1/pools", headers=key)
    assert listed.status_code == 200, listed.json
    # A writer keeps today's rules: storing it again is refused, naming the field.
    refused = admin.put("/v1/pools", json=EARLIER, headers=key)
    assert refused.status_code == 422 and "educate_usage" in str(refused.json)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(pool_config)).scalar() == 1
