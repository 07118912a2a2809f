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


def unlabelled_split(pool: Inputs) -> Split:
    """The pool as a split (labels all 0, unused): the same inputs give the same cache key every round."""
    return Split(pool, np.zeros(len(pool), dtype=np.int64))


def with_pseudo_labels(task: TaskData, pool: Inputs, index: np.ndarray, labels: np.ndarray) -> TaskData:
    """The task with pseudo-labelled pool examples appended to its training split; val and test unchanged.
    The new split names its parts, so the student's frozen-prefix states are assembled from the labelled
    split's and the pool's (computed once, when the pool was first labelled)."""
    extra = pool.subset(index)
    parts = ((task.train, np.arange(len(task.train))), (unlabelled_split(pool), np.asarray(index)))
    train = Split(concat_inputs(task.train.inputs, extra), np.concatenate([task.train.labels, labels]), parts=parts)
    note = f"self-training: {len(index)} pseudo-labelled example(s) added to {len(task.train)} labelled"
    return replace(task, train=train, notes=[*task.notes, note])
