"""In-memory data set types: image, text or audio inputs with integer labels and a label map."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError


class ImageInputs:
    """Images held as file paths (decoded lazily) or as a uint8 array (N, H, W[, C])."""

    def __init__(self, paths: Sequence[Path] | None = None, arrays: np.ndarray | None = None) -> None:
        if (paths is None) == (arrays is None):
            raise ValueError("give exactly one of paths or arrays")
        self.paths = [Path(p) for p in paths] if paths is not None else None
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else len(self.arrays)

    def subset(self, index: Sequence[int] | np.ndarray) -> ImageInputs:
        index = np.asarray(index, dtype=np.int64)
        if self.paths is not None:
            return ImageInputs(paths=[self.paths[i] for i in index])
        return ImageInputs(arrays=self.arrays[index])

    def load(self, i: int) -> Image.Image:
        if self.arrays is not None:
            return array_to_rgb(self.arrays[i])
        path = self.paths[i]
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot decode image {path}: {exc}") from None

    def median_side(self, sample: int = 64) -> int:
        """Median of min(height, width) over a sample; used to pick a sensible input size."""
        if self.arrays is not None:
            return int(min(self.arrays.shape[1:3]))
        sides = []
        for path in self.paths[:sample]:
            try:
                with Image.open(path) as image:
                    sides.append(min(image.size))
            except OSError:
                continue
        return int(np.median(sides)) if sides else 224

    def fingerprint(self) -> str:
        if self.paths is not None:
            return paths_fingerprint(self.paths)
        digest = hashlib.sha256()
        digest.update(str(self.arrays.shape).encode())
        digest.update(np.ascontiguousarray(self.arrays).tobytes())
        return digest.hexdigest()[:16]

    def describe(self, i: int) -> str:
        return str(self.paths[i]) if self.paths is not None else f"array[{i}]"


def array_to_rgb(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    elif array.ndim == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return Image.fromarray(np.asarray(array, dtype=np.uint8), mode="RGB")


class TextInputs:
    """A list of texts."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int] | np.ndarray) -> TextInputs:
        return TextInputs([self.texts[i] for i in np.asarray(index, dtype=np.int64)])

    def fingerprint(self) -> str:
        return hashlib.sha256("\x1f".join(self.texts).encode()).hexdigest()[:16]

    def describe(self, i: int) -> str:
        return repr(self.texts[i][:60])


class AudioInputs:
    """Audio clips held as file paths, decoded (mono, resampled) when a batch needs them; `noise` holds
    background-noise recordings that augmented training mixes into the clips."""

    def __init__(self, paths: Sequence[Path], noise: Sequence[Path] = ()) -> None:
        self.paths = [Path(p) for p in paths]
        self.noise = [Path(p) for p in noise]
        self._decoded_noise: dict[int, list[np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: Sequence[int] | np.ndarray) -> AudioInputs:
        return AudioInputs([self.paths[i] for i in np.asarray(index, dtype=np.int64)], self.noise)

    def load(self, i: int, rate: int) -> np.ndarray:
        from .audio import AudioLimits, read_audio

        return read_audio(self.paths[i], AudioLimits(rate=rate))

    def with_background_noise(self, waves: list[np.ndarray], rate: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Each clip, with NOISE_PROBABILITY, mixed with a random stretch of a random noise recording
        at a speech-to-noise ratio drawn from NOISE_SNR_DB (the Speech Commands way of making a
        classifier robust to the noise it will meet); the clips as they are when there is no noise."""
        from .audio import NOISE_PROBABILITY, NOISE_SNR_DB, mix_at_snr, noise_segment

        if not self.noise:
            return waves
        bank = self.decoded_noise(rate)
        mixed = []
        for wave in waves:
            if rng.random() < NOISE_PROBABILITY:
                noise = noise_segment(bank[int(rng.integers(len(bank)))], len(wave), rng)
                wave = mix_at_snr(wave, noise, float(rng.uniform(*NOISE_SNR_DB)), rate)
            mixed.append(wave)
        return mixed

    def decoded_noise(self, rate: int) -> list[np.ndarray]:
        # Decoded once per rate: a minute-long recording would otherwise be read again for every batch.
        from .audio import NOISE_MAX_SECONDS, AudioLimits, read_audio

        if rate not in self._decoded_noise:
            limits = AudioLimits(rate=rate, max_seconds=NOISE_MAX_SECONDS)
            self._decoded_noise[rate] = [read_audio(path, limits) for path in self.noise]
        return self._decoded_noise[rate]

    def longest_seconds(self) -> float:
        """Duration of the longest clip, read from file headers (no decoding)."""
        import soundfile

        longest = 0.0
        for path in self.paths:
            try:
                info = soundfile.info(str(path))
            except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
                raise DataError(f"cannot decode audio {path}: {exc}") from None
            longest = max(longest, info.frames / info.samplerate)
        return longest

    def fingerprint(self) -> str:
        return paths_fingerprint(self.paths)

    def describe(self, i: int) -> str:
        return str(self.paths[i])


#: Content digests by (path, size, mtime): a file unchanged since it was hashed is not read again.
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        with open(path, "rb") as handle:
            _FILE_DIGESTS[key] = hashlib.file_digest(handle, "blake2b").hexdigest()[:32]
    return _FILE_DIGESTS[key]


def paths_fingerprint(paths: Sequence[Path]) -> str:
    """The files' contents, in order: an edited or replaced file changes it, while a copy of the same data
    (another folder, new timestamps: a restored backup, a re-synced share) keeps it and reuses the cache.
    Reading the bytes costs far less than decoding them, which the cache exists to skip."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(file_digest(path).encode())
    return digest.hexdigest()[:16]


Inputs = ImageInputs | TextInputs | AudioInputs


@dataclass
class Split:
    """One split: inputs and integer labels (indices into the task's classes); for a transcription task
    the targets are `transcripts` and the labels are all zero."""

    inputs: Inputs
    labels: np.ndarray
    transcripts: list[str] | None = None
    #: When this split's examples are rows of other splits, concatenated (self-training's labelled plus
    #: pseudo-labelled examples): (split, row indices) for each, so cached states of those splits assemble
    #: this one's without another forward pass.
    parts: tuple[tuple[Split, np.ndarray], ...] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Sequence[int] | np.ndarray) -> Split:
        index = np.asarray(index, dtype=np.int64)
        transcripts = [self.transcripts[i] for i in index] if self.transcripts is not None else None
        return Split(self.inputs.subset(index), self.labels[index], transcripts)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(np.asarray(self.labels, dtype=np.int64).tobytes())
        if self.transcripts is not None:
            digest.update("\x1f".join(self.transcripts).encode())
        return f"{self.inputs.fingerprint()}-{digest.hexdigest()[:8]}"

    def class_counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(self.labels, minlength=num_classes)


@dataclass
class TaskData:
    """A task ready for training: splits, class names (none for transcription) and what was skipped."""

    modality: str
    classes: list[str]
    train: Split
    val: Split
    test: Split | None = None
    source: str = ""
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: "classification" or "transcription" (speech to text).
    task: str = "classification"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> Split:
        chosen = {"train": self.train, "val": self.val, "test": self.test}.get(name)
        if chosen is None:
            have = [n for n in ("train", "val", "test") if getattr(self, n) is not None]
            raise DataError(f"{self.source}: no {name!r} split; available: {', '.join(have)}")
        return chosen

    def summary(self) -> dict:
        if self.task == "transcription":
            counts = {
                name: {"utterances": len(split)}
                for name, split in (("train", self.train), ("val", self.val), ("test", self.test))
                if split is not None
            }
            return {"source": self.source, "modality": self.modality, "task": self.task, "classes": [],
                    "counts": counts, "skipped": self.skipped, "notes": self.notes}  # fmt: skip
        counts = {
            name: {c: int(n) for c, n in zip(self.classes, split.class_counts(self.num_classes), strict=True)}
            for name, split in (("train", self.train), ("val", self.val), ("test", self.test))
            if split is not None
        }
        return {
            "source": self.source,
            "modality": self.modality,
            "classes": self.classes,
            "counts": counts,
            "skipped": self.skipped,
            "notes": self.notes,
        }
