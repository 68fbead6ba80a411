"""``make run``: from a fresh clone to a serving API on 127.0.0.1:8000.

1. create or migrate the database (``VEA_DATABASE_URL``, SQLite under ``var/`` by
   default);
2. if the registry (``VEA_REGISTRY``) has no champion, simulate interaction logs and
   train a default model with the ``vea`` CLI (run as a separate process so the service
   never imports the training code);
3. create an admin API key and print it with a ``curl`` example;
4. replace this process with gunicorn (``vea serve``).
"""

from __future__ import annotations

import os
import subprocess  # nosec B404 # runs our own CLI with a fixed argv (below), never a shell
import sys
from pathlib import Path

from models.registry import Registry
from service.auth import create_key
from service.cli import serve
from service.config import Settings
from service.db import make_engine, upgrade

BOOTSTRAP_ROWS = 10_000  # enough for a sensible default model, trained in about a minute


def ensure_model(settings: Settings) -> None:
    if Registry(settings.registry).champion() is not None:
        return
    data = Path("var") / "bootstrap" / "simulated.parquet"
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


def main() -> None:
    settings = Settings.from_env()
    upgrade(settings.database_url)
    ensure_model(settings)
    engine = make_engine(settings.database_url)
    try:
        key_id, key = create_key(engine, "admin", "make run")
    finally:
        engine.dispose()
    host = settings.bind
    print(
        f"""
vea is starting on http://{host}  (docs: http://{host}/docs)
admin API key (id {key_id}; shown once):

    export VEA_KEY={key}

    curl -s -X POST http://{host}/v1/decisions -H "Authorization: Bearer $VEA_KEY" \\
      -H 'Content-Type: application/json' \\
      -d '{{"interaction_id": "demo-1", "customer": {{"customer_id": "c-1", "tenure_months": 2}},
           "contact": {{"channel": "chat", "issue_type": "inquiry", "language": "en"}}}}'
""",
        flush=True,
    )
    os.environ.setdefault("VEA_AUTO_MIGRATE", "0")  # done above
    serve.main(args=[], standalone_mode=True)


if __name__ == "__main__":
    main()
