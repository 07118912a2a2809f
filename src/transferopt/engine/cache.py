"""Frozen-prefix feature cache.

When the first m layer groups are frozen and preprocessing is deterministic, their output is the same
every epoch and every run: compute it once, keep it in memory, and store it on disk keyed by
(model weights, data, preprocessing, m) so later runs on the same data skip the forward pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..data.types import Split
from ..models.base import Backbone, State
from .progress import progress_bar
from .states import concat_states, shortest_first, slice_state, to_device

# Above this size a cache entry stays in memory only: writing and re-reading gigabytes of decoded
# pixels is slower than decoding again.
MAX_DISK_BYTES = 2 * 1024**3
# Bump when what a backbone computes for the same weights and inputs changes (e.g. pooling maths),
# so stale entries written by an older transferopt are never read.
CACHE_FORMAT = 2


def default_cache_dir() -> Path:
    root = os.environ.get("TRANSFEROPT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "transferopt"
    )
    return Path(root) / "features"


@dataclass
class CacheStats:
    hits_memory: int = 0
    hits_disk: int = 0
    misses: int = 0
    #: Misses computed from a shallower prefix already in memory (only the remaining groups ran).
    continued: int = 0
    compute_s: float = 0.0
    keys: list[str] = field(default_factory=list)


class FeatureCache:
    """Memory + disk cache of prefix outputs. `directory=None` disables the disk layer."""

    def __init__(self, directory: Path | None = None, use_disk: bool = True) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.use_disk = use_disk
        self.memory: dict[str, State] = {}
        self.stats = CacheStats()

    def key(self, backbone: Backbone, weights: str, split: Split, prefix: int) -> str:
        return self.key_of_fingerprint(backbone, weights, split.fingerprint(), prefix)

    def key_of_fingerprint(self, backbone: Backbone, weights: str, fingerprint: str, prefix: int) -> str:
        """`key` from the split's fingerprint, hashed once when several prefixes of one split are looked up."""
        # The spec carries pooling and normalisation, which shape the cached pooled features.
        payload = json.dumps(
            [
                CACHE_FORMAT,
                backbone.spec(),
                weights,
                fingerprint,
                backbone.preprocessing_signature(False),
                prefix,
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    def states(
        self,
        backbone: Backbone,
        weights: str,
        split: Split,
        prefix: int,
        batch_size: int,
        device: torch.device,
        label: str = "",
    ) -> State:
        if split.parts:
            # Not kept: assembling from the parts is a copy, and keeping it would hold every round's copy.
            return concat_states(
                [
                    slice_state(
                        self.states(backbone, weights, part, prefix, batch_size, device, label), torch.as_tensor(rows)
                    )
                    for part, rows in split.parts
                ]
            )
        fingerprint = split.fingerprint()
        key = self.key_of_fingerprint(backbone, weights, fingerprint, prefix)
        self.stats.keys.append(key)
        if key in self.memory:
            self.stats.hits_memory += 1
            return self.memory[key]
        path = self.directory / f"{key}.safetensors"
        if self.use_disk and path.exists():
            try:
                states = load_file(str(path))
                self.stats.hits_disk += 1
                self.memory[key] = states
                return states
            except Exception:  # a truncated/corrupt cache file is just a miss
                path.unlink(missing_ok=True)
        self.stats.misses += 1
        start = time.perf_counter()
        shallower = self.deepest_in_memory(backbone, weights, fingerprint, prefix)
        if shallower is not None:
            # The same frozen groups already ran up to `depth`: run only the rest (a student's head fit on
            # the pool's full features, after pseudo-labelling cached its prefix states).
            depth, earlier = shallower
            states = continue_prefix_states(backbone, earlier, depth, prefix, batch_size, device, label)
            self.stats.continued += 1
        else:
            states = compute_prefix_states(backbone, split, prefix, batch_size, device, label)
        self.stats.compute_s += time.perf_counter() - start
        self.memory[key] = states
        if self.use_disk and sum(t.numel() * t.element_size() for t in states.values()) <= MAX_DISK_BYTES:
            write_atomically(path, states)
        return states

    def deepest_in_memory(
        self, backbone: Backbone, weights: str, fingerprint: str, prefix: int
    ) -> tuple[int, State] | None:
        """The deepest prefix below `prefix` whose states for the split (its `fingerprint`) are in memory,
        with them (not 0: those are the prepared inputs, no work saved)."""
        for depth in sorted((b for b in backbone.cache_boundaries() if 0 < b < prefix), reverse=True):
            key = self.key_of_fingerprint(backbone, weights, fingerprint, depth)
            if key in self.memory:
                return depth, self.memory[key]
        return None


def compute_prefix_states(
    backbone: Backbone, split: Split, prefix: int, batch_size: int, device: torch.device, label: str = ""
) -> State:
    def prepared(index: list[int]) -> State:
        return backbone.prepare(split.inputs, index, train=False)

    order = backbone.inference_order(split.inputs)
    return run_in_batches(backbone, prepared, len(split), order, (0, prefix), batch_size, device, label)


def continue_prefix_states(
    backbone: Backbone, states: State, start: int, stop: int, batch_size: int, device: torch.device, label: str = ""
) -> State:
    """Run groups [start, stop) on states that ran up to `start`."""

    def rows(index: list[int]) -> State:
        return slice_state(states, torch.as_tensor(index))

    lengths = backbone.state_lengths(states)
    order = None if lengths is None else shortest_first(lengths)
    count = len(next(iter(states.values())))
    return run_in_batches(backbone, rows, count, order, (start, stop), batch_size, device, label)


def run_in_batches(
    backbone: Backbone,
    batch_at: Callable[[list[int]], State],
    count: int,
    order: np.ndarray | None,
    groups: tuple[int, int],
    batch_size: int,
    device: torch.device,
    label: str,
) -> State:
    """Groups [start, stop) over `count` examples in batches (in `order`: similar lengths together), in eval
    mode and without gradients; pooled when they run to the end. Returned in the data's order."""
    start, stop = groups
    was_training = backbone.training
    backbone.eval()
    parts = []
    positions = np.arange(count) if order is None else order
    with torch.no_grad(), progress_bar(f"features {label}".strip(), total=count) as advance:
        for first in range(0, count, batch_size):
            index = positions[first : first + batch_size].tolist()
            state = backbone.run_groups(to_device(batch_at(index), device), start, stop)
            if stop == backbone.num_groups:
                # Nothing downstream but pooling: store the pooled vector, far smaller than the map.
                state = {"features": backbone.pool(state)}
            parts.append({k: v.detach().cpu().contiguous() for k, v in state.items()})
            advance(len(index))
    backbone.train(was_training)
    states = concat_states(parts)
    if order is not None:
        states = slice_state(states, torch.as_tensor(np.argsort(order)))  # back to the data's order
    return states


def write_atomically(path: Path, states: State) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in states.items()}, str(temporary))
    os.replace(temporary, path)
