"""bfloat16 autocast against float32, side by side in one run: what `--precision auto` picks on a CPU with
bfloat16 instructions (engine/precision.py).

Each row fits one plan twice, float32 first, then bfloat16, each with a cold in-memory feature cache (the
cache computes in float32 for both, so both pay the same feature pass): the same splits, seed and settings.
The training-time ratio is bf16 over fp32 for the same run; the metrics are the run's own validation and
report split.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/precision.py [--data-root ../shared/datasets]
        [--only ROW,...] [--table-only]

Records each run in `benchmarks/results/precision/` (delete one to run it again) and writes
`benchmarks/results/precision.md`. About 25 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pseudo_labels import markdown_table

import transferopt
from transferopt.engine import FeatureCache
from transferopt.engine.precision import cpu_has_native_bf16

RESULTS = Path(__file__).parent / "results"
RECORDS = RESULTS / "precision"
PRECISIONS = ("fp32", "bf16")
PNEUMONIA = "pneumoniamnist/pneumoniamnist.npz"


@dataclass(frozen=True)
class Row:
    name: str
    data: str
    model: str
    strategy: str
    settings: dict[str, Any] = field(default_factory=dict)
    metric: str = "accuracy"


ROWS = (
    Row("banking77-10shot-lp-ft", "banking77", "minilm-l6", "lp-ft", {"shots": 10}),
    Row("hymenoptera-full", "hymenoptera", "efficientnet_lite0", "full"),
    Row("hymenoptera-lora", "hymenoptera", "efficientnet_lite0", "lora"),
    Row("pneumoniamnist-10shot-lora", PNEUMONIA, "efficientnet_lite0", "lora", {"shots": 10}, "auc"),
)


def run_one(row: Row, precision: str, data_root: Path) -> dict[str, Any]:
    started = time.perf_counter()
    settings = {"seed": 0, "metric": row.metric, **row.settings}
    result = transferopt.fit(
        str(data_root / row.data),
        row.model,
        row.strategy,
        precision=precision,
        cache=FeatureCache(use_disk=False),
        **settings,
    )
    metrics = result.metrics
    report = "test" if "test" in metrics else "val"
    return {
        "row": row.name,
        "precision": precision,
        "val": metrics["val"][row.metric],
        "report_split": report,
        "report": metrics[report][row.metric],
        "report_accuracy": metrics[report].get("accuracy"),
        "best_epoch": metrics.get("best_epoch"),
        "train_s": metrics["timing"]["train_s"],
        "wall_s": time.perf_counter() - started,
        "date": time.strftime("%Y-%m-%d"),
    }


def record_path(row: Row, precision: str) -> Path:
    return RECORDS / f"{row.name}-{precision}.json"


def table(rows: tuple[Row, ...]) -> list[str]:
    cells = []
    for row in rows:
        records = {p: json.loads(record_path(row, p).read_text()) for p in PRECISIONS if record_path(row, p).is_file()}
        if len(records) < len(PRECISIONS):
            continue
        fp32 = records["fp32"]
        for precision, rec in records.items():
            cells.append(
                [
                    row.name if precision == "fp32" else "",
                    f"{row.model} {row.strategy}",
                    precision,
                    f"{rec['val']:.4f}",
                    f"{rec['report_split']} {rec['report']:.4f}",
                    f"{rec['report_accuracy']:.4f}",
                    str(rec["best_epoch"]),
                    f"{rec['train_s']:.0f}",
                    f"{rec['wall_s']:.0f}",
                    f"{rec['train_s'] / fp32['train_s']:.2f}",
                ]
            )
    header = ["run", "plan", "precision", "val metric", "reported metric", "reported accuracy", "best epoch"]
    header += ["training s", "run s", "training time / fp32"]
    return markdown_table(header, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    parser.add_argument("--only", default=None, help="comma-separated row names")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else {row.name for row in ROWS}
    RECORDS.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for row in ROWS:
            if row.name not in wanted:
                continue
            for precision in PRECISIONS:
                path = record_path(row, precision)
                if path.is_file():
                    continue
                record = run_one(row, precision, Path(args.data_root))
                path.write_text(json.dumps(record, indent=2))
                print(json.dumps(record), flush=True)
    lines = [
        "# bfloat16 autocast against float32",
        "",
        "Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/precision.py` (2-core CPU, each pair of runs one",
        "after the other, alone). Each run fits its plan at default settings (seed 0) with a cold feature cache;",
        "the feature cache computes in float32 for both precisions, so the ratio is of the training loop's time.",
        f"CPU: {platform.processor() or platform.machine()}, bfloat16 instructions: {cpu_has_native_bf16()};"
        f" torch {torch.__version__}.",
        "",
        *table(ROWS),
        "",
        "Reading (2026-12-03 run): bf16 trained in 0.69 of fp32's time on text (MiniLM-L6: matrix products) and",
        "0.82-0.88 on EfficientNet-Lite0 (its depthwise convolutions gain less); every metric matched within one",
        "or two examples (banking77: 2 of 770 validation sentences fewer right, 1 of 3,080 test sentences). So",
        "`--precision auto` picks bf16 on CPUs with bfloat16 instructions. Pneumoniamnist's 10-shot LoRA puts",
        "nearly every test X-ray in one class at its default threshold (accuracy 0.38, AUC 0.78-0.79), in both",
        "precisions alike.",
        "",
    ]
    (RESULTS / "precision.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
