"""The Python API: `fit` a transfer run, `load` a saved one, and use the result."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import FitConfig
from .data import TaskData, task_from_config
from .data.types import AudioInputs, ImageInputs, Inputs, Split, TextInputs
from .data.unlabeled import read_unlabeled
from .engine import FeatureCache, Transfer, classification_metrics
from .engine.metrics import LOWER_IS_BETTER
from .engine.precision import autocast_dtype
from .engine.run import RunOutcome
from .engine.self_training import confident_pseudo_labels, unlabelled_split, with_pseudo_labels
from .engine.states import RawBatches
from .engine.trainer import EpochHook, predict_probabilities
from .engine.transcription import transcribe_batches, transcription_metrics
from .errors import ConfigError, DataError
from .models import TransferModel, configure_backbone, rebuild_backbone, resolve_backbone
from .reporting.plots import plot_training_curve
from .reporting.rundir import check_run_destination, read_json, write_json, write_run_dir
from .strategies import make_strategy

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """A trained transfer model with its configuration, metrics and training record."""

    model: TransferModel
    config: FitConfig
    classes: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    data_summary: dict[str, Any] = field(default_factory=dict)
    adapter: dict[str, Any] | None = None
    run_dir: Path | None = None

    # -- inference ----------------------------------------------------------------------------
    def predict_proba(self, inputs: Sequence[str | Path]) -> np.ndarray:
        backbone = self.model.backbone
        wrapped = as_inputs(inputs, backbone.modality)
        split = Split(wrapped, np.zeros(len(wrapped), dtype=np.int64))
        return self._probabilities(split)

    @property
    def transcribes(self) -> bool:
        return self.model.backbone.task == "transcription"

    def transcribe(self, inputs: Sequence[str | Path]) -> list[str]:
        """The text spoken in each audio file (speech-recognition models)."""
        if not self.transcribes:
            raise ConfigError(f"{self.config.model} is a classifier; it predicts labels, not transcripts")
        split = Split(as_inputs(inputs, "audio"), np.zeros(len(inputs), dtype=np.int64))
        return self._transcriptions(split)

    def predict(self, inputs: Sequence[str | Path]) -> list[dict[str, Any]]:
        """Label and probability for each image path, audio path or text; the transcript for speech
        recognition."""
        if self.transcribes:
            return [{"input": str(i), "text": t} for i, t in zip(inputs, self.transcribe(inputs), strict=True)]
        probs = self.predict_proba(inputs)
        return [
            {"input": str(item), "label": self.classes[int(p.argmax())], "probability": float(p.max())}
            for item, p in zip(inputs, probs, strict=True)
        ]

    def evaluate(self, data: str | TaskData, split: str = "test", detail: bool = False) -> dict[str, Any]:
        """Metrics on a split of a data set whose classes are among this model's classes; `detail` adds the
        confusion matrix, per-class metrics and calibration bins (classification)."""
        task = data if isinstance(data, TaskData) else self._load_matching(data)
        if task.modality != self.model.backbone.modality:
            raise DataError(
                f"{task.source} holds {task.modality} data but this model takes {self.model.backbone.modality} input"
            )
        chosen = task.split(split)
        if self.transcribes != (task.task == "transcription"):
            raise DataError(f"{task.source} is a {task.task} task but this model does {self.model.backbone.task}")
        if self.transcribes:
            return scored_transcripts(self._transcriptions(chosen), chosen.transcripts)
        labels = remap_labels(chosen.labels, task.classes, self.classes, task.source)
        probs = self._probabilities(chosen)
        return classification_metrics(probs, labels, self.classes, detail=detail)

    def _load_matching(self, spec: str) -> TaskData:
        # The run's own data comes back with the same sampling, so "val" means the same examples.
        return task_from_config(self.config, spec, sample=spec == self.config.data)

    def _transcriptions(self, split: Split) -> list[str]:
        return transcribe_batches(self.model, *self._inference(split))

    def _probabilities(self, split: Split) -> np.ndarray:
        return predict_probabilities(self.model, *self._inference(split))

    def _inference(self, split: Split) -> tuple[RawBatches, int, torch.device, torch.dtype | None]:
        """Batches of `split` through the saved model, the end of its frozen prefix, the model's device and
        the autocast dtype the run's precision gives there. The frozen prefix runs in float32 outside autocast
        (RawBatches), as its cached states did in training and in the search's scoring: under bf16 a prefix
        in autocast would change a few predictions, and `evaluate` would disagree with the run's metrics."""
        device = next(self.model.parameters()).device
        prefix = int(self.metrics.get("frozen_prefix", 0))
        batches = RawBatches(self.model.backbone, split, self.config.batch_size, prefix, False, device)
        return batches, prefix, device, autocast_dtype(self.config.precision, device)

    # -- saving -------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the run directory atomically; returns its path."""
        directory = write_run_dir(Path(directory), self._fill, {"format": 1, "kind": "fit"})
        self.run_dir = directory
        return directory

    def _fill(self, folder: Path) -> None:
        from safetensors.torch import save_model

        backbone = self.model.backbone
        write_json(folder / "config.json", self.config.to_dict())
        write_json(folder / "labels.json", {"classes": self.classes})
        write_json(
            folder / "model.json",
            {
                "backbone": backbone.spec(),
                "num_classes": len(self.classes),
                "strategy": self.metrics.get("strategy"),
                "versions": versions(),
            },
        )
        write_json(folder / "metrics.json", self.metrics)
        write_json(folder / "history.json", self.history)
        if self.history:
            plot_training_curve(self.history, folder / "training_curve.png", self.config.metric)
        write_json(folder / "data.json", self.data_summary)
        # save_model keeps one copy of tied tensors (Whisper's output projection is its token embedding).
        save_model(self.model, str(folder / "model.safetensors"))
        (folder / "backbone").mkdir()
        backbone.export(folder / "backbone")
        if self.adapter is not None:
            save_adapter(self.adapter, folder / "adapter")


def group_parameter_counts(backbone) -> list[int]:
    params = dict(backbone.named_parameters())
    return [int(sum(params[n].numel() for n in names)) for names in backbone.param_groups()]


def save_adapter(adapter: dict[str, Any], folder: Path) -> None:
    """Save LoRA exactly as peft does (adapter_config.json + adapter_model.safetensors)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    adapter["config"].save_pretrained(str(folder))
    save_file({k: v.contiguous() for k, v in adapter["state"].items()}, str(folder / "adapter_model.safetensors"))


def versions() -> dict[str, str]:
    import timm
    import transformers

    from . import __version__

    return {
        "transferopt": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def as_inputs(inputs: Sequence[str | Path], modality: str) -> ImageInputs | TextInputs | AudioInputs:
    if not inputs:
        raise DataError("no inputs to predict")
    if modality == "text":
        texts = [str(t) for t in inputs]
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise DataError(f"input {empty[0] + 1} is an empty text")
        return TextInputs(texts)
    paths = [Path(p) for p in inputs]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{'audio file' if modality == 'audio' else 'image'} not found: {missing[0]}")
    return AudioInputs(paths) if modality == "audio" else ImageInputs(paths=paths)


def remap_labels(labels: np.ndarray, data_classes: list[str], model_classes: list[str], source: str) -> np.ndarray:
    index = {name: i for i, name in enumerate(model_classes)}
    unknown = [c for c in data_classes if c not in index]
    if unknown:
        raise DataError(f"{source}: class(es) the model was not trained on: {', '.join(unknown[:5])}")
    mapping = np.array([index[c] for c in data_classes], dtype=np.int64)
    return mapping[labels]


def count_parameters(model: TransferModel) -> int:
    return sum(p.numel() for p in model.parameters())


def fit(
    data: str | None = None,
    model: str | None = None,
    strategy: str = "linear-probe",
    *,
    out: str | Path | None = None,
    config: FitConfig | None = None,
    cache: FeatureCache | None = None,
    hooks: list[EpochHook] | None = None,
    task: TaskData | None = None,
    **options: Any,
) -> FitResult:
    """Adapt a pretrained model to a labelled data set with one strategy.

    Either pass a ready `config`, or `data`, `model`, `strategy` and any `FitConfig` field as keywords.
    """
    if config is None:
        if data is None or model is None:
            raise ConfigError("fit needs data and model (or a FitConfig)")
        config = FitConfig(data=data, model=model, strategy=strategy, **options)
    started = time.perf_counter()
    if out is not None:
        check_run_destination(Path(out))
    strategy_obj = make_strategy(config.strategy, config.strategy_options)
    task = task or task_from_config(config)
    config = config_for_task(config, task, strategy_obj)
    pool = unlabeled_pool(config, task)  # read before training, so a bad path fails at once
    cache = cache or FeatureCache()
    transfer, outcome = train_once(config, task, strategy_obj, cache, hooks)
    self_training = None
    if pool is not None:
        transfer, outcome, self_training = self_train(transfer, outcome, pool, cache, hooks)
    result = assemble_result(transfer, outcome, strategy_obj, started, self_training)
    if out is not None:
        result.save(out)
    return result


def assemble_result(
    transfer: Transfer, outcome: RunOutcome, strategy, started: float, self_training: dict[str, Any] | None = None
) -> FitResult:
    """The trained model with its metrics on val (and test, when the task has one), timing and provenance."""
    task, transfer_model, backbone = transfer.data, transfer.model, transfer.model.backbone
    eval_started = time.perf_counter()
    metrics: dict[str, Any] = {"val": split_metrics(transfer, task, "val", outcome.prefix, outcome.val_probs)}
    if task.test is not None:
        metrics["test"] = split_metrics(transfer, task, "test", outcome.prefix)
    timing = dict(outcome.timing)
    timing["eval_s"] = time.perf_counter() - eval_started
    timing["total_s"] = time.perf_counter() - started
    metrics.update(
        timing=timing,
        trainable_params=outcome.trainable_params,
        total_params=count_parameters(transfer_model),
        trained_groups=outcome.trained_groups,
        layer_groups=backbone.group_names,
        group_params=group_parameter_counts(backbone),
        frozen_prefix=outcome.prefix,
        # What `--precision` resolved to on this device (auto depends on the hardware).
        precision="bf16" if transfer.autocast_dtype is torch.bfloat16 else "fp32",
        device=str(transfer.device),
        source_weights=transfer.weights,
        strategy=strategy.describe(),
        head_fit=outcome.head_fit,
        temperature=outcome.temperature,
        best_epoch=outcome.history.best_epoch if outcome.history else None,
        cache={
            "hits_memory": transfer.cache.stats.hits_memory,
            "hits_disk": transfer.cache.stats.hits_disk,
            "misses": transfer.cache.stats.misses,
        },
        notes=task.notes + outcome.notes,
    )
    if self_training is not None:
        metrics["self_training"] = self_training
    return FitResult(
        model=transfer_model,
        config=transfer.config,
        classes=task.classes,
        metrics=metrics,
        history=outcome.history.epochs if outcome.history else [],
        data_summary=task.summary(),
        adapter=outcome.adapter,
    )


def train_once(
    config: FitConfig, task: TaskData, strategy, cache: FeatureCache, hooks: list[EpochHook] | None
) -> tuple[Transfer, RunOutcome]:
    """A new model from the source weights, trained on `task` with one strategy."""
    torch.manual_seed(config.seed)  # a model trained from scratch starts from seeded random weights
    backbone = resolve_backbone(config.model, pretrained=config.pretrained, task=task.task)
    configure_backbone(backbone, task, config)
    torch.manual_seed(config.seed)
    transfer = Transfer(new_model(backbone, task), task, config, cache)
    return transfer, transfer.run(strategy, hooks)


def unlabeled_pool(config: FitConfig, task: TaskData) -> Inputs | None:
    if config.unlabeled is None:
        return None
    if task.task == "transcription":
        raise ConfigError("--unlabeled (self-training) is for classification; this is a transcription task")
    return read_unlabeled(config.unlabeled, task.modality, config.text_col)


def self_train(
    teacher: Transfer,
    outcome: RunOutcome,
    pool: Inputs,
    cache: FeatureCache,
    hooks: list[EpochHook] | None,
    round_fits: Callable[[float | None], bool] | None = None,
) -> tuple[Transfer, RunOutcome, dict[str, Any]]:
    """Rounds of pseudo-labelling the unlabelled pool with the best model so far and training a student on
    the labelled plus pseudo-labelled data; a student is kept only when its validation metric beats its
    teacher's, and the rounds stop at the first one that is not. `round_fits(expected seconds: the last
    round's, scaled to the coming round's training-set size; None before the first)` says whether another
    round fits in the time left (optimize's budget)."""
    config, task = teacher.config, teacher.data
    pool_split = unlabelled_split(pool)
    best_score = validation_score(teacher, outcome)
    record: dict[str, Any] = {
        "unlabeled": len(pool),
        "share": config.pseudo_label_share,
        "teacher_val": best_score,
        "rounds": [],
    }
    if config.pseudo_label_share_step:
        record["share_step"] = config.pseudo_label_share_step
    if config.self_training_epochs:
        record["student_epochs"] = config.self_training_epochs
    last_round_s: float | None = None
    for round_number in range(1, config.self_training_rounds + 1):
        expected_s = last_round_s and last_round_s * growth(config, round_number, len(task.train), len(pool))
        if round_fits is not None and not round_fits(expected_s):
            record["stopped"] = f"round {round_number} would not fit in the time left"
            break
        round_started = time.perf_counter()
        log.info("self-training round %d: pseudo-labelling %d unlabelled example(s)", round_number, len(pool))
        probs = teacher.probabilities(pool_split, outcome.prefix, "unlabelled")
        share = round_share(config, round_number)
        index, labels = confident_pseudo_labels(probs, share)
        student_task = with_pseudo_labels(task, pool, index, labels)
        strategy = make_strategy(config.strategy, config.strategy_options)  # a fresh one: strategies keep state
        student, student_outcome = train_once(student_config(config), student_task, strategy, cache, hooks)
        student.config = config  # a kept student's run reproduces with the run's settings, teacher's epochs too
        score = validation_score(student, student_outcome)
        kept = is_better(score, best_score, config.metric)
        lowest_confidence = float(probs[index].max(axis=1).min())
        record["rounds"].append(
            {
                "share": share,
                "pseudo_labelled": len(index),
                "min_confidence": lowest_confidence,
                "val": score,
                "kept": kept,
            }
        )
        if not kept:
            break
        teacher, outcome, best_score = student, student_outcome, score
        last_round_s = time.perf_counter() - round_started
    record["kept_rounds"] = sum(r["kept"] for r in record["rounds"])
    return teacher, outcome, record


def round_share(config: FitConfig, round_number: int) -> float:
    """The share of the pool pseudo-labelled in a round (1-based). With a step the share grows each round
    (curriculum labelling, Cascante-Bonilla et al., AAAI 2021): the teacher's most confident sentences are
    the easy, redundant part of the pool (benchmarks/results/oracle_students.md), so each better student labels a
    larger, harder share for the next."""
    share = config.pseudo_label_share + (round_number - 1) * config.pseudo_label_share_step
    return min(1.0, round(share, 6))  # 0.2 + 0.4 is 0.6, not 0.6000000000000001, in the record


def growth(config: FitConfig, round_number: int, n_train: int, n_pool: int) -> float:
    """How many times as many examples round `round_number`'s student trains on as the last round's did."""

    def examples(number: int) -> float:
        return n_train + round_share(config, number) * n_pool

    return examples(round_number) / examples(round_number - 1)


def student_config(config: FitConfig) -> FitConfig:
    """A student's training settings: the run's, with `self_training_epochs` when given. A student sees the
    pseudo-labelled pool besides the labelled examples (often ten times as many), so it needs fewer passes
    than a teacher trained on a few shots."""
    if config.self_training_epochs is None:
        return config
    return config.replace(epochs=config.self_training_epochs)


def validation_score(transfer: Transfer, outcome: RunOutcome) -> float:
    metric = transfer.config.metric
    return float(split_metrics(transfer, transfer.data, "val", outcome.prefix, outcome.val_probs)[metric])


def is_better(score: float, best: float, metric: str) -> bool:
    return score < best if metric in LOWER_IS_BETTER else score > best


def config_for_task(config: FitConfig, task: TaskData, strategy) -> FitConfig:
    """Transcription is scored by error rates and keeps the model's decoder (Whisper) or CTC head
    (wav2vec2, HuBERT), so no new head is fitted."""
    if task.task != "transcription":
        if config.metric in LOWER_IS_BETTER:
            raise ConfigError(
                f"--metric {config.metric} is for speech recognition; {task.source} is a classification task"
            )
        return config
    if strategy.fits_head_first or not strategy.trains:
        raise ConfigError(
            f"strategy {strategy.name} fits a new classification head; transcription keeps the model's own "
            "decoder or CTC head (use full, partial, bitfit, norm or lora)"
        )
    return config if config.metric in LOWER_IS_BETTER else config.replace(metric="wer")


def new_model(backbone, task: TaskData):
    if task.task == "transcription":
        return backbone.transcription_model()
    return TransferModel(backbone, task.num_classes)


#: Transcriptions kept in metrics.json per split, so a person can read what the model hears.
EXAMPLE_TRANSCRIPTS = 10


def scored_transcripts(heard: list[str], references: list[str]) -> dict[str, Any]:
    """WER/CER plus the first few (reference, transcript) pairs."""
    metrics = transcription_metrics(heard, references)
    pairs = zip(references[:EXAMPLE_TRANSCRIPTS], heard[:EXAMPLE_TRANSCRIPTS], strict=True)
    metrics["examples"] = [{"reference": r, "transcript": h} for r, h in pairs]
    return metrics


def split_metrics(
    transfer: Transfer, task: TaskData, name: str, prefix: int, probs: np.ndarray | None = None
) -> dict[str, Any]:
    """Metrics of the transferred model on a split; `probs` are its predictions there, when known already."""
    split = task.split(name)
    if task.task == "transcription":
        return scored_transcripts(transfer.transcriptions(split, prefix, name), split.transcripts)
    if probs is None:
        probs = transfer.probabilities(split, prefix, name)
    return classification_metrics(probs, split.labels, task.classes, detail=True)


#: Task names as users say them (CLI `--task`), mapped to the data task they train.
TASK_NAMES = {"speech-recognition": "transcription", "transcription": "transcription"}


def pretrained(model: str, task: str = "speech-recognition") -> FitResult:
    """A pretrained model used as it is (no training): the zero-shot baseline, e.g. Whisper transcribing."""
    if task not in TASK_NAMES:
        raise ConfigError(f"--task {task!r}: a model can be used untrained only for {', '.join(TASK_NAMES)}")
    backbone = resolve_backbone(model, task=TASK_NAMES[task])
    backbone.fit_clip_length(None, 30.0)  # Whisper's own window, as the model is used everywhere else
    net = backbone.transcription_model().eval()
    config = FitConfig(data="", model=model, strategy="full", epochs=1, metric="wer")
    return FitResult(model=net, config=config, classes=[], metrics={"zero_shot": True})


def load(run_dir: str | Path) -> FitResult:
    """Load a saved run directory (from `fit` or `optimize`)."""
    from safetensors.torch import load_model

    from .errors import RunDirError

    folder = Path(run_dir)
    if not folder.is_dir():
        raise RunDirError(f"run directory not found: {folder}")
    if (folder / "optimize.json").is_file() and (folder / "model").is_dir():
        folder = folder / "model"  # an optimize run keeps its best model one level down
    config = FitConfig.from_dict(read_json(folder / "config.json"))
    model_info = read_json(folder / "model.json")
    classes = read_json(folder / "labels.json")["classes"]
    backbone = rebuild_backbone(model_info["backbone"], folder / "backbone")
    transcribes = backbone.task == "transcription"
    model = backbone.transcription_model() if transcribes else TransferModel(backbone, len(classes))
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise RunDirError(f"{folder} is not a complete transferopt run: model.safetensors is missing")
    load_model(model, str(weights))
    model.eval()
    return FitResult(
        model=model,
        config=config,
        classes=classes,
        metrics=read_json(folder / "metrics.json"),
        history=read_json(folder / "history.json"),
        data_summary=read_json(folder / "data.json"),
        run_dir=folder,
    )
