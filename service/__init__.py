"""The vea HTTP service: ``create_app`` builds the Flask app (see ``service.app``).

Kept import-light on purpose: ``service.gunicorn_conf`` must set the environment
(prometheus multiprocess directory, one OpenMP thread) before anything heavy loads.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from service.app import create_app

        return create_app
    raise AttributeError(name)
