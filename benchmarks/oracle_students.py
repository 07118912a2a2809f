"""What limits self-training on banking77? Students trained on pool sentences with their TRUE labels.

Banking77 at 10 shots per class (seed 0), minilm-l6, LP-FT 4 epochs (the foundation benchmark's self-training
recipe). Its teacher pseudo-labels the most confident 60% of the unlabelled pool; here that same 60%, and
then a random 60% of the pool, join the shots with their true labels (read for this check only), so the
students show what perfect labels would be worth on the examples self-training picks, against examples
drawn without regard to confidence.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/oracle_students.py [--data-root ../shared/datasets]

Writes `benchmarks/results/oracle_students.md`. About 25 minutes on a 2-core CPU.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from pools import write_unlabeled_rest
from pseudo_labels import banking77_from_arguments, markdown_table, true_labels, write_result

from transferopt import FitConfig
from transferopt.api import train_once, unlabeled_pool, validation_score
from transferopt.data import task_from_config
from transferopt.data.types import Split
from transferopt.engine import FeatureCache
from transferopt.engine.self_training import confident_pseudo_labels, with_pseudo_labels
from transferopt.strategies import make_strategy

SHARE = 0.6


def fitted(config: FitConfig, task, cache: FeatureCache):
    """A new LP-FT model trained on `task` (the teacher on the shots, a student on shots plus pool sentences)."""
    return train_once(config, task, make_strategy(config.strategy, config.strategy_options), cache, None)


def scores(transfer, outcome, task) -> list[str]:
    transfer.data = task  # students are scored on the task's own val and test splits
    test = transfer.probabilities(task.test, outcome.prefix, "test")
    test_accuracy = float((test.argmax(axis=1) == task.test.labels).mean())
    return [f"{validation_score(transfer, outcome):.4f}", f"{test_accuracy:.4f}", str(outcome.history.best_epoch)]


def main() -> int:
    data = banking77_from_arguments(__doc__)
    with tempfile.TemporaryDirectory() as folder:
        pool_path = write_unlabeled_rest("banking77", data, 10, 0, Path(folder) / "pool.csv")
        texts = pd.read_csv(pool_path)["text"].astype(str).tolist()
        config = FitConfig(
            data=data,
            model="minilm-l6",
            strategy="lp-ft",
            shots=10,
            seed=0,
            epochs=4,
            lr=1e-4,
            patience=2,
            unlabeled=pool_path,
        )
        task = task_from_config(config)
        pool = unlabeled_pool(config, task)
    index_of = {name: i for i, name in enumerate(task.classes)}
    truth = np.array([index_of[name] for name in true_labels(data, texts)])
    cache = FeatureCache()
    teacher, outcome = fitted(config, task, cache)
    probs = teacher.probabilities(Split(pool, np.zeros(len(pool), dtype=np.int64)), outcome.prefix, "unlabelled")
    confident = confident_pseudo_labels(probs, SHARE)[0]
    drawn = np.random.default_rng(0).permutation(len(pool))[: len(confident)]
    teacher_labels = probs.argmax(axis=1)
    rows = [["teacher (shots only)", "0", "-", *scores(teacher, outcome, task)]]
    for name, index, labels in (
        ("confident 60%, true labels", confident, truth[confident]),
        ("random 60%, true labels", drawn, truth[drawn]),
    ):
        student, student_outcome = fitted(config, with_pseudo_labels(task, pool, index, labels), cache)
        # the students get true labels; how many of them would the teacher's pseudo-labels have got right?
        right = f"{(teacher_labels[index] == truth[index]).mean():.3f}"
        rows.append([name, f"{len(index):,}", right, *scores(student, student_outcome, task)])
        print(" | ".join(rows[-1]), flush=True)
    header = [
        "students' extra training data",
        "pool sentences",
        "teacher's labels right",
        "val accuracy",
        "test accuracy",
        "best epoch",
    ]
    lines = [
        "# Oracle students: banking77, 10 shots per class, minilm-l6, LP-FT 4 epochs",
        "",
        "Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/oracle_students.py`. Pool: "
        f"{len(texts):,} training sentences that are neither shots nor validation; the true labels of the pool "
        "are read for this check only. Best epoch 0 would be the linear-probe phase of LP-FT. \"Teacher's "
        "labels right\": the share of those sentences the teacher's own pseudo-label would have got right (the "
        "students get the true ones): the confident 60% is the pool's easy part. Self-training's first round "
        "trains on that 60% with the teacher's pseudo-labels (`benchmarks/results/foundation.md`).",
        "",
        *markdown_table(header, rows),
        "",
    ]
    write_result("oracle_students.md", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
