"""Speech-to-text scoring: word and character error rates after Whisper's English text normalisation.

Normalising first is what makes error rates comparable between systems: "100" and "one hundred",
"colour" and "color", "Mr." and "mister" are the same words said, so they are not errors.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def english_normalizer():
    """transformers' port of Whisper's EnglishTextNormalizer with OpenAI's spelling map (vendored, MIT)."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    spelling = resources.files("transferopt.engine").joinpath("resources/whisper_english_spelling.json")
    return EnglishTextNormalizer(json.loads(spelling.read_text(encoding="utf-8")))


def normalize(text: str) -> str:
    return english_normalizer()(text)


def transcription_metrics(hypotheses: list[str], references: list[str]) -> dict:
    """WER and CER over the whole split (errors summed over utterances, as jiwer and the papers do)."""
    import jiwer

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} transcriptions for {len(references)} references")
    pairs = [(normalize(r), normalize(h)) for r, h in zip(references, hypotheses, strict=True)]
    # An utterance that normalises to nothing (e.g. only "uh") has no words to get wrong: jiwer refuses
    # empty references, so such pairs are left out and counted.
    kept = [(r, h) for r, h in pairs if r.strip()]
    refs, hyps = [r for r, _ in kept], [h for _, h in kept]
    return {
        "wer": float(jiwer.wer(refs, hyps)) if kept else 0.0,
        "cer": float(jiwer.cer(refs, hyps)) if kept else 0.0,
        "n": len(references),
        "empty_references": len(pairs) - len(kept),
    }


def transcribe_batches(model, batches, prefix: int, device, dtype=None) -> list[str]:
    """Greedy transcriptions of every batch, in order; forward passes autocast to `dtype` (None: fp32)."""
    from .precision import autocast

    model.eval()
    texts: list[str] = []
    for state, _ in batches.iterate(shuffle=False):  # prepared outside autocast: spectrograms stay float32
        with autocast(device, dtype):
            texts.extend(model.transcribe({k: v.to(device) for k, v in state.items()}, start=prefix))
    return texts


class TranscriptionObjective:
    """Teacher-forced token cross-entropy for training; WER/CER of greedy transcriptions for validation."""

    def __init__(self, references: list[str], autocast_dtype=None) -> None:
        self.references = references
        self.autocast_dtype = autocast_dtype

    def loss(self, model, state, targets, prefix: int):
        return model.loss(state, targets, start=prefix)

    def validate(self, model, val_batches, prefix: int, device) -> dict:
        hypotheses = transcribe_batches(model, val_batches, prefix, device, self.autocast_dtype)
        metrics = transcription_metrics(hypotheses, self.references)
        metrics["log_loss"] = teacher_forced_loss(model, val_batches, prefix, device, self.autocast_dtype)
        return metrics


def teacher_forced_loss(model, batches, prefix: int, device, dtype=None) -> float:
    """Mean per-batch token cross-entropy of the reference transcripts: the validation loss curve."""
    import torch

    from .precision import autocast

    model.eval()
    losses = []
    with torch.no_grad():
        for state, targets in batches.iterate(shuffle=False):  # prepared outside autocast, as above
            state = {k: v.to(device) for k, v in state.items()}
            with autocast(device, dtype):
                losses.append(float(model.loss(state, targets.to(device), start=prefix)))
    return sum(losses) / max(len(losses), 1)
