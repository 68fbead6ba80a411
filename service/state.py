"""Everything a worker holds, created by the app factory and kept on the app
(``app.extensions["vea"]``), never in module globals."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from models.contact_policy import ContactPolicy
from service.auth import KeyStore
from service.config import Settings
from service.db import SqliteCheckpointer
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

    def close(self) -> None:
        """Stop background work and release connections (tests, shutdown)."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()


def state() -> State:
    return current_app.extensions["vea"]
