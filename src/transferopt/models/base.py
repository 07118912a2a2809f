"""The backbone protocol: preprocessing, ordered layer groups, features, and a replaceable head.

A backbone is split into layer groups from input to output. Strategies decide per group what trains;
the engine runs the groups one after another, so the output of a frozen prefix can be cached.
State passed between groups is a dict of tensors whose first dimension is the example, so any
prefix output can be stored, batched and reloaded.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

State = dict[str, torch.Tensor]


class Backbone(nn.Module, ABC):
    """A pretrained network seen as ordered layer groups plus pooling."""

    kind: ClassVar[str]
    modality: ClassVar[str]
    #: What the backbone's model predicts: "classification" (a new head) or "transcription".
    task: ClassVar[str] = "classification"

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    # -- structure ----------------------------------------------------------------------------
    @property
    @abstractmethod
    def group_names(self) -> list[str]:
        """Names of the layer groups, input to output."""

    @abstractmethod
    def group_modules(self) -> list[nn.Module]:
        """The module(s) holding each group's parameters, aligned with `group_names`."""

    @property
    @abstractmethod
    def num_features(self) -> int:
        """Width of the pooled feature vector."""

    @property
    def num_groups(self) -> int:
        return len(self.group_names)

    def param_groups(self) -> list[list[str]]:
        """Parameter names (relative to this module) of each layer group, input to output."""
        owner = {id(p): n for n, p in self.named_parameters()}
        groups = []
        for module in self.group_modules():
            groups.append([owner[id(p)] for p in module.parameters() if id(p) in owner])
        return groups

    def cache_boundaries(self) -> list[int]:
        """Group indices m at which `run_groups(state, 0, m)` can stop and resume later."""
        return list(range(self.num_groups + 1))

    # -- computation --------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, inputs: Any, index: Sequence[int], train: bool = False) -> State:
        """Turn raw inputs (images/texts) at `index` into the state entering group 0."""

    def inference_order(self, inputs: Any) -> np.ndarray | None:
        """An order to run inference in so each batch holds inputs of similar length (less padding to
        compute), or None to keep the data's order."""
        return None

    def state_lengths(self, state: State) -> np.ndarray | None:
        """Each example's length in a batched state when batches pad to their longest (text), so training
        can group similar lengths; None when every example has the same size."""
        return None

    @abstractmethod
    def run_groups(self, state: State, start: int, stop: int) -> State:
        """Run layer groups [start, stop) on a state."""

    @abstractmethod
    def pool(self, state: State) -> torch.Tensor:
        """Pool the last group's output into a (batch, num_features) tensor."""

    def features(self, state: State, start: int = 0) -> torch.Tensor:
        if "features" in state:  # already pooled (the cached output of every group)
            return state["features"]
        return self.pool(self.run_groups(state, start, self.num_groups))

    # -- identity, saving ---------------------------------------------------------------------
    @abstractmethod
    def preprocessing_signature(self, train: bool = False) -> str:
        """A string that changes whenever preprocessing would produce different tensors."""

    @property
    def deterministic_preprocessing(self) -> bool:
        return True

    def weights_fingerprint(self) -> str:
        """Identifies the pretrained weights, for cache keys."""
        digest = hashlib.sha256(self.name.encode())
        for name, tensor in self.state_dict().items():
            flat = tensor.detach().reshape(-1)
            digest.update(name.encode())
            # A strided sample keeps this cheap while still changing whenever the weights differ.
            digest.update(flat[:: max(1, flat.numel() // 64)].float().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """JSON-able description from which `rebuild` makes the same architecture."""

    def export(self, directory: Path) -> None:
        """Write any files `rebuild` needs (configs, tokenizers) into `directory`."""

    def default_lora_targets(self) -> list[str]:
        """Module-name suffixes LoRA adapts by default."""
        return []


class TransferModel(nn.Module):
    """A backbone plus a new classification head."""

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.num_features, num_classes))

    @property
    def classifier(self) -> nn.Linear:
        return self.head[1]

    def forward(self, state: State, start: int = 0) -> torch.Tensor:
        return self.head(self.backbone.features(state, start))
