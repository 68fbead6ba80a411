"""The service's ``VEA_*`` settings as the training commands read them: the same names,
defaults and start-up checks (``service.config``), one variable at a time.

The one place training code reads ``service``: only its settings checks, imported when a
setting is read (``service.config`` imports neither Flask nor a database connection), so
a wrong VEA_REGISTRY reads the same from `vea train` as from `vea serve`."""

from __future__ import annotations

import os
from typing import Any

import click


def setting(name: str) -> Any:
    """The ``VEA_<NAME>`` setting as the service reads it (its default when unset), with
    the service's start-up checks (``service.config``): a bad value stops the command
    with one line naming the variable. Only that variable is read."""
    from service.config import Settings

    return getattr(Settings.from_env(only=(name,)), name)


def setting_if_set(name: str) -> Any:
    """``setting(name)`` when its variable is set, else None (an option that is off
    unless configured, such as ``vea score``'s routes)."""
    from service.config import variable

    return setting(name) if variable(name) in os.environ else None


def registry_option(func):
    """``--registry``, by default VEA_REGISTRY as the service reads it."""
    return click.option(
        "--registry",
        type=click.Path(file_okay=False),
        default=lambda: setting("registry"),
        show_default="VEA_REGISTRY or var/registry",
        help="Model registry directory.",
    )(func)
