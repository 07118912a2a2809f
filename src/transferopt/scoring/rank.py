"""Rank candidate models from one cached forward pass each, and profile which depth transfers best."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import FitConfig
from ..data.types import Split, TaskData
from ..engine.cache import FeatureCache
from ..engine.run import resolve_device
from ..engine.states import to_device
from ..errors import ConfigError
from ..models import configure_backbone, resolve_backbone
from ..models.base import Backbone, State
from . import scores


@dataclass
class CandidateScores:
    model: str
    scores: dict[str, float]
    depth_profile: dict[str, float] = field(default_factory=dict)
    best_depth: str = ""
    seconds: float = 0.0
    #: Seconds per example (inference) to reach each cache boundary, preparing the inputs counted at
    #: boundary 0, measured by the depth profile's pass: what the search prices a trial's passes by.
    boundaries: list[int] = field(default_factory=list)
    pass_seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        # The depth profile as an ordered list (input to output): JSON files here are written with sorted
        # keys, which would otherwise reorder the groups alphabetically ("stem" after "blocks.6").
        data = asdict(self)
        data["depth_profile"] = [{"group": g, "score": v} for g, v in self.depth_profile.items()]
        return data


def pool_any(state: State) -> torch.Tensor:
    """Average an intermediate state to one vector per example (spatial mean, or masked token/frame mean)."""
    if "features" in state:
        return state["features"]
    if "hidden" in state:
        # Text states carry a token mask; speech states the count of real (unpadded) positions.
        if "valid" in state:
            positions = torch.arange(state["hidden"].shape[1], device=state["hidden"].device)
            mask = (positions[None, :] < state["valid"][:, None]).to(state["hidden"].dtype)[..., None]
        else:
            mask = state["mask"].to(state["hidden"].dtype)[..., None]
        return (state["hidden"] * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    x = state["x"]
    return x.mean(dim=(2, 3)) if x.dim() == 4 else x.mean(dim=1) if x.dim() == 3 else x


def depth_features(
    backbone: Backbone, split: Split, batch_size: int, device: torch.device
) -> tuple[list[np.ndarray], list[float]]:
    """Pooled output of every layer group, from a single pass over the data, and the seconds per example
    that pass took to reach each cache boundary (preparing the inputs counts at boundary 0)."""
    boundaries = backbone.cache_boundaries()
    outputs: list[list[np.ndarray]] = [[] for _ in boundaries[1:]]
    seconds = np.zeros(len(boundaries))
    backbone.eval()
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            index = list(range(start, min(start + batch_size, len(split))))
            tick = time.perf_counter()
            state = to_device(backbone.prepare(split.inputs, index), device)
            seconds[0] += time.perf_counter() - tick
            done = 0
            for slot, boundary in enumerate(boundaries[1:], 1):
                tick = time.perf_counter()
                state = backbone.run_groups(state, done, boundary)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # kernels run asynchronously: time them, not their launch
                seconds[slot] += time.perf_counter() - tick
                done = boundary
                outputs[slot - 1].append(pool_any(state).float().cpu().numpy())
    per_example = np.cumsum(seconds) / max(len(split), 1)
    return [np.concatenate(parts) for parts in outputs], per_example.tolist()


DEPTH_PROFILE_EXAMPLES = 300


def subsample(split: Split, limit: int, seed: int) -> Split:
    if len(split) <= limit:
        return split
    from sklearn.model_selection import train_test_split

    index, _ = train_test_split(np.arange(len(split)), train_size=limit, stratify=split.labels, random_state=seed)
    return split.subset(np.sort(index))


def source_probabilities(backbone: Backbone, pooled: np.ndarray) -> np.ndarray | None:
    head = getattr(backbone, "source_head", None)
    if head is None:
        return None
    with torch.no_grad():
        logits = head(torch.as_tensor(pooled, dtype=next(head.parameters()).dtype))
    return torch.softmax(logits.float(), dim=-1).numpy()


FEATURE_SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "logme": scores.logme,
    "h_score": scores.h_score,
    "knn_loo": scores.knn_loo_accuracy,
    "linear_cv": scores.linear_probe_cv_accuracy,
}


def score_candidate(
    name: str, task: TaskData, config: FitConfig, cache: FeatureCache, profile_depth: bool = True
) -> CandidateScores:
    started = time.perf_counter()
    backbone = resolve_backbone(name)
    configure_backbone(backbone, task, config)
    device = resolve_device(config.device)
    backbone.to(device)
    # Train and validation together: more examples give steadier estimates, and no training happens.
    weights = backbone.weights_fingerprint()
    pooled_parts, labels_parts = [], []
    for part in (task.train, task.val):
        states = cache.states(backbone, weights, part, backbone.num_groups, config.batch_size, device)
        pooled_parts.append(states["features"].float().numpy())
        labels_parts.append(part.labels)
    pooled, labels = np.concatenate(pooled_parts), np.concatenate(labels_parts)
    result = {key: fn(pooled, labels) for key, fn in FEATURE_SCORES.items()}
    probabilities = source_probabilities(backbone, pooled)
    if probabilities is not None:
        result["leep"] = scores.leep(probabilities, labels)
    else:
        result["nleep"] = scores.nleep(pooled, labels, seed=config.seed)
    candidate = CandidateScores(name, {k: float(v) for k, v in result.items()})
    if profile_depth:
        # A stratified subsample bounds the extra pass: the profile only needs the shape across depths.
        sample = subsample(task.train, DEPTH_PROFILE_EXAMPLES, config.seed)
        per_depth, candidate.pass_seconds = depth_features(backbone, sample, config.batch_size, device)
        candidate.boundaries = backbone.cache_boundaries()
        names = [backbone.group_names[b - 1] for b in backbone.cache_boundaries() if b > 0]
        candidate.depth_profile = {
            group: scores.linear_probe_cv_accuracy(features, sample.labels, seed=config.seed)
            for group, features in zip(names, per_depth, strict=True)
        }
        candidate.best_depth = max(candidate.depth_profile, key=candidate.depth_profile.get)
    candidate.seconds = time.perf_counter() - started
    return candidate


def rank_candidates(
    task: TaskData,
    candidates: list[str],
    config: FitConfig,
    cache: FeatureCache | None = None,
    key: str = "logme",
    profile_depth: bool = True,
) -> list[CandidateScores]:
    """Score every candidate and sort best first by `key`."""
    if task.task == "transcription":
        raise ConfigError(f"{task.source}: transferability scores need class labels; this is a transcription task")
    cache = cache or FeatureCache()
    scored = [score_candidate(name, task, config, cache, profile_depth) for name in candidates]
    available = sorted({k for c in scored for k in c.scores})
    if key not in available:
        raise ConfigError(f"cannot rank by {key!r}; scores: {', '.join(available)}")
    return sorted(scored, key=lambda c: c.scores.get(key, -np.inf), reverse=True)
