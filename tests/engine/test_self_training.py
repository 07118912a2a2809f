"""Self-training: which pool examples get pseudo-labels, what the student trains on, which model is kept."""

from __future__ import annotations

import numpy as np
import pytest

import transferopt
import transferopt.api as api
from tests import helpers
from transferopt.data import Split, TaskData, TextInputs
from transferopt.engine import FeatureCache
from transferopt.engine.run import Transfer
from transferopt.engine.self_training import confident_pseudo_labels, with_pseudo_labels
from transferopt.errors import ConfigError, DataError
from transferopt.reporting.wording import describe_self_training


def test_the_most_confident_share_keeps_its_predicted_labels():
    probs = np.array([[0.5, 0.5], [0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.95, 0.05]])
    index, labels = confident_pseudo_labels(probs, 0.6)
    assert index.tolist() == [4, 1, 2] and labels.tolist() == [0, 1, 0]
    assert confident_pseudo_labels(probs, 0.01)[0].tolist() == [4]  # at least one
    assert len(confident_pseudo_labels(probs, 1.0)[0]) == 5


def test_pseudo_labels_join_only_the_training_split():
    def split(texts, labels):
        return Split(TextInputs(texts), np.array(labels))

    task = TaskData("text", ["a", "b"], split(["x", "y"], [0, 1]), split(["v"], [1]), split(["t"], [0]), "src")
    pool = TextInputs(["p0", "p1", "p2"])
    student = with_pseudo_labels(task, pool, np.array([2, 0]), np.array([1, 1]))
    assert student.train.inputs.texts == ["x", "y", "p2", "p0"] and student.train.labels.tolist() == [0, 1, 1, 1]
    assert student.val is task.val and student.test is task.test
    assert student.notes[-1] == "self-training: 2 pseudo-labelled example(s) added to 2 labelled"
    assert task.train.inputs.texts == ["x", "y"]  # the labelled task is untouched


@pytest.fixture(scope="module")
def colour_pool(tmp_path_factory):
    return helpers.write_colour_images(tmp_path_factory.mktemp("pool"), layout="flat", per_class=5, seed=7)


@pytest.fixture
def trained_on(monkeypatch):
    """The training-set size of every model `fit` trains, teacher first, in order."""
    sizes = []
    original = api.train_once

    def recording(config, task, strategy, cache, hooks):
        sizes.append(len(task.train))
        return original(config, task, strategy, cache, hooks)

    monkeypatch.setattr(transferopt.api, "train_once", recording)
    return sizes


def test_a_student_that_does_not_beat_its_teacher_is_dropped(colour_folder, colour_pool, trained_on):
    result = transferopt.fit(
        str(colour_folder), "tiny-effnet", "linear-probe", unlabeled=str(colour_pool), self_training_rounds=3
    )
    record = result.metrics["self_training"]
    # The colours are separable: the teacher is perfect on val, so the student cannot beat it.
    assert record["teacher_val"] == 1.0 and record["unlabeled"] == 15 and record["share"] == 0.6
    assert record["rounds"] == [
        {"share": 0.6, "pseudo_labelled": 9, "min_confidence": pytest.approx(record["rounds"][0]["min_confidence"]),
         "val": 1.0, "kept": False}
    ]  # fmt: skip
    assert record["kept_rounds"] == 0
    assert trained_on == [24, 24 + 9]  # teacher, then one student on labelled + 9 pseudo-labelled images
    assert sum(result.data_summary["counts"]["train"].values()) == 24  # the kept model is the teacher


def test_kept_students_teach_the_next_round_until_one_does_not_improve(colour_folder, colour_pool, monkeypatch):
    scores = iter([0.5, 0.7, 0.9, 0.8])  # teacher, round 1 (kept), round 2 (kept), round 3 (dropped)
    teachers = []
    original = Transfer.probabilities

    def recording(self, split, prefix, label):
        if label == "unlabelled":
            teachers.append(len(self.data.train))
        return original(self, split, prefix, label)

    monkeypatch.setattr(transferopt.api, "validation_score", lambda transfer, outcome: next(scores))
    monkeypatch.setattr(Transfer, "probabilities", recording)
    result = transferopt.fit(
        str(colour_folder),
        "tiny-effnet",
        "linear-probe",
        unlabeled=str(colour_pool),
        self_training_rounds=5,
        pseudo_label_share=1.0,
    )
    record = result.metrics["self_training"]
    assert [r["kept"] for r in record["rounds"]] == [True, True, False] and record["kept_rounds"] == 2
    assert [r["val"] for r in record["rounds"]] == [0.7, 0.9, 0.8]
    assert teachers == [24, 24 + 15, 24 + 15]  # round 2 pseudo-labels with round 1's student
    assert sum(result.data_summary["counts"]["train"].values()) == 24 + 15
    assert "self-training: 15 pseudo-labelled example(s) added to 24 labelled" in result.metrics["notes"]


def test_a_curriculum_pseudo_labels_a_larger_share_each_round_up_to_the_whole_pool():
    config = transferopt.FitConfig(data="d", model="m", pseudo_label_share=0.6, pseudo_label_share_step=0.2)
    assert [api.round_share(config, n) for n in (1, 2, 3, 4)] == pytest.approx([0.6, 0.8, 1.0, 1.0])
    assert api.round_share(config.replace(pseudo_label_share_step=0.0), 3) == 0.6  # no step: the same share
    # Round 2's student sees 100 labelled + 80% of a 1,000 pool where round 1's saw 100 + 60%: the time a
    # budget expects for it grows with that.
    assert api.growth(config, 2, 100, 1000) == pytest.approx(900 / 700)
    assert api.growth(config, 4, 100, 1000) == 1.0
    with pytest.raises(ConfigError, match=r"--pseudo-label-share-step must be in \[0, 1\], got 1.5"):
        transferopt.FitConfig(data="d", model="m", pseudo_label_share_step=1.5)


def test_each_round_of_a_curriculum_trains_on_its_own_share(colour_folder, colour_pool, trained_on, monkeypatch):
    scores = iter([0.5, 0.6, 0.7, 0.8])  # every student beats its teacher
    monkeypatch.setattr(transferopt.api, "validation_score", lambda transfer, outcome: next(scores))
    result = transferopt.fit(
        str(colour_folder),
        "tiny-effnet",
        "linear-probe",
        unlabeled=str(colour_pool),
        self_training_rounds=3,
        pseudo_label_share=0.2,
        pseudo_label_share_step=0.4,
    )
    record = result.metrics["self_training"]
    assert [(r["share"], r["pseudo_labelled"]) for r in record["rounds"]] == [(0.2, 3), (0.6, 9), (1.0, 15)]
    assert trained_on == [24, 24 + 3, 24 + 9, 24 + 15] and record["share_step"] == 0.4
    line = describe_self_training(record, "accuracy")
    assert "round 2: 9 pseudo-labelled (60% of the pool), val accuracy 0.7000 (kept)" in line
    assert "of the pool" not in describe_self_training({**record, "share_step": 0}, "accuracy")  # one share


def test_students_train_for_the_self_training_epochs_and_the_run_keeps_its_own(colour_folder, colour_pool, monkeypatch):
    epochs_trained = []
    original = api.train_once

    def recording(config, task, strategy, cache, hooks):
        transfer, outcome = original(config, task, strategy, cache, hooks)
        epochs_trained.append((config.epochs, len(outcome.history.epochs)))
        return transfer, outcome

    monkeypatch.setattr(transferopt.api, "train_once", recording)
    monkeypatch.setattr(transferopt.api, "validation_score", lambda transfer, outcome: len(epochs_trained))
    result = transferopt.fit(
        str(colour_folder),
        "tiny-effnet",
        "bitfit",
        epochs=3,
        patience=5,
        unlabeled=str(colour_pool),
        self_training_epochs=1,
    )
    assert epochs_trained == [(3, 3), (1, 1)]  # the teacher's 3 epochs, then the student's 1
    assert result.metrics["self_training"]["kept_rounds"] == 1 and len(result.history) == 1
    assert result.config.epochs == 3 and result.config.self_training_epochs == 1  # reproduces the whole run
    assert result.metrics["self_training"]["student_epochs"] == 1
    assert describe_self_training(result.metrics["self_training"], "accuracy").startswith(
        "self-training on 15 unlabelled example(s) (students of 1 epoch): "
    )
    with pytest.raises(ConfigError, match="--self-training-epochs must be >= 1, got 0"):
        transferopt.FitConfig(data="d", model="m", self_training_epochs=0)


def test_image_arrays_take_unlabelled_files_and_text_needs_a_text_pool(tmp_path, intents_dir, tiny_bert_name):
    data = helpers.write_npz(tmp_path / "data.npz")
    pool = helpers.write_colour_images(tmp_path / "pool", layout="flat", per_class=2)
    result = transferopt.fit(str(data), "tiny-effnet", "linear-probe", unlabeled=str(pool))
    assert result.metrics["self_training"]["unlabeled"] == 6
    with pytest.raises(Exception, match="unlabelled texts must be a table"):
        transferopt.fit(str(intents_dir), tiny_bert_name, "linear-probe", max_length=16, unlabeled=str(pool))


def test_transcription_refuses_unlabelled_data(spoken_dir, tmp_path):
    with pytest.raises(ConfigError, match="--unlabeled .* is for classification"):
        transferopt.fit(str(spoken_dir), "tiny-whisper-asr", "bitfit", epochs=1, unlabeled=str(tmp_path))


def test_a_bad_unlabelled_path_fails_before_any_training(colour_folder, tmp_path, monkeypatch):
    def never(*args):
        raise AssertionError("trained before checking the unlabelled data")

    monkeypatch.setattr(api, "train_once", never)
    with pytest.raises(DataError, match="unlabelled data path does not exist"):
        transferopt.fit(str(colour_folder), "tiny-effnet", "linear-probe", unlabeled=str(tmp_path / "nowhere"))


def test_the_pool_runs_through_the_frozen_layers_once_and_students_reuse_it(
    tmp_path, intents_dir, tiny_bert_name, monkeypatch
):
    import transferopt.engine.cache as cache_module

    pool = helpers.write_table(tmp_path / "pool.csv", [{"text": r["text"]} for r in helpers.intent_rows(range(6, 10))])
    computed = []  # (examples, groups) of every pass that starts from the raw inputs
    original = cache_module.compute_prefix_states

    def recording(backbone, split, prefix, batch_size, device, label=""):
        computed.append((len(split), prefix))
        return original(backbone, split, prefix, batch_size, device, label)

    monkeypatch.setattr(cache_module, "compute_prefix_states", recording)
    cache = FeatureCache(tmp_path / "cache")
    result = transferopt.fit(
        str(intents_dir), tiny_bert_name, "lp-ft", strategy_options={"then": "partial", "then_options": {"k": 1}},
        max_length=16, epochs=1, unlabeled=str(pool), self_training_rounds=2, pseudo_label_share=0.5,
        pseudo_label_share_step=0.5, cache=cache,
    )  # fmt: skip
    assert result.metrics["self_training"]["rounds"][0]["pseudo_labelled"] == 6
    prefix = result.metrics["frozen_prefix"]  # all but the last group
    # The pool (12 texts) ran from its inputs once, up to the frozen prefix, to be labelled; the students'
    # head fit continued it by one group, and their training states were assembled from the cached parts.
    assert [shape for shape in computed if shape[0] == 12] == [(12, prefix)]
    assert not [shape for shape in computed if shape[0] > 18]  # no student split (18 + pseudo) ran from inputs
    assert cache.stats.continued >= 1
