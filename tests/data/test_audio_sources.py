"""Audio data: class folders of clips, tables of audio paths with labels or transcripts, and bad clips."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from tests import helpers
from transferopt.data import AudioInputs, load_task_data
from transferopt.errors import ConfigError, DataError


def write_clip(path, seconds=0.4, hz=440.0, rate=16000, amplitude=0.4):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate)
    return path


def test_class_folders_of_clips_are_an_audio_task(tones_dir):
    task = load_task_data(str(tones_dir))
    assert task.modality == "audio" and task.task == "classification"
    assert task.classes == ["high", "low", "mid"]
    assert isinstance(task.train.inputs, AudioInputs)
    assert [len(task.train), len(task.val), len(task.test)] == [18, 6, 6]
    assert 0.3 <= task.train.inputs.longest_seconds() <= 0.6


def test_unusable_clips_among_many_are_skipped_and_named(tmp_path):
    root = helpers.write_tone_clips(tmp_path / "data", {"train": 12})
    silent = write_clip(root / "train" / "low" / "silent.wav", amplitude=0.0)
    corrupt = helpers.write_corrupt(root / "train" / "mid" / "broken.wav")
    task = load_task_data(str(root))
    assert sorted(task.skipped) == sorted([str(silent), str(corrupt)])
    assert len(task.train) + len(task.val) == 36


def test_a_folder_of_mostly_bad_clips_is_an_error(tmp_path):
    for i in range(3):
        write_clip(tmp_path / "a" / f"{i}.wav")
        helpers.write_corrupt(tmp_path / "b" / f"{i}.wav", seed=i)
    with pytest.raises(DataError, match=r"3 of 6 files are not usable audio clips"):
        load_task_data(str(tmp_path))


def test_table_of_clips_with_labels(tmp_path):
    rows = []
    for i in range(8):
        for name, hz in (("yes", 300.0), ("no", 900.0)):
            write_clip(tmp_path / "clips" / f"{name}{i}.wav", hz=hz)
            rows.append({"path": f"clips/{name}{i}.wav", "label": name})
    helpers.write_table(tmp_path / "train.csv", rows)
    task = load_task_data(str(tmp_path / "train.csv"))
    assert task.modality == "audio" and task.task == "classification" and task.classes == ["no", "yes"]
    assert all(p.is_file() for p in task.train.inputs.paths)  # resolved against the table's folder


def sentence_rows(folder, count, start=0):
    rows = []
    for i in range(start, start + count):
        write_clip(folder / "wav" / f"{i}.wav", hz=200.0 + 40 * i)
        rows.append({"audio": f"wav/{i}.wav", "text": f"sentence number {i}", "speaker": "m1"})
    return rows


def test_table_of_clips_with_transcripts_is_a_transcription_task(tmp_path):
    helpers.write_table(tmp_path / "train.csv", sentence_rows(tmp_path, 10))
    helpers.write_table(tmp_path / "test.csv", sentence_rows(tmp_path, 3, start=10))
    task = load_task_data(str(tmp_path), shots=4, seed=1)
    assert task.task == "transcription" and task.classes == []
    assert len(task.train) == 4 and len(task.val) == 4 and len(task.test) == 3
    assert set(task.train.transcripts).isdisjoint(task.val.transcripts)
    assert task.test.transcripts == [f"sentence number {i}" for i in range(10, 13)]
    assert task.summary()["counts"]["train"] == {"utterances": 4}
    again = load_task_data(str(tmp_path), shots=4, seed=1)
    assert again.train.transcripts == task.train.transcripts  # seeded


def test_transcription_errors_name_the_culprit(tmp_path):
    helpers.write_table(tmp_path / "train.csv", sentence_rows(tmp_path, 5))
    with pytest.raises(DataError, match=r"--shots 9 is more than the 5 training utterances"):
        load_task_data(str(tmp_path / "train.csv"), shots=9)
    with pytest.raises(ConfigError, match=r"--audio-col 'wave' is not a column of .*train.csv"):
        load_task_data(str(tmp_path / "train.csv"), audio_col="wave")


def test_rows_with_missing_audio_or_empty_transcript_are_skipped(tmp_path):
    rows = sentence_rows(tmp_path, 20)
    rows[3]["audio"] = "wav/missing.wav"
    rows[5]["text"] = ""
    helpers.write_table(tmp_path / "train.csv", rows)
    task = load_task_data(str(tmp_path / "train.csv"))
    assert len(task.skipped) == 2 and str(tmp_path / "wav" / "missing.wav") in task.skipped
    assert len(task.train) + len(task.val) == 18


def test_audio_table_without_a_target_column_asks_for_one(tmp_path):
    write_clip(tmp_path / "a.wav")
    helpers.write_table(tmp_path / "train.csv", [{"audio": "a.wav", "speaker": "m1"}] * 2)
    with pytest.raises(DataError, match=r"no label or transcript column .*--label-col.*--text-col"):
        load_task_data(str(tmp_path / "train.csv"))


def write_noise(path, seconds, rate=16000, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))
    soundfile.write(path, noise.astype(np.float32), rate)
    return path


def test_background_noise_is_not_a_class_and_goes_to_training(tmp_path):
    root = helpers.write_tone_clips(tmp_path / "data")
    long_noise = write_noise(root / "train" / "_background_noise_" / "cafe.wav", seconds=45)  # over a clip's 30 s
    broken = helpers.write_corrupt(root / "train" / "_background_noise_" / "broken.wav")
    task = load_task_data(str(root))
    assert task.classes == ["high", "low", "mid"] and len(task.train) == 18
    assert task.train.inputs.noise == [long_noise]
    assert task.test.inputs.noise == [] and task.skipped == [str(broken)]
    assert "background noise: 1 recording(s), mixed into training clips when augmenting" in task.summary()["notes"]


def test_background_noise_at_the_top_of_a_split_less_folder_reaches_training(tmp_path):
    for name in ("a", "b"):
        for i in range(6):
            write_clip(tmp_path / name / f"{i}.wav", hz=300.0 if name == "a" else 900.0)
    hum = write_noise(tmp_path / "_background_noise_" / "hum.flac", seconds=2)
    task = load_task_data(str(tmp_path))
    assert task.classes == ["a", "b"] and len(task.train) + len(task.val) == 12
    assert task.train.inputs.noise == [hum]


def test_background_noise_beside_images_is_ignored_not_a_class(tmp_path):
    from PIL import Image

    for name in ("cat", "dog"):
        for i in range(4):
            (tmp_path / name).mkdir(exist_ok=True)
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / name / f"{i}.png")
    write_noise(tmp_path / "_background_noise_" / "hum.wav", seconds=1)
    task = load_task_data(str(tmp_path))
    assert task.modality == "image" and task.classes == ["cat", "dog"]
