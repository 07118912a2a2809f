"""Image folders: both layouts, unreadable files, and the errors that name the culprit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests import helpers
from transferopt.data import ImageInputs, load_task_data
from transferopt.errors import DataError, TransferoptError


def test_split_layout_uses_split_folders(colour_folder):
    task = load_task_data(str(colour_folder))
    assert task.modality == "image"
    assert task.classes == ["blue", "green", "red"]
    assert isinstance(task.train.inputs, ImageInputs)
    assert task.train.class_counts(3).tolist() == [8, 8, 8]
    assert task.val.class_counts(3).tolist() == [3, 3, 3]
    assert task.test.class_counts(3).tolist() == [3, 3, 3]
    # Labels follow the folder names.
    for split in (task.train, task.val, task.test):
        for path, label in zip(split.inputs.paths, split.labels, strict=True):
            assert path.parent.name == task.classes[label]
    assert {p.parent.parent.name for p in task.val.inputs.paths} == {"val"}
    assert {p.parent.parent.name for p in task.test.inputs.paths} == {"test"}
    assert task.skipped == []
    assert task.source == str(colour_folder)


def test_flat_layout_holds_out_a_stratified_validation_split(colour_flat):
    task = load_task_data(str(colour_flat), val_fraction=0.2, seed=0)
    assert task.classes == ["blue", "green", "red"]
    assert task.test is None
    assert len(task.train) + len(task.val) == 30
    assert task.val.class_counts(3).tolist() == [2, 2, 2]
    assert set(map(str, task.train.inputs.paths)).isdisjoint(map(str, task.val.inputs.paths))
    assert any("validation" in note for note in task.notes)


def test_flat_layout_split_is_seeded(colour_flat):
    a = load_task_data(str(colour_flat), seed=0)
    b = load_task_data(str(colour_flat), seed=0)
    c = load_task_data(str(colour_flat), seed=1)
    assert a.val.inputs.paths == b.val.inputs.paths
    assert a.val.inputs.paths != c.val.inputs.paths


def test_split_folder_aliases(tmp_path):
    for alias in ("training", "validation", "testing"):
        for name, colour in helpers.COLOURS.items():
            folder = tmp_path / alias / name
            folder.mkdir(parents=True)
            for i in range(3):
                helpers.colour_image(colour, np.random.default_rng(i)).save(folder / f"{i}.png")
    task = load_task_data(str(tmp_path))
    assert (len(task.train), len(task.val), len(task.test)) == (9, 9, 9)


def test_image_loads_as_rgb(colour_folder):
    task = load_task_data(str(colour_folder))
    image = task.train.inputs.load(0)
    assert image.mode == "RGB" and image.size == (16, 16)
    assert task.train.inputs.median_side() == 16


def test_a_few_unreadable_files_are_skipped_and_listed(tmp_path):
    helpers.write_colour_images(tmp_path, layout="flat", per_class=10)
    corrupt = helpers.write_corrupt(tmp_path / "red" / "broken.jpg")
    note = tmp_path / "green" / "notes.txt"
    note.write_text("not an image")
    hidden = tmp_path / "blue" / ".DS_Store"
    hidden.write_bytes(b"\x00\x01")
    task = load_task_data(str(tmp_path))
    assert sorted(task.skipped) == sorted([str(corrupt), str(note)])
    assert len(task.train) + len(task.val) == 30
    every = {str(p) for p in task.train.inputs.paths + task.val.inputs.paths}
    assert str(corrupt) not in every and str(note) not in every and str(hidden) not in every
    assert task.summary()["skipped"] == task.skipped


def test_too_many_unreadable_files_is_an_error(tmp_path):
    helpers.write_colour_images(tmp_path, layout="flat", per_class=3)
    for i in range(3):
        helpers.write_corrupt(tmp_path / "red" / f"broken{i}.jpg", seed=i)
    with pytest.raises(DataError, match=r"3 of 12 files are not readable images.*broken"):
        load_task_data(str(tmp_path))


def test_missing_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="does not exist") as info:
        load_task_data(str(missing))
    assert str(missing) in str(info.value)
    assert "\n" not in str(info.value)


def test_folder_without_class_folders(tmp_path):
    helpers.colour_image((1, 2, 3), np.random.default_rng(0)).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match="no class folders"):
        load_task_data(str(tmp_path))


def test_split_folders_without_train(tmp_path):
    (tmp_path / "val" / "a").mkdir(parents=True)
    (tmp_path / "test" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no train/ folder"):
        load_task_data(str(tmp_path))


def test_empty_class_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="no files"):
        load_task_data(str(tmp_path))


def test_one_class_is_an_error(tmp_path):
    helpers.write_colour_images(tmp_path, layout="flat", per_class=4, classes={"only": (1, 2, 3)})
    with pytest.raises(DataError, match=r"only one class \('only'\)"):
        load_task_data(str(tmp_path))


def test_single_example_class_when_validation_must_be_held_out(tmp_path):
    helpers.write_colour_images(tmp_path, layout="flat", per_class=5, classes={"a": (0, 0, 0), "b": (255, 255, 255)})
    helpers.write_colour_images(tmp_path, layout="flat", per_class=1, classes={"lonely": (255, 0, 0)})
    with pytest.raises(DataError, match=r"class 'lonely' has a single example"):
        load_task_data(str(tmp_path))


def test_single_example_class_is_fine_with_a_val_split(tmp_path):
    helpers.write_colour_images(tmp_path, layout="split", per_class=1, val=1, test=1)
    task = load_task_data(str(tmp_path))
    assert len(task.train) == 3


def test_val_split_with_unseen_label(tmp_path):
    helpers.write_colour_images(tmp_path, layout="split", per_class=2, val=1, test=1)
    extra = tmp_path / "val" / "purple"
    extra.mkdir()
    helpers.colour_image((128, 0, 128), np.random.default_rng(0)).save(extra / "p.png")
    with pytest.raises(DataError, match="val split has label.*purple"):
        load_task_data(str(tmp_path))


def test_undecodable_image_at_load_time_is_a_data_error(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(path)
    inputs = ImageInputs(paths=[path])
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot decode image"):
        inputs.load(0)


def test_errors_are_transferopt_errors():
    assert issubclass(DataError, TransferoptError)
