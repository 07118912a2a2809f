"""Whisper as a transcriber: the whole encoder-decoder seen as ordered layer groups.

Groups, input to output: the encoder's feature encoder and layers (shared with the classification
backbone, so clip length, caching and layer-by-layer checks are the same code), then the decoder's
token and position embeddings, then each decoder layer. The output projection is tied to the token
embeddings, so it trains exactly when they do. Caching stops at the encoder's end: decoder states
depend on the transcript being learned.

There is no new head: the pretrained decoder already writes English. `SpeechToTextModel` therefore
offers the `TransferModel` surface strategies use (`backbone`, an empty `head`) and computes the
sequence loss itself; strategies that fit a new head first (linear probe, LP-FT) do not apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .base import State
from .transcriber import SpeechTranscriber, padded_targets

#: Tokens generated per utterance at most: a 30-second clip of fast speech is about 100 words.
MAX_NEW_TOKENS = 160
#: Per second of real (unpadded) audio: fast speech is about 4 words, 5-6 tokens, a second. Capping the
#: length by the clip's duration and refusing repeated 4-grams stop greedy decoding's loops ("the the the
#: ..."), which appear as a decoder adapts to few utterances and can push one clip's WER far above 1.
#: Zero-shot and adapted models decode the same way, so comparisons stay fair.
TOKENS_PER_SECOND = 8
NO_REPEAT_NGRAM = 4
#: Whisper encoder positions per second (each covers 20 ms).
POSITIONS_PER_SECOND = 50


class WhisperTranscriber(SpeechTranscriber):
    kind = "whisper-asr"
    output_runs_in = "SpeechToTextModel.loss and transcribe"

    def __init__(self, name: str, net: nn.Module, processor: Any, clip_seconds: float = 30.0) -> None:
        super().__init__(name, net, processor, net.model.encoder, clip_seconds)
        # Generation length is set per call (max_new_tokens); a default max_length beside it only warns.
        net.generation_config.max_length = None

    @property
    def decoder(self) -> nn.Module:
        return self.net.model.decoder

    @property
    def group_names(self) -> list[str]:
        encoder = [f"encoder.{n}" for n in self.encoder.group_names]
        decoder = [f"decoder.layer.{i}" for i in range(len(self.decoder.layers))]
        return [*encoder, "decoder.embeddings", *decoder]

    def group_modules(self) -> list[nn.Module]:
        decoder = self.decoder
        layers: list[nn.Module] = list(decoder.layers)
        layers[-1] = nn.ModuleList([layers[-1], decoder.layer_norm])
        return [*self.encoder.group_modules(), nn.ModuleList([decoder.embed_tokens, decoder.embed_positions]), *layers]

    def tokenize_transcripts(self, texts: Sequence[str]) -> torch.Tensor:
        """Decoder targets: <|startoftranscript|><|en|><|transcribe|><|notimestamps|> text <|endoftext|>,
        padded with -100 (ignored by the loss). The decoder input is these shifted right by one."""
        tokenizer = self.processor.tokenizer
        tokenizer.set_prefix_tokens(language="english", task="transcribe", predict_timestamps=False)
        return padded_targets([tokenizer(" " + t.strip()).input_ids for t in texts])

    def encode(self, state: State, start: int = 0) -> torch.Tensor:
        return self.run_groups(state, start, self.encoder_groups)["hidden"]

    def export(self, directory: Path) -> None:
        super().export(directory)
        self.net.generation_config.save_pretrained(directory)

    def transcription_model(self) -> nn.Module:
        return SpeechToTextModel(self)


class SpeechToTextModel(nn.Module):
    """A transcriber with the surface strategies expect of a `TransferModel` (its head is empty)."""

    def __init__(self, backbone: WhisperTranscriber) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.ModuleList()

    def loss(self, state: State, targets: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Mean token cross-entropy of the transcript given the audio (teacher forcing)."""
        net = self.backbone.net
        encoded = self.backbone.encode(state, start)
        decoder_inputs = targets[:, :-1].masked_fill(targets[:, :-1] == -100, net.config.pad_token_id)
        hidden = self.backbone.decoder(
            input_ids=decoder_inputs, encoder_hidden_states=encoded, use_cache=False
        ).last_hidden_state
        logits = net.proj_out(hidden).float()
        return nn.functional.cross_entropy(logits.transpose(1, 2), targets[:, 1:], ignore_index=-100)

    @torch.no_grad()
    def transcribe(self, state: State, start: int = 0) -> list[str]:
        from transformers.modeling_outputs import BaseModelOutput

        backbone = self.backbone
        encoded = backbone.encode(state, start)
        seconds = float(state["valid"].max()) / POSITIONS_PER_SECOND
        # The prompt (start, language, task, no-timestamps) takes 4 of the decoder's positions.
        limit = min(MAX_NEW_TOKENS, backbone.net.config.max_target_positions - 4)
        ids = backbone.net.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoded),
            language="en",
            task="transcribe",
            max_new_tokens=min(limit, 10 + math.ceil(seconds * TOKENS_PER_SECOND)),
            no_repeat_ngram_size=NO_REPEAT_NGRAM,
        )
        return [t.strip() for t in backbone.processor.batch_decode(ids, skip_special_tokens=True)]
