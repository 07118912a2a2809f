"""Strategies: what to update. Importing this package registers every built-in strategy."""

from . import lora, lp_ft, simple  # noqa: F401  (registration side effects)
from .base import STRATEGIES, ModelShape, Strategy, make_strategy, trainable_parameter_names

__all__ = ["STRATEGIES", "ModelShape", "Strategy", "make_strategy", "trainable_parameter_names"]
