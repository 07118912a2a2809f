"""Unlabelled inputs for self-training: each accepted form, what is skipped, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from tests import helpers
from transferopt.data import AudioInputs, ImageInputs, TextInputs
from transferopt.data.unlabeled import concat_inputs, read_unlabeled
from transferopt.errors import DataError


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_texts_from_a_table_use_its_text_column(tmp_path, fmt):
    rows = [{"id": str(i), "text": t["text"]} for i, t in enumerate(helpers.intent_rows(range(3)))]
    rows.append({"id": "99", "text": "   "})  # an empty text is dropped, not an error
    inputs = read_unlabeled(str(helpers.write_table(tmp_path / f"pool.{fmt}", rows)), "text")
    assert isinstance(inputs, TextInputs)
    assert inputs.texts == [r["text"] for r in rows[:-1]]


def test_texts_from_a_table_with_a_chosen_column(tmp_path):
    rows = [{"message": "play jazz", "note": "x"}, {"message": "will it rain", "note": "y"}]
    path = helpers.write_table(tmp_path / "pool.csv", rows)
    assert read_unlabeled(str(path), "text", text_col="message").texts == ["play jazz", "will it rain"]
    # Without a conventional name, the column of the longest strings is the text.
    assert read_unlabeled(str(path), "text").texts == ["play jazz", "will it rain"]
    with pytest.raises(DataError, match="--text-col 'body' is not a column of .*pool.csv; columns: message, note"):
        read_unlabeled(str(path), "text", text_col="body")


def test_texts_from_a_txt_file_one_per_line(tmp_path):
    path = tmp_path / "pool.txt"
    path.write_text("play jazz\n\n  will it rain  \n")
    assert read_unlabeled(str(path), "text").texts == ["play jazz", "will it rain"]
    path.write_text("\n \n")
    with pytest.raises(DataError, match="no unlabelled texts"):
        read_unlabeled(str(path), "text")


def test_images_from_a_folder_any_depth_skipping_a_few_unreadable(tmp_path):
    helpers.write_colour_images(tmp_path / "pool", layout="flat", per_class=4)
    helpers.write_corrupt(tmp_path / "pool" / "red" / "broken.png")
    (tmp_path / "pool" / "notes.txt").write_text("not an image")
    inputs = read_unlabeled(str(tmp_path / "pool"), "image")
    assert isinstance(inputs, ImageInputs) and len(inputs) == 12
    assert all(p.suffix == ".png" and p.name != "broken.png" for p in inputs.paths)


def test_a_folder_of_mostly_unreadable_images_is_an_error(tmp_path):
    for i in range(3):
        helpers.write_corrupt(tmp_path / f"bad{i}.png", seed=i)
    with pytest.raises(DataError, match="3 of 3 unlabelled files are unreadable"):
        read_unlabeled(str(tmp_path), "image")


def test_images_from_an_npz(tmp_path):
    arrays = np.random.default_rng(0).integers(0, 256, size=(5, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "pool.npz", images=arrays)
    inputs = read_unlabeled(str(tmp_path / "pool.npz"), "image")
    assert np.array_equal(inputs.arrays, arrays)
    np.savez(tmp_path / "empty.npz", labels=np.zeros(3))
    with pytest.raises(DataError, match="no `images`"):
        read_unlabeled(str(tmp_path / "empty.npz"), "image")


def test_audio_clips_from_a_folder(tmp_path):
    helpers.write_tone_clips(tmp_path / "tones", per_split={"train": 2})
    inputs = read_unlabeled(str(tmp_path / "tones"), "audio")
    assert isinstance(inputs, AudioInputs) and len(inputs) == 6


@pytest.mark.parametrize(
    ("spec", "modality", "message"),
    [
        ("missing.csv", "text", "unlabelled data path does not exist: missing.csv"),
        ("folder", "text", "unlabelled texts must be a table .* or .txt"),
        ("pool.csv", "image", "unlabelled image data must be a folder of files"),
        ("folder", "audio", "no audio files found for unlabelled data"),
    ],
)
def test_errors_name_the_culprit(tmp_path, monkeypatch, spec, modality, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    helpers.write_table(tmp_path / "pool.csv", [{"text": "hello"}])
    with pytest.raises(DataError, match=message):
        read_unlabeled(spec, modality)


def test_concat_keeps_order_and_kind(tmp_path):
    assert concat_inputs(TextInputs(["a"]), TextInputs(["b", "c"])).texts == ["a", "b", "c"]
    noise = [tmp_path / "noise.wav"]
    joined = concat_inputs(AudioInputs([tmp_path / "a.wav"], noise=noise), AudioInputs([tmp_path / "b.wav"]))
    assert joined.paths == [tmp_path / "a.wav", tmp_path / "b.wav"] and joined.noise == noise
    grey = np.zeros((2, 8, 8), dtype=np.uint8)
    assert concat_inputs(ImageInputs(arrays=grey), ImageInputs(arrays=grey + 1)).arrays.shape == (4, 8, 8)
    with pytest.raises(DataError, match=r"unlabelled images are \(9, 9\) arrays, labelled ones \(8, 8\)"):
        concat_inputs(ImageInputs(arrays=grey), ImageInputs(arrays=np.zeros((1, 9, 9), dtype=np.uint8)))
    with pytest.raises(DataError, match="unlabelled data is TextInputs, labelled data ImageInputs"):
        concat_inputs(ImageInputs(arrays=grey), TextInputs(["a"]))


def test_concat_decodes_image_files_to_the_labelled_arrays_size(tmp_path):
    helpers.write_colour_images(tmp_path, layout="flat", per_class=1)
    files = ImageInputs(paths=sorted(tmp_path.rglob("*.png")))
    joined = concat_inputs(ImageInputs(arrays=np.zeros((2, 8, 8), dtype=np.uint8)), files)
    assert joined.arrays.shape == (5, 8, 8) and joined.arrays[2:].max() > 0
