"""Speech encoders as layer groups: equal to the library's forward, batch-independent, saved and rebuilt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import helpers
from tests.conftest import TINY_AUDIO_MODELS
from transferopt.config import FitConfig
from transferopt.data import load_task_data
from transferopt.engine import FeatureCache
from transferopt.errors import ConfigError, ModelError
from transferopt.models import configure_backbone, hf_audio, list_models, resolve_backbone
from transferopt.models.hf_audio import HFAudioBackbone


@pytest.mark.parametrize("name", TINY_AUDIO_MODELS)
def test_groups_cover_every_parameter_once(name):
    backbone = resolve_backbone(name)
    grouped = [n for group in backbone.param_groups() for n in group]
    assert sorted(grouped) == sorted(n for n, _ in backbone.named_parameters())
    assert backbone.group_names == ["feature_encoder", "layer.0", "layer.1"]


@pytest.mark.parametrize("name", TINY_AUDIO_MODELS)
def test_a_clip_gets_the_same_features_alone_or_in_a_batch(name):
    backbone = resolve_backbone(name)
    backbone.set_clip_seconds(1.0)
    rng = np.random.default_rng(0)
    waves = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (4000, 16000, 9000)]
    with torch.no_grad():
        batch = backbone.features(backbone.encode_waveforms(waves))
        alone = backbone.features(backbone.encode_waveforms(waves[:1]))
    torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", TINY_AUDIO_MODELS)
def test_running_groups_in_two_halves_equals_one_run(name):
    backbone = resolve_backbone(name).eval()
    state = backbone.encode_waveforms([0.1 * np.ones(8000, dtype=np.float32) * np.sin(np.arange(8000))])
    with torch.no_grad():
        whole = backbone.run_groups(state, 0, backbone.num_groups)["hidden"]
        half = backbone.run_groups(backbone.run_groups(state, 0, 2), 2, backbone.num_groups)["hidden"]
    torch.testing.assert_close(whole, half)


def test_clip_length_follows_the_longest_training_clip(tones_dir):
    task = load_task_data(str(tones_dir))
    backbone = resolve_backbone("tiny-whisper")
    configure_backbone(backbone, task, FitConfig(data=str(tones_dir), model="tiny-whisper"))
    longest = task.train.inputs.longest_seconds()
    assert longest <= backbone.clip_seconds <= longest + 0.12
    # Whisper positions are 20 ms: the length is a whole number of them.
    assert backbone.clip_samples % 320 == 0
    configure_backbone(backbone, task, FitConfig(data=str(tones_dir), model="tiny-whisper", audio_seconds=2.0))
    assert backbone.clip_seconds == pytest.approx(2.0)


def test_audio_seconds_is_validated():
    with pytest.raises(ConfigError, match=r"--audio-seconds must be in \[0.1, 30\], got 45"):
        FitConfig(data="x", model="y", audio_seconds=45)


def test_an_image_model_refuses_audio_data(tones_dir):
    task = load_task_data(str(tones_dir))
    with pytest.raises(ConfigError, match=r"model tiny-effnet takes image input but .* holds audio data"):
        configure_backbone(resolve_backbone("tiny-effnet"), task, FitConfig(data=str(tones_dir), model="tiny-effnet"))


def test_a_saved_speech_model_directory_loads_through_hf(tmp_path):
    net, extractor = helpers.tiny_speech_encoder("wav2vec2")
    net.save_pretrained(tmp_path / "w2v")
    extractor.save_pretrained(tmp_path / "w2v")
    backbone = resolve_backbone(f"hf/{tmp_path / 'w2v'}")
    assert isinstance(backbone, HFAudioBackbone) and backbone.family == "wav2vec2" and backbone.modality == "audio"


def test_an_unsupported_architecture_is_refused():
    with pytest.raises(ModelError, match=r"unsupported speech architecture Linear"):
        HFAudioBackbone("x", torch.nn.Linear(2, 2), object())


def test_feature_cache_serves_the_frozen_encoder_once(tones_dir, tmp_path):
    import transferopt

    cache = FeatureCache(tmp_path / "cache")
    transferopt.fit(str(tones_dir), "tiny-hubert", "linear-probe", cache=cache)
    misses = cache.stats.misses
    transferopt.fit(str(tones_dir), "tiny-hubert", "linear-probe", cache=FeatureCache(tmp_path / "cache"))
    assert misses > 0
    second = FeatureCache(tmp_path / "cache")
    transferopt.fit(str(tones_dir), "tiny-hubert", "linear-probe", cache=second)
    assert second.stats.misses == 0 and second.stats.hits_disk > 0


def test_whisper_base_is_listed_as_an_offline_speech_model():
    rows = {row["name"]: row for row in list_models()}
    assert rows["whisper-base"]["modality"] == "audio"
    assert rows["whisper-base"]["kind"] == "hf-audio"


@pytest.fixture
def tone_inputs(tmp_path):
    """Three half-second tones (then padding up to the one-second clip)."""
    import soundfile

    from transferopt.data.types import AudioInputs

    t = np.arange(8000) / 16000
    paths = []
    for i, hz in enumerate((220, 440, 880)):
        paths.append(tmp_path / f"tone{i}.wav")
        soundfile.write(paths[-1], (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 16000)
    return AudioInputs(paths)


@pytest.mark.parametrize("name", TINY_AUDIO_MODELS)
def test_spec_augment_masks_spans_of_real_audio_only_when_training(tone_inputs, name, monkeypatch):
    monkeypatch.setattr(hf_audio, "SPEED_FACTORS", (1.0,))  # masks alone here; speed has its own test
    backbone = resolve_backbone(name)
    backbone.set_clip_seconds(1.0)
    index = list(range(len(tone_inputs)))
    plain = backbone.prepare(tone_inputs, index)
    np.random.seed(0)
    masked = backbone.prepare(tone_inputs, index, train=True)
    key = "input_features" if backbone.family == "whisper" else "input_values"
    torch.testing.assert_close(backbone.prepare(tone_inputs, index), plain)  # evaluation never masks
    changed = masked[key] != plain[key]
    assert changed.any() and torch.all(masked[key][changed] == 0)
    if backbone.family == "whisper":
        # whole time spans (every mel bin) inside each clip's real frames, and a whole band of bins
        real = int(np.ceil(0.5 * 16000 / 160))  # the tones last half a second
        frames = changed[:, :, :real].all(dim=1)
        assert frames.any(dim=1).all() and not changed[:, :, real:].all(dim=1).any()
        assert changed[:, :, :real].all(dim=2).any(dim=1).all()
    else:
        assert changed.any(dim=1).all() and not changed[:, 8000:].any()


def test_speed_perturbation_moves_tempo_and_pitch_and_never_cuts_a_clip():
    backbone = resolve_backbone("tiny-whisper")
    backbone.set_clip_seconds(1.0)
    rate = 16000
    tone = (0.4 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)).astype(np.float32)

    def peak_hz(wave: np.ndarray) -> float:
        return float(np.argmax(np.abs(np.fft.rfft(wave))) * rate / len(wave))

    faster = backbone.speed_perturbed(tone, 1.1)
    slower = backbone.speed_perturbed(tone, 0.9)
    assert len(faster) == round(len(tone) / 1.1) and len(slower) == round(len(tone) / 0.9)
    assert peak_hz(faster) == pytest.approx(484, abs=5) and peak_hz(slower) == pytest.approx(396, abs=5)
    assert backbone.speed_perturbed(tone, 1.0) is tone
    whole_clip = np.resize(tone, rate)  # already fills the 1-second clip: slowing it would cut its end
    assert backbone.speed_perturbed(whole_clip, 0.9) is whole_clip


def test_training_batches_play_at_a_perturbed_speed(tone_inputs, monkeypatch):
    monkeypatch.setattr(hf_audio, "SPEED_FACTORS", (1.1,))
    backbone = resolve_backbone("tiny-whisper")
    backbone.set_clip_seconds(1.0)
    index = list(range(len(tone_inputs)))
    plain, trained = backbone.prepare(tone_inputs, index), backbone.prepare(tone_inputs, index, train=True)
    # half-second tones: 25 encoder positions as recorded, 23 when played 10% faster
    assert plain["valid"].tolist() == [25] * 3 and trained["valid"].tolist() == [23] * 3


def test_spec_augment_masks_within_the_perturbed_clip(tone_inputs, monkeypatch):
    monkeypatch.setattr(hf_audio, "SPEED_FACTORS", (1.1,))
    backbone = resolve_backbone("tiny-whisper")
    backbone.set_clip_seconds(1.0)
    np.random.seed(0)
    masked = backbone.prepare(tone_inputs, list(range(len(tone_inputs))), train=True)["input_features"]
    # half a second played 10% faster lasts 7,273 samples: 46 log-mel frames, and no time mask beyond them
    whole_frames = (masked == 0).all(dim=1)
    assert whole_frames[:, :46].any(dim=1).all() and not whole_frames[:, 46:].any()


def test_training_batches_mix_in_the_data_s_background_noise(tone_inputs, tmp_path, monkeypatch):
    import soundfile

    from transferopt.data import audio

    monkeypatch.setattr(hf_audio, "SPEED_FACTORS", (1.0,))
    monkeypatch.setattr(audio, "NOISE_PROBABILITY", 1.0)
    soundfile.write(tmp_path / "hum.wav", np.random.default_rng(0).standard_normal(48000).astype(np.float32), 16000)
    backbone = resolve_backbone("tiny-whisper")
    backbone.set_clip_seconds(1.0)
    heard = []
    encode = backbone.encode_waveforms
    monkeypatch.setattr(backbone, "encode_waveforms", lambda waves: heard.append(waves) or encode(waves))
    index = list(range(len(tone_inputs)))
    recorded = backbone.waveforms(tone_inputs, index)
    backbone.prepare(tone_inputs, index, train=True)  # the data has no noise: clips as recorded
    tone_inputs.noise = [tmp_path / "hum.wav"]
    backbone.prepare(tone_inputs, index, train=True)
    backbone.prepare(tone_inputs, index)  # evaluation hears no noise
    for clean, noiseless, noisy, evaluated in zip(recorded, *heard, strict=True):
        np.testing.assert_array_equal(noiseless, clean)
        np.testing.assert_array_equal(evaluated, clean)
        snr = 20 * np.log10(np.sqrt(np.mean(clean**2)) / np.sqrt(np.mean((noisy - clean) ** 2)))
        assert audio.NOISE_SNR_DB[0] - 0.1 <= snr <= audio.NOISE_SNR_DB[1] + 0.1
