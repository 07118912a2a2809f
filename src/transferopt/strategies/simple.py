"""Strategies that only choose which existing parameters train: linear probe, partial, full, BitFit, norm."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..models.base import TransferModel
from .base import STRATEGIES, ModelShape, Strategy, freeze_backbone, train_groups

# Inverse L2 strengths for the logistic-regression head; the best on validation is kept.
DEFAULT_C_VALUES = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
# Copies of each class's name added to a text probe's training examples; the best on validation is kept.
DEFAULT_NAME_EXAMPLES = (0, 1)
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def c_values_field() -> list[float]:
    return dataclasses.field(
        default_factory=lambda: list(DEFAULT_C_VALUES),
        metadata={"help": "inverse L2 strengths of the probe head; the best on validation is kept"},
    )


def name_examples_field() -> list[int]:
    return dataclasses.field(
        default_factory=lambda: list(DEFAULT_NAME_EXAMPLES),
        metadata={
            "help": "text models: copies of each class's name (e.g. 'card arrival') added to the probe's training "
            "examples, 0 for none; the best on validation is kept"
        },
    )


@dataclasses.dataclass
class LinearProbeOptions:
    c_values: list[float] = c_values_field()
    name_examples: list[int] = name_examples_field()


@STRATEGIES.register("linear-probe")
class LinearProbe(Strategy):
    """Frozen backbone; a new linear head fitted by logistic regression on cached features."""

    name = "linear-probe"
    Options = LinearProbeOptions
    fits_head_first = True
    trains = False

    def apply(self, model: TransferModel) -> None:
        freeze_backbone(model)

    def first_trained_group(self, num_groups: int) -> int:
        return num_groups


@dataclasses.dataclass
class PartialOptions:
    k: int | None = dataclasses.field(
        default=None, metadata={"help": "number of last layer groups to train (default: a third)"}
    )


@STRATEGIES.register("partial")
class Partial(Strategy):
    """Train the last k layer groups and the head."""

    name = "partial"
    Options = PartialOptions

    @classmethod
    def suggest(cls, trial: Any, shape: ModelShape, prefix: str = "") -> dict[str, Any]:
        return {"k": trial.suggest_int(f"{prefix}partial.k", 1, shape.num_groups)}

    def groups_to_train(self, num_groups: int) -> int:
        k = self.options.k if self.options.k is not None else max(1, math.ceil(num_groups / 3))
        if not 1 <= k <= num_groups:
            raise ConfigError(f"partial: k must be between 1 and {num_groups} (layer groups), got {k}")
        return k

    def apply(self, model: TransferModel) -> None:
        n = model.backbone.num_groups
        train_groups(model, self.first_trained_group(n))

    def first_trained_group(self, num_groups: int) -> int:
        return num_groups - self.groups_to_train(num_groups)


@STRATEGIES.register("full")
class Full(Strategy):
    """Train every parameter."""

    name = "full"

    def apply(self, model: TransferModel) -> None:
        train_groups(model, 0)


@STRATEGIES.register("bitfit")
class BitFit(Strategy):
    """Train only bias terms and the head (Ben Zaken et al., 2022)."""

    name = "bitfit"

    def default_lr(self, modality: str) -> float:
        return 1e-3

    def apply(self, model: TransferModel) -> None:
        freeze_backbone(model)
        for name, parameter in model.backbone.named_parameters():
            if name.endswith("bias"):
                parameter.requires_grad_(True)


@STRATEGIES.register("norm")
class NormOnly(Strategy):
    """Train only normalisation layers' scale and shift, and the head."""

    name = "norm"

    def default_lr(self, modality: str) -> float:
        return 1e-3

    def apply(self, model: TransferModel) -> None:
        freeze_backbone(model)
        for module in model.backbone.modules():
            if isinstance(module, NORM_TYPES):
                for parameter in module.parameters(recurse=False):
                    parameter.requires_grad_(True)
