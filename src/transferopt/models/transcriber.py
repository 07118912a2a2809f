"""What every transcriber shares: a speech encoder's layer groups, then the layers that write text.

Whisper (`whisper_asr`) writes with its decoder, wav2vec2 and HuBERT (`ctc_asr`) with a CTC head. Both
see the encoder through `HFAudioBackbone`, so clip length, augmentation, the frozen-prefix cache and the
layer-by-layer check are the classification backbone's own code; caching stops at the encoder's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.types import AudioInputs
from .base import Backbone, State
from .hf_audio import HFAudioBackbone


class SpeechTranscriber(Backbone):
    modality = "audio"
    task = "transcription"
    #: Where the groups after the encoder run (run_groups stops at the encoder's end).
    output_runs_in = "the transcription model"

    def __init__(self, name: str, net: nn.Module, processor: Any, encoder: nn.Module, clip_seconds: float) -> None:
        super().__init__(name)
        self.net = net
        self.processor = processor
        # Not a registered submodule: it views `encoder`, whose tensors `net` already owns.
        self.__dict__["encoder"] = HFAudioBackbone(name, encoder, processor.feature_extractor, clip_seconds)

    @property
    def encoder_groups(self) -> int:
        return self.encoder.num_groups

    def cache_boundaries(self) -> list[int]:
        return list(range(self.encoder_groups + 1))

    @property
    def num_features(self) -> int:
        return self.encoder.num_features

    def fit_clip_length(self, requested: float | None, longest: float) -> None:
        self.encoder.fit_clip_length(requested, longest)

    @property
    def clip_seconds(self) -> float:
        return self.encoder.clip_seconds

    def prepare(self, inputs: AudioInputs, index: Sequence[int], train: bool = False) -> State:
        return self.encoder.prepare(inputs, index, train)

    def preprocessing_signature(self, train: bool = False) -> str:
        return self.encoder.preprocessing_signature(train)

    def run_groups(self, state: State, start: int, stop: int) -> State:
        if stop > self.encoder_groups:
            raise ValueError(f"groups after the encoder run inside {self.output_runs_in}, not run_groups")
        return self.encoder.run_groups(state, start, stop)

    def pool(self, state: State) -> torch.Tensor:
        return self.encoder.pool(state)

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "clip_seconds": self.clip_seconds}

    def export(self, directory: Path) -> None:
        self.net.config.save_pretrained(directory)
        self.processor.save_pretrained(directory)

    def default_lora_targets(self) -> list[str]:
        return self.encoder.default_lora_targets()


def padded_targets(rows: list[list[int]]) -> torch.Tensor:
    """Token-id rows as one tensor, padded with -100 (what the losses ignore)."""
    targets = torch.full((len(rows), max([1, *(len(r) for r in rows)])), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        targets[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return targets
