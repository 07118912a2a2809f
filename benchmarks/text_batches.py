"""Length-grouped text batches against random ones, side by side in one run: banking77, `minilm-l6`.

A text batch pads to its longest sentence. Random batches of 32 banking77 sentences carry ~2.9 times the real
tokens; grouping similar lengths (transformers' `group_by_length`, the batches then shuffled) carries ~1.07.
The "random" rows switch grouping off (no lengths: the order transferopt used before grouping existed).

1. Speed: full fine-tuning of every group on 20 labelled sentences per class (1,540), 2 epochs, the two
   orders alternating, two repeats each: training seconds (the frozen-prefix cache is warm for both).
2. Accuracy: banking77's 10-shot LP-FT row of `foundation.py` (10 epochs, lr 1e-4, patience 3), once in each
   order: the same recipe must not lose accuracy to the grouping.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/text_batches.py [--data-root ../shared/datasets]

Writes `benchmarks/results/text_batches.md`. About 10 minutes on a 2-core CPU.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

from pseudo_labels import banking77_from_arguments, markdown_table, write_result

import transferopt
from transferopt.engine import FeatureCache
from transferopt.models.hf_text import HFTextBackbone

ORDERS = ("random", "grouped")
REPEATS = 2


@contextmanager
def batch_order(order: str):
    """ "random": no lengths, so batches are a plain seeded shuffle and inference keeps the data's order."""
    original = HFTextBackbone.state_lengths
    if order == "random":
        HFTextBackbone.state_lengths = lambda self, state: None
    try:
        yield
    finally:
        HFTextBackbone.state_lengths = original


def timed_fit(data: str, order: str, cache: FeatureCache, **settings: Any) -> tuple[Any, float]:
    with batch_order(order):
        started = time.perf_counter()
        result = transferopt.fit(data, "minilm-l6", cache=cache, seed=0, **settings)
        return result, time.perf_counter() - started


def main() -> None:
    data = banking77_from_arguments(__doc__)
    cache = FeatureCache()
    speed: dict[str, list[float]] = {order: [] for order in ORDERS}
    for repeat in range(REPEATS):
        for order in ORDERS:
            result, _ = timed_fit(data, order, cache, strategy="full", shots=20, epochs=2, patience=2, lr=1e-4)
            speed[order].append(result.metrics["timing"]["train_s"])
            print(f"speed {order} repeat {repeat}: train {speed[order][-1]:.1f}s", flush=True)
    accuracy = {}
    for order in ORDERS:
        result, wall = timed_fit(data, order, cache, strategy="lp-ft", shots=10, epochs=10, lr=1e-4, patience=3)
        accuracy[order] = (result.metrics, wall)
        print(f"accuracy {order}: test {result.metrics['test']['accuracy']:.4f} {wall:.0f}s", flush=True)

    mean = {order: sum(seconds) / len(seconds) for order, seconds in speed.items()}
    lines = [
        "# Length-grouped text batches: banking77, minilm-l6",
        "",
        "Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/text_batches.py` (2-core CPU, one run, the two",
        "orders side by side). `random`: batches are a seeded shuffle, inference in the data's order (transferopt",
        "before grouping); `grouped`: similar token lengths share a batch (transformers' `group_by_length`, batches",
        "then shuffled), inference shortest first.",
        "",
        f"## Speed: full fine-tuning, 1,540 sentences (20 a class), 2 epochs, {REPEATS} repeats alternating",
        "",
        *markdown_table(
            ["order", "training seconds (each repeat)", "mean", "time / random"],
            [
                [
                    order,
                    ", ".join(f"{s:.1f}" for s in speed[order]),
                    f"{mean[order]:.1f}",
                    f"{mean[order] / mean['random']:.2f}",
                ]
                for order in ORDERS
            ],
        ),
        "",
        "## Accuracy: LP-FT, 10 shots a class (770), 10 epochs, lr 1e-4, patience 3 (foundation.py's row)",
        "",
        *markdown_table(
            ["order", "val accuracy", "test accuracy", "best epoch", "training seconds", "run seconds"],
            [
                [
                    order,
                    f"{metrics['val']['accuracy']:.4f}",
                    f"{metrics['test']['accuracy']:.4f}",
                    str(metrics["best_epoch"]),
                    f"{metrics['timing']['train_s']:.1f}",
                    f"{wall:.0f}",
                ]
                for order, (metrics, wall) in accuracy.items()
            ],
        ),
        "",
    ]
    write_result("text_batches.md", lines)


if __name__ == "__main__":
    main()
