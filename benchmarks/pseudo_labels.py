"""How right are the pseudo-labels? banking77 at 10 shots per class (seed 0), minilm-l6, LP-FT teachers.

The unlabelled pool of the foundation benchmark (training sentences that are neither shots nor validation)
does have labels in the data set; this check alone reads them, to measure how many pseudo-labels a teacher
gets right: over the whole pool, and over the most confident share that self-training keeps, picked either
across the pool (transferopt's rule) or within each predicted class (class-balanced, Zou et al. 2018).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/pseudo_labels.py [--data-root ../shared/datasets]

Writes `benchmarks/results/pseudo_labels.md`. About 7 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from pools import write_unlabeled_rest

import transferopt
from transferopt.data import load_task_data
from transferopt.engine.self_training import confident_pseudo_labels

RESULTS = Path(__file__).parent / "results"
SHARES = (0.4, 0.6, 0.8)
#: The two teachers of the foundation benchmark's self-training rows (epochs, patience).
TEACHERS = ((4, 2), (10, 3))


def true_labels(data: str, texts: list[str]) -> np.ndarray:
    everything = load_task_data(data, seed=0)
    inputs = everything.train.inputs.texts + everything.val.inputs.texts
    labels = np.concatenate([everything.train.labels, everything.val.labels])
    names = dict(zip(inputs, (everything.classes[i] for i in labels), strict=True))
    return np.array([names[t] for t in texts])


def data_root_from_arguments(doc: str) -> Path:
    """`--data-root`, the one option of these self-training checks (default: the shared datasets folder)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    return Path(parser.parse_args().data_root)


def banking77_from_arguments(doc: str) -> str:
    """The banking77 folder under `--data-root` (these banking77 checks share their command line)."""
    return str(data_root_from_arguments(doc) / "banking77")


def write_result(name: str, lines: list[str]) -> None:
    (RESULTS / name).write_text("\n".join(lines))
    print("\n".join(lines))


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a GitHub-flavoured markdown table (the oracle-students check writes its table with it too)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(r) + " |" for r in rows]]


def most_confident_per_class(probs: np.ndarray, share: float) -> np.ndarray:
    """The class-balanced alternative to transferopt's rule: the top `share` within each predicted class."""
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    keep = []
    for label in np.unique(predicted):
        members = np.flatnonzero(predicted == label)
        ranked = members[np.argsort(-confidence[members], kind="stable")]
        keep.extend(ranked[: int(round(share * len(members)))])
    return np.array(keep)


def teacher_row(data: str, texts: list[str], truth: np.ndarray, epochs: int, patience: int) -> list[str]:
    result = transferopt.fit(data, "minilm-l6", "lp-ft", shots=10, seed=0, epochs=epochs, lr=1e-4, patience=patience)
    probs = result.predict_proba(texts)
    predicted = np.array(result.classes)[probs.argmax(axis=1)]
    cells = [f"LP-FT {epochs} epochs", f"{result.metrics['val']['accuracy']:.4f}", f"{(predicted == truth).mean():.3f}"]
    for share in SHARES:
        across, within = confident_pseudo_labels(probs, share)[0], most_confident_per_class(probs, share)
        per_class = np.bincount(probs[across].argmax(axis=1), minlength=probs.shape[1])
        cells += [
            f"{(predicted[across] == truth[across]).mean():.3f} ({per_class.min()}-{per_class.max()})",
            f"{(predicted[within] == truth[within]).mean():.3f}",
        ]
    return cells


def main() -> int:
    data = banking77_from_arguments(__doc__)
    with tempfile.TemporaryDirectory() as folder:
        pool = write_unlabeled_rest("banking77", data, 10, 0, Path(folder) / "pool.csv")
        texts = pd.read_csv(pool)["text"].astype(str).tolist()
    truth = true_labels(data, texts)
    header = ["teacher", "val accuracy", "pool right"]
    for share in SHARES:
        header += [f"top {share:.0%} right (per-class count)", f"top {share:.0%} per class right"]
    rows = [teacher_row(data, texts, truth, epochs, patience) for epochs, patience in TEACHERS]
    lines = [
        "# Pseudo-label accuracy: banking77, 10 shots per class, minilm-l6",
        "",
        f"Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/pseudo_labels.py`. Pool: {len(texts):,} "
        'training sentences that are neither shots nor validation. "top N% right" is transferopt\'s rule (the '
        'most confident N% of the pool), with the fewest and most pseudo-labels any class gets; "per class" '
        "keeps the top N% within each predicted class instead.",
        "",
        *markdown_table(header, rows),
        "",
    ]
    write_result("pseudo_labels.md", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
