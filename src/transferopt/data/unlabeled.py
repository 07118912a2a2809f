"""Unlabelled inputs for self-training: texts, images or audio clips of the task's kind, without labels."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from .audio import AUDIO_SUFFIXES
from .sources import (
    IMAGE_SUFFIXES,
    MAX_SKIPPED_SHARE,
    TABLE_SUFFIXES,
    guess_text_column,
    is_readable_audio,
    is_readable_image,
    read_table,
    to_uint8,
)
from .types import AudioInputs, ImageInputs, Inputs, TextInputs

log = logging.getLogger(__name__)


def read_unlabeled(spec: str, modality: str, text_col: str | None = None) -> Inputs:
    """Texts from a table (its text column) or a `.txt` file (one per line); images or audio clips from a
    folder (searched recursively) or, for images, an `.npz` array. Unreadable items are skipped and
    reported, as in labelled data; the kind must match the labelled data's."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"unlabelled data path does not exist: {spec}")
    if modality == "text":
        texts = read_unlabeled_texts(path, text_col)
        return TextInputs(texts)
    if path.is_file() and path.suffix.lower() == ".npz" and modality == "image":
        return ImageInputs(arrays=read_unlabeled_arrays(path))
    if not path.is_dir():
        raise DataError(f"unlabelled {modality} data must be a folder of files, got {spec}")
    return read_unlabeled_files(path, modality)


def read_unlabeled_texts(path: Path, text_col: str | None) -> list[str]:
    if path.is_dir() or path.suffix.lower() not in TABLE_SUFFIXES | {".txt"}:
        raise DataError(f"unlabelled texts must be a table (.csv, .tsv, .jsonl, .json, .parquet) or .txt: {path}")
    if path.suffix.lower() == ".txt":
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    else:
        frame = read_table(path)
        column = text_column(frame, path, text_col)
        lines = [v for v in frame[column] if isinstance(v, str)]
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise DataError(f"{path}: no unlabelled texts (every row is empty)")
    return texts


def text_column(frame, path: Path, text_col: str | None) -> str:
    """The user's column, else a conventional text column name, else the string column with the longest cells."""
    names = [str(c) for c in frame.columns]
    if text_col is not None:
        if text_col not in names:
            raise DataError(f"--text-col {text_col!r} is not a column of {path}; columns: {', '.join(names)}")
        return text_col
    column = guess_text_column(frame)
    if column is None:
        raise DataError(f"{path}: no text column ({', '.join(names)}); pass --text-col")
    return column


def read_unlabeled_arrays(path: Path) -> np.ndarray:
    try:
        archive = np.load(path, allow_pickle=False)
        keys = [k for k in archive.files if k == "images" or k.endswith("_images")]
        images = np.concatenate([archive[k] for k in keys]) if keys else None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if images is None or images.ndim not in (3, 4) or not len(images):
        raise DataError(f"{path}: no `images` (or `*_images`) array of shape (N, H, W[, C])")
    return to_uint8(images)


def read_unlabeled_files(folder: Path, modality: str) -> Inputs:
    suffixes = set(AUDIO_SUFFIXES if modality == "audio" else IMAGE_SUFFIXES)
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
    files = [f for f in files if not any(part.startswith(".") for part in f.relative_to(folder).parts)]
    if not files:
        raise DataError(f"{folder}: no {modality} files found for unlabelled data")
    readable = is_readable_audio if modality == "audio" else is_readable_image
    usable = [f for f in files if readable(f)]
    skipped = len(files) - len(usable)
    if skipped > MAX_SKIPPED_SHARE * len(files):
        raise DataError(f"{folder}: {skipped} of {len(files)} unlabelled files are unreadable")
    if skipped:
        log.warning("skipped %d unreadable unlabelled file(s) in %s", skipped, folder)
    return AudioInputs(usable) if modality == "audio" else ImageInputs(paths=usable)


def concat_inputs(first: Inputs, second: Inputs) -> Inputs:
    """`first` followed by `second` (same kind); the first's background-noise recordings stay with it."""
    if isinstance(first, TextInputs) and isinstance(second, TextInputs):
        return TextInputs(list(first.texts) + list(second.texts))
    if isinstance(first, AudioInputs) and isinstance(second, AudioInputs):
        return AudioInputs(list(first.paths) + list(second.paths), noise=first.noise)
    if isinstance(first, ImageInputs) and isinstance(second, ImageInputs):
        if first.paths is not None and second.paths is not None:
            return ImageInputs(paths=first.paths + second.paths)
        if first.arrays is not None and second.arrays is not None:
            if first.arrays.shape[1:] != second.arrays.shape[1:]:
                raise DataError(
                    f"unlabelled images are {second.arrays.shape[1:]} arrays, labelled ones {first.arrays.shape[1:]}"
                )
            return ImageInputs(arrays=np.concatenate([first.arrays, second.arrays]))
        # Images held as arrays (.npz) and as files: decode the files to arrays of the same size.
        return ImageInputs(arrays=np.concatenate([as_arrays(first, second), as_arrays(second, first)]))
    raise DataError(f"unlabelled data is {type(second).__name__}, labelled data {type(first).__name__}")


def as_arrays(images: ImageInputs, like: ImageInputs) -> np.ndarray:
    if images.arrays is not None:
        return images.arrays
    template = like.arrays
    size = (template.shape[2], template.shape[1])
    grey = template.ndim == 3
    decoded = [images.load(i).convert("L" if grey else "RGB").resize(size) for i in range(len(images))]
    return np.stack([np.asarray(image, dtype=np.uint8) for image in decoded])
