"""transferopt: optimal transfer learning without expert effort.

Public API (heavy modules load lazily so `import transferopt` stays fast):
`fit`, `load`, `list_models`, `list_strategies`, `FitConfig`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["FitConfig", "FitResult", "fit", "list_models", "list_strategies", "load"]


def fit(*args: Any, **kwargs: Any):
    from .api import fit as _fit

    return _fit(*args, **kwargs)


def load(run_dir):
    from .api import load as _load

    return _load(run_dir)


def list_models() -> list[dict]:
    from .models import list_models as _list_models

    return _list_models()


def list_strategies() -> list[str]:
    from .strategies import STRATEGIES

    return STRATEGIES.names()


def __getattr__(name: str):
    if name == "FitConfig":
        from .config import FitConfig

        return FitConfig
    if name == "FitResult":
        from .api import FitResult

        return FitResult
    raise AttributeError(name)
