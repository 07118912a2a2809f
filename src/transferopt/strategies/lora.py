"""LoRA through the peft library, restricted to chosen module types inside the last layer groups."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..models.base import Backbone, TransferModel
from .base import STRATEGIES, ModelShape, Strategy, freeze_backbone

ADAPTER_ATTRIBUTE = "peft_model"


@dataclasses.dataclass
class LoraOptions:
    rank: int = dataclasses.field(default=8, metadata={"help": "LoRA rank r"})
    alpha: float = dataclasses.field(default=16.0, metadata={"help": "LoRA scaling alpha"})
    dropout: float = 0.0
    target_modules: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "module-name suffixes to adapt (default: the backbone's choice)"}
    )
    last_k: int | None = dataclasses.field(
        default=None, metadata={"help": "adapt only modules in the last k layer groups (default: all)"}
    )


@STRATEGIES.register("lora")
class Lora(Strategy):
    """Low-rank adapters on the chosen layers; backbone weights stay frozen."""

    name = "lora"
    Options = LoraOptions

    def default_lr(self, modality: str) -> float:
        return 1e-3 if modality == "image" else 5e-4

    @classmethod
    def suggest(cls, trial: Any, shape: ModelShape, prefix: str = "") -> dict[str, Any]:
        rank = trial.suggest_categorical(f"{prefix}lora.rank", [4, 8, 16])
        last_k = trial.suggest_int(f"{prefix}lora.last_k", shape.lora_min_k, shape.num_groups)
        # alpha = 2r keeps the adapter's effective step size comparable across ranks (LoRA paper, 4.1).
        return {"rank": rank, "alpha": 2.0 * rank, "last_k": last_k}

    def first_trained_group(self, num_groups: int) -> int:
        k = self.options.last_k if self.options.last_k is not None else num_groups
        if not 1 <= k <= num_groups:
            raise ConfigError(f"lora: last_k must be between 1 and {num_groups}, got {k}")
        return num_groups - k

    def target_names(self, model: TransferModel) -> list[str]:
        backbone = model.backbone
        targets = self.options.target_modules
        if isinstance(targets, str):  # `-o target_modules=query,value` arrives as one string
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        suffixes = set(targets or backbone.default_lora_targets())
        n = backbone.num_groups
        first = self.first_trained_group(n)
        names = [
            name for group in backbone.group_modules()[first:] for name in adaptable_modules(backbone, group, suffixes)
        ]
        if not names:
            raise ConfigError(
                f"lora: no Linear/Conv2d module named {sorted(suffixes)} in the last {n - first} layer groups"
            )
        return sorted(set(names))

    def apply(self, model: TransferModel) -> None:
        from peft import LoraConfig, get_peft_model

        if self.options.rank < 1:
            raise ConfigError(f"lora: rank must be >= 1, got {self.options.rank}")
        targets = self.target_names(model)
        config = LoraConfig(
            r=self.options.rank,
            lora_alpha=self.options.alpha,
            lora_dropout=self.options.dropout,
            # Exact names, anchored, so only modules inside the chosen groups are adapted.
            target_modules="^(" + "|".join(re.escape(t) for t in targets) + ")$",
        )
        freeze_backbone(model)
        # peft injects adapters into backbone.net in place; the wrapper is kept aside (not a registered
        # submodule) so parameter names and the state dict stay those of the backbone.
        peft_model = get_peft_model(model.backbone.net, config)
        model.backbone.__dict__[ADAPTER_ATTRIBUTE] = peft_model
        for parameter in model.head.parameters():
            parameter.requires_grad_(True)


def adaptable_modules(backbone: Backbone, group: nn.Module, suffixes: set[str]) -> list[str]:
    """Names (within `backbone.net`) of the Linear/Conv2d modules of `group` whose last name part is a target."""
    net_names = {id(m): name for name, m in backbone.net.named_modules()}
    names = []
    for module in group.modules():
        name = net_names.get(id(module))
        if name and isinstance(module, nn.Linear | nn.Conv2d) and name.rsplit(".", 1)[-1] in suffixes:
            names.append(name)
    return names


def smallest_last_k(backbone: Backbone) -> int:
    """The smallest `last_k` that adapts anything with the backbone's default targets."""
    suffixes = set(backbone.default_lora_targets())
    groups = backbone.group_modules()
    for k in range(1, len(groups) + 1):
        if adaptable_modules(backbone, groups[len(groups) - k], suffixes):
            return k
    return len(groups)


def adapter_of(model: TransferModel):
    """The peft wrapper if LoRA was applied, else None."""
    return model.backbone.__dict__.get(ADAPTER_ATTRIBUTE)


def merge_adapter(model: TransferModel) -> None:
    """Fold LoRA weights into the base layers so the model runs (and saves) as a plain backbone."""
    peft_model = adapter_of(model)
    if peft_model is not None:
        peft_model.merge_and_unload()
        del model.backbone.__dict__[ADAPTER_ATTRIBUTE]
