"""MedMNIST-style .npz archives and the builtin digits set."""

from __future__ import annotations

import numpy as np
import pytest

from tests import helpers
from transferopt.data import ImageInputs, load_task_data
from transferopt.errors import DataError


@pytest.mark.parametrize("label_shape", ["column", "flat"])
def test_npz_splits_and_grey_images(tmp_path, label_shape):
    path = helpers.write_npz(tmp_path / "x.npz", label_shape=label_shape)
    task = load_task_data(str(path))
    assert task.modality == "image"
    assert task.classes == ["0", "1"]
    assert (len(task.train), len(task.val), len(task.test)) == (12, 6, 6)
    assert isinstance(task.train.inputs, ImageInputs) and task.train.inputs.arrays.shape == (12, 28, 28)
    assert task.train.inputs.median_side() == 28
    image = task.train.inputs.load(1)
    assert image.mode == "RGB" and image.size == (28, 28)
    pixels = np.asarray(image)
    # Grey replicated to three channels, bright image for label 1.
    assert np.array_equal(pixels[..., 0], pixels[..., 2]) and pixels.mean() > 150
    assert task.train.labels.tolist() == [0, 1] * 6


def test_npz_float_images_are_scaled(tmp_path):
    images = np.linspace(0.0, 1.0, 4 * 28 * 28).reshape(4, 28, 28).astype(np.float32)
    np.savez(tmp_path / "f.npz", train_images=images, train_labels=np.array([0, 1, 0, 1]))
    task = load_task_data(str(tmp_path / "f.npz"), val_fraction=0.5)
    arrays = np.concatenate([task.train.inputs.arrays, task.val.inputs.arrays])
    assert arrays.dtype == np.uint8 and arrays.max() == 255


def test_npz_without_train_arrays(tmp_path):
    np.savez(tmp_path / "x.npz", test_images=np.zeros((2, 28, 28), np.uint8), test_labels=np.array([0, 1]))
    with pytest.raises(DataError, match="no train_images/train_labels"):
        load_task_data(str(tmp_path / "x.npz"))


def test_npz_images_without_labels(tmp_path):
    np.savez(tmp_path / "x.npz", train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="has train_images but no train_labels"):
        load_task_data(str(tmp_path / "x.npz"))


def test_npz_multilabel_is_refused(tmp_path):
    np.savez(tmp_path / "x.npz", train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.ones((4, 3)))
    with pytest.raises(DataError, match="multi-label"):
        load_task_data(str(tmp_path / "x.npz"))


def test_npz_length_mismatch(tmp_path):
    np.savez(tmp_path / "x.npz", train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.array([0, 1]))
    with pytest.raises(DataError, match="train_images has shape"):
        load_task_data(str(tmp_path / "x.npz"))


def test_corrupt_npz(tmp_path):
    helpers.write_corrupt(tmp_path / "x.npz")
    with pytest.raises(DataError, match="cannot read"):
        load_task_data(str(tmp_path / "x.npz"))


def test_builtin_digits():
    task = load_task_data("builtin:digits")
    assert task.classes == [str(i) for i in range(10)]
    assert len(task.test) == 540
    assert len(task.train) + len(task.val) == 1797 - 540
    assert task.train.inputs.arrays.shape[1:] == (8, 8)
    assert task.train.inputs.arrays.dtype == np.uint8 and task.train.inputs.arrays.max() == 255


def test_builtin_digits_test_split_does_not_depend_on_seed():
    a = load_task_data("builtin:digits", shots=5, seed=0)
    b = load_task_data("builtin:digits", shots=5, seed=1)
    assert np.array_equal(a.test.inputs.arrays, b.test.inputs.arrays)
    assert a.train.class_counts(10).tolist() == [5] * 10
    assert not np.array_equal(a.train.inputs.arrays, b.train.inputs.arrays)


def test_unknown_builtin():
    with pytest.raises(DataError, match="unknown builtin data set 'mnist'; available: digits"):
        load_task_data("builtin:mnist")
