"""Audio reading: formats, mono mix-down, resampling, and the clips that cannot serve."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from transferopt.data.audio import AudioLimits, read_audio
from transferopt.errors import DataError


def tone(seconds: float, rate: int, hz: float = 440.0, channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_reads_resamples_and_mixes_down(tmp_path, suffix):
    path = tmp_path / f"clip{suffix}"
    soundfile.write(path, tone(0.5, 22050, channels=2), 22050)
    samples = read_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) == pytest.approx(8000, abs=2)  # 0.5 s at 16 kHz
    # Still a 440 Hz tone after resampling: the spectrum peaks there.
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(len(samples), 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=4)


def test_a_clip_at_the_model_rate_is_returned_as_is(tmp_path):
    wave = tone(0.2, 16000)
    soundfile.write(tmp_path / "a.wav", wave, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(tmp_path / "a.wav"), wave)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"RIFF not really a wave file"), "cannot decode audio"),
        (lambda p: soundfile.write(p, np.zeros(16000, np.float32), 16000), "is silent"),
        (lambda p: soundfile.write(p, tone(0.01, 16000), 16000), "shorter than 50 ms"),
        (lambda p: soundfile.write(p, tone(3.0, 8000), 8000), "lasts 3.0 s; at most 2 s per clip"),
    ],
)
def test_clips_that_cannot_serve_are_named(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(DataError, match=message) as error:
        read_audio(path, AudioLimits(max_seconds=2))
    assert str(path) in str(error.value)


def test_noise_is_mixed_at_the_requested_ratio_to_the_speech_not_to_its_silence():
    from transferopt.data.audio import mix_at_snr

    rate = 16000
    speech = np.concatenate([tone(0.5, rate), np.zeros(rate, dtype=np.float32)])  # a word, then a second of silence
    noise = np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    added = mix_at_snr(speech, noise, 10.0, rate) - speech
    speech_rms = float(np.sqrt(np.mean(speech[: rate // 2] ** 2)))
    assert 20 * np.log10(speech_rms / np.sqrt(np.mean(added**2))) == pytest.approx(10.0, abs=0.1)
    assert mix_at_snr(speech, np.zeros_like(noise), 10.0, rate) is speech


def test_noise_segments_come_from_anywhere_in_a_recording_and_repeat_a_short_one():
    from transferopt.data.audio import noise_segment

    rng = np.random.default_rng(0)
    recording = np.arange(100, dtype=np.float32)
    starts = {int(noise_segment(recording, 10, rng)[0]) for _ in range(50)}
    assert len(starts) > 10 and max(starts) <= 90
    repeated = noise_segment(recording[:4], 10, rng)
    assert len(repeated) == 10 and np.all((np.diff(repeated) % 4) == 1)  # 0 1 2 3 0 1 ... from any start
