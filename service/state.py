"""Everything a worker holds, created by the app factory and kept on the app
(``app.extensions["vea"]``), never in module globals."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from models.contact_policy import ContactPolicy
from service.auth import KeyStore
from service.config import Settings
from service.db import SqliteCheckpointer
from service.erasure_ledger import ErasureIndex, ErasureLedger
from service.group_commit import DecisionWriter
from service.metrics import Metrics
from service.ratelimit import RateLimiter
from service.routing import PoolRouter
from service.serving import ModelManager


@dataclass
class State:
    settings: Settings
    engine: sa.Engine
    keys: KeyStore
    limiter: RateLimiter
    models: ModelManager
    pools: PoolRouter
    policy: ContactPolicy
    metrics: Metrics
    writer: DecisionWriter
    checkpointer: SqliteCheckpointer | None = None
    # The SQLite database's serving lock, held while this app lives (service.db.SERVING_LOCK).
    serving_lock: int | None = None
    # Who was erased when (the erasure ledger): events from before are not stored again.
    erasures: ErasureIndex = field(init=False)

    def __post_init__(self) -> None:
        self.erasures = ErasureIndex(ErasureLedger(self.settings.erasure_ledger_path()))

    def close(self) -> None:
        """Stop background work and release connections (tests, shutdown)."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
        if self.serving_lock is not None:
            os.close(self.serving_lock)
            self.serving_lock = None


def state() -> State:
    return current_app.extensions["vea"]
