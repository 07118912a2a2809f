"""Self-training on unlabelled data (pseudo-labelling: Scudder 1965; Lee 2013; Xie et al. 2020, "Noisy
Student"): the trained model labels the unlabelled pool, its most confident share joins the labelled
training data, and a new model is trained from the pretrained weights on both. Written here because the
libraries we use (sklearn's `SelfTrainingClassifier` retrains only a classifier on fixed features) do not
retrain a network; validation, which never holds pseudo-labels, decides whether the student is kept."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..data.types import Inputs, Split, TaskData
from ..data.unlabeled import concat_inputs


def confident_pseudo_labels(probs: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the `share` of examples the model is surest of (highest top probability, ties in order)
    and the label it gives each."""
    count = max(1, int(round(share * len(probs))))
    keep = np.argsort(-probs.max(axis=1), kind="stable")[:count]
    return keep, probs[keep].argmax(axis=1)


def with_pseudo_labels(task: TaskData, pool: Inputs, index: np.ndarray, labels: np.ndarray) -> TaskData:
    """The task with pseudo-labelled pool examples appended to its training split; val and test unchanged."""
    extra = pool.subset(index)
    train = Split(concat_inputs(task.train.inputs, extra), np.concatenate([task.train.labels, labels]))
    note = f"self-training: {len(index)} pseudo-labelled example(s) added to {len(task.train)} labelled"
    return replace(task, train=train, notes=[*task.notes, note])
