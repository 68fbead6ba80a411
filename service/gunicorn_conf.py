"""gunicorn settings for vea (``gunicorn -c python:service.gunicorn_conf``; ``vea serve``).

Runs in the gunicorn master before any worker exists, which is why the environment is
set here first:

* ``OMP_NUM_THREADS=1``: LightGBM's default OpenMP threads collapse throughput inside
  several worker processes (design: 52 vs 2,189 req/s); each worker predicts on one
  thread and the workers use the cores.
* ``PROMETHEUS_MULTIPROC_DIR``: prometheus_client decides at import time whether to
  write samples to files that ``/metrics`` aggregates across workers; the directory is
  emptied at start so counters of a previous run do not leak in.
* ``VEA_SHARED_STATE_DIR``: the workers' shared rate-limit buckets, also emptied at
  start.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile

os.environ["OMP_NUM_THREADS"] = os.environ.get("VEA_OMP_NUM_THREADS", "1")
# Directories made here for this master are removed when it exits, however it exits
# (stopped, or failing to start: a port in use, a bad setting, a failed migration, where
# gunicorn's on_exit hook never runs): one pair per start piled up in the temporary
# directory otherwise. Only by the master: its forked workers inherit the handler.
_made_here: list[str] = []
_master_pid = os.getpid()


def _remove_made_here() -> None:
    if os.getpid() == _master_pid:
        for directory in _made_here:
            shutil.rmtree(directory, ignore_errors=True)


atexit.register(_remove_made_here)
for _variable, _prefix in (
    ("PROMETHEUS_MULTIPROC_DIR", "vea-prometheus-"),
    ("VEA_SHARED_STATE_DIR", "vea-shared-"),
):
    if not os.environ.get(_variable):
        os.environ[_variable] = tempfile.mkdtemp(prefix=_prefix)
        _made_here.append(os.environ[_variable])

if not os.environ.get("VEA_SECRET_KEY"):
    # One page-session secret for every worker of this master (a per-worker one would log
    # agents out whenever a request lands on another worker). Several instances behind a
    # load balancer need VEA_SECRET_KEY set to the same value.
    import secrets

    os.environ["VEA_SECRET_KEY"] = secrets.token_hex(32)

from service.config import Settings  # noqa: E402 - after the environment is set

_settings = Settings.from_env()

wsgi_app = "service.app:create_app()"
bind = _settings.bind
workers = _settings.workers
# CPU-bound requests of a few ms: sync workers, one request per process. With
# VEA_THREADS > 1, gthread workers overlap requests that wait on a commit's fsync. Both
# gunicorn's, with VEA_CLIENT_TIMEOUT_S on every client socket (service/workers.py).
threads = _settings.worker_threads()
worker_class = "service.workers." + ("ThreadWorker" if threads > 1 else "SyncWorker")
timeout = 30
graceful_timeout = 20
keepalive = 2
# The app writes its own structured access log (no raw paths: they hold customer ids).
accesslog = None
errorlog = "-"
# gunicorn's own messages follow VEA_LOG_LEVEL like the app's.
loglevel = _settings.log_level.lower()
# gunicorn's own messages (boot, worker exits) in the same JSON lines as the app's.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "service.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "gunicorn.error": {
            "handlers": ["stderr"],
            "level": _settings.log_level.upper(),
            "propagate": False,
        },
        "gunicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
logger_class = "service.logs.GunicornLogger"
proc_name = "vea"
# No runtime control socket: unused here, and several instances on one host would
# otherwise compete for the same default path.
control_socket_disable = True


# The files vea's workers leave in the two state directories: prometheus_client's
# per-process samples ({type}_{pid}.db, gauges {gauge_mode}_{pid}.db), the rate-limit
# buckets (service.ratelimit), the verified-keys cache and its lock and temporary files
# (service.key_cache), the heavy-report slots (service.heavy), the drift gauges' values
# and lock (service.drift_monitor).
OWN_STATE_FILE = re.compile(
    r"(?:counter|histogram|summary|gauge_[a-z]+)_\d+\.db"
    r"|[a-z-]+\.buckets(?:\.leased)?"
    r"|verified-keys\.json(?:\.lock)?|\.verified-keys\..+"
    r"|heavy-\d+\.lock"
    r"|drift-gauges\.(?:json|lock)|\.drift-gauges\..+"
)


def _empty(variable: str) -> None:
    """Empty the directory ``variable`` names of what an earlier run left, refusing a
    directory that holds anything else: a mistyped setting (a home directory, a data
    volume) would otherwise have every file in it deleted at start."""
    directory = os.environ[variable]
    os.makedirs(directory, exist_ok=True)
    names = os.listdir(directory)
    foreign = sorted(
        name
        for name in names
        if not OWN_STATE_FILE.fullmatch(name) or not os.path.isfile(os.path.join(directory, name))
    )
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise StateDirectoryNotOwn(
            f"{variable}: {directory} holds files vea did not write ({shown}); vea empties "
            "this directory at every start, so point it at an empty directory of its own"
        )
    for name in names:
        os.unlink(os.path.join(directory, name))


class StateDirectoryNotOwn(Exception):
    pass


def on_starting(server) -> None:
    try:
        _empty("PROMETHEUS_MULTIPROC_DIR")
        _empty("VEA_SHARED_STATE_DIR")
    except StateDirectoryNotOwn as exc:
        server.log.error("%s", exc)
        raise SystemExit(1) from None
    for name in Settings.unknown_variables():
        # A misspelt setting would otherwise be silently ignored.
        server.log.warning("%s is not a vea setting: ignored", name)
    from service.db import loose_mode

    if note := loose_mode(_settings.database_url):
        server.log.warning("%s", note)
    if _settings.auto_migrate:
        from sqlalchemy.exc import DatabaseError, OperationalError

        from service.config import safe_url
        from service.db import SchemaNewerThanCode, corrupt_reason, is_corrupt, upgrade

        try:
            before, after = upgrade(_settings.database_url)
        except DatabaseError as exc:
            # Unreachable, or a damaged file (SQLite's "file is not a database"): one line
            # naming the setting, not a traceback (the password hidden), with the
            # driver's first line (refused, authentication failed, locked): the lines
            # PostgreSQL adds (QUERY, CONTEXT, DETAIL) can quote a migrated row.
            if is_corrupt(exc):
                why = f"it is {corrupt_reason(exc)}"
            elif isinstance(exc, OperationalError):
                why = (str(exc.orig).strip().splitlines() or ["unreachable"])[0]
            else:
                raise
            server.log.error(
                "VEA_DATABASE_URL: cannot migrate %s: %s", safe_url(_settings.database_url), why
            )
            raise SystemExit(1) from None
        except SchemaNewerThanCode as exc:
            # A rolled-back release: it serves a newer schema (migrations only add, and
            # /readyz calls that ready), so it starts instead of stopping on a traceback.
            server.log.warning("%s: serving it as it is", exc)
            return
        if before == after:
            server.log.info("database schema is up to date (revision %s)", after)
        else:
            server.log.info("database schema migrated from %s to %s", before or "none", after)


def pre_request(worker, req) -> None:
    # gunicorn's default logs "METHOD /raw/path" at debug level, and paths hold customer
    # ids; the app's access line (route template, request id) says what is needed.
    return None


def post_worker_init(worker) -> None:
    from service.wire_errors import install

    install()  # gunicorn's own 400/414/431 answers in the API's JSON error format
    # Python warnings (a library's FutureWarning in a report) would be two plain-text
    # lines on stderr between the JSON ones: route them through logging, whose root
    # handler here writes JSON.
    import logging

    logging.captureWarnings(True)
    # The app, models and libraries are loaded: move them out of the garbage
    # collector's view so full collections stay short on the request path.
    import gc

    gc.collect()
    gc.freeze()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
