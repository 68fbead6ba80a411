"""`make run` (service.bootstrap): a first start into an empty directory prints what an
operator needs; a restart is idempotent (no second model, no second admin key)."""

from __future__ import annotations

import re

import pytest

from service import bootstrap
from service.auth import list_keys
from service.config import Settings
from service.db import make_engine

KEY = re.compile(r"export VEA_KEY=(vea_\S+)")


def _admin_keys(url: str) -> list[dict]:
    engine = make_engine(url)
    try:
        return [k for k in list_keys(engine, include_revoked=False) if k["role"] == "admin"]
    finally:
        engine.dispose()


def test_a_restart_prints_no_second_admin_key_and_trains_nothing(
    tmp_path, registry_dir, monkeypatch
):
    trained = []
    monkeypatch.setattr(bootstrap.subprocess, "run", lambda *a, **k: trained.append(a))
    url = f"sqlite:///{tmp_path / 'fresh' / 'vea.db'}"
    settings = Settings.from_env(
        {}, overrides={"database_url": url, "registry": str(registry_dir), "bind": "127.0.0.1:8099"}
    )

    first = bootstrap.prepare(settings)
    assert len(KEY.findall(first)) == 1, first
    champion = (registry_dir / "champion").read_text().strip()
    for needed in (f"champion {champion}", "/readyz", "/metrics", "sqlite:///", "registry:"):
        assert needed in first, (needed, first)
    (admin,) = _admin_keys(url)

    second = bootstrap.prepare(settings)
    assert KEY.findall(second) == [], second  # no new secret printed
    assert admin["key_id"] in second and "vea keys create --role admin" in second
    assert _admin_keys(url) == [admin]
    assert trained == []  # the registry had a champion: nothing trained, twice


def test_a_wrong_setting_stops_make_run_with_the_variable_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("VEA_WORKERS", "many")
    with pytest.raises(SystemExit) as stopped:
        bootstrap.main()
    assert str(stopped.value).startswith("vea: VEA_WORKERS: ")


def test_an_unreachable_database_stops_make_run_naming_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("VEA_DATABASE_URL", "postgresql://vea:s3cret@127.0.0.1:1/vea")
    monkeypatch.setenv("VEA_REGISTRY", str(tmp_path / "registry"))
    with pytest.raises(SystemExit) as stopped:
        bootstrap.main()
    message = str(stopped.value)
    assert message.startswith("vea: VEA_DATABASE_URL: cannot reach ") and "s3cret" not in message


def test_a_port_in_use_is_named_with_the_setting_before_any_training(tmp_path, monkeypatch):
    """`make run` on a taken port printed the start banner, trained for a minute on a
    first start, then gunicorn retried "Connection in use" for seconds: no word of
    VEA_BIND. Now one line names the setting and a free-looking alternative, at once."""
    import socket
    import subprocess
    import sys

    from tests.test_e2e_gunicorn import ROOT

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert bootstrap.bind_problem(f"127.0.0.1:{port}") is not None
        done = subprocess.run(
            [sys.executable, "-m", "service.bootstrap"],
            cwd=tmp_path,
            env={
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": str(ROOT),
                "VEA_BIND": f"127.0.0.1:{port}",
                "VEA_DATABASE_URL": f"sqlite:///{tmp_path / 'vea.db'}",
                "VEA_REGISTRY": str(tmp_path / "registry"),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"vea: VEA_BIND: 127.0.0.1:{port} is in use (another vea, or another program): "
        f"start on another port, e.g. VEA_BIND=127.0.0.1:{port + 1} make run"
    )
    assert not (tmp_path / "registry").exists()  # nothing trained, nothing made
    assert not (tmp_path / "vea.db").exists()
    assert bootstrap.bind_problem(f"127.0.0.1:{port}") is None  # free again
    assert bootstrap.bind_problem("unix:/tmp/vea.sock") is None
