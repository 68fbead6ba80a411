"""Service configuration, pools file, rate limiter and the service CLI commands."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from models.pools import PoolError, load_config
from service.config import Settings
from service.ratelimit import RateLimiter


def test_settings_from_env_and_overrides():
    env = {
        "VEA_DATABASE_URL": "sqlite:///x.db",
        "VEA_WORKERS": "4",
        "VEA_ALLOW_NEGATIVE_COMPLAINTS": "yes",
        "VEA_MAX_ATTEMPTS_PER_WEEK": "-1",
        "VEA_CHAMPION_POLL_S": "0.5",
    }
    settings = Settings.from_env(env, overrides={"decline_days": 3})
    assert settings.database_url == "sqlite:///x.db" and settings.workers == 4
    assert settings.allow_negative_complaints is True and settings.champion_poll_s == 0.5
    policy = settings.contact_policy()
    assert policy.max_attempts_per_week is None and policy.decline_days == 3
    assert settings.worker_threads() == 1  # sync workers by default
    assert Settings.from_env({"VEA_THREADS": "2"}).worker_threads() == 2
    with pytest.raises(ValueError, match="VEA_WORKERS"):
        Settings.from_env({"VEA_WORKERS": "many"})
    with pytest.raises(ValueError, match="unknown settings"):
        Settings.from_env({}, overrides={"nope": 1})


def test_rate_limiter_refills():
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2.0, burst=2, clock=lambda: now[0])
    assert limiter.acquire("k") == 0 and limiter.acquire("k") == 0
    wait = limiter.acquire("k")
    assert wait == pytest.approx(0.5)
    assert RateLimiter.retry_after_header(wait) == "1"
    now[0] += 0.5
    assert limiter.acquire("k") == 0
    assert RateLimiter(0, 1).acquire("k") == 0  # disabled


def test_pools_file_is_validated(tmp_path):
    bad = tmp_path / "pools.yaml"
    bad.write_text("pools:\n  - id: a\n    activities: [sell_more]\n")
    with pytest.raises(PoolError, match="unknown activities"):
        load_config(bad)
    missing = tmp_path / "pools2.yaml"
    missing.write_text("pools:\n  - id: a\n    members: [x]\n")
    with pytest.raises(PoolError, match="general"):
        load_config(missing)


def test_cli_db_upgrade_and_keys(tmp_path):
    from service.cli import db, keys

    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    runner = CliRunner()
    upgraded = runner.invoke(db, ["upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    created = runner.invoke(keys, ["create", "--role", "engineer", "--label", "ci"], env=env)
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("vea_")
    assert runner.invoke(keys, ["revoke", key], env=env).exit_code == 0
    again = runner.invoke(keys, ["revoke", key], env=env)
    assert again.exit_code != 0 and "no active key" in again.output
    assert runner.invoke(keys, ["create", "--role", "root"], env=env).exit_code != 0


def test_routing_settings_reach_the_routing_rules():
    from service.routing import PoolRouter

    def rules(env):
        return PoolRouter(Settings.from_env(env), engine_getter=lambda: None).rules(None)

    default = rules({})
    assert default.patience_s == 180.0 and default.max_wait_s == 60.0
    tuned = rules({"VEA_ROUTING_PATIENCE_S": "90", "VEA_ROUTING_MAX_WAIT_S": "45"})
    assert tuned.patience_s == 90.0 and tuned.max_wait_s == 45.0
    assert rules({"VEA_ROUTING_PATIENCE_S": "0"}).patience_s is None  # abandonment ignored
    with pytest.raises(ValueError, match="VEA_ROUTING_PATIENCE_S"):
        Settings.from_env({"VEA_ROUTING_PATIENCE_S": "patient"})
