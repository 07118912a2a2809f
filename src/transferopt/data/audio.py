"""Reading audio for speech models: any format libsndfile decodes (WAV, FLAC, OGG, MP3), mixed down to
mono, resampled to the model's rate, and checked for what makes a clip useless (empty, silent, too long).

torchaudio does not support the pinned torch, so decoding is `soundfile` and resampling is SciPy's
polyphase filter (`resample_poly`), which is exact for the integer rate ratios audio uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from ..errors import DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
#: Peak amplitude under which a clip counts as silent (about -66 dBFS).
SILENCE_PEAK = 5e-4
MIN_SECONDS = 0.05


@dataclass(frozen=True)
class AudioLimits:
    rate: int = 16000
    #: Whisper sees 30-second windows; longer clips would be cut without telling anyone.
    max_seconds: float = 30.0


def read_audio(path: str | Path, limits: AudioLimits = AudioLimits()) -> np.ndarray:
    """float32 mono samples at `limits.rate`; a DataError naming the file when it cannot serve."""
    import soundfile

    path = Path(path)
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
        raise DataError(f"cannot decode audio {path}: {exc}") from None
    samples = samples.mean(axis=1)
    seconds = len(samples) / rate if rate else 0.0
    if seconds < MIN_SECONDS:
        raise DataError(f"audio {path} is empty or shorter than {MIN_SECONDS * 1000:.0f} ms ({seconds:.3f} s)")
    if seconds > limits.max_seconds:
        raise DataError(f"audio {path} lasts {seconds:.1f} s; at most {limits.max_seconds:.0f} s per clip")
    if float(np.abs(samples).max()) < SILENCE_PEAK:
        raise DataError(f"audio {path} is silent (peak amplitude below {SILENCE_PEAK})")
    return resample(samples, rate, limits.rate)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    divisor = gcd(int(rate), int(target))
    return resample_poly(samples, target // divisor, rate // divisor).astype(np.float32)
