"""Does the self-training curriculum help beyond banking77? pneumoniamnist, 10 labelled images per class,
`efficientnet_lite0` students (a linear probe, seeds 0-2; LP-FT of the top six blocks, seed 0), the official
training images (labels dropped) as the unlabelled pool: three rounds with a fixed 60% share against a share
growing by 20 points a round (60%, 80%, 100%).

A linear probe keeps the backbone's features, so this asks whether the curriculum's gain needs a student
that learns its features (banking77's LP-FT students, `benchmarks/results/foundation.md`) or comes from the
labels alone. The linear probes are cheap (the pool's features are computed once, every student refits only the
head); the LP-FT students take most of the time.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/curriculum.py [--data-root ../shared/datasets]

Writes `benchmarks/results/curriculum.md`. About 10 minutes on a 2-core CPU.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pseudo_labels import data_root_from_arguments, markdown_table, write_result

import transferopt

STEPS = (0.0, 0.2)
SHOTS = 10


class Student(NamedTuple):
    label: str
    strategy: str
    options: dict[str, Any]
    seeds: tuple[int, ...]


#: The head alone on fixed features, then a student that fine-tunes the top six blocks (pneumoniamnist's
#: LP-FT recipe in foundation.py, 6 epochs); that one is ~10 min a seed.
STUDENTS = (
    Student("linear probe", "linear-probe", {}, (0, 1, 2)),
    Student(
        "LP-FT, top 6 blocks",
        "lp-ft",
        {"strategy_options": {"then": "partial", "then_options": {"k": 6}}, "epochs": 6, "lr": 5e-5, "patience": 2},
        (0,),
    ),
)


def write_pool(data: Path, path: Path) -> str:
    """The official training images, labels dropped (the 20 shots are among them, labelled as well)."""
    with np.load(data) as arrays:
        np.savez(path, images=arrays["train_images"])
    return str(path)


def run_row(data: Path, pool: str, student: Student, seed: int, step: float) -> tuple[list[str], dict[str, float]]:
    result = transferopt.fit(
        str(data),
        "efficientnet_lite0",
        student.strategy,
        **student.options,
        shots=SHOTS,
        seed=seed,
        unlabeled=pool,
        self_training_rounds=3,
        pseudo_label_share_step=step,
    )
    record, metrics = result.metrics["self_training"], result.metrics
    rounds = ", ".join(f"{r['share']:.0%}: {r['val']:.4f}{'' if r['kept'] else ' (dropped)'}" for r in record["rounds"])
    figures = {
        "val": metrics["val"]["accuracy"],
        "acc": metrics["test"]["accuracy"],
        "auc": metrics["test"]["auc"],
    }
    row = [
        student.label,
        str(seed),
        f"{step:g}",
        f"{record['teacher_val']:.4f}",
        rounds,
        str(record["kept_rounds"]),
        *(f"{figures[k]:.4f}" for k in ("val", "acc", "auc")),
    ]
    return row, figures


def main() -> int:
    data = data_root_from_arguments(__doc__) / "pneumoniamnist" / "pneumoniamnist.npz"
    started = time.perf_counter()
    rows, means = [], {}
    with tempfile.TemporaryDirectory() as folder:
        pool = write_pool(data, Path(folder) / "pool.npz")
        for student in STUDENTS:
            for step in STEPS:
                figures = []
                for seed in student.seeds:
                    row, figure = run_row(data, pool, student, seed, step)
                    rows.append(row)
                    figures.append(figure)
                    print(" | ".join(row), flush=True)
                if len(figures) > 1:
                    means[student.label, step] = {
                        k: float(np.mean([f[k] for f in figures])) for k in ("val", "acc", "auc")
                    }
    for (label, step), mean in means.items():
        rows.append([label, "mean", f"{step:g}", "", "", "", *(f"{mean[k]:.4f}" for k in ("val", "acc", "auc"))])
    header = [
        "student",
        "seed",
        "share step",
        "labelled-only val",
        "rounds (share: val)",
        "kept",
        "val",
        "test ACC",
        "test AUC",
    ]
    lines = [
        "# Self-training curriculum on pneumoniamnist (10 shots per class; linear-probe and LP-FT students)",
        "",
        "Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/curriculum.py` (2-core CPU, "
        f"{time.perf_counter() - started:.0f} s). `efficientnet_lite0`, a linear probe (seeds 0-2) and LP-FT "
        "of the top six blocks (seed 0), on 10 labelled images per "
        "class (val: the official validation split; test: the official test split); pool: the 3,882 official "
        "training images without labels; three rounds, each kept only when it beats the last on validation "
        "accuracy. Share step 0: 60% every round; 0.2: 60%, 80%, 100% (`--pseudo-label-share-step 0.2`).",
        "",
        *markdown_table(header, rows),
        "",
        "Reading (2026-12-03 run): with a linear-probe student the curriculum neither helps nor hurts. Its first",
        "round is the fixed share's (60%); of its larger rounds only seed 0's 80% beat the round before on",
        "validation (0.8721, where the fixed share's second round reached 0.8817), the others were dropped, so",
        "the means are alike (test ACC 0.8104 against 0.8109, AUC 0.8828 against 0.8845): a student that refits a",
        "head on fixed features has little to gain from harder pseudo-labels. With a student that fine-tunes",
        "(LP-FT, top six blocks; one seed), every larger round was kept, as with banking77's LP-FT students",
        "(`foundation.md`, test 0.8912): validation 0.8874 -> 0.8989 -> 0.9084 against 0.8874 -> 0.8912 -> 0.8950",
        "with the fixed share, test ACC 0.8221 against 0.7933 and AUC 0.9017 against 0.8857. One seed; with",
        "banking77's students it made the step `optimize`'s default (0.2, since 2026-12-03); `fit` keeps 0.",
        "",
    ]
    write_result("curriculum.md", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
