"""``make run``: from a fresh clone to a serving API on 127.0.0.1:8000.

1. create or migrate the database (``VEA_DATABASE_URL``, SQLite under ``var/`` by
   default);
2. if the registry (``VEA_REGISTRY``) has no champion, simulate interaction logs and
   train a default model with the ``vea`` CLI (run as a separate process so the service
   never imports the training code);
3. on the first start, create an admin API key and print it with a ``curl`` example
   (a restart names the existing key instead of minting another);
4. replace this process with gunicorn (``vea serve``).
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess  # nosec B404 # runs our own CLI with a fixed argv (below), never a shell
import sys
from pathlib import Path

from sqlalchemy.exc import OperationalError

from models.registry import Registry
from service.auth import create_key, list_keys
from service.cli import serve
from service.config import Settings, safe_url
from service.db import SchemaNewerThanCode, make_engine, upgrade

BOOTSTRAP_ROWS = 10_000  # enough for a sensible default model, trained in about a minute
BOOTSTRAP_KEY_LABEL = "make run"


def ensure_model(settings: Settings) -> None:
    if Registry(settings.registry).champion() is not None:
        return
    # Beside the registry, not in the working directory (which may be read-only).
    data = Path(settings.registry).parent / "bootstrap" / "simulated.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    print(f"no champion in {settings.registry}: training a default model on simulated data")
    vea = [sys.executable, "-m", "training.cli"]
    # Bandit B603 is waived on both calls: argv is this interpreter and our own CLI, no
    # shell; the paths come from the operator's settings, not from a request.
    subprocess.run(  # nosec B603
        [*vea, "simulate", "--rows", str(BOOTSTRAP_ROWS), "--seed", "1", "--out", str(data)],
        check=True,
    )
    subprocess.run(  # nosec B603
        [*vea, "train", "--data", str(data), "--registry", settings.registry], check=True
    )


def admin_key_lines(settings: Settings) -> list[str]:
    """An admin key on the first start only. A restart must not mint another admin key
    each time (they pile up, all valid, printed into whoever reads the console)."""
    engine = make_engine(settings.database_url)
    try:
        admins = [k for k in list_keys(engine, include_revoked=False) if k["role"] == "admin"]
        if admins:
            newest = admins[-1]
            return [
                f"admin API key: already created (id {newest['key_id']}, "
                f"{newest['created_at']}); a key is shown only once.",
                "lost it? `vea keys create --role admin` makes another, "
                "`vea keys revoke ID` retires the old one.",
            ]
        key_id, key = create_key(engine, "admin", BOOTSTRAP_KEY_LABEL)
    finally:
        engine.dispose()
    return [f"admin API key (id {key_id}; shown once, keep it):", "", f"    export VEA_KEY={key}"]


def prepare(settings: Settings) -> str:
    """Migrate, make sure a model serves, and say what an operator needs to know."""
    try:
        upgrade(settings.database_url)
        schema_note = ""
    except SchemaNewerThanCode as exc:
        # A rolled-back release starts on the newer schema, as `vea serve` does.
        schema_note = f"\n  warning:  {exc}: serving it as it is"
    ensure_model(settings)
    champion = Registry(settings.registry).champion()
    host = settings.bind
    key_lines = "\n".join(admin_key_lines(settings))
    return f"""
vea is starting on http://{host}  (docs: http://{host}/docs)
  database: {safe_url(settings.database_url)}{schema_note}
  registry: {settings.registry} (champion {champion or "none: decisions degraded"})
  health:   http://{host}/healthz  ready: http://{host}/readyz  metrics: http://{host}/metrics
  logs:     JSON lines on stderr
{key_lines}

    curl -s -X POST http://{host}/v1/decisions -H "Authorization: Bearer $VEA_KEY" \\
      -H 'Content-Type: application/json' \\
      -d '{{"interaction_id": "demo-1", "customer": {{"customer_id": "c-1", "tenure_months": 2}},
           "contact": {{"channel": "chat", "issue_type": "inquiry", "language": "en"}}}}'
"""


def bind_problem(bind: str) -> str | None:
    """Why gunicorn could not listen on ``bind`` (``host:port``), or None. Asked before
    the minute of training a first start spends, and said with the setting to change:
    gunicorn's own answer is seconds of retried "Connection in use" lines."""
    if bind.startswith(("unix:", "fd://")):
        return None
    host, _, port = bind.rpartition(":")
    # A bind without a host (":8000") is every interface to gunicorn: probed the same
    # (a probe binds and closes at once; nothing is served on it).
    every_interface = "0.0.0.0"  # nosec B104
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]") or every_interface, int(port), type=socket.SOCK_STREAM
        )[0]
    except (OSError, ValueError):
        return None  # gunicorn names what it cannot read
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"VEA_BIND: {bind} is in use (another vea, or another program): start "
                    f"on another port, e.g. VEA_BIND={host or '127.0.0.1'}:{int(port) + 1} "
                    "make run"
                )
            return f"VEA_BIND: cannot listen on {bind}: {exc.strerror}"
    return None


def main() -> None:
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        sys.exit(f"vea: {exc}")  # names the variable; a traceback would bury it
    if problem := bind_problem(settings.bind):
        sys.exit(f"vea: {problem}")
    try:
        message = prepare(settings)
    except OperationalError as exc:
        sys.exit(
            f"vea: VEA_DATABASE_URL: cannot reach {safe_url(settings.database_url)}: "
            f"{str(exc.orig).strip()}"
        )
    print(message, flush=True)
    os.environ.setdefault("VEA_AUTO_MIGRATE", "0")  # done above
    serve.main(args=[], standalone_mode=True)


if __name__ == "__main__":
    main()
