"""Data: read a DATA spec, validate it, split it, take K shots."""

from __future__ import annotations

from .sources import read_source
from .splits import build_task
from .types import AudioInputs, ImageInputs, Split, TaskData, TextInputs


def load_task_data(
    spec: str,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    audio_col: str | None = None,
    shots: int | None = None,
    val_shots: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> TaskData:
    """Load and validate a data set; raise `DataError` with a one-line message on bad input."""
    raw = read_source(spec, text_col=text_col, label_col=label_col, audio_col=audio_col)
    return build_task(raw, spec, shots=shots, val_shots=val_shots, val_fraction=val_fraction, seed=seed)


def task_from_config(config, spec: str | None = None, sample: bool = True) -> TaskData:
    """Load `spec` (default: the config's data) with a FitConfig's columns and, if `sample`, its shots."""
    return load_task_data(
        spec or config.data,
        text_col=config.text_col,
        label_col=config.label_col,
        audio_col=config.audio_col,
        shots=config.shots if sample else None,
        val_shots=config.val_shots if sample else None,
        val_fraction=config.val_fraction,
        seed=config.seed,
    )


__all__ = ["AudioInputs", "ImageInputs", "Split", "TaskData", "TextInputs", "load_task_data", "task_from_config"]
