"""Search: which plan (candidate x strategy x hyper-parameters) under a wall-clock budget."""

from __future__ import annotations

from typing import Any

from .budget import Budget, parse_budget

__all__ = ["Budget", "OptimizeSettings", "optimize", "parse_budget"]


def __getattr__(name: str) -> Any:
    """The study loads torch and Optuna: only when asked for, so budgets parse without them (bench)."""
    if name in ("OptimizeSettings", "optimize"):
        from . import study

        return getattr(study, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
