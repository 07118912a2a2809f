"""Strategy protocol: decide WHAT trains, as a plan over the backbone's layer groups."""

from __future__ import annotations

import dataclasses
import types
import typing
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from torch import nn

from .._registry import Registry
from ..errors import ConfigError
from ..models.base import TransferModel


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """What a strategy's search space needs to know about one candidate model."""

    num_groups: int
    #: Smallest `last_k` whose groups hold a module LoRA can adapt (EfficientNet's last group has none).
    lora_min_k: int = 1
    #: Layer groups of a transcriber's decoder (its last groups); 0 for classifiers.
    decoder_groups: int = 0


@dataclasses.dataclass
class NoOptions:
    """This strategy has no options."""


class Strategy(ABC):
    """Base class. Subclasses register with `@STRATEGIES.register(name)` and declare an `Options` dataclass."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    #: Fit the head by logistic regression on frozen features before anything else.
    fits_head_first: ClassVar[bool] = False
    #: Whether gradient training follows (False only for the pure linear probe).
    trains: ClassVar[bool] = True
    #: Keep BatchNorm's running statistics during training (its scale and shift still learn).
    keeps_norm_statistics: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        fields = {f.name for f in dataclasses.fields(self.Options)}
        unknown = sorted(set(options) - fields)
        if unknown:
            valid = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"strategy {self.name!r} has no option(s) {', '.join(unknown)}; valid: {valid}")
        check_option_types(self.name, self.Options, options)
        self.options = self.Options(**options)

    @abstractmethod
    def apply(self, model: TransferModel) -> None:
        """Set `requires_grad` (and inject adapters) on `model`; the head always trains."""

    def default_lr(self, modality: str) -> float:
        return 1e-4 if modality == "image" else 5e-5

    @classmethod
    def suggest(cls, trial: Any, shape: ModelShape, prefix: str = "") -> dict[str, Any]:
        """This strategy's own options for one Optuna trial (define-by-run); none by default.

        `prefix` namespaces parameter names when a strategy is nested (LP-FT's fine-tuning phase).
        """
        return {}

    def head_lr_scale(self, configured: float) -> float:
        return configured

    def first_trained_group(self, num_groups: int) -> int:
        """The first layer group this strategy trains (`num_groups` when none), known before any model is
        built: the search prices a trial by the layers its passes run through."""
        return 0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "options": dataclasses.asdict(self.options)}


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def check_option_types(strategy: str, options_class: type, options: dict[str, Any]) -> None:
    """Refuse values of the wrong type (e.g. `-o k=abc`) with a message naming the option."""
    hints = typing.get_type_hints(options_class)
    for name, value in options.items():
        if not matches_type(value, hints[name]):
            raise ConfigError(f"strategy {strategy!r}: option {name}={value!r} should be {describe_type(hints[name])}")


def matches_type(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches_type(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is not None:
        return isinstance(value, origin)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def describe_type(hint: Any) -> str:
    text = str(hint).replace("typing.", "")
    return text.replace("<class '", "").replace("'>", "")


def make_strategy(name: str, options: dict[str, Any] | None = None) -> Strategy:
    return STRATEGIES.get(name)(**(options or {}))


def freeze_backbone(model: TransferModel) -> None:
    for parameter in model.backbone.parameters():
        parameter.requires_grad_(False)
    for parameter in model.head.parameters():
        parameter.requires_grad_(True)


def train_groups(model: TransferModel, first: int) -> None:
    """Freeze everything, then unfreeze layer groups [first, n) and the head."""
    freeze_backbone(model)
    backbone = model.backbone
    params = dict(backbone.named_parameters())
    for group in backbone.param_groups()[first:]:
        for name in group:
            params[name].requires_grad_(True)


def trainable_parameter_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]
