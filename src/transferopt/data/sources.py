"""Readers for each kind of DATA argument. Each returns raw splits with string labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, DataError
from .audio import AUDIO_SUFFIXES, BACKGROUND_NOISE_DIR, NOISE_MAX_SECONDS, AudioLimits
from .types import AudioInputs, ImageInputs, Inputs, TextInputs

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TABLE_SUFFIXES = {".csv", ".jsonl", ".json", ".parquet", ".tsv"}
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
LABEL_COLUMN_NAMES = ("label", "labels", "category", "class", "intent", "target", "y")
TEXT_COLUMN_NAMES = ("text", "sentence", "query", "utterance", "content", "review", "question", "input")
TRANSCRIPT_COLUMN_NAMES = ("transcript", "transcription", "text", "sentence", "utterance", "words")
# A few unreadable files among many are skipped and reported; beyond this share it is an error,
# because the folder is probably not what the user meant.
MAX_SKIPPED_SHARE = 0.1


@dataclass
class RawSplit:
    inputs: Inputs
    labels: list[str]


@dataclass
class RawData:
    modality: str
    splits: dict[str, RawSplit]
    skipped: list[str] = field(default_factory=list)
    #: "classification" (labels are class names) or "transcription" (labels are transcripts).
    task: str = "classification"


def read_source(
    spec: str, text_col: str | None = None, label_col: str | None = None, audio_col: str | None = None
) -> RawData:
    """Dispatch on the DATA spec: builtin name, .npz, table file, folder of tables or of images."""
    if spec.startswith("builtin:"):
        return read_builtin(spec.removeprefix("builtin:"))
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"data path does not exist: {spec}")
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return read_npz(path)
        if path.suffix.lower() in TABLE_SUFFIXES:
            return read_tables({"train": path}, text_col, label_col, audio_col)
        raise DataError(f"unsupported data file {spec}: expected .npz, .csv, .tsv, .jsonl, .json or .parquet")
    tables = find_split_tables(path)
    if tables:
        return read_tables(tables, text_col, label_col, audio_col)
    return read_class_folders(path)


# ---------------------------------------------------------------- builtin


def read_builtin(name: str) -> RawData:
    if name != "digits":
        raise DataError(f"unknown builtin data set {name!r}; available: digits")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 0..16 grey levels -> 0..255 so they look like ordinary 8-bit images.
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    labels = np.array([str(t) for t in digits.target], dtype=object)
    # A fixed test split (independent of the user's seed) so `evaluate --split test` is comparable.
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=0.3, stratify=labels, random_state=1234)
    return RawData(
        modality="image",
        splits={
            "train": RawSplit(ImageInputs(arrays=images[train_idx]), list(labels[train_idx])),
            "test": RawSplit(ImageInputs(arrays=images[test_idx]), list(labels[test_idx])),
        },
    )


# ---------------------------------------------------------------- npz (MedMNIST style)


def read_npz(path: Path) -> RawData:
    try:
        archive = np.load(path, allow_pickle=False)
        keys = set(archive.files)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    splits = {}
    for split in ("train", "val", "test"):
        if f"{split}_images" not in keys:
            continue
        if f"{split}_labels" not in keys:
            raise DataError(f"{path}: has {split}_images but no {split}_labels")
        images = archive[f"{split}_images"]
        labels = archive[f"{split}_labels"]
        if images.ndim not in (3, 4) or len(images) != len(labels):
            raise DataError(f"{path}: {split}_images has shape {images.shape}, labels {labels.shape}")
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise DataError(f"{path}: {split}_labels is multi-label {labels.shape}; only single-label tasks")
        splits[split] = RawSplit(ImageInputs(arrays=to_uint8(images)), [str(int(v)) for v in labels.reshape(-1)])
    if "train" not in splits:
        raise DataError(f"{path}: no train_images/train_labels arrays (found: {', '.join(sorted(keys))})")
    return RawData(modality="image", splits=splits)


def to_uint8(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    high = float(images.max()) if images.size else 1.0
    scale = 255.0 if high <= 1.0 else 1.0
    return np.clip(images * scale, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- class folders (images or audio)


def read_class_folders(root: Path) -> RawData:
    """`<split>/<class>/files` or `<class>/files`; images or audio clips, told apart by file suffix. A
    `_background_noise_` folder (the Speech Commands convention), at the top or in `train/`, is not a
    class: its recordings are mixed into training clips when training is augmented."""
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subdirs:
        raise DataError(f"{root}: no class folders found (expected <class>/files or <split>/<class>/files)")
    split_dirs = {SPLIT_ALIASES[d.name.lower()]: d for d in subdirs if d.name.lower() in SPLIT_ALIASES}
    if split_dirs and "train" not in split_dirs:
        raise DataError(f"{root}: split folders {sorted(split_dirs)} but no train/ folder")
    layout = split_dirs or {"train": root}
    listed = {split: list_class_files(folder) for split, folder in layout.items()}
    files = [file for entries in listed.values() for file, _ in entries]
    if not files:
        raise DataError(f"{root}: no files found in the class folders")
    modality = folder_modality(files)
    readable = is_readable_audio if modality == "audio" else is_readable_image
    splits, skipped = {}, []
    for split, entries in listed.items():
        paths, labels = [], []
        for file, label in entries:
            if readable(file):
                paths.append(file)
                labels.append(label)
            else:
                skipped.append(str(file))
        splits[split] = RawSplit(AudioInputs(paths) if modality == "audio" else ImageInputs(paths=paths), labels)
    kind = "usable audio clips" if modality == "audio" else "readable images"
    if len(skipped) > MAX_SKIPPED_SHARE * len(files):
        raise DataError(f"{root}: {len(skipped)} of {len(files)} files are not {kind}, e.g. {skipped[0]}")
    noise = background_noise_files(root, layout["train"], modality)
    if noise:
        long_recordings = AudioLimits(max_seconds=NOISE_MAX_SECONDS)
        usable = [file for file in noise if is_readable_audio(file, long_recordings)]
        skipped += [str(file) for file in noise if file not in usable]
        splits["train"].inputs.noise = usable
        log.info("%d background-noise recording(s) for augmented training", len(usable))
    if skipped:
        log.warning("skipped %d unusable file(s): %s", len(skipped), ", ".join(skipped[:5]))
    return RawData(modality=modality, splits=splits, skipped=skipped)


def list_class_files(folder: Path) -> list[tuple[Path, str]]:
    """(file, class name) for every visible file under each class folder."""
    entries = []
    for class_dir in sorted(d for d in folder.iterdir() if d.is_dir() and not is_hidden_or_noise(d)):
        for file in sorted(f for f in class_dir.rglob("*") if f.is_file() and not f.name.startswith(".")):
            entries.append((file, class_dir.name))
    return entries


def is_hidden_or_noise(folder: Path) -> bool:
    return folder.name.startswith(".") or folder.name == BACKGROUND_NOISE_DIR


def background_noise_files(root: Path, train_dir: Path, modality: str) -> list[Path]:
    """The audio files of `_background_noise_` at the top of the data or in its train split."""
    folders = [d / BACKGROUND_NOISE_DIR for d in dict.fromkeys((root, train_dir))]
    folders = [d for d in folders if d.is_dir()]
    files = [f for d in folders for f in sorted(d.rglob("*")) if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES]
    if files and modality != "audio":
        log.warning("%s: ignored (background noise is for audio data; this data is %s)", folders[0], modality)
        return []
    return files


def folder_modality(files: list[Path]) -> str:
    """Audio when most files carry an audio suffix; otherwise images (which may have any suffix)."""
    audio = sum(f.suffix.lower() in AUDIO_SUFFIXES for f in files)
    return "audio" if 2 * audio > len(files) else "image"


def is_readable_image(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return False


def is_readable_audio(path: Path, limits: AudioLimits = AudioLimits()) -> bool:
    """Decodes the clip: empty, silent, too long or undecodable clips are as useless as corrupt images."""
    from .audio import read_audio

    try:
        read_audio(path, limits)
        return True
    except DataError as exc:
        log.info("%s", exc)
        return False


# ---------------------------------------------------------------- tables (CSV / JSONL / Parquet)


def find_split_tables(folder: Path) -> dict[str, Path]:
    tables: dict[str, Path] = {}
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.suffix.lower() in TABLE_SUFFIXES:
            split = SPLIT_ALIASES.get(file.stem.lower())
            if split and split not in tables:
                tables[split] = file
    if tables and "train" not in tables:
        raise DataError(f"{folder}: tables for {sorted(tables)} but no train.* table")
    return {split: tables[split] for split in ("train", "val", "test") if split in tables}


def read_table(path: Path):
    """Read every column as written: labels such as "007" keep their spelling, integer labels do not turn
    into floats because a cell is empty."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
    except Exception as exc:  # pandas raises many parser error types; all mean "unreadable table"
        raise DataError(f"cannot read table {path}: {str(exc).splitlines()[0]}") from None


def label_text(value) -> str | None:
    """A label cell as text, or None when it is empty; integral floats (Parquet, JSON) lose their '.0'."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def row_reference(path: Path, index: int) -> str:
    """Where a row lives in its file, as a person would look for it."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return f"{path.name}:{index + 2}"  # line number, after the header line
    if suffix == ".jsonl":
        return f"{path.name}:{index + 1}"
    return f"{path.name}[row {index}]"


def read_tables(
    tables: dict[str, Path], text_col: str | None, label_col: str | None, audio_col: str | None = None
) -> RawData:
    frames = {split: read_table(path) for split, path in tables.items()}
    audio = find_audio_column(frames["train"], tables["train"], audio_col)
    if audio is not None:
        return read_audio_tables(tables, frames, audio, text_col, label_col)
    splits, skipped = {}, []
    columns: tuple[str, str] | None = None
    for split, path in tables.items():
        frame = frames[split]
        if frame.empty:
            raise DataError(f"table {path} has no rows")
        columns = columns or choose_columns(frame, path, text_col, label_col)
        text, label = columns
        for column in columns:
            if column not in frame.columns:
                raise DataError(f"table {path} has no column {column!r}; columns: {', '.join(frame.columns)}")
        texts, labels = [], []
        for index, (value, target) in enumerate(zip(frame[text], frame[label], strict=True)):
            target = label_text(target)
            if not isinstance(value, str) or not value.strip() or target is None:
                skipped.append(row_reference(path, index))
                continue
            texts.append(value.strip())
            labels.append(target)
        splits[split] = RawSplit(TextInputs(texts), labels)
    if skipped:
        log.warning("skipped %d row(s) with an empty text or label: %s", len(skipped), ", ".join(skipped[:5]))
    if not splits["train"].labels:
        raise DataError(f"table {tables['train']}: every row has an empty text or label")
    return RawData(modality="text", splits=splits, skipped=skipped)


def find_audio_column(frame, path: Path, audio_col: str | None) -> str | None:
    """The column of audio file paths: the user's, a conventional name, or one whose cells end in an
    audio suffix; None for a plain text table."""
    names = [str(c) for c in frame.columns]
    if audio_col is not None:
        if audio_col not in names:
            raise ConfigError(f"--audio-col {audio_col!r} is not a column of {path}; columns: {', '.join(names)}")
        return audio_col
    for name in names:
        if is_string_column(frame[name]) and looks_like_audio_paths(frame[name]):
            return name
    return None


def looks_like_audio_paths(column) -> bool:
    cells = [str(v).strip().lower() for v in column.head(50) if isinstance(v, str) and v.strip()]
    return bool(cells) and sum(c.endswith(AUDIO_SUFFIXES) for c in cells) * 2 > len(cells)


def read_audio_tables(
    tables: dict[str, Path], frames: dict, audio: str, text_col: str | None, label_col: str | None
) -> RawData:
    """Audio paths (relative to the table's folder) with a class label or a transcript per clip."""
    target, task = choose_audio_target(frames["train"], tables["train"], audio, text_col, label_col)
    splits, skipped, total = {}, [], 0
    for split, path in tables.items():
        frame = frames[split]
        for column in (audio, target):
            if column not in frame.columns:
                raise DataError(f"table {path} has no column {column!r}; columns: {', '.join(frame.columns)}")
        clips, targets = [], []
        for index, (cell, value) in enumerate(zip(frame[audio], frame[target], strict=True)):
            total += 1
            value = label_text(value)
            clip = resolve_clip(path, cell)
            if value is None or clip is None or not is_readable_audio(clip):
                skipped.append(str(clip) if clip is not None else row_reference(path, index))
                continue
            clips.append(clip)
            targets.append(value)
        splits[split] = RawSplit(AudioInputs(clips), targets)
    if skipped and len(skipped) > MAX_SKIPPED_SHARE * total:
        raise DataError(f"{tables['train']}: {len(skipped)} of {total} rows have no usable audio or target, "
                        f"e.g. {skipped[0]}")  # fmt: skip
    if skipped:
        log.warning("skipped %d row(s) without usable audio or target: %s", len(skipped), ", ".join(skipped[:5]))
    return RawData(modality="audio", splits=splits, skipped=skipped, task=task)


def resolve_clip(table: Path, cell) -> Path | None:
    if not isinstance(cell, str) or not cell.strip():
        return None
    clip = Path(cell.strip()).expanduser()
    return clip if clip.is_absolute() else table.parent / clip


def choose_audio_target(frame, path: Path, audio: str, text_col: str | None, label_col: str | None) -> tuple[str, str]:
    """(column, task): a label column makes a classification task, a transcript column a transcription
    task. The user's choice wins; then conventional names (a label beats a transcript)."""
    names = [str(c) for c in frame.columns]
    for given, option in ((text_col, "--text-col"), (label_col, "--label-col")):
        if given is not None and given not in names:
            raise ConfigError(f"{option} {given!r} is not a column of {path}; columns: {', '.join(names)}")
    if label_col is not None:
        return label_col, "classification"
    if text_col is not None:
        return text_col, "transcription"
    lower = {n.lower(): n for n in names if n != audio}
    label = next((lower[n] for n in LABEL_COLUMN_NAMES if n in lower), None)
    if label is not None:
        return label, "classification"
    transcript = next((lower[n] for n in TRANSCRIPT_COLUMN_NAMES if n in lower), None)
    if transcript is not None:
        return transcript, "transcription"
    raise DataError(
        f"{path}: audio column {audio!r} but no label or transcript column ({', '.join(names)}); "
        "pass --label-col (classification) or --text-col (transcripts)"
    )


def is_string_column(column) -> bool:
    from pandas.api.types import is_object_dtype, is_string_dtype

    return is_string_dtype(column) or is_object_dtype(column)


def choose_columns(frame, path: Path, text_col: str | None, label_col: str | None) -> tuple[str, str]:
    """Use the user's columns, else conventional names, else the longest-string / fewest-values columns."""
    names = [str(c) for c in frame.columns]
    for given, option in ((text_col, "--text-col"), (label_col, "--label-col")):
        if given is not None and given not in names:
            raise ConfigError(f"{option} {given!r} is not a column of {path}; columns: {', '.join(names)}")
    lower = {n.lower(): n for n in names}
    label = label_col or next((lower[n] for n in LABEL_COLUMN_NAMES if n in lower), None)
    text = text_col or guess_text_column(frame, exclude=label)
    if label is None:
        others = [n for n in names if n != text]
        label = min(others, key=lambda n: frame[n].nunique()) if others else None
    if text is None or label is None or text == label:
        raise DataError(
            f"cannot tell the text and label columns of {path} ({', '.join(names)}); pass --text-col and --label-col"
        )
    return text, label


def guess_text_column(frame, exclude: str | None = None) -> str | None:
    """A conventional text column name, else the string column with the longest cells (never `exclude`)."""
    names = [str(c) for c in frame.columns if str(c) != exclude]
    lower = {n.lower(): n for n in names}
    conventional = next((lower[n] for n in TEXT_COLUMN_NAMES if n in lower), None)
    if conventional is not None:
        return conventional
    strings = [n for n in names if is_string_column(frame[n])]
    return max(strings, key=lambda n: frame[n].astype(str).str.len().mean()) if strings else None
