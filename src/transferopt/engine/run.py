"""Train one plan: head-first fitting, frozen-prefix caching, the training loop, LoRA merging."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import FitConfig
from ..data.types import Split, TaskData, TextInputs
from ..errors import ConfigError
from ..models.base import TransferModel
from ..strategies.base import Strategy
from ..strategies.lora import adapter_of, merge_adapter
from .cache import FeatureCache
from .calibration import fit_temperature, fold_temperature, scaled_probabilities
from .head import HeadSearch, fit_logistic_head
from .precision import autocast_dtype
from .states import CachedBatches, RawBatches
from .trainer import EpochHook, TrainHistory, TrainSettings, predict_probabilities, seed_everything, train
from .transcription import TranscriptionObjective, transcribe_batches

# Class weighting switches on automatically when the largest class is this many times the smallest.
AUTO_BALANCE_RATIO = 3.0
#: `augment` means random crops and flips for images, speed perturbation and SpecAugment masks for audio;
#: text has none.
AUGMENTED_MODALITIES = ("image", "audio")


@dataclass
class RunOutcome:
    prefix: int
    history: TrainHistory | None
    head_fit: dict | None
    timing: dict[str, float]
    adapter: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    trainable_params: int = 0
    trained_groups: list[str] = field(default_factory=list)
    temperature: float | None = None
    #: Validation probabilities of the final (calibrated) model, when calibration already computed them.
    val_probs: np.ndarray | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps: MPS is not available on this machine")
    return torch.device(name)


def balance_classes(config: FitConfig, labels: np.ndarray, num_classes: int) -> bool:
    if config.class_weight != "auto":
        return config.class_weight == "balanced"
    counts = np.bincount(labels, minlength=num_classes)
    return counts.max() >= AUTO_BALANCE_RATIO * max(counts.min(), 1)


def class_weight_tensor(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1.0))
    return torch.as_tensor(weights, dtype=torch.float32)


def frozen_prefix(model: TransferModel) -> int:
    """Leading layer groups with nothing to train, snapped to a point where the backbone can resume."""
    backbone = model.backbone
    params = dict(backbone.named_parameters())
    first = next(
        (i for i, names in enumerate(backbone.param_groups()) if any(params[n].requires_grad for n in names)),
        backbone.num_groups,
    )
    return max(b for b in backbone.cache_boundaries() if b <= first)


class Transfer:
    """Runs a strategy on a model and data, sharing one feature cache."""

    def __init__(
        self,
        model: TransferModel,
        data: TaskData,
        config: FitConfig,
        cache: FeatureCache,
        source_weights: str | None = None,
    ) -> None:
        self.model = model
        self.data = data
        self.config = config
        self.cache = cache
        self.device = resolve_device(config.device)
        self.autocast_dtype = autocast_dtype(config.precision, self.device)
        # Cached states depend only on the frozen prefix, which training leaves as pretrained: a trained
        # model reloaded for scoring names the weights it started from to reuse the states of its search.
        self.weights = source_weights or model.backbone.weights_fingerprint()

    def states(self, split: Split, prefix: int, label: str):
        return self.cache.states(
            self.model.backbone, self.weights, split, prefix, self.config.batch_size, self.device, label
        )

    @property
    def transcribing(self) -> bool:
        return self.data.task == "transcription"

    def targets(self, split: Split):
        """Class indices, or for transcription the transcripts as padded token ids."""
        if self.transcribing:
            return self.model.backbone.tokenize_transcripts(split.transcripts)
        return split.labels

    def batches(self, split: Split, prefix: int, label: str) -> CachedBatches:
        states = self.states(split, prefix, label)
        lengths = self.model.backbone.state_lengths(states)
        return CachedBatches(states, self.targets(split), self.config.batch_size, lengths)

    def run(self, strategy: Strategy, hooks: list[EpochHook] | None = None) -> RunOutcome:
        config, data, model = self.config, self.data, self.model
        seed_everything(config.seed)
        model.to(self.device)
        started = time.perf_counter()
        compute_before = self.cache.stats.compute_s
        balanced = not self.transcribing and balance_classes(config, data.train.labels, data.num_classes)
        head_fit = None
        timing: dict[str, float] = {}
        if strategy.fits_head_first:
            t = time.perf_counter()
            head_fit = self.fit_head(strategy, balanced)
            timing["head_fit_s"] = time.perf_counter() - t - (self.cache.stats.compute_s - compute_before)
        strategy.apply(model)
        model.to(self.device)
        prefix = frozen_prefix(model)
        trainable, trained_groups = describe_trainable(model)
        history = None
        if strategy.trains:
            history = self.train(strategy, prefix, balanced, hooks)
        adapter = export_adapter(model)
        merge_adapter(model)
        temperature = val_probs = None
        if config.calibrate and not self.transcribing:
            uncalibrated = self.probabilities(data.val, prefix, "val")
            temperature = fit_temperature(uncalibrated, data.val.labels)
            fold_temperature(model.classifier, temperature)
            val_probs = scaled_probabilities(uncalibrated, temperature)
        timing["feature_cache_s"] = self.cache.stats.compute_s - compute_before
        timing["train_s"] = history.train_s if history else 0.0
        timing["fit_s"] = time.perf_counter() - started
        notes = [f"balanced class weights (train counts {np.bincount(data.train.labels).tolist()})"] if balanced else []
        return RunOutcome(
            prefix, history, head_fit, timing, adapter, notes, trainable, trained_groups, temperature, val_probs
        )

    def fit_head(self, strategy: Strategy, balanced: bool) -> dict:
        n = self.model.backbone.num_groups
        train_features = self.states(self.data.train, n, "train")["features"].numpy()
        val_features = self.states(self.data.val, n, "val")["features"].numpy()
        names = self.class_name_examples(strategy.options.name_examples)
        return fit_logistic_head(
            self.model.classifier,
            (train_features, self.data.train.labels),
            (val_features, self.data.val.labels),
            self.data.classes,
            HeadSearch(strategy.options.c_values, names, strategy.options.name_examples),
            "balanced" if balanced else None,
            self.config.metric,
            self.config.seed,
        )

    def class_name_examples(self, copies: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
        """Features of each class's name, read as text ("card_arrival" -> "card arrival"): with a handful of
        examples per class, a name that says what the class means is one more example (label semantics,
        as few-shot prompting exploits), and validation decides whether it helps."""
        if self.model.backbone.modality != "text" or not any(copies) or self.transcribing:
            return None
        split = Split(TextInputs([readable(name) for name in self.data.classes]), np.arange(self.data.num_classes))
        n = self.model.backbone.num_groups
        return self.states(split, n, "class names")["features"].numpy(), split.labels

    def train(self, strategy: Strategy, prefix: int, balanced: bool, hooks: list[EpochHook] | None) -> TrainHistory:
        config, data = self.config, self.data
        modality = self.model.backbone.modality
        if config.augment and modality in AUGMENTED_MODALITIES:
            train_batches = RawBatches(
                self.model.backbone, data.train, config.batch_size, prefix, True, self.device, self.targets(data.train)
            )
        else:
            train_batches = self.batches(data.train, prefix, "train")
        settings = TrainSettings(
            epochs=config.epochs,
            lr=config.lr or strategy.default_lr(modality),
            head_lr_scale=strategy.head_lr_scale(config.head_lr_scale),
            weight_decay=config.weight_decay,
            layer_decay=config.layer_decay,
            l2sp=config.l2sp,
            warmup_fraction=config.warmup_fraction,
            patience=config.patience,
            grad_clip=config.grad_clip,
            label_smoothing=config.label_smoothing,
            metric=config.metric,
            seed=config.seed,
            checks_per_epoch=config.checks_per_epoch,
            freeze_norm_statistics=strategy.keeps_norm_statistics,
            class_weights=class_weight_tensor(data.train.labels, data.num_classes) if balanced else None,
            autocast_dtype=self.autocast_dtype,
        )
        objective = TranscriptionObjective(data.val.transcripts, self.autocast_dtype) if self.transcribing else None
        return train(
            self.model,
            train_batches,
            self.batches(data.val, prefix, "val"),
            data.val.labels,
            data.classes,
            prefix,
            settings,
            self.device,
            hooks,
            objective,
        )

    def probabilities(self, split: Split, prefix: int, label: str) -> np.ndarray:
        batches = self.batches(split, prefix, label)
        return predict_probabilities(self.model, batches, prefix, self.device, self.autocast_dtype)

    def transcriptions(self, split: Split, prefix: int, label: str) -> list[str]:
        batches = self.batches(split, prefix, label)
        return transcribe_batches(self.model, batches, prefix, self.device, self.autocast_dtype)


def readable(class_name: str) -> str:
    """A class name as words: "card_arrival" -> "card arrival"."""
    return re.sub(r"[_\-\s]+", " ", class_name).strip()


def describe_trainable(model: TransferModel) -> tuple[int, list[str]]:
    """Number of trainable parameters (head included) and the names of layer groups that train."""
    backbone = model.backbone
    params = dict(backbone.named_parameters())
    groups = [
        name
        for name, names in zip(backbone.group_names, backbone.param_groups(), strict=True)
        if any(params[n].requires_grad for n in names)
    ]
    return sum(p.numel() for p in model.parameters() if p.requires_grad), groups


def export_adapter(model: TransferModel) -> dict[str, Any] | None:
    """The LoRA adapter (peft config + weights) before it is merged, so it can be saved via peft."""
    peft_model = adapter_of(model)
    if peft_model is None:
        return None
    from peft import get_peft_model_state_dict

    state = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    return {"config": peft_model.peft_config["default"], "state": state}
