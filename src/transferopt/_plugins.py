"""Plug-ins named in $TRANSFEROPT_PLUGINS (comma-separated importable modules) are imported first, so
the models, strategies and peers they register by name exist in every process, benchmark workers too."""

from __future__ import annotations

import importlib
import os

from .errors import ConfigError


def load_plugins() -> list[str]:
    names = [n.strip() for n in os.environ.get("TRANSFEROPT_PLUGINS", "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"TRANSFEROPT_PLUGINS: cannot import {name!r}: {exc}") from None
    return names
