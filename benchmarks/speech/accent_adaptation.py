"""Accent adaptation with whisper-base on the espeak-ng benchmark (generate it first: make_accent_data.py).

Phases (each writes one JSON record per run under benchmarks/results/speech/ and rebuilds speech.md):
- zero-shot: whisper-base as it is, WER/CER on every accent x condition test set (the accent gap);
- transcribe: adapt on 100 Scottish training utterances (noisy condition), then score every test set:
  transferopt's `optimize` (20-minute budget) and a naive full fine-tune (lr 1e-5, the Whisper fine-tuning
  blog's rate) given the same data and the same wall-clock time;
- other-accents: transferopt's Scottish-adapted model (--seed S) scored on en-gb-x-rp and en-029 voices;
- commands: spoken commands, Scottish voices (noisy), 10 per word: `optimize` on the Whisper encoder versus
  the same encoder trained from scratch on the same 10 per word (accuracy per noise level is kept too);
  --background-noise gives `optimize` recordings of the background (unlabelled; babble of the training
  talkers plus pink or brown noise) in a `_background_noise_` folder, to mix into training clips;
- commands-ear: whisper-base untrained transcribes every test command of --condition (right when the word is
  in what it writes): how intelligible the clips are to the pretrained model, per noise level.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/speech/accent_adaptation.py --phase zero-shot
Records are kept and skipped when present, so an interrupted run resumes; delete one to measure it again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from check_accent_data import read_rows, words  # this folder: the script's own path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "speech"
TABLE = ROOT / "benchmarks" / "results" / "speech.md"
DEFAULT_DATA = Path("~/.cache/transferopt/accent-bench").expanduser()
ACCENTS = ("en-us", "en-gb-scotland")
CONDITIONS = ("clean", "noisy")
TARGET = "en-gb-scotland"
#: The test sets every adapted model is scored on (accent_condition).
ADAPTED_SETS = [f"{a}_{c}" for a in ACCENTS for c in CONDITIONS]
#: Accents never heard in training: does adapting to Scottish carry over, or cost them?
OTHER_ACCENTS = ("en-gb-x-rp", "en-029")
OTHER_SETS = [f"{a}_{c}" for a in OTHER_ACCENTS for c in CONDITIONS]

#: The naive recipe users copy for Whisper (Hugging Face's fine-tuning blog: lr 1e-5, everything trains),
#: given the same data and the same wall-clock time as transferopt's search.
NAIVE = {"strategy": "full", "lr": 1e-5}
#: From random weights, accuracy sits at chance for several epochs before it climbs: a fixed 30 epochs
#: (no early stop; the best validation epoch is kept), as the bench's scratch baseline does.
SCRATCH_COMMANDS = {"strategy": "full", "pretrained": False, "lr": 3e-4, "epochs": 30, "patience": 30}
#: --background-noise: recordings of the background a team's users speak in, which it can make without any
#: labelling. Made like the noisy clips' noise (babble of the training talkers plus pink or brown noise),
#: never from the validation or test talkers.
NOISE_RECORDINGS = 4
NOISE_RECORDING_SECONDS = 30


def sentences(data: Path, accent: str, condition: str) -> str:
    return str(data / "sentences" / accent / condition)


def record_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def save_record(name: str, record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    temporary = record_path(name).with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2))
    temporary.replace(record_path(name))


def test_subset(folder: str, limit: int, scratch: Path) -> str:
    """The first `limit` test utterances of a sentence set (every system is scored on the same ones)."""
    import pandas as pd

    source = Path(folder)
    target = scratch / source.relative_to(source.parents[1])
    target.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", 2), ("test", limit)):
        table = pd.read_csv(source / f"{split}.csv", dtype=str, keep_default_na=False).head(rows)
        table["audio"] = [str(source / a) for a in table["audio"]]
        table.to_csv(target / f"{split}.csv", index=False)
    return str(target)


def test_sets(data: Path, limit: int, scratch: Path, accents: tuple[str, ...] = ACCENTS) -> dict[str, str]:
    return {f"{a}_{c}": test_subset(sentences(data, a, c), limit, scratch) for a in accents for c in CONDITIONS}


def zero_shot(data: Path, limit: int, scratch: Path, accents: tuple[str, ...] = ACCENTS) -> None:
    import transferopt

    model = None
    for name, folder in test_sets(data, limit, scratch, accents).items():
        key = f"zero-shot_{name}"
        if record_path(key).exists():
            continue
        model = model or transferopt.pretrained("whisper-base")
        started = time.perf_counter()
        metrics = model.evaluate(folder, "test")
        save_record(key, {"phase": "zero-shot", "system": "zero-shot", "set": name, "metrics": metrics,
                          "seconds": time.perf_counter() - started, "trainable_params": 0})  # fmt: skip
        write_table()


def stop_after(seconds: float):
    """An epoch hook ending training once `seconds` have passed (the naive recipe gets transferopt's time)."""
    from transferopt.engine import StopTraining

    started = time.perf_counter()

    def hook(record: dict) -> None:
        if time.perf_counter() - started >= seconds:
            raise StopTraining

    return hook


def transcribe(data: Path, utterances: int, seed: int, budget: str, limit: int, scratch: Path) -> None:
    import transferopt

    train = sentences(data, TARGET, "noisy")
    sets = test_sets(data, limit, scratch)
    key = f"transcribe_transferopt_seed{seed}"
    if not record_path(key).exists():
        out = scratch / f"optimize-transcribe-{seed}"
        started = time.perf_counter()
        summary = transferopt.optimize(train, ["whisper-base"], out=out, budget=budget, shots=utterances, seed=seed,
                                       resume=(out / "optimize.json").exists())  # fmt: skip
        fit_s = time.perf_counter() - started
        result = transferopt.load(out)
        save_record(key, {"phase": "transcribe", "system": "transferopt", "seed": seed, "utterances": utterances,
                          "budget": budget, "fit_seconds": fit_s, "strategy": result.config.strategy,
                          "trials": [(r["strategy"], r["val_wer"], r["state"]) for r in summary["leaderboard"]],
                          "val": result.metrics["val"], "tests": evaluate_all(result, sets),
                          "trainable_params": result.metrics["trainable_params"],
                          "trained_groups": result.metrics["trained_groups"]})  # fmt: skip
        write_table()
    key = f"transcribe_naive-fine-tune_seed{seed}"
    if not record_path(key).exists():
        seconds = json.loads(record_path(f"transcribe_transferopt_seed{seed}").read_text())["fit_seconds"]
        options = dict(NAIVE)
        strategy = options.pop("strategy")
        started = time.perf_counter()
        # As many epochs as fit in transferopt's time; no early stop, the best validation epoch is kept.
        result = transferopt.fit(train, "whisper-base", strategy, shots=utterances, seed=seed, epochs=50,
                                 patience=50, hooks=[stop_after(seconds)], **options)  # fmt: skip
        save_record(key, {"phase": "transcribe", "system": "naive-fine-tune", "seed": seed,
                          "utterances": utterances, "fit_seconds": time.perf_counter() - started,
                          "strategy": strategy, "epochs_run": len(result.history), "val": result.metrics["val"],
                          "tests": evaluate_all(result, sets), "trainable_params": result.metrics["trainable_params"],
                          "trained_groups": result.metrics["trained_groups"]})  # fmt: skip
        write_table()


def other_accents(data: Path, limit: int, seed: int, scratch: Path) -> None:
    """Score transferopt's adapted model (seed `seed`) on the accents it never heard; kept in its record."""
    import transferopt

    key = f"transcribe_transferopt_seed{seed}"
    if not record_path(key).exists():
        raise SystemExit(f"no {key} record: run --phase transcribe --seed {seed} first")
    record = json.loads(record_path(key).read_text())
    missing = {n: f for n, f in test_sets(data, limit, scratch, OTHER_ACCENTS).items() if n not in record["tests"]}
    if missing:
        record["tests"].update(evaluate_all(transferopt.load(scratch / f"optimize-transcribe-{seed}"), missing))
        save_record(key, record)


def other_accents_table(adapted: list[dict], zero_wer: dict[str, float]) -> list[str]:
    runs = [r for r in adapted if r["system"] == "transferopt" and all(s in r["tests"] for s in OTHER_SETS)]
    if not runs:
        return []
    lines = ["## The Scottish-adapted model on accents it never heard (test WER)", "",
             "transferopt's adapted models above, scored on en-gb-x-rp and en-029 voices (`--phase other-accents`).",
             "", "| test set | zero-shot | " + " | ".join(f"transferopt seed {r['seed']}" for r in runs) + " | mean |",
             "|---" * (3 + len(runs)) + "|"]  # fmt: skip
    for name in OTHER_SETS:
        wers = [r["tests"][name]["wer"] for r in runs]
        mean = sum(wers) / len(wers)
        cells = " | ".join(f"{w:.3f}" for w in wers)
        lines.append(f"| {name} | {zero_wer.get(name, float('nan')):.3f} | {cells} | "
                     f"{mean:.3f}{relative(mean, zero_wer.get(name))} |")  # fmt: skip
    return [*lines, ""]


def evaluate_all(result, sets: dict[str, str]) -> dict[str, dict]:
    return {name: result.evaluate(folder, "test") for name, folder in sets.items()}


def commands(
    data: Path, shots: int, seed: int, budget: str, scratch: Path, condition: str, baseline: bool, noise: bool
) -> None:
    import transferopt

    folder = str(data / "commands" / TARGET / condition)
    system = "transferopt-background-noise" if noise else "transferopt"
    key = f"commands_{condition}_{system}_seed{seed}"
    if not record_path(key).exists():
        out = scratch / f"optimize-commands-{condition}{'-background-noise' if noise else ''}-{seed}"
        train_on = str(with_background_noise(data, condition, scratch)) if noise else folder
        started = time.perf_counter()
        transferopt.optimize(train_on, ["whisper-base"], out=out, budget=budget, shots=shots, seed=seed,
                             resume=(out / "optimize.json").exists())  # fmt: skip
        result = transferopt.load(out)
        seconds = time.perf_counter() - started
        save_command_record(key, system, result, shots, seed, seconds, condition, by_snr(result, Path(folder)))
    key = f"commands_{condition}_scratch_seed{seed}"
    if baseline and not record_path(key).exists():
        options = dict(SCRATCH_COMMANDS)
        strategy = options.pop("strategy")
        started = time.perf_counter()
        result = transferopt.fit(folder, "whisper-base", strategy, shots=shots, seed=seed, **options)
        seconds = time.perf_counter() - started
        save_command_record(key, "scratch", result, shots, seed, seconds, condition, by_snr(result, Path(folder)))


def with_background_noise(data: Path, condition: str, scratch: Path) -> Path:
    """The commands folder (its split folders linked, not copied) with `_background_noise_` recordings
    beside them, which transferopt's augmented training mixes into training clips."""
    from make_accent_data import SAMPLE_RATE, background_noise, peak_normalise, write_wav

    source = data / "commands" / TARGET / condition
    view = scratch / f"commands-{condition}-background-noise"
    for split in ("train", "val", "test"):
        link = view / split
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source / split, target_is_directory=True)
    talkers = sorted((data / "noise" / "babble" / "train").glob("*.wav"))
    bank = [soundfile_read(path) for path in talkers]
    rng = np.random.default_rng(0)
    length = NOISE_RECORDING_SECONDS * SAMPLE_RATE
    for index in range(NOISE_RECORDINGS):
        noise = background_noise(length, bank, rng)
        write_wav(view / "_background_noise_" / f"{index}.wav", peak_normalise(noise))
    return view


def soundfile_read(path: Path) -> np.ndarray:
    import soundfile

    return soundfile.read(str(path), dtype="float64")[0]


def save_command_record(
    key: str, system: str, result, shots: int, seed: int, seconds: float, condition: str, snr: dict[str, float]
) -> None:
    save_record(key, {"phase": "commands", "system": system, "strategy": result.config.strategy, "seed": seed,
                      "condition": condition,
                      "shots": shots, "seconds": seconds,
                      "test": {k: v for k, v in result.metrics["test"].items() if isinstance(v, int | float)},
                      "test_by_snr": snr,
                      "trainable_params": result.metrics["trainable_params"]})  # fmt: skip
    write_table()


def test_clips(folder: Path) -> list[dict[str, str]]:
    return [row for row in read_rows(folder / "clips.csv") if row["audio"].startswith("test/")]


def accuracy_per_snr(rows: list[dict[str, str]], right: list[bool]) -> dict[str, float]:
    """Accuracy at each noise level of the test clips (their `snr_db`; none for clean clips), loudest
    noise first: where the noise, not the accent, costs accuracy."""
    groups: dict[str, list[bool]] = {}
    for row, correct in zip(rows, right, strict=True):
        groups.setdefault(row["snr_db"], []).append(correct)
    order = sorted(groups, key=lambda snr: float(snr) if snr else float("inf"))
    return {(f"{snr} dB" if snr else "no noise"): float(np.mean(groups[snr])) for snr in order}


def by_snr(result, folder: Path) -> dict[str, float]:
    rows = test_clips(folder)
    probabilities = result.predict_proba([folder / row["audio"] for row in rows])
    said = [result.classes[int(i)] for i in probabilities.argmax(axis=1)]
    return accuracy_per_snr(rows, [word == row["word"] for word, row in zip(said, rows, strict=True)])


def commands_ear(data: Path, condition: str) -> None:
    """How well whisper-base itself hears the test commands, untrained: it transcribes each clip and
    is right when the word is among what it wrote (digits spelled out). An ear proxy for the data, not a
    classifier: it may write any word, so it is not held to the 30 commands."""
    import transferopt

    key = f"commands_{condition}_whisper-ear"
    if record_path(key).exists():
        return
    folder = data / "commands" / TARGET / condition
    rows = test_clips(folder)
    started = time.perf_counter()
    heard = transferopt.pretrained("whisper-base").transcribe([folder / row["audio"] for row in rows])
    right = [row["word"] in words(text) for row, text in zip(rows, heard, strict=True)]
    misheard = [
        {"word": row["word"], "snr_db": row["snr_db"], "heard": text.strip()}
        for row, text, correct in zip(rows, heard, right, strict=True)
        if not correct
    ]
    save_record(key, {"phase": "commands", "system": "whisper-base zero-shot, transcribing (the ear)",
                      "strategy": "none", "seed": 0, "condition": condition, "shots": 0,
                      "seconds": time.perf_counter() - started,
                      "test": {"accuracy": float(np.mean(right)), "n": len(rows)},
                      "test_by_snr": accuracy_per_snr(rows, right), "trainable_params": 0,
                      "misheard": misheard[:20]})  # fmt: skip


def write_table() -> None:
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    lines = ["# Accent adaptation (whisper-base, espeak-ng voices)", "",
             "Generated by `benchmarks/speech/make_accent_data.py`; measured by "
             "`benchmarks/speech/accent_adaptation.py` on the 2-core CPU machine. WER/CER after Whisper's "
             "English normaliser; test voices are never heard in training.", ""]  # fmt: skip
    zero = [r for r in records if r["phase"] == "zero-shot"]
    if zero:
        lines += ["## Zero-shot whisper-base (the accent gap)", "", "| test set | WER | CER | n | seconds |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in zero:
            m = r["metrics"]
            lines.append(f"| {r['set']} | {m['wer']:.3f} | {m['cer']:.3f} | {m['n']} | {r['seconds']:.0f} |")
        lines.append("")
    adapted = sorted((r for r in records if r["phase"] == "transcribe"), key=adapted_order)
    if adapted:
        sets = ADAPTED_SETS
        zero_wer = {r["set"]: r["metrics"]["wer"] for r in zero}
        lines += ["## Adapted on Scottish (noisy) training utterances: test WER (change relative to zero-shot)", "",
                  "transferopt: `optimize` with a 20-minute budget; it opens with full fine-tuning at 1e-5 in "
                  "batches of 8 with augmentation (speed perturbation and SpecAugment masks), then the same without, "
                  "then LoRA and the decoder alone, "
                  "and keeps the best on validation WER (50 held-out noisy Scottish utterances). naive-fine-tune: "
                  "everything trains at 1e-5 (the Whisper fine-tuning blog's rate) with `fit`'s other defaults "
                  "(batches of 32), for as many epochs as fit in transferopt's time (checked at epoch ends, so it "
                  "may run a little longer), no early stop, the best validation epoch kept. Rows with a note in "
                  "brackets are earlier versions of transferopt's search (and the naive run timed against one), "
                  "kept for the record.",
                  "", "| system | seed | strategy | utterances | " + " | ".join(sets) + " | fit s | trainable params |",
                  "|---" * (6 + len(sets)) + "|"]  # fmt: skip
        for r in adapted:
            wers = " | ".join(
                f"{r['tests'][s]['wer']:.3f}{relative(r['tests'][s]['wer'], zero_wer.get(s))}" for s in sets
            )
            lines.append(f"| {r['system']} | {r['seed']} | {r['strategy']} | {r['utterances']} | {wers} | "
                         f"{r['fit_seconds']:.0f} | {r['trainable_params']:,} |")  # fmt: skip
        lines.append("")
        means = seed_means(adapted, sets)
        if means:
            header = "| system | seeds | " + " | ".join(sets) + " | fit s |"
            lines += ["Mean test WER over seeds (current systems):", "", header, "|---" * (3 + len(sets)) + "|"]
            for system, (seeds, wer, seconds) in means.items():
                cells = " | ".join(f"{wer[s]:.3f}{relative(wer[s], zero_wer.get(s))}" for s in sets)
                lines.append(f"| {system} | {seeds} | {cells} | {seconds:.0f} |")
            lines.append("")
        lines += other_accents_table(adapted, zero_wer)
    spoken = sorted((r for r in records if r["phase"] == "commands"), key=commands_order)
    if spoken:
        lines += ["## Spoken commands, Scottish voices, Whisper encoder", "",
                  "Noisy clips mix in babble at 5, 10 or 20 dB SNR (a third each); accuracy per level where "
                  "measured. The ear row is whisper-base untrained, transcribing each test clip (right when the "
                  "word is in what it wrote): how intelligible the clips are to the pretrained model. "
                  "transferopt-background-noise is the same search given, besides the 10 labelled clips per word, "
                  "two minutes of unlabelled recordings of the background (babble of the training talkers plus "
                  "pink or brown noise, never the validation or test talkers) to mix into training clips.", "",
                  "| condition | system | seed | strategy | shots | test accuracy | by SNR | seconds | "
                  "trainable params |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in spoken:
            snr = ", ".join(f"{level}: {value:.2f}" for level, value in r.get("test_by_snr", {}).items()) or "—"
            lines.append(f"| {r.get('condition', 'noisy')} | {r['system']} | {r.get('seed', '—')} | "
                         f"{r['strategy']} | {r['shots']} | {r['test']['accuracy']:.3f} | {snr} | {r['seconds']:.0f} | "
                         f"{r['trainable_params']:,} |")  # fmt: skip
        lines.append("")
        lines += commands_means_table(spoken)
    if adapted:
        lines += ["![test WER per test set](speech_wer.png)", ""]
    if spoken:
        lines += ["![spoken-command test accuracy](speech_commands.png)", ""]
    TABLE.write_text("\n".join(lines))
    write_plot(records)
    write_commands_plot(spoken)


#: The spoken-command systems of the current search and baselines; other names are earlier versions.
CURRENT_COMMAND_SYSTEMS = ("transferopt", "transferopt-background-noise", "scratch")


def commands_order(record: dict) -> tuple:
    """Per condition: current systems by seed, then the ear and the earlier versions kept for the record."""
    earlier, rank = current_rank(record["system"], CURRENT_COMMAND_SYSTEMS)
    return (record.get("condition", "noisy"), earlier, rank, record["system"], record.get("seed", 0))


def commands_means_table(spoken: list[dict]) -> list[str]:
    """Mean (and range) of test accuracy over seeds per condition for the current systems: one draw of 10
    clips per word is a noisy estimate, so the mean over seeds is what the issue's 95% line is held to."""
    rows = []
    for condition in CONDITIONS:
        for system in CURRENT_COMMAND_SYSTEMS:
            runs = [r for r in spoken if r["system"] == system and r.get("condition", "noisy") == condition]
            if not runs:
                continue
            accuracy = [r["test"]["accuracy"] for r in runs]
            levels = list(runs[0].get("test_by_snr", {}))
            snr = ", ".join(
                f"{level}: {np.mean([r['test_by_snr'][level] for r in runs]):.2f}"
                for level in levels
                if all(level in r.get("test_by_snr", {}) for r in runs)
            )
            seeds = ", ".join(str(r.get("seed", 0)) for r in runs)
            seconds = np.mean([r["seconds"] for r in runs])
            rows.append(f"| {condition} | {system} | {seeds} | {np.mean(accuracy):.3f} ({min(accuracy):.3f}-"
                        f"{max(accuracy):.3f}) | {snr or '—'} | {seconds:.0f} |")  # fmt: skip
    if not rows:
        return []
    return ["Mean test accuracy over seeds (current systems; range over seeds in brackets):", "",
            "| condition | system | seeds | test accuracy | by SNR | seconds |", "|---|---|---|---|---|---|",
            *rows, ""]  # fmt: skip


def write_commands_plot(spoken: list[dict]) -> None:
    """Spoken-command test accuracy per condition, transferopt beside training from scratch, with the
    issue's 95% line (PNG and SVG beside the table); earlier versions of the search stay in the table only."""
    from transferopt.reporting.plots import pyplot

    if not spoken:
        return
    conditions = [c for c in CONDITIONS if any(r.get("condition", "noisy") == c for r in spoken)]
    systems = [name for name in CURRENT_COMMAND_SYSTEMS if any(r["system"] == name for r in spoken)]
    if not systems:
        return
    # The plotted systems' shots only: the ear row (0 shots) is in the table, not the plot.
    shots = "/".join(sorted({str(r["shots"]) for r in spoken if r["system"] in systems}))
    series = []
    for system in systems:
        values = []
        for condition in conditions:
            runs = [
                r["test"]["accuracy"]
                for r in spoken
                if r["system"] == system and r.get("condition", "noisy") == condition
            ]
            values.append(sum(runs) / len(runs) if runs else float("nan"))
        series.append((system, values))
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    grouped_bars(axis, conditions, series, value_labels=True)
    axis.axhline(0.95, color="grey", linestyle="--", linewidth=1, label="target 0.95")
    title = f"30 spoken commands, {shots} per word, unseen Scottish voices"
    axis.set(ylabel="test accuracy", ylim=(0, 1.22), title=title)
    axis.legend(fontsize=8, loc="upper center", ncols=3)
    save_beside_table(plt, figure, "speech_commands")


def grouped_bars(axis, groups: list[str], series: list[tuple[str, list[float]]], value_labels: bool = False) -> None:
    """One bar per series within each group, groups side by side along the x axis."""
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        bars = axis.bar([x + i * width for x in range(len(groups))], values, width, label=label)
        if value_labels:
            axis.bar_label(bars, fmt="%.3f", fontsize=8)
    axis.set_xticks([x + 0.4 - width / 2 for x in range(len(groups))], groups)


def save_beside_table(plt, figure, stem: str) -> None:
    figure.tight_layout()
    for suffix in (".png", ".svg"):
        figure.savefig(TABLE.with_name(f"{stem}{suffix}"), dpi=100)
    plt.close(figure)


def write_plot(records: list[dict]) -> None:
    """Test WER per test set for zero-shot and each adapted system (PNG and SVG beside the table)."""
    from transferopt.reporting.plots import pyplot

    zero = {r["set"]: r["metrics"]["wer"] for r in records if r["phase"] == "zero-shot"}
    adapted = [r for r in records if r["phase"] == "transcribe"]
    if not zero or not adapted:
        return
    sets = ADAPTED_SETS
    series = [("zero-shot", [zero.get(s, float("nan")) for s in sets])]
    for system, (seeds, wer, _) in seed_means(adapted, sets).items():
        series.append((f"{system} (mean of {seeds} seed{'s' if seeds > 1 else ''})", [wer[s] for s in sets]))
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 4))
    grouped_bars(axis, [s.replace("_", "\n") for s in sets], series)
    axis.set(ylabel="test WER (lower is better)", title="whisper-base adapted on 100 Scottish (noisy) utterances")
    axis.legend(fontsize=8)
    save_beside_table(plt, figure, "speech_wer")


CURRENT_SYSTEMS = ("transferopt", "naive-fine-tune")


def current_rank(system: str, current: tuple[str, ...]) -> tuple[bool, int]:
    """Sort key of a system: (is an earlier version, place among the current systems)."""
    return (system not in current, current.index(system) if system in current else len(current))


def adapted_order(record: dict) -> tuple:
    """Current systems first (by seed), then the earlier versions kept for the record."""
    earlier, rank = current_rank(record["system"], CURRENT_SYSTEMS)
    return (earlier, 0 if earlier else record["seed"], rank, record["system"])


def seed_means(adapted: list[dict], sets: list[str]) -> dict[str, tuple[int, dict[str, float], float]]:
    """Per current system: number of seeds, mean WER per test set and mean fit time."""
    means = {}
    for system in CURRENT_SYSTEMS:
        runs = [r for r in adapted if r["system"] == system]
        if runs:
            wer = {s: sum(r["tests"][s]["wer"] for r in runs) / len(runs) for s in sets}
            means[system] = (len(runs), wer, sum(r["fit_seconds"] for r in runs) / len(runs))
    return means


def relative(value: float, reference: float | None) -> str:
    return f" ({(value - reference) / reference:+.0%})" if reference else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    phases = ["zero-shot", "transcribe", "other-accents", "commands", "commands-ear", "all"]
    parser.add_argument("--phase", default="zero-shot", choices=phases)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="output folder of make_accent_data.py")
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", default="20m", help="transferopt's search budget (the issue's 20 minutes)")
    parser.add_argument("--test-limit", type=int, default=100, help="test utterances scored per set")
    parser.add_argument("--scratch", type=Path, default=Path("~/.cache/transferopt/accent-runs").expanduser())
    parser.add_argument("--condition", default="noisy", choices=CONDITIONS, help="commands: clean or noisy voices")
    parser.add_argument("--no-baseline", action="store_true", help="commands: skip training from scratch")
    parser.add_argument("--background-noise", action="store_true",
                        help="commands: transferopt gets background-noise recordings to augment with")  # fmt: skip
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--accents", default=",".join(ACCENTS),
                        help="zero-shot: accents to score (en-gb-x-rp and en-029 widen the table)")  # fmt: skip
    args = parser.parse_args()
    if not args.table_only:
        if args.phase in ("zero-shot", "all"):
            zero_shot(args.data, args.test_limit, args.scratch, tuple(args.accents.split(",")))
        if args.phase in ("transcribe", "all"):
            transcribe(args.data, args.utterances, args.seed, args.budget, args.test_limit, args.scratch)
        if args.phase in ("other-accents", "all"):
            other_accents(args.data, args.test_limit, args.seed, args.scratch)
        if args.phase in ("commands", "all"):
            commands(args.data, args.shots, args.seed, args.budget, args.scratch, args.condition,
                     not args.no_baseline, args.background_noise)  # fmt: skip
        if args.phase in ("commands-ear", "all"):
            commands_ear(args.data, args.condition)
    write_table()


if __name__ == "__main__":
    main()
