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


# ------------------------------------------------------------------------ background noise (augmentation)

#: The Speech Commands convention: a class folder of this name holds background noise, not a class.
BACKGROUND_NOISE_DIR = "_background_noise_"
#: Noise recordings are long (Speech Commands' last a minute); a clip's length limit does not apply.
NOISE_MAX_SECONDS = 600.0
#: Share of augmented training clips that get noise, and the range of speech-to-noise ratios drawn.
#: The values of Kaldi's MUSAN recipes (noise 0-15 dB, babble 13-20 dB) shifted up by 5 dB, because
#: a user's clips may be noisy already and a second layer of 0 dB noise would bury the words.
NOISE_PROBABILITY = 0.8
NOISE_SNR_DB = (5.0, 20.0)
#: Frames (20 ms) within this many dB of the loudest one count as speech when measuring its level.
ACTIVE_FLOOR_DB = 30.0


def active_rms(samples: np.ndarray, rate: int) -> float:
    """RMS over the frames within ACTIVE_FLOOR_DB of the loudest, so the silence around a word does
    not make it seem quieter than it is (and the noise added for a given SNR too weak)."""
    frame = max(1, rate // 50)
    count = max(1, len(samples) // frame)
    frames = samples[: count * frame].reshape(count, -1) if len(samples) >= frame else samples[None, :]
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    loud = power >= power.max() * 10 ** (-ACTIVE_FLOOR_DB / 10)
    return float(np.sqrt(power[loud].mean()))


def noise_segment(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` samples from a random place in `noise`, repeated end to end when it is shorter."""
    if len(noise) < length:
        noise = np.tile(noise, length // len(noise) + 1)
    start = int(rng.integers(0, len(noise) - length + 1))
    return noise[start : start + length]


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, rate: int) -> np.ndarray:
    """`speech` plus `noise` (same length) scaled so the speech's active level is `snr_db` above it."""
    noise_rms = float(np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
    if noise_rms == 0.0:
        return speech
    scale = active_rms(speech, rate) / (noise_rms * 10 ** (snr_db / 20))
    return (speech + scale * noise).astype(np.float32)
