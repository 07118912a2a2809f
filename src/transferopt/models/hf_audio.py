"""Speech encoders from transformers (Whisper's encoder, wav2vec2, HuBERT) as ordered layer groups.

Groups: the feature encoder (Whisper's two convolutions and positions; wav2vec2's convolutional feature
extractor, projection and positional convolution), then each transformer layer; the final layer norm
rides with the last layer. Every strategy therefore applies to speech exactly as to text and images.

Clips are padded (or cut) to one fixed length per run: Whisper's encoder attends to padding and
wav2vec2 base models take no attention mask, so a clip's features would otherwise depend on what it is
batched with, and the frozen-prefix cache would not be reusable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.types import AudioInputs
from ..errors import ModelError
from .base import Backbone, State
from .hf_text import additive_mask

#: Whisper's mel frames are 10 ms and its second convolution halves them: a clip length in samples
#: must be a multiple of 320 at 16 kHz so that every position maps to whole frames.
WHISPER_SAMPLES_PER_POSITION = 320
WHISPER_HOP_SAMPLES = 160  # one log-mel frame; two frames make an encoder position
WHISPER_MAX_SECONDS = 30.0
#: wav2vec2 and HuBERT take raw samples; their positional convolution needs a few frames of context.
MIN_CLIP_SECONDS = 0.1
#: SpecAugment (Park et al., 2019) at the rates of transformers' speech configs: about 5% of the time axis
#: in spans of 10 frames (at least 2 spans; for waveform models, 10 encoder frames' worth of samples), and
#: one band of 10 mel bins.
SPEC_TIME_PROB = 0.05
SPEC_TIME_SPAN = 10
SPEC_TIME_MIN_MASKS = 2
SPEC_BAND_WIDTH = 10
#: Speed perturbation (Ko et al., Interspeech 2015; Kaldi's recipe): each training clip plays 10% slower,
#: as recorded, or 10% faster, which moves tempo and pitch together like a different speaker would.
SPEED_FACTORS = (0.9, 1.0, 1.1)


def audio_family(net: nn.Module) -> str:
    if all(hasattr(net, n) for n in ("conv1", "conv2", "embed_positions", "layers", "layer_norm")):
        return "whisper"
    if hasattr(net, "feature_extractor") and hasattr(net, "feature_projection") and hasattr(net, "encoder"):
        return "wav2vec2"
    raise ModelError(
        f"unsupported speech architecture {type(net).__name__}: expected a Whisper encoder, wav2vec2 or HuBERT"
    )


class HFAudioBackbone(Backbone):
    kind = "hf-audio"
    modality = "audio"

    def __init__(self, name: str, net: nn.Module, feature_extractor: Any, clip_seconds: float = 1.0) -> None:
        super().__init__(name)
        self.net = net
        self.feature_extractor = feature_extractor
        self.family = audio_family(net)
        self.rate = int(feature_extractor.sampling_rate)
        self.clip_seconds = 1.0
        self.set_clip_seconds(clip_seconds)
        if self.family == "wav2vec2":
            drop_pretraining_masking(net)
        self.check_layer_by_layer_matches_model()

    # -- structure ----------------------------------------------------------------------------
    @property
    def layers(self) -> nn.ModuleList:
        return self.net.layers if self.family == "whisper" else self.net.encoder.layers

    @property
    def stable_layer_norm(self) -> bool:
        """wav2vec2 "large" variants normalise after the last layer instead of before the first."""
        return self.family == "wav2vec2" and bool(getattr(self.net.config, "do_stable_layer_norm", False))

    @property
    def group_names(self) -> list[str]:
        return ["feature_encoder", *[f"layer.{i}" for i in range(len(self.layers))]]

    def group_modules(self) -> list[nn.Module]:
        # Ad hoc containers (not registered) so that each group owns exactly its parameters.
        layers = list(self.layers)
        if self.family == "whisper":
            first = [self.net.conv1, self.net.conv2, self.net.embed_positions]
            last_extra = [self.net.layer_norm]
        else:
            encoder = self.net.encoder
            first = [self.net.feature_extractor, self.net.feature_projection, encoder.pos_conv_embed]
            norm = [encoder.layer_norm]
            first, last_extra = (first, norm) if self.stable_layer_norm else (first + norm, [])
        groups: list[nn.Module] = [nn.ModuleList(first)]
        for i, layer in enumerate(layers):
            groups.append(nn.ModuleList([layer, *last_extra]) if i == len(layers) - 1 else layer)
        return groups

    @property
    def num_features(self) -> int:
        return int(self.net.config.d_model if self.family == "whisper" else self.net.config.hidden_size)

    # -- input length -------------------------------------------------------------------------
    def set_clip_seconds(self, seconds: float) -> None:
        seconds = min(max(float(seconds), MIN_CLIP_SECONDS), WHISPER_MAX_SECONDS)
        if self.family == "whisper":
            positions = math.ceil(seconds * self.rate / WHISPER_SAMPLES_PER_POSITION)
            positions = min(positions, int(self.net.config.max_source_positions))
            seconds = positions * WHISPER_SAMPLES_PER_POSITION / self.rate
        self.clip_seconds = seconds

    def fit_clip_length(self, requested: float | None, longest: float) -> None:
        """The user's clip length, else the longest training clip rounded up to a tenth of a second."""
        self.set_clip_seconds(requested if requested is not None else math.ceil(longest * 10) / 10)

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.rate))

    # -- preprocessing ------------------------------------------------------------------------
    def waveforms(self, inputs: AudioInputs, index: Sequence[int]) -> list[np.ndarray]:
        return [inputs.load(int(i), self.rate)[: self.clip_samples] for i in index]

    def prepare(self, inputs: AudioInputs, index: Sequence[int], train: bool = False) -> State:
        """`train=True` (the augment option) perturbs each clip's speed, mixes in background noise when the
        data has some (`_background_noise_`), then masks random time spans and, for log-mel inputs, a band
        of frequencies (SpecAugment): the usual augmentations for fine-tuning speech models."""
        waves = self.waveforms(inputs, index)
        if train:
            factors = np.random.choice(SPEED_FACTORS, len(waves))
            waves = [self.speed_perturbed(w, f) for w, f in zip(waves, factors, strict=True)]
            # Drawn from the global generator, which the trainer seeds, so augmented runs repeat.
            waves = inputs.with_background_noise(waves, self.rate, np.random.default_rng(np.random.randint(2**31)))
        state = self.encode_waveforms(waves)
        if train:
            self.spec_augment(state, torch.tensor([len(w) for w in waves]))
        return state

    def speed_perturbed(self, wave: np.ndarray, factor: float) -> np.ndarray:
        """`wave` played `factor` times as fast: resampled to len / factor samples. A slowed clip that would
        no longer fit the clip length stays as it is: cutting its end would drop words its transcript has."""
        from fractions import Fraction

        from scipy.signal import resample_poly

        ratio = Fraction(1 / factor).limit_denominator(100)  # 1/0.9 -> 10/9, 1/1.1 -> 10/11
        if ratio == 1 or len(wave) * ratio > self.clip_samples:
            return wave
        return resample_poly(wave, ratio.numerator, ratio.denominator).astype(np.float32)

    def spec_augment(self, state: State, sample_lengths: torch.Tensor) -> None:
        # transformers' own SpecAugment span sampler (the one its Whisper and wav2vec2 use in training),
        # applied here because our models run group by group, outside the library's forward.
        from transformers.models.whisper.modeling_whisper import _compute_mask_indices

        def spans(width: int, valid: torch.Tensor | None, span: int, prob: float, least: int) -> torch.Tensor:
            span = max(1, min(span, width // 4))
            mask = None if valid is None else (torch.arange(width)[None, :] < valid[:, None]).long()
            shape = (len(sample_lengths), width)
            return torch.from_numpy(_compute_mask_indices(shape, prob, span, attention_mask=mask, min_masks=least))

        if self.family == "whisper":
            features = state["input_features"]  # (batch, mel bins, frames)
            frames = torch.ceil(sample_lengths / WHISPER_HOP_SAMPLES).long()
            time = spans(features.shape[2], frames, SPEC_TIME_SPAN, SPEC_TIME_PROB, SPEC_TIME_MIN_MASKS)
            bins = features.shape[1]
            band = spans(bins, None, SPEC_BAND_WIDTH, SPEC_BAND_WIDTH / bins, 1)
            state["input_features"] = features.masked_fill(time[:, None, :] | band[:, :, None], 0.0)
        else:
            values = state["input_values"]  # (batch, samples), normalised: 0 is silence
            span = SPEC_TIME_SPAN * int(self.net.config.inputs_to_logits_ratio)
            time = spans(values.shape[1], sample_lengths, span, SPEC_TIME_PROB, SPEC_TIME_MIN_MASKS)
            state["input_values"] = values.masked_fill(time, 0.0)

    def encode_waveforms(self, waves: list[np.ndarray]) -> State:
        lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
        encoded = self.feature_extractor(
            waves,
            sampling_rate=self.rate,
            padding="max_length",
            max_length=self.clip_samples,
            truncation=True,
            return_tensors="pt",
        )
        key = "input_features" if self.family == "whisper" else "input_values"
        return {key: encoded[key], "valid": self.valid_positions(lengths)}

    def valid_positions(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        """How many encoder positions each clip's real (unpadded) samples produce."""
        if self.family == "whisper":
            positions = torch.ceil(sample_lengths / WHISPER_SAMPLES_PER_POSITION)
        else:
            positions = self.net._get_feat_extract_output_lengths(sample_lengths)
        return positions.clamp(min=1).long()

    def preprocessing_signature(self, train: bool = False) -> str:
        extractor = self.feature_extractor
        return json.dumps(
            {
                "extractor": type(extractor).__name__,
                "rate": self.rate,
                "clip_samples": self.clip_samples,
                "features": getattr(extractor, "feature_size", None),
                "normalize": getattr(extractor, "do_normalize", None),
            },
            sort_keys=True,
        )

    # -- computation --------------------------------------------------------------------------
    def uses_attention_mask(self) -> bool:
        # Base wav2vec2 models were trained without one (their extractor says so): padding is zeros.
        return self.family == "wav2vec2" and bool(getattr(self.feature_extractor, "return_attention_mask", False))

    def run_groups(self, state: State, start: int, stop: int) -> State:
        if start == 0 and stop > 0:
            state = {"hidden": self.embed(state), "valid": state["valid"]}
            start = 1
        if start >= stop:
            return state
        hidden = state["hidden"]
        mask = self.layer_mask(state["valid"], hidden) if self.uses_attention_mask() else None
        last = len(self.layers)
        for index in range(start, stop):
            out = self.layers[index - 1](hidden, attention_mask=mask)
            hidden = out[0] if isinstance(out, tuple) else out
            if index == last:
                hidden = self.final_norm(hidden)
        return {"hidden": hidden, "valid": state["valid"]}

    def embed(self, state: State) -> torch.Tensor:
        if self.family == "whisper":
            net = self.net
            hidden = nn.functional.gelu(net.conv2(nn.functional.gelu(net.conv1(state["input_features"]))))
            hidden = hidden.permute(0, 2, 1)
            positions = net.embed_positions.weight[: hidden.shape[1]]
            return nn.functional.dropout(hidden + positions, p=net.config.dropout, training=net.training)
        net, encoder = self.net, self.net.encoder
        features = net.feature_extractor(state["input_values"]).transpose(1, 2)
        projected = net.feature_projection(features)
        hidden = projected[0] if isinstance(projected, tuple) else projected
        if self.uses_attention_mask():
            keep = self.position_mask(state["valid"], hidden.shape[1])
            hidden = hidden * keep[..., None].to(hidden.dtype)
        hidden = hidden + encoder.pos_conv_embed(hidden)
        if not self.stable_layer_norm:
            hidden = encoder.layer_norm(hidden)
        return encoder.dropout(hidden)

    def final_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.family == "whisper":
            return self.net.layer_norm(hidden)
        return self.net.encoder.layer_norm(hidden) if self.stable_layer_norm else hidden

    @staticmethod
    def position_mask(valid: torch.Tensor, length: int) -> torch.Tensor:
        return torch.arange(length, device=valid.device)[None, :] < valid[:, None]

    def layer_mask(self, valid: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return additive_mask(self.position_mask(valid, hidden.shape[1]).long(), hidden.dtype)

    def pool(self, state: State) -> torch.Tensor:
        hidden = state["hidden"]
        keep = self.position_mask(state["valid"], hidden.shape[1]).to(hidden.dtype)[..., None]
        return (hidden * keep).sum(1) / keep.sum(1).clamp(min=1.0)

    def check_layer_by_layer_matches_model(self) -> None:
        """Running our groups must equal the library's own forward, else layer-wise tricks are wrong."""
        was_training, clip = self.net.training, self.clip_seconds
        self.net.eval()
        if self.family == "whisper":  # the library insists on the full 30-second window
            self.set_clip_seconds(WHISPER_MAX_SECONDS)
        # A clip filling the window: nothing is padded, so masking cannot make the two runs differ.
        rng = np.random.default_rng(0)
        waves = [rng.standard_normal(self.clip_samples).astype(np.float32) * 0.1]
        state = self.encode_waveforms(waves)
        with torch.no_grad():
            ours = self.run_groups(state, 0, self.num_groups)["hidden"]
            if self.family == "whisper":
                reference = self.net(state["input_features"]).last_hidden_state
            else:
                reference = self.net(state["input_values"]).last_hidden_state
        self.net.train(was_training)
        self.set_clip_seconds(clip)
        if not torch.allclose(ours, reference, atol=1e-4, rtol=1e-3):
            raise ModelError(f"{self.name}: layer-by-layer run does not match the model; architecture unsupported")

    # -- saving -------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "family": self.family, "clip_seconds": self.clip_seconds}

    def export(self, directory: Path) -> None:
        self.net.config.save_pretrained(directory)
        self.feature_extractor.save_pretrained(directory)

    def default_lora_targets(self) -> list[str]:
        return ["q_proj", "v_proj"]


def drop_pretraining_masking(net: nn.Module) -> None:
    """SpecAugment-style time masking (and its learned mask vector) is a pre-training device that the
    layer groups never apply; removed from the config too, so a saved run rebuilds the same tensors."""
    config = net.config
    config.apply_spec_augment, config.mask_time_prob, config.mask_feature_prob = False, 0.0, 0.0
    if getattr(net, "masked_spec_embed", None) is not None:
        net.masked_spec_embed = None
