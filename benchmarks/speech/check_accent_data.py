"""Sanity check of a generated accent benchmark, short of listening to it.

1. Every clip passes transferopt's own reader (`read_audio`: decodes, not empty, not silent, under 30 s).
2. Durations make sense: commands last exactly 1 s; sentences take 0.15-1 s per word.
3. Every clip is mostly non-silent: the spoken part (frames within 30 dB of the loudest) covers a sane share.
4. Ear proxy (`--whisper N`): Whisper base (the packaged weights) transcribes N test sentences and N test
   commands per accent and condition; word error rate and command accuracy are printed per data set. An
   accent gap (en-us < en-gb-scotland) and a noise gap (clean < noisy) are what the benchmark is for.

Run: .venv/bin/python benchmarks/speech/check_accent_data.py [--out DIR] [--whisper 20]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path("~/.cache/transferopt/accent-bench")
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def active_share(samples: np.ndarray, rate: int = 16000, floor_db: float = 30.0) -> float:
    frame = int(0.02 * rate)
    energy = (samples[: len(samples) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1)
    return float((energy >= energy.max() * 10 ** (-floor_db / 10)).mean())


def check_files(out: Path) -> list[str]:
    """Problems found in every clip of `out`; an empty list when all is well."""
    from transferopt.data.audio import read_audio
    from transferopt.errors import DataError

    problems = []
    commands = sorted(out.glob("commands/*/*/*/*/*.wav"))
    for path in commands:
        try:
            samples = read_audio(path)
        except DataError as exc:
            problems.append(str(exc))
            continue
        if len(samples) != 16000:
            problems.append(f"{path}: {len(samples)} samples, expected 16000")
        # Noise fills the whole window of a noisy clip, so only a clean word must leave some quiet around it.
        highest = 0.95 if path.parts[-4] == "clean" else 1.0
        if not 0.1 <= active_share(samples) <= highest:
            problems.append(f"{path}: spoken share {active_share(samples):.2f}")
    sentences = 0
    for table in sorted(out.glob("sentences/*/*/*.csv")):
        for row in read_rows(table):
            sentences += 1
            path = table.parent / row["audio"]
            try:
                samples = read_audio(path)
            except DataError as exc:
                problems.append(str(exc))
                continue
            per_word = len(samples) / 16000 / len(row["text"].split())
            if not 0.15 <= per_word <= 1.0:
                problems.append(f"{path}: {per_word:.2f} s per word for {row['text']!r}")
            if not 0.3 <= active_share(samples) <= 1.0:
                problems.append(f"{path}: spoken share {active_share(samples):.2f}")
    print(f"checked {len(commands)} command clips and {sentences} sentence clips: {len(problems)} problem(s)")
    return problems


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def words(text: str) -> list[str]:
    """Lower case, no punctuation, single digits spelled out: Whisper writes "5." for "five"."""
    tokens = re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()
    return [DIGITS[int(t)] if t.isdigit() and len(t) == 1 else t for t in tokens]


def transcribe(whisper, paths: list[Path]) -> list[str]:
    import torch

    from transferopt.data.audio import read_audio

    model, processor = whisper
    heard = []
    for start in range(0, len(paths), 8):
        audio = [read_audio(p) for p in paths[start : start + 8]]
        features = processor(audio, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(features.input_features, language="en", task="transcribe", max_new_tokens=80)
        heard += processor.batch_decode(ids, skip_special_tokens=True)
    return heard


def ear_proxy(out: Path, count: int) -> None:
    import jiwer
    import torch
    import transformers

    from transferopt.models.whisper_ct2 import load_packaged_whisper_base

    torch.set_num_threads(2)
    transformers.logging.set_verbosity_error()  # generation-config chatter, once per batch
    whisper = load_packaged_whisper_base()
    print(f"{'data set':34} {'sentence WER':>12} {'command acc':>11}   (Whisper base, {count} test clips each)")
    for table in sorted(out.glob("sentences/*/*/test.csv")):
        accent, condition = table.parent.parent.name, table.parent.name
        rows = read_rows(table)[:count]
        heard = transcribe(whisper, [table.parent / r["audio"] for r in rows])
        wer = jiwer.wer([" ".join(words(r["text"])) for r in rows], [" ".join(words(h)) or "-" for h in heard])
        clips = read_rows(out / "commands" / accent / condition / "clips.csv")
        # Spread over the vocabulary: the first test clip of `count` different words.
        tests = list({r["word"]: r for r in clips if r["audio"].startswith("test/")}.values())[:count]
        said = transcribe(whisper, [out / "commands" / accent / condition / r["audio"] for r in tests])
        accuracy = np.mean([r["word"] in words(s) for r, s in zip(tests, said, strict=True)])
        print(f"{accent + '/' + condition:34} {wer:12.2f} {accuracy:11.2f}")
        print(f"    e.g. said {rows[0]['text']!r}\n         heard {heard[0].strip()!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--whisper", type=int, default=0, help="test clips per data set to transcribe (0: skip)")
    args = parser.parse_args()
    out = args.out.expanduser()
    problems = check_files(out)
    for problem in problems[:20]:
        print("  ", problem)
    if args.whisper:
        ear_proxy(out, args.whisper)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
