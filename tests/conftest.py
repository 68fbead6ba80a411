"""Shared service fixtures: a throw-away PostgreSQL cluster, migrated databases for both
backends, a small real model registry, the app, a client and API keys.

The PostgreSQL cluster is a real server (Debian's ``postgresql`` package): ``initdb`` in
a temporary directory, started with ``pg_ctl`` on a free localhost port, removed at the
end. PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres``
system user (created if missing).
"""

from __future__ import annotations

import glob
import io
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_USER = "postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bindir() -> Path | None:
    """Directory holding initdb/pg_ctl: $VEA_PG_BINDIR, Debian's layout, or PATH."""
    explicit = os.environ.get("VEA_PG_BINDIR")
    if explicit:
        return Path(explicit)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresCluster:
    """A private PostgreSQL server for tests and benchmarks (never a shared one)."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable  # fsync on: benchmarks measure the real commit cost
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="vea-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.sockets.mkdir()
        self.as_user: str | None = None
        if os.geteuid() == 0:
            self.as_user = PG_USER
            _ensure_system_user(PG_USER)
            user = pwd.getpwnam(PG_USER)
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            self.root.chmod(0o755)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresCluster:
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-U", PG_USER,
            "--auth=trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.sockets}",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D", str(self.data),
            "-l", str(self.root / "server.log"),
            "-o", " ".join(options),
            "-w", "-t", "60",
            "start",
        )  # fmt: skip
        return self

    def postmaster_pid(self) -> int:
        """The server's main process (its backends are its children)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
        )


# ------------------------------------------------------------------ databases
@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        message = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = PostgresCluster(bindir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    from service.db import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'vea.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgresql_url(postgres: PostgresCluster) -> str:
    from service.db import upgrade

    url = postgres.create_database("vea_api_tests")
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """The API suite runs once per backend; tests use fresh ids, so sharing one
    migrated database per backend keeps them independent and fast."""
    return request.getfixturevalue(f"{request.param}_url")


# -------------------------------------------------------------------- models
@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory) -> Path:
    """A registry with two real versions trained on simulated logs (the first is the
    champion). Tests that promote or roll back get their own copy (``registry_dir``)."""
    from models.registry import Registry
    from training.fit import train_bundle
    from training.simulate import simulate

    root = tmp_path_factory.mktemp("registry")
    registry = Registry(root)
    for seed in (1, 2):
        log, _truth = simulate(rows=3000, seed=seed)
        bundle = train_bundle(log, learner="s", seed=seed, num_threads=1, progress=False)
        registry.add(bundle)
        time.sleep(1.1)  # version ids carry the second they were made
    return root


@pytest.fixture
def registry_dir(trained_registry: Path, tmp_path: Path) -> Path:
    target = tmp_path / "registry"
    shutil.copytree(trained_registry, target, ignore=shutil.ignore_patterns(".lock"))
    return target


# ----------------------------------------------------------------------- app
@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory) -> Path:
    """Compiled forests shared by every test app (the same models recur), outside the tree."""
    return tmp_path_factory.mktemp("compiled")


def suite_app(database_url: str, registry_dir: Path, compile_cache: Path, **overrides):
    """The app as the suite runs it: no access log, no per-key rate limit (the rate-limit
    tests turn it on), ``overrides`` on top."""
    from service.app import create_app

    return create_app(
        {
            "database_url": database_url,
            "registry": str(registry_dir),
            "compile_cache": str(compile_cache),
            "access_log": False,
            "rate_limit_per_s": 0.0,
            **overrides,
        }
    )


@pytest.fixture
def make_app(database_url: str, registry_dir: Path, compile_cache: Path):
    """Factory: the app on this test's backend and registry, with optional overrides."""
    apps = []

    def build(**overrides):
        url = overrides.pop("database_url", database_url)  # a test may name its own
        app = suite_app(url, registry_dir, compile_cache, **overrides)
        app.testing = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["vea"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def keys(app) -> dict[str, str]:
    """One fresh key per role, as ``Authorization`` header dicts."""
    from service.auth import ROLES, create_key

    engine = app.extensions["vea"].engine
    return {role: {"Authorization": f"Bearer {create_key(engine, role)[1]}"} for role in ROLES}


@pytest.fixture
def pools_from_the_file(app) -> Iterator:
    """The app's engine, with no stored pools config before and after the test: it starts
    and ends on the pools file (the API suite shares one database a backend)."""
    from service.db import pool_config

    engine = app.extensions["vea"].engine

    def clear():
        with engine.begin() as conn:
            conn.execute(pool_config.delete())
        app.extensions["vea"].pools.refresh(force=True)

    clear()
    yield engine
    clear()


@pytest.fixture
def own_url(request, database_url, tmp_path) -> str:
    """A migrated database of the test's own, on the test's backend (``database_url``'s):
    for tests that delete (pruning the suite's shared database would delete other tests'
    rows), start an erasure ledger, or must see only their own rows. ``make_app(
    database_url=own_url)`` builds apps on it."""
    from service.db import upgrade

    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'own.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"vea_own_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    return url


@pytest.fixture
def own_app(own_url, registry_dir, compile_cache):
    """An app on a database of its own, on each backend (``own_url``)."""
    app = suite_app(own_url, registry_dir, compile_cache)
    yield app
    app.extensions["vea"].close()


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every line the ``vea`` logger and the root logger write, in the service's format."""
    from service.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger("vea"), logging.getLogger()]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield stream
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.fixture
def new_id():
    return lambda prefix="": f"{prefix}{uuid.uuid4().hex}"


@pytest.fixture(autouse=True, scope="session")
def _erasure_ledger_outside_the_tree(tmp_path_factory) -> Iterator[None]:
    """Erasures under test (in process and in the servers they start) keep their ledger in
    a temporary directory, not in the working tree's var/."""
    if "VEA_ERASURE_LEDGER" in os.environ:
        yield
        return
    os.environ["VEA_ERASURE_LEDGER"] = str(tmp_path_factory.mktemp("erasures") / "ledger.jsonl")
    try:
        yield
    finally:
        os.environ.pop("VEA_ERASURE_LEDGER", None)
