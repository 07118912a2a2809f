"""Search: which plan (candidate x strategy x hyper-parameters) under a wall-clock budget."""

from .budget import Budget, parse_budget
from .study import OptimizeSettings, optimize

__all__ = ["Budget", "OptimizeSettings", "optimize", "parse_budget"]
