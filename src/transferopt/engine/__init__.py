"""Engine: how one plan is trained (feature cache, loop, schedule, early stop)."""

from .cache import FeatureCache
from .metrics import classification_metrics
from .run import RunOutcome, Transfer, frozen_prefix, resolve_device
from .trainer import StopTraining, TrainHistory

__all__ = [
    "FeatureCache",
    "RunOutcome",
    "StopTraining",
    "Transfer",
    "TrainHistory",
    "classification_metrics",
    "frozen_prefix",
    "resolve_device",
]
