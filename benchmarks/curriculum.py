"""Does the self-training curriculum help beyond banking77? pneumoniamnist, 10 labelled images per class,
`efficientnet_lite0` linear probe, the official training images (labels dropped) as the unlabelled pool:
three rounds with a fixed 60% share against a share growing by 20 points a round (60%, 80%, 100%), seeds 0-2.

A linear probe keeps the backbone's features, so this asks whether the curriculum's gain needs a student
that learns its features (banking77's LP-FT students, `benchmarks/results/foundation.md`) or comes from the
labels alone. Cheap: the pool's features are computed once and every student refits only the head.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/curriculum.py [--data-root ../shared/datasets]

Writes `benchmarks/results/curriculum.md`. About 5 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from pseudo_labels import markdown_table, write_result

import transferopt

SEEDS = (0, 1, 2)
STEPS = (0.0, 0.2)
SHOTS = 10


def write_pool(data: Path, path: Path) -> str:
    """The official training images, labels dropped (the 20 shots are among them, labelled as well)."""
    with np.load(data) as arrays:
        np.savez(path, images=arrays["train_images"])
    return str(path)


def run_row(data: Path, pool: str, seed: int, step: float) -> tuple[list[str], dict[str, float]]:
    result = transferopt.fit(
        str(data),
        "efficientnet_lite0",
        "linear-probe",
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
        str(seed),
        f"{step:g}",
        f"{record['teacher_val']:.4f}",
        rounds,
        str(record["kept_rounds"]),
        *(f"{figures[k]:.4f}" for k in ("val", "acc", "auc")),
    ]
    return row, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    data = Path(parser.parse_args().data_root) / "pneumoniamnist" / "pneumoniamnist.npz"
    started = time.perf_counter()
    rows, means = [], {}
    with tempfile.TemporaryDirectory() as folder:
        pool = write_pool(data, Path(folder) / "pool.npz")
        for step in STEPS:
            figures = []
            for seed in SEEDS:
                row, figure = run_row(data, pool, seed, step)
                rows.append(row)
                figures.append(figure)
                print(" | ".join(row), flush=True)
            means[step] = {k: float(np.mean([f[k] for f in figures])) for k in ("val", "acc", "auc")}
    for step, mean in means.items():
        rows.append(["mean", f"{step:g}", "", "", "", *(f"{mean[k]:.4f}" for k in ("val", "acc", "auc"))])
    header = ["seed", "share step", "labelled-only val", "rounds (share: val)", "kept", "val", "test ACC", "test AUC"]
    lines = [
        "# Self-training curriculum on pneumoniamnist (linear probe, 10 shots per class)",
        "",
        "Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/curriculum.py` (2-core CPU, "
        f"{time.perf_counter() - started:.0f} s). `efficientnet_lite0` linear probe on 10 labelled images per "
        "class (val: the official validation split; test: the official test split); pool: the 3,882 official "
        "training images without labels; three rounds, each kept only when it beats the last on validation "
        "accuracy. Share step 0: 60% every round; 0.2: 60%, 80%, 100% (`--pseudo-label-share-step 0.2`).",
        "",
        *markdown_table(header, rows),
        "",
        "Reading (2026-12-03 run): here the curriculum neither helps nor hurts. Its first round is the fixed",
        "share's (60%); of its larger rounds only seed 0's 80% beat the round before on validation (0.8721, where",
        "the fixed share's second round reached 0.8817), the others fell below it and were dropped, so the means",
        "are alike (test ACC 0.8104 against 0.8109, AUC 0.8828 against 0.8845). On",
        "banking77, where LP-FT students relearn the encoder, each larger round was kept and test accuracy rose",
        "to 0.8912 (`foundation.md`); a student that only refits a head on fixed features has little to gain",
        "from harder pseudo-labels. So `--pseudo-label-share-step` stays off by default.",
        "",
    ]
    write_result("curriculum.md", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
