"""Models: the backbone protocol and the registry of names -> backbones."""

from .base import Backbone, State, TransferModel
from .registry import (
    ALIASES,
    ModelAlias,
    configure_backbone,
    list_models,
    rebuild_backbone,
    register_alias,
    resolve_backbone,
)

__all__ = [
    "ALIASES",
    "configure_backbone",
    "Backbone",
    "ModelAlias",
    "State",
    "TransferModel",
    "list_models",
    "rebuild_backbone",
    "register_alias",
    "resolve_backbone",
]
