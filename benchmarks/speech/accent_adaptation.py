"""Accent adaptation with whisper-base on the espeak-ng benchmark (generate it first: make_accent_data.py).

Phases (each writes one JSON record per run under benchmarks/results/speech/ and rebuilds speech.md):
- zero-shot: whisper-base as it is, WER/CER on every accent x condition test set (the accent gap);
- transcribe: adapt on 100 Scottish training utterances (noisy condition), then score every test set;
  systems: a naive full fine-tune (lr 1e-5, the Whisper fine-tuning blog's rate) and transferopt's plans;
- commands: spoken commands, Scottish voices, 10 per word: the Whisper encoder versus training from scratch.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/speech/accent_adaptation.py --phase zero-shot
Records are kept and skipped when present, so an interrupted run resumes; delete one to measure it again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "speech"
TABLE = ROOT / "benchmarks" / "results" / "speech.md"
DEFAULT_DATA = Path("~/.cache/transferopt/accent-bench").expanduser()
ACCENTS = ("en-us", "en-gb-scotland")
CONDITIONS = ("clean", "noisy")
TARGET = "en-gb-scotland"

# (system, strategy, fit options): the naive recipe users copy, and transferopt's plans.
TRANSCRIBE_SYSTEMS: dict[str, dict[str, Any]] = {
    "naive-fine-tune": {"strategy": "full", "lr": 1e-5, "epochs": 5, "patience": 5},
    "transferopt-lora": {"strategy": "lora", "epochs": 5},
    "transferopt-decoder": {"strategy": "partial", "strategy_options": {"k": 3}, "epochs": 5},
}
COMMAND_SYSTEMS: dict[str, dict[str, Any]] = {
    "linear-probe": {"strategy": "linear-probe"},
    "lora": {"strategy": "lora", "epochs": 10},
    "scratch": {"strategy": "full", "pretrained": False, "lr": 3e-4, "epochs": 30},
}


def sentences(data: Path, accent: str, condition: str) -> str:
    return str(data / "sentences" / accent / condition)


def record_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def save_record(name: str, record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    temporary = record_path(name).with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2))
    temporary.replace(record_path(name))


def zero_shot(data: Path) -> None:
    import transferopt

    for accent in ACCENTS:
        for condition in CONDITIONS:
            name = f"zero-shot_{accent}_{condition}"
            if record_path(name).exists():
                continue
            started = time.perf_counter()
            metrics = transferopt.pretrained("whisper-base").evaluate(sentences(data, accent, condition), "test")
            save_record(name, {"phase": "zero-shot", "system": "zero-shot", "accent": accent,
                               "condition": condition, "metrics": metrics, "seconds": time.perf_counter() - started,
                               "trainable_params": 0})  # fmt: skip
            write_table()


def transcribe(data: Path, utterances: int, seed: int) -> None:
    import transferopt

    for system, options in TRANSCRIBE_SYSTEMS.items():
        name = f"transcribe_{system}_seed{seed}"
        if record_path(name).exists():
            continue
        options = dict(options)
        strategy = options.pop("strategy")
        started = time.perf_counter()
        result = transferopt.fit(sentences(data, TARGET, "noisy"), "whisper-base", strategy, shots=utterances,
                                 seed=seed, **options)  # fmt: skip
        fit_s = time.perf_counter() - started
        tests = {f"{a}_{c}": result.evaluate(sentences(data, a, c), "test") for a in ACCENTS for c in CONDITIONS}
        save_record(name, {"phase": "transcribe", "system": system, "strategy": strategy, "seed": seed,
                           "utterances": utterances, "fit_seconds": fit_s, "val": result.metrics["val"],
                           "tests": tests, "trainable_params": result.metrics["trainable_params"],
                           "trained_groups": result.metrics["trained_groups"]})  # fmt: skip
        write_table()


def commands(data: Path, shots: int, seed: int) -> None:
    import transferopt

    folder = str(data / "commands" / TARGET / "noisy")
    for system, options in COMMAND_SYSTEMS.items():
        name = f"commands_{system}_seed{seed}"
        if record_path(name).exists():
            continue
        options = dict(options)
        strategy = options.pop("strategy")
        started = time.perf_counter()
        result = transferopt.fit(folder, "whisper-base", strategy, shots=shots, seed=seed, **options)
        save_record(name, {"phase": "commands", "system": system, "strategy": strategy, "seed": seed,
                           "shots": shots, "seconds": time.perf_counter() - started,
                           "test": {k: v for k, v in result.metrics["test"].items() if isinstance(v, int | float)},
                           "trainable_params": result.metrics["trainable_params"]})  # fmt: skip
        write_table()


def write_table() -> None:
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    lines = ["# Accent adaptation (whisper-base, espeak-ng voices)", "",
             "Generated by `benchmarks/speech/make_accent_data.py`; measured by "
             "`benchmarks/speech/accent_adaptation.py` on the 2-core CPU machine. WER/CER after Whisper's "
             "English normaliser; test voices are never heard in training.", ""]  # fmt: skip
    zero = [r for r in records if r["phase"] == "zero-shot"]
    if zero:
        lines += ["## Zero-shot whisper-base (the accent gap)", "", "| accent | condition | WER | CER | n | seconds |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for r in zero:
            m = r["metrics"]
            lines.append(f"| {r['accent']} | {r['condition']} | {m['wer']:.3f} | {m['cer']:.3f} | {m['n']} | "
                         f"{r['seconds']:.0f} |")  # fmt: skip
        lines.append("")
    adapted = [r for r in records if r["phase"] == "transcribe"]
    if adapted:
        sets = [f"{a}_{c}" for a in ACCENTS for c in CONDITIONS]
        lines += ["## Adapted on Scottish (noisy) training utterances: test WER", "",
                  "| system | strategy | utterances | " + " | ".join(sets) + " | fit s | trainable params |",
                  "|---" * (5 + len(sets)) + "|"]  # fmt: skip
        for r in adapted:
            wers = " | ".join(f"{r['tests'][s]['wer']:.3f}" for s in sets)
            lines.append(f"| {r['system']} | {r['strategy']} | {r['utterances']} | {wers} | {r['fit_seconds']:.0f} | "
                         f"{r['trainable_params']:,} |")  # fmt: skip
        lines.append("")
    spoken = [r for r in records if r["phase"] == "commands"]
    if spoken:
        lines += ["## Spoken commands, Scottish voices (noisy), Whisper encoder", "",
                  "| system | strategy | shots | test accuracy | seconds | trainable params |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for r in spoken:
            lines.append(f"| {r['system']} | {r['strategy']} | {r['shots']} | {r['test']['accuracy']:.3f} | "
                         f"{r['seconds']:.0f} | {r['trainable_params']:,} |")  # fmt: skip
        lines.append("")
    TABLE.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", default="zero-shot", choices=["zero-shot", "transcribe", "commands", "all"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="output folder of make_accent_data.py")
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if not args.table_only:
        if args.phase in ("zero-shot", "all"):
            zero_shot(args.data)
        if args.phase in ("transcribe", "all"):
            transcribe(args.data, args.utterances, args.seed)
        if args.phase in ("commands", "all"):
            commands(args.data, args.shots, args.seed)
    write_table()


if __name__ == "__main__":
    main()
