"""Batches of model state: from cached prefix outputs or from raw inputs run through a frozen prefix."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..data.types import Split
from ..models.base import Backbone, State


def concat_states(parts: list[State]) -> State:
    """Concatenate batch states; tensors whose later dims differ (text padding) are zero-padded."""
    if not parts:
        return {}
    out = {}
    for key in parts[0]:
        tensors = [p[key] for p in parts]
        shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
        padded = []
        for t in tensors:
            pad = []
            for d in reversed(range(1, t.dim())):
                pad.extend([0, shape[d] - t.shape[d]])
            padded.append(torch.nn.functional.pad(t, pad) if any(pad) else t)
        out[key] = torch.cat(padded)
    return out


def slice_state(state: State, index: torch.Tensor | slice) -> State:
    return {k: v[index] for k, v in state.items()}


def to_device(state: State, device: torch.device) -> State:
    return {k: v.to(device, non_blocking=True) for k, v in state.items()}


class Batches:
    """Mini-batches of (state, labels) in a fixed or seeded-shuffled order."""

    def __init__(self, labels: np.ndarray, batch_size: int) -> None:
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def iterate(
        self, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[State, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.state_for(index), self.labels[index]

    def state_for(self, index: torch.Tensor) -> State:
        raise NotImplementedError


class CachedBatches(Batches):
    """Batches drawn from precomputed states (the frozen prefix ran once)."""

    def __init__(self, states: State, labels: np.ndarray, batch_size: int) -> None:
        super().__init__(labels, batch_size)
        self.states = states

    def state_for(self, index: torch.Tensor) -> State:
        return slice_state(self.states, index)


class RawBatches(Batches):
    """Batches prepared on the fly (augmentation); the frozen prefix runs without gradients."""

    def __init__(
        self,
        backbone: Backbone,
        split: Split,
        batch_size: int,
        prefix: int,
        augment: bool,
        device: torch.device,
        targets: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        """`targets` default to the split's class labels (transcription passes its token ids)."""
        super().__init__(split.labels if targets is None else targets, batch_size)
        self.backbone = backbone
        self.split = split
        self.prefix = prefix
        self.augment = augment
        self.device = device

    def state_for(self, index: torch.Tensor) -> State:
        state = to_device(self.backbone.prepare(self.split.inputs, index.tolist(), train=self.augment), self.device)
        if self.prefix:
            with torch.no_grad():
                state = self.backbone.run_groups(state, 0, self.prefix)
        return state
