"""Every ``VEA_*`` setting: a wrong value stops the service at start-up with a message
naming the variable, instead of a worker crashing on it later or the service quietly
running with it (a negative rate limit, a NaN poll interval, an unknown log level)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest

from service.config import BOUNDS, CHOICES, Settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]

WRONG = [
    ("VEA_WORKERS", "0"),
    ("VEA_WORKERS", "-1"),
    ("VEA_THREADS", "-3"),
    ("VEA_RATE_LIMIT_PER_S", "-5"),
    ("VEA_RATE_LIMIT_BURST", "0"),
    ("VEA_AUTH_FAILURES_PER_S", "-1"),
    ("VEA_MAX_BODY_BYTES", "0"),
    ("VEA_CHAMPION_POLL_S", "nan"),
    ("VEA_POOLS_POLL_S", "-1"),
    ("VEA_DB_POOL_TIMEOUT_S", "inf"),
    ("VEA_DB_POOL_TIMEOUT_S", "0"),
    ("VEA_KEY_CACHE_S", "-1"),
    ("VEA_SESSION_HOURS", "-1"),
    ("VEA_RETRY_AFTER_S", "-2"),
    ("VEA_DECLINE_DAYS", "-1"),
    ("VEA_CONTINUATION_WINDOW_MIN", "50000"),  # past the 30 days of history read
    # Past what the code can take: they started "healthy", then every decision was a 500
    # (days past timedelta's range), a worker failed to boot, or workers forked on.
    ("VEA_DECLINE_DAYS", "1000000"),
    ("VEA_AVAILABILITY_TTL_S", "1e15"),
    ("VEA_SESSION_HOURS", "1e12"),
    ("VEA_WORKERS", "99999999999999999999999"),
    ("VEA_THREADS", "100000"),
    ("VEA_NEGATIVE_SENTIMENT_THRESHOLD", "5"),
    ("VEA_HOLDOUT_SHARE", "1.5"),
    ("VEA_HOLDOUT_SHARE", "1"),
    ("VEA_EPSILON", "2"),
    ("VEA_PROPENSITY_FLOOR", "0.5"),
    ("VEA_SOFTMAX_TEMPERATURE", "0"),
    ("VEA_ROUTING_MEAN_HANDLE_S", "0"),
    ("VEA_PROFICIENCY_MIN_CONTACTS", "0"),
    ("VEA_DRIFT_PSI_THRESHOLD", "0"),
    ("VEA_VALUE_OF_RETENTION", "-200"),
    ("VEA_OMP_NUM_THREADS", "0"),
    ("VEA_SQLITE_SYNCHRONOUS", "FAST"),
    ("VEA_LOG_LEVEL", "LOUD"),
    ("VEA_EXPLORATION", "greedy"),
    ("VEA_BIND", "nonsense"),
    ("VEA_BIND", "127.0.0.1:99999"),
    ("VEA_BIND", "127.0.0.1:"),
    ("VEA_DATABASE_URL", "mysql://vea:pw@db/vea"),
    ("VEA_DATABASE_URL", "postgresql+psycopg2://vea@db/vea"),
    ("VEA_DATABASE_URL", "var/vea.db"),
    ("VEA_REGISTRY", ""),
    ("VEA_EXPERIMENT", " "),
    ("VEA_SECRET_KEY", "short"),
    ("VEA_POOLS", "/nonexistent/pools.yaml"),
    ("VEA_SELF_SERVICE_CONTENT", "/nonexistent/content.yaml"),
    ("VEA_VALUE_CONFIG", "/nonexistent/value.yaml"),
    ("VEA_WORKERS", "two"),
    ("VEA_ACCESS_LOG", "maybe"),
    ("VEA_ACCESS_LOG", ""),
]


@pytest.mark.parametrize(("name", "value"), WRONG)
def test_a_wrong_value_is_refused_naming_the_variable(name, value):
    with pytest.raises(ValueError, match=f"^{name}: "):
        Settings.from_env({name: value})


def test_an_empty_boolean_is_refused_naming_it_not_read_as_false():
    """`VEA_AUTO_MIGRATE=` quietly turned migrations off; unset is the default."""
    booleans = [f for f in fields(Settings) if isinstance(f.default, bool)]
    assert {f.name for f in booleans} >= {"auto_migrate", "access_log", "secure_cookies"}
    for f in booleans:
        name = f"VEA_{f.name.upper()}"
        for empty in ("", "  "):
            with pytest.raises(ValueError, match=f"^{name}: empty: .*unset it for the default"):
                Settings.from_env({name: empty})
        assert getattr(Settings.from_env({}), f.name) is f.default
        assert getattr(Settings.from_env({name: "on"}), f.name) is True
        assert getattr(Settings.from_env({name: "off"}), f.name) is False


VALUE_CONFIGS = [
    ("value_of_retention: -5\n", "value_of_retention: must be >= 0"),
    ("cost_per_second: lots\n", "cost_per_second: not a number: 'lots'"),
    ("cost_per_second: .nan\n", "cost_per_second: must be a finite number"),
    ("value_of_retnetion: 150\n", "value_of_retnetion: not a field of the value config"),
    ("success_measures: ve_success,ves\n", "success_measures: a list of measure names"),
    (
        "success_measures: [ve_success, retention_60d]\n",
        "success_measures: unknown success measure 'retention_60d': the measures are",
    ),
    ("declared_at: last spring\n", "declared_at 'last spring' is not an ISO date"),
    ("reward: happiness\n", "reward: unknown reward 'happiness'"),
    ("reward: {ve_success: lots}\n", "reward: reward weight"),
    ("- ve_success\n", "not a YAML mapping"),
]


@pytest.mark.parametrize(("text", "problem"), VALUE_CONFIGS)
def test_a_value_config_is_checked_field_by_field_at_start_up(text, problem, tmp_path):
    """Its content was read only when a report ran (a 500 there, or a silent misreading:
    a string of measures letter by letter)."""
    path = tmp_path / "value.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as refused:
        Settings.from_env({"VEA_VALUE_CONFIG": str(path)})
    assert str(refused.value).startswith(f"VEA_VALUE_CONFIG: {path}: "), refused.value
    assert problem in str(refused.value)


def test_a_good_value_config_is_what_the_report_uses(tmp_path):
    from service.reports import value_settings

    path = tmp_path / "value.yaml"
    path.write_text(
        "success_measures: [ve_success, retained_60d]\ndeclared_at: 2026-01-01\n"
        "value_of_retention: 150\ncost_per_second: 0.01\nreward: accepted\n"
    )
    settings = Settings.from_env({"VEA_VALUE_CONFIG": str(path)})
    used = value_settings(settings)
    assert (used.value_of_retention, used.cost_per_second) == (150.0, 0.01)
    assert used.declared_measures == ("ve_success", "retained_60d")
    assert used.declared_at == "2026-01-01" and used.reward.name == "accepted"


def test_a_wrong_database_url_never_shows_its_password():
    with pytest.raises(ValueError, match="VEA_DATABASE_URL") as refused:
        Settings.from_env({"VEA_DATABASE_URL": "mysql://vea:s3cret@db/vea"})
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VEA_BIND", "0.0.0.0:8000"),
        ("VEA_BIND", "[::1]:8080"),
        ("VEA_BIND", "unix:/run/vea.sock"),
        ("VEA_DATABASE_URL", "postgresql://vea:pw@db:5432/vea"),
        ("VEA_DATABASE_URL", "postgres://vea@db/vea"),
        ("VEA_DATABASE_URL", "postgresql+psycopg://vea@127.0.0.1:5432/vea"),
        ("VEA_DATABASE_URL", "sqlite:////var/lib/vea/vea.db"),
        ("VEA_LOG_LEVEL", "debug"),
        ("VEA_SQLITE_SYNCHRONOUS", "normal"),
        ("VEA_MAX_ATTEMPTS_PER_WEEK", "-1"),  # negative disables the cap
        ("VEA_RATE_LIMIT_PER_S", "0"),  # 0 disables the limit
        ("VEA_ROUTING_PATIENCE_S", "0"),  # 0 disables abandonment
        ("VEA_CHAMPION_POLL_S", "0"),
        ("VEA_SECRET_KEY", "0123456789abcdef"),
        ("VEA_COMPILE_CACHE", ""),
    ],
)
def test_sensible_values_are_accepted(name, value):
    Settings.from_env({name: value})


def test_every_numeric_setting_has_bounds_and_every_choice_is_checked():
    """A setting added later gets its bounds too (or is named here with the reason)."""
    unbounded = {"max_attempts_per_week"}  # any integer: negative disables the cap
    numeric = {
        f.name
        for f in fields(Settings)
        if isinstance(f.default, int | float) and not isinstance(f.default, bool)
    }
    assert numeric - unbounded == set(BOUNDS)
    assert set(CHOICES) <= {f.name for f in fields(Settings)}


def test_unknown_vea_variables_are_named_with_a_suggestion():
    unknown = Settings.unknown_variables(
        {"VEA_WORKRES": "4", "VEA_WORKERS": "2", "VEA_KEY": "x", "PATH": "/bin"}
    )
    assert unknown == ["VEA_WORKRES (did you mean VEA_WORKERS?)"]


def _serve(env_extra: dict[str, str], tmp_path: Path, timeout: float = 60.0):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEA_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        VEA_BIND=f"127.0.0.1:{free_port()}",
        VEA_DATABASE_URL=f"sqlite:///{tmp_path / 'vea.db'}",
        VEA_REGISTRY=str(tmp_path / "registry"),
        VEA_COMPILE_CACHE="",
        VEA_WORKERS="1",
    )
    env.update(env_extra)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
        pytest.fail(f"gunicorn kept running with {env_extra}:\n{output[-2000:]}")
    return proc.returncode, output, time.monotonic() - started


@pytest.mark.parametrize(
    "wrong",
    [
        {"VEA_LOG_LEVEL": "LOUD"},  # crashed every worker at boot, naming nothing
        {"VEA_RATE_LIMIT_PER_S": "-5"},  # served with no rate limit at all
        {"VEA_AUTO_MIGRATE": ""},  # served without migrating
        {"VEA_VALUE_CONFIG": "value.yaml"},  # the first report failed
    ],
)
def test_gunicorn_master_stops_at_once_naming_the_variable(wrong, tmp_path):
    if "VEA_VALUE_CONFIG" in wrong:
        (tmp_path / "value.yaml").write_text("value_of_retention: -5\n")
        wrong = {"VEA_VALUE_CONFIG": str(tmp_path / "value.yaml")}
    code, output, seconds = _serve(wrong, tmp_path, timeout=45)
    (name,) = wrong
    assert code != 0
    assert f"Error: {name}: " in output, output[-2000:]
    if "VEA_VALUE_CONFIG" in wrong:
        assert f"{wrong[name]}: value_of_retention: must be >= 0" in output
    assert "Booting worker" not in output  # refused in the master, before any worker
    assert "Traceback" not in output
    assert seconds < 30


def test_every_vea_variable_the_docs_or_the_code_name_is_a_setting():
    """README, Dockerfile and compose name only real settings, and no code reads a
    VEA_* variable that `Settings` does not know (it would escape the checks above)."""
    import re

    from service.config import OTHER_VARIABLES

    known = {f"VEA_{f.name.upper()}" for f in fields(Settings)} | OTHER_VARIABLES
    named: dict[str, set[str]] = {}
    paths = [ROOT / "README.md", ROOT / "Dockerfile", ROOT / "docker-compose.yml"]
    for package in ("service", "models", "training"):
        paths += sorted((ROOT / package).rglob("*.py"))
    for path in paths:
        # In code only quoted names are variables (VEA_ONLY is a constant's name).
        pattern = r"[\"']VEA_[A-Z][A-Z0-9_]*[A-Z0-9]" if path.suffix == ".py" else r"\bVEA_\w+"
        for name in re.findall(pattern, path.read_text()):
            name = name.lstrip("\"'")
            named.setdefault(name, set()).add(path.name)
    assert {n: sorted(p) for n, p in named.items() if n not in known} == {}


def test_gunicorn_leaves_no_temporary_directories_behind(tmp_path):
    """One metrics and one shared-state directory per start piled up in /tmp."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    code, output, _ = _serve({"TMPDIR": str(temp), "VEA_RATE_LIMIT_PER_S": "-1"}, tmp_path)
    assert code != 0 and "VEA_RATE_LIMIT_PER_S" in output  # refused at start
    assert list(temp.iterdir()) == []
    with socket.socket() as taken:  # a port in use: gunicorn gives up without on_exit
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        code, output, _ = _serve({"TMPDIR": str(temp), "VEA_BIND": bind}, tmp_path, 120)
    assert code != 0 and "in use" in output
    assert list(temp.iterdir()) == []

    env = {k: v for k, v in os.environ.items() if not k.startswith("VEA_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    env.update(
        TMPDIR=str(temp),
        VEA_BIND=f"127.0.0.1:{port}",
        VEA_WORKERS="1",
        VEA_DATABASE_URL=f"sqlite:///{tmp_path / 'vea.db'}",
        VEA_REGISTRY=str(tmp_path / "registry"),
        VEA_COMPILE_CACHE="",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith("vea-prometheus-") for p in temp.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(2)  # the master is up and its workers are booting
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert [p.name for p in temp.iterdir() if p.name.startswith("vea-")] == []
