"""K-shot sampling, validation hold-out and class ordering."""

from __future__ import annotations

import numpy as np
import pytest

from tests import helpers
from transferopt.data import load_task_data
from transferopt.data.splits import natural_key
from transferopt.errors import DataError


def paths(split) -> list[str]:
    return [str(p) for p in split.inputs.paths]


def test_shots_take_exactly_k_per_class_and_validation_from_the_rest(colour_flat):
    task = load_task_data(str(colour_flat), shots=3, seed=0)
    assert task.train.class_counts(3).tolist() == [3, 3, 3]
    # val_shots defaults to shots, drawn from what is left of train.
    assert task.val.class_counts(3).tolist() == [3, 3, 3]
    assert set(paths(task.train)).isdisjoint(paths(task.val))
    assert any("3 examples per class" in note for note in task.notes)


def test_val_shots(colour_flat):
    task = load_task_data(str(colour_flat), shots=2, val_shots=5, seed=0)
    assert task.train.class_counts(3).tolist() == [2, 2, 2]
    assert task.val.class_counts(3).tolist() == [5, 5, 5]


def test_val_shots_is_capped_by_what_is_left(colour_flat):
    task = load_task_data(str(colour_flat), shots=8, val_shots=5, seed=0)
    assert task.val.class_counts(3).tolist() == [2, 2, 2]


def test_shots_are_seeded(colour_flat):
    a = load_task_data(str(colour_flat), shots=2, seed=3)
    b = load_task_data(str(colour_flat), shots=2, seed=3)
    c = load_task_data(str(colour_flat), shots=2, seed=4)
    assert paths(a.train) == paths(b.train) and paths(a.val) == paths(b.val)
    assert paths(a.train) != paths(c.train)


def test_shots_keep_an_existing_val_split(colour_folder):
    task = load_task_data(str(colour_folder), shots=2)
    assert task.train.class_counts(3).tolist() == [2, 2, 2]
    assert task.val.class_counts(3).tolist() == [3, 3, 3]
    assert {p.parent.parent.name for p in task.val.inputs.paths} == {"val"}


def test_shots_larger_than_a_class(colour_flat):
    with pytest.raises(DataError, match=r"--shots 11 is larger than class 'blue' \(10 train examples\)"):
        load_task_data(str(colour_flat), shots=11)


def test_shots_equal_to_every_class_leave_nothing_for_validation(colour_flat):
    with pytest.raises(DataError, match="no examples left for validation"):
        load_task_data(str(colour_flat), shots=10)


def test_too_few_examples_for_train_plus_validation(tmp_path):
    helpers.write_colour_images(tmp_path, layout="flat", per_class=2)
    task = load_task_data(str(tmp_path), val_fraction=0.5)
    assert task.train.class_counts(3).tolist() == [1, 1, 1]
    assert task.val.class_counts(3).tolist() == [1, 1, 1]
    with pytest.raises(DataError, match="too few examples"):
        load_task_data(str(tmp_path), val_fraction=0.9)


def test_natural_class_order():
    names = ["10", "2", "b", "1", "a", "-3"]
    assert sorted(names, key=natural_key) == ["-3", "1", "2", "10", "a", "b"]


def test_task_split_lookup_and_summary(colour_folder):
    task = load_task_data(str(colour_folder))
    assert task.split("test") is task.test
    with pytest.raises(DataError, match=r"no 'nope' split; available: train, val, test"):
        task.split("nope")
    summary = task.summary()
    assert summary["modality"] == "image"
    assert summary["counts"]["train"] == {"blue": 8, "green": 8, "red": 8}
    assert summary["counts"]["test"] == {"blue": 3, "green": 3, "red": 3}


def test_split_fingerprint_tracks_inputs_and_labels(colour_folder):
    task = load_task_data(str(colour_folder))
    same = load_task_data(str(colour_folder))
    assert task.train.fingerprint() == same.train.fingerprint()
    assert task.train.fingerprint() != task.val.fingerprint()
    relabelled = task.train.subset(np.arange(len(task.train)))
    relabelled.labels = (relabelled.labels + 1) % 3
    assert relabelled.fingerprint() != task.train.fingerprint()
