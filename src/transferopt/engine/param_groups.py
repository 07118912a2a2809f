"""Optimizer parameter groups: layer-wise LR decay, head LR scale, no decay on biases and norms."""

from __future__ import annotations

from typing import Any

from ..models.base import TransferModel


def build_param_groups(
    model: TransferModel,
    lr: float,
    head_lr_scale: float,
    layer_decay: float,
    weight_decay: float,
    decay_backbone: bool = True,
) -> list[dict[str, Any]]:
    """One optimizer group per (layer group, decay?) pair.

    Layer group i of n gets lr * layer_decay ** (n - i): the deepest (most task-specific) layers move
    most, as in BEiT/ELECTRA layer-wise decay (timm `param_groups_layer_decay`, which needs timm's own
    group ids; our groups also cover transformers models, hence this small version).
    """
    backbone = model.backbone
    params = dict(backbone.named_parameters())
    groups: list[dict[str, Any]] = []
    n = backbone.num_groups
    for index, names in enumerate(backbone.param_groups()):
        scale = layer_decay ** (n - index)
        trainable = [(name, params[name]) for name in names if params[name].requires_grad]
        groups.extend(split_by_decay(trainable, lr * scale, weight_decay if decay_backbone else 0.0, f"group{index}"))
    head = [(f"head.{n_}", p) for n_, p in model.head.named_parameters() if p.requires_grad]
    groups.extend(split_by_decay(head, lr * head_lr_scale, weight_decay, "head"))
    return [g for g in groups if g["params"]]


def split_by_decay(named: list, lr: float, weight_decay: float, label: str) -> list[dict[str, Any]]:
    decay = [p for name, p in named if p.ndim > 1 and not name.endswith("bias")]
    no_decay = [p for name, p in named if not (p.ndim > 1 and not name.endswith("bias"))]
    return [
        {"params": decay, "lr": lr, "weight_decay": weight_decay, "name": f"{label}.decay"},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{label}.no_decay"},
    ]
