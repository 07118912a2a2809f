"""wav2vec2 and HuBERT as transcribers: the speech encoder's layer groups, then the CTC head.

Groups, input to output: the encoder's (feature encoder, each transformer layer; shared with the
classification backbone, so clip length, augmentation, caching and the layer-by-layer check are the same
code), then the checkpoint's CTC head, a linear layer onto its character vocabulary. The whole encoder
can be frozen and cached: `partial` with k=1 trains the head alone on cached states.

The head is the checkpoint's own (e.g. facebook/wav2vec2-base-960h): a model fine-tuned for CTC brings
the vocabulary its head writes. A base checkpoint without one is refused with a clear message.
`CTCModel` offers the `TransferModel` surface strategies use (`backbone`, an empty `head`) and computes
the CTC loss itself, as `SpeechToTextModel` does for Whisper.
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


class CTCTranscriber(Backbone):
    kind = "ctc-asr"
    modality = "audio"
    task = "transcription"

    def __init__(self, name: str, net: nn.Module, processor: Any, clip_seconds: float = 1.0) -> None:
        super().__init__(name)
        self.net = net
        self.processor = processor
        base = getattr(net, net.base_model_prefix)  # Wav2Vec2ForCTC.wav2vec2, HubertForCTC.hubert
        # Not a registered submodule: it views `base`, whose tensors `net` already owns.
        self.__dict__["encoder"] = HFAudioBackbone(name, base, processor.feature_extractor, clip_seconds)
        self.upper_case = vocabulary_is_upper_case(processor.tokenizer)

    # -- structure ----------------------------------------------------------------------------
    @property
    def encoder_groups(self) -> int:
        return self.encoder.num_groups

    @property
    def group_names(self) -> list[str]:
        return [*self.encoder.group_names, "ctc_head"]

    def group_modules(self) -> list[nn.Module]:
        return [*self.encoder.group_modules(), self.net.lm_head]

    def cache_boundaries(self) -> list[int]:
        return list(range(self.encoder_groups + 1))

    @property
    def num_features(self) -> int:
        return self.encoder.num_features

    # -- clip length, preprocessing -----------------------------------------------------------
    def fit_clip_length(self, requested: float | None, longest: float) -> None:
        self.encoder.fit_clip_length(requested, longest)

    @property
    def clip_seconds(self) -> float:
        return self.encoder.clip_seconds

    def prepare(self, inputs: AudioInputs, index: Sequence[int], train: bool = False) -> State:
        return self.encoder.prepare(inputs, index, train)

    def preprocessing_signature(self, train: bool = False) -> str:
        return self.encoder.preprocessing_signature(train)

    def tokenize_transcripts(self, texts: Sequence[str]) -> torch.Tensor:
        """CTC targets: the transcript's characters in the vocabulary's case (words joined by its delimiter),
        padded with -100. Characters the vocabulary lacks (digits, most punctuation) are dropped: a CTC head
        can only learn to write what it has an output for."""
        tokenizer = self.processor.tokenizer
        vocabulary = tokenizer.get_vocab()
        rows = []
        for text in texts:
            text = text.upper() if self.upper_case else text.lower()
            kept = "".join(c for c in text if c in vocabulary or c == " ")
            rows.append([i for i in tokenizer(" ".join(kept.split())).input_ids if i != tokenizer.unk_token_id])
        width = max([1, *(len(r) for r in rows)])
        targets = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            targets[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return targets

    # -- computation --------------------------------------------------------------------------
    def run_groups(self, state: State, start: int, stop: int) -> State:
        if stop > self.encoder_groups:
            raise ValueError("the CTC head runs inside CTCModel.loss and transcribe, not run_groups")
        return self.encoder.run_groups(state, start, stop)

    def pool(self, state: State) -> torch.Tensor:
        return self.encoder.pool(state)

    def log_probs(self, state: State, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-frame log-probabilities over the vocabulary, each clip's count of real frames)."""
        encoded = self.run_groups(state, start, self.encoder_groups)
        logits = self.net.lm_head(self.net.dropout(encoded["hidden"]))
        return torch.log_softmax(logits.float(), dim=-1), encoded["valid"]

    # -- saving -------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "clip_seconds": self.clip_seconds}

    def export(self, directory: Path) -> None:
        self.net.config.save_pretrained(directory)
        self.processor.save_pretrained(directory)

    def default_lora_targets(self) -> list[str]:
        return self.encoder.default_lora_targets()

    def transcription_model(self) -> nn.Module:
        return CTCModel(self)


def vocabulary_is_upper_case(tokenizer: Any) -> bool:
    """English CTC checkpoints write capitals (wav2vec2-base-960h) or small letters; targets must match."""
    letters = [t for t in tokenizer.get_vocab() if len(t) == 1 and t.isalpha()]
    return bool(letters) and sum(t.isupper() for t in letters) > len(letters) / 2


class CTCModel(nn.Module):
    """A CTC transcriber with the surface strategies expect of a `TransferModel` (its head is empty)."""

    def __init__(self, backbone: CTCTranscriber) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.ModuleList()

    @property
    def blank(self) -> int:
        return int(self.backbone.net.config.pad_token_id)  # transformers' CTC blank is the pad token

    def loss(self, state: State, targets: torch.Tensor, start: int = 0) -> torch.Tensor:
        """CTC loss over each clip's real frames, averaged over target lengths (transformers' "mean")."""
        log_probs, frames = self.backbone.log_probs(state, start)
        kept = targets >= 0
        return nn.functional.ctc_loss(
            log_probs.transpose(0, 1),
            targets[kept],
            input_lengths=frames.clamp(max=log_probs.shape[1]),
            target_lengths=kept.sum(dim=1),
            blank=self.blank,
            reduction="mean",
            zero_infinity=True,  # a target longer than its clip's frames would otherwise give an infinite loss
        )

    @torch.no_grad()
    def transcribe(self, state: State, start: int = 0) -> list[str]:
        """Greedy CTC decoding: the best label per real frame, repeats merged, blanks dropped (the
        tokenizer's own decoding, which also turns the word delimiter into spaces)."""
        log_probs, frames = self.backbone.log_probs(state, start)
        best = log_probs.argmax(dim=-1)
        padding = torch.arange(best.shape[1], device=best.device)[None, :] >= frames[:, None]
        best = best.masked_fill(padding, self.blank)
        return [t.strip() for t in self.backbone.processor.tokenizer.batch_decode(best)]
