"""Self-training the search's winner on unlabelled data, inside the search's budget.

A student trains from the source weights on the labelled plus pseudo-labelled examples, so its cost is
known only once the winner is: the search holds back time for it as the best trial changes, and the pool
is cut to what the time left allows when it is too large.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FitConfig
from ..data import TaskData
from ..data.types import Inputs
from ..engine import FeatureCache, Transfer
from ..engine.run import RunOutcome
from ..strategies import make_strategy
from .budget import Budget, stop_before_budget_ends

log = logging.getLogger(__name__)

#: At most this share of the budget is held back for self-training; the search keeps the rest.
MAX_BUDGET_SHARE = 0.5
#: A pool cut below this share of the labelled training set adds too few pseudo-labels to be worth a round.
MIN_POOL_SHARE = 0.25
#: The pool is cut to fit this share of the time left: loading the winner and scoring it on validation
#: come first (without the margin, a pool cut to fit exactly no longer fits by the time round 1 starts).
POOL_TIME_MARGIN = 0.9


def student_training_seconds(trial_s: float, epochs_run: int | None, student_epochs: int | None) -> float:
    """The winner's trial time, rescaled to the epochs a student trains when they are set apart from the
    winner's (`student_epochs`): the trial ran `epochs_run` epochs. Unchanged otherwise, or for a winner
    that trained no epoch (a probe: its students fit a head too)."""
    if not student_epochs or not epochs_run:
        return trial_s
    return trial_s * student_epochs / epochs_run


def student_seconds(teacher_s: float, n_train: int, n_pool: int, share: float, label_s: float | None = None) -> float:
    """A round's cost, scaled from the teacher's trial: the student sees the labelled plus the
    pseudo-labelled examples (share x pool) where the teacher saw the labelled ones, and pseudo-labelling
    passes the whole pool through the model once: `label_s` seconds an example (the inference pass the
    ranking timed) or, unmeasured, as much as training on the pool would cost (conservative: on banking77
    that priced a round at ~420 s that took ~150 s)."""
    student = teacher_s * (n_train + share * n_pool) / n_train
    labelling = n_pool * label_s if label_s is not None else teacher_s * n_pool / n_train
    return student + labelling


def reserve_s(
    teacher_s: float, n_train: int, n_pool: int, share: float, budget_s: float, label_s: float | None = None
) -> float:
    """Time the search holds back for one round of self-training the current best plan."""
    return min(student_seconds(teacher_s, n_train, n_pool, share, label_s), MAX_BUDGET_SHARE * budget_s)


def pool_that_fits(
    pool: Inputs,
    time_left_s: float,
    teacher_s: float,
    n_train: int,
    share: float,
    seed: int,
    label_s: float | None = None,
):
    """The pool, or a seeded random part of it small enough for one round (as `student_seconds` prices it)
    to end within `time_left_s`; None when even the smallest useful part does not fit."""

    def fits(size: int) -> bool:
        return student_seconds(teacher_s, n_train, size, share, label_s) <= time_left_s

    if fits(len(pool)):
        return pool
    small, large = 0, len(pool)  # the largest size that fits lies in [small, large)
    while large - small > 1:
        middle = (small + large) // 2
        small, large = (middle, large) if fits(middle) else (small, middle)
    if small < max(1, MIN_POOL_SHARE * n_train) or not fits(small):
        return None
    index = np.sort(np.random.default_rng(seed).choice(len(pool), size=small, replace=False))
    return pool.subset(index)


def self_train_winner(
    out: Path,
    model_dir: str,
    task: TaskData,
    pool: Inputs,
    student_settings: FitConfig,
    teacher_s: float,
    budget: Budget,
    reserve: float,
    cache: FeatureCache,
    label_s: float | None = None,
) -> dict[str, Any]:
    """Self-train the saved winner (`out/model_dir`) with the pool and the rounds of `student_settings`;
    a kept student replaces the saved model. Returns the self-training record (kept rounds, or why none
    ran)."""
    from ..api import assemble_result, load, self_train

    started = time.perf_counter()
    n_train, share = len(task.train), student_settings.pseudo_label_share
    record: dict[str, Any] = {"unlabeled_given": len(pool)}
    time_left = POOL_TIME_MARGIN * (budget.remaining_s - reserve)
    usable = pool_that_fits(pool, time_left, teacher_s, n_train, share, student_settings.seed, label_s)
    if usable is None:
        whole_pool_s = student_seconds(teacher_s, n_train, len(pool), share, label_s)
        record["skipped"] = (
            f"one round needs about {whole_pool_s:.0f}s with the whole pool; {budget.remaining_s:.0f}s were "
            "left, too few for a useful part of it"
        )
        return record
    winner = load(out / model_dir)
    config = winner.config.replace(
        unlabeled=student_settings.unlabeled,
        self_training_rounds=student_settings.self_training_rounds,
        pseudo_label_share=share,
        pseudo_label_share_step=student_settings.pseudo_label_share_step,
        self_training_epochs=student_settings.self_training_epochs,
    )
    # The winner alone is scored on the test split, afterwards (as after any search).
    search_task = dataclasses.replace(task, test=None)
    teacher = Transfer(winner.model, search_task, config, cache, winner.metrics.get("source_weights"))
    winner.model.to(teacher.device)
    outcome = RunOutcome(prefix=winner.metrics["frozen_prefix"], history=None, head_fit=None, timing={})

    def round_fits(expected_s: float | None) -> bool:
        expected = expected_s or student_seconds(teacher_s, n_train, len(usable), share, label_s)
        return budget.remaining_s - reserve >= expected

    hooks = [stop_before_budget_ends(budget, reserve)]
    student, student_outcome, rounds = self_train(teacher, outcome, usable, cache, hooks, round_fits)
    record.update(rounds)
    if rounds["kept_rounds"]:
        strategy = make_strategy(config.strategy, config.strategy_options)
        assemble_result(student, student_outcome, strategy, started, rounds).save(out / model_dir)
    record["seconds"] = time.perf_counter() - started
    log.info("self-training: %d of %d round(s) kept", rounds["kept_rounds"], len(rounds["rounds"]))
    return record
