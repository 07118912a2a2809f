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
from typing import Any

import torch
from torch import nn

from .base import State
from .transcriber import SpeechTranscriber, padded_targets


class CTCTranscriber(SpeechTranscriber):
    kind = "ctc-asr"
    output_runs_in = "CTCModel.loss and transcribe"

    def __init__(self, name: str, net: nn.Module, processor: Any, clip_seconds: float = 1.0) -> None:
        # The encoder is Wav2Vec2ForCTC.wav2vec2 or HubertForCTC.hubert.
        super().__init__(name, net, processor, getattr(net, net.base_model_prefix), clip_seconds)
        self.upper_case = vocabulary_is_upper_case(processor.tokenizer)

    @property
    def group_names(self) -> list[str]:
        return [*self.encoder.group_names, "ctc_head"]

    def group_modules(self) -> list[nn.Module]:
        return [*self.encoder.group_modules(), self.net.lm_head]

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
        return padded_targets(rows)

    def log_probs(self, state: State, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-frame log-probabilities over the vocabulary, each clip's count of real frames)."""
        encoded = self.run_groups(state, start, self.encoder_groups)
        logits = self.net.lm_head(self.net.dropout(encoded["hidden"]))
        return torch.log_softmax(logits.float(), dim=-1), encoded["valid"]

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
