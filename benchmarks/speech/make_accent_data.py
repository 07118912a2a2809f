"""Synthesise an accent-adaptation speech benchmark with espeak-ng: spoken commands (audio classification)
and spoken banking77 sentences (speech recognition), per accent and condition (clean / noisy).

Layouts (read by transferopt's data readers):

    <out>/commands/<accent>/<condition>/{train,val,test}/<word>/<speaker>_nohash_<n>.wav
    <out>/commands/<accent>/<condition>/clips.csv         (one row per clip: audio,word,speaker,rate,pitch,snr_db)
    <out>/sentences/<accent>/<condition>/{train,val,test}.csv   (audio,text,speaker,rate,pitch,snr_db)
    <out>/sentences/<accent>/<condition>/wav/{train,val,test}/<n>.wav
    <out>/noise/babble/{train,val,test}/<n>.wav           (the babble talkers mixed into noisy clips)
    <out>/manifest.json

Every clip is planned before anything is synthesised, from a random generator keyed by the seed and the
clip's place (task, condition, split, index), never by the accent: every accent gets the same words,
sentences, speakers, rates, pitches, noise and SNRs, so the voice is the only difference between accents.
Clips that already exist are skipped and each file is written atomically, so an interrupted run resumes
and a re-run of the same command changes nothing. See README.md next to this file.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path("~/.cache/transferopt/accent-bench")
DEFAULT_DATA_ROOT = "../shared/datasets"
#: Bump when a change to this script changes the bytes it writes; a cache made by another version is refused.
FORMAT_VERSION = 1

SAMPLE_RATE = 16000
ESPEAK_RATE = 22050
PEAK = 0.9
#: Speech-Commands clips last one second; a (trimmed) word is placed at a random offset inside that window.
COMMAND_SECONDS = 1.0
#: Silence kept before and after a sentence, so noise is heard before the speech starts.
SENTENCE_PAD_SECONDS = (0.1, 0.4)
#: Modest sentences keep clips far below Whisper's 30-second window.
SENTENCE_WORDS = (4, 20)

ACCENTS = ("en-us", "en-gb-scotland", "en-gb-x-rp", "en-029")
SPLITS = ("train", "val", "test")
TASKS = ("commands", "sentences")
#: Speech Commands v2's ten core commands, ten digits and ten of its auxiliary words.
WORDS = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "tree", "wow", "learn", "follow",
)  # fmt: skip
#: Splits are by espeak-ng voice variant, so no test or validation voice is ever heard in training.
SPEAKERS = {
    "train": ("m1", "m2", "m3", "m4", "f1", "f2", "f3"),
    "val": ("m5", "f4"),
    "test": ("m6", "m7", "f5"),
}
#: Babble talkers: accents and variants outside the benchmark's, so noise never carries a benchmark voice.
BABBLE_ACCENTS = ("en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
BABBLE_VARIANTS = (
    "m8", "Andy", "adam", "david", "edward", "john", "Annie", "Alicia", "belinda", "linda", "steph", "aunty",
)  # fmt: skip
BABBLE_PER_SPLIT = 12
BABBLE_TALKERS = (3, 5)
#: Share of the noise power that is babble; the rest is pink or brown noise.
BABBLE_SHARE = (0.3, 0.7)


@dataclass(frozen=True)
class Condition:
    rate: tuple[int, int]  # espeak-ng -s, words per minute (175 is espeak's normal)
    pitch: tuple[int, int]  # espeak-ng -p, 0-99 (50 is normal)
    snr_db: tuple[int, ...] = ()  # empty: no noise


CONDITIONS = {
    "clean": Condition(rate=(150, 190), pitch=(40, 60)),
    "noisy": Condition(rate=(140, 240), pitch=(30, 70), snr_db=(5, 10, 20)),
}


@dataclass(frozen=True)
class Clip:
    """One clip to synthesise, independent of the accent; `path` is relative to the accent/condition folder."""

    task: str
    condition: str
    split: str
    path: str
    text: str
    speaker: str
    rate: int
    pitch: int
    snr_db: int | None
    seed: int  # seeds the placement and the noise, so they are the same for every accent


@dataclass(frozen=True)
class Job:
    """A clip (or a babble utterance) in one voice, written to `target`."""

    target: Path
    voice: str
    clip: Clip


@dataclass(frozen=True)
class Options:
    tasks: tuple[str, ...]
    accents: tuple[str, ...]
    conditions: tuple[str, ...]
    commands_per_word_train: int
    commands_per_word_eval: int
    sentences_train: int
    sentences_val: int
    sentences_test: int
    seed: int
    out: Path
    data_root: Path
    jobs: int
    quiet: bool

    def sizes(self, task: str) -> dict[str, int]:
        if task == "commands":
            evaluation = self.commands_per_word_eval
            return {"train": self.commands_per_word_train, "val": evaluation, "test": evaluation}
        return {"train": self.sentences_train, "val": self.sentences_val, "test": self.sentences_test}


# ---------------------------------------------------------------------------------------------------- random


def key_seed(seed: int, *key: object) -> int:
    """A stable 64-bit seed for a clip's key; Python's hash() is salted per process, so it cannot serve."""
    digest = hashlib.sha256(json.dumps([seed, *key]).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def key_rng(seed: int, *key: object) -> np.random.Generator:
    return np.random.default_rng(key_seed(seed, *key))


# ---------------------------------------------------------------------------------------------------- text


def normalise_text(text: str) -> str:
    """One line, single spaces: what espeak-ng is given is exactly what the transcript says."""
    return re.sub(r"\s+", " ", text).strip()


def read_sentences(path: Path) -> list[str]:
    """banking77's `text` column: empty, too short or too long texts dropped, duplicates kept once, file order."""
    if not path.is_file():
        raise SystemExit(f"missing {path}: pass --data-root pointing at the folder that holds banking77/")
    low, high = SENTENCE_WORDS
    seen: dict[str, None] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = normalise_text(row.get("text") or "")
            if text and low <= len(text.split()) <= high:
                seen.setdefault(text, None)
    return list(seen)


def partition_sentences(sentences: list[str], seed: int, name: str, roles: Sequence[str]) -> dict[str, list[str]]:
    """Shuffle once, then deal positions to roles in turn. Each role's list is fixed by the seed alone, so
    asking for more sentences of one split only appends to it and never moves a sentence between splits."""
    order = key_rng(seed, "sentences", name).permutation(len(sentences))
    dealt: dict[str, list[str]] = {role: [] for role in roles}
    for position, index in enumerate(order):
        dealt[roles[position % len(roles)]].append(sentences[index])
    return dealt


def sentence_pools(data_root: Path, seed: int) -> dict[str, list[str]]:
    """train/val/test sentence pools plus disjoint babble texts per split (train.csv serves train and val)."""
    folder = data_root / "banking77"
    train = partition_sentences(
        read_sentences(folder / "train.csv"), seed, "train.csv", ("val", "train", "train", "train", "babble")
    )
    test = partition_sentences(read_sentences(folder / "test.csv"), seed, "test.csv", ("test",) * 4 + ("babble",))
    babble_train, babble_eval = train["babble"][0::2], train["babble"][1::2]
    return {
        "train": train["train"],
        "val": train["val"],
        "test": test["test"],
        "babble-train": babble_train,
        "babble-val": babble_eval,
        "babble-test": test["babble"],
    }


def take(pool: list[str], count: int, what: str) -> list[str]:
    if count > len(pool):
        raise SystemExit(f"asked for {count} {what} but only {len(pool)} qualify")
    return pool[:count]


# ---------------------------------------------------------------------------------------------------- plan


def draw_voice_settings(rng: np.random.Generator, condition: Condition) -> tuple[int, int, int | None]:
    rate = int(rng.integers(condition.rate[0], condition.rate[1] + 1))
    pitch = int(rng.integers(condition.pitch[0], condition.pitch[1] + 1))
    snr = int(rng.choice(condition.snr_db)) if condition.snr_db else None
    return rate, pitch, snr


def plan_commands(options: Options, condition: str) -> list[Clip]:
    clips = []
    for split, count in options.sizes("commands").items():
        speakers = SPEAKERS[split]
        for word_index, word in enumerate(WORDS):
            for index in range(count):
                # Round robin, offset per word, so every voice says every word about equally often.
                speaker = speakers[(word_index + index) % len(speakers)]
                key = ("commands", condition, split, word, index)
                rate, pitch, snr = draw_voice_settings(key_rng(options.seed, *key), CONDITIONS[condition])
                path = f"{split}/{word}/{speaker}_nohash_{index:03d}.wav"
                seed = key_seed(options.seed, *key, "noise")
                clips.append(Clip("commands", condition, split, path, word, speaker, rate, pitch, snr, seed))
    return clips


def plan_sentences(options: Options, condition: str, pools: dict[str, list[str]]) -> list[Clip]:
    clips = []
    for split, count in options.sizes("sentences").items():
        speakers = SPEAKERS[split]
        for index, text in enumerate(take(pools[split], count, f"{split} sentences")):
            speaker = speakers[index % len(speakers)]
            key = ("sentences", condition, split, index)
            rate, pitch, snr = draw_voice_settings(key_rng(options.seed, *key), CONDITIONS[condition])
            path = f"wav/{split}/{index:06d}.wav"
            seed = key_seed(options.seed, *key, "noise")
            clips.append(Clip("sentences", condition, split, path, text, speaker, rate, pitch, snr, seed))
    return clips


def plan_babble(pools: dict[str, list[str]]) -> list[tuple[str, Clip]]:
    """(voice, clip) per babble talker: normal rate and pitch, voices cycled over the babble accents."""
    plan = []
    for split in SPLITS:
        for index, text in enumerate(take(pools[f"babble-{split}"], BABBLE_PER_SPLIT, f"babble-{split} texts")):
            voice = f"{BABBLE_ACCENTS[index % len(BABBLE_ACCENTS)]}+{BABBLE_VARIANTS[index % len(BABBLE_VARIANTS)]}"
            clip = Clip("babble", "babble", split, f"{split}/{index:02d}.wav", text, voice, 175, 50, None, 0)
            plan.append((voice, clip))
    return plan


# ---------------------------------------------------------------------------------------------------- audio


def synthesise(voice: str, rate: int, pitch: int, text: str) -> np.ndarray:
    """espeak-ng's speech at 16 kHz, float64. The text goes in as one argument, never through a shell;
    '--' keeps a text that starts with '-' from being read as an option."""
    import soundfile
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory(prefix="accent-bench-") as folder:
        wav = os.path.join(folder, "espeak.wav")
        command = ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", wav, "--", text]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError(f"espeak-ng failed ({done.returncode}) for {voice!r} {text!r}: {done.stderr.strip()}")
        samples, rate_read = soundfile.read(wav, dtype="float64", always_2d=True)
    if rate_read != ESPEAK_RATE:
        raise RuntimeError(f"espeak-ng wrote {rate_read} Hz, expected {ESPEAK_RATE}")
    # 16000/22050 = 320/441: a polyphase filter is exact for this integer ratio.
    return resample_poly(samples.mean(axis=1), 320, 441)


def trim_silence(samples: np.ndarray, threshold: float = 0.01, margin_s: float = 0.02) -> np.ndarray:
    """Cut espeak-ng's leading and trailing silence (about 0.5 s at the end), keeping a short margin."""
    loud = np.flatnonzero(np.abs(samples) > threshold * np.abs(samples).max())
    if loud.size == 0:
        return samples
    margin = int(margin_s * SAMPLE_RATE)
    return samples[max(loud[0] - margin, 0) : loud[-1] + margin + 1]


def place_in_window(samples: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A word at a random offset in a fixed window; never cut, so a word longer than the window keeps its length."""
    length = max(int(seconds * SAMPLE_RATE), len(samples))
    start = int(rng.integers(0, length - len(samples) + 1))
    window = np.zeros(length)
    window[start : start + len(samples)] = samples
    return window


def pad_edges(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    low, high = SENTENCE_PAD_SECONDS
    before, after = (int(rng.uniform(low, high) * SAMPLE_RATE) for _ in range(2))
    return np.concatenate([np.zeros(before), samples, np.zeros(after)])


def unit_rms(samples: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(samples**2)))
    return samples / rms if rms > 0 else samples


def active_rms(samples: np.ndarray, frame_s: float = 0.02, floor_db: float = 30.0) -> float:
    """RMS over the frames within `floor_db` of the loudest, so padding silence does not inflate the SNR."""
    frame = int(frame_s * SAMPLE_RATE)
    usable = len(samples) // frame * frame
    energy = (samples[:usable].reshape(-1, frame) ** 2).mean(axis=1) if usable else np.array([np.mean(samples**2)])
    active = energy[energy >= energy.max() * 10 ** (-floor_db / 10)]
    return float(np.sqrt(active.mean()))


def coloured_noise(length: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Power spectrum 1/f**exponent (1: pink, 2: brown) by shaping white noise's spectrum; no DC."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    frequencies[0] = 1.0
    spectrum /= frequencies ** (exponent / 2)
    spectrum[0] = 0.0
    return unit_rms(np.fft.irfft(spectrum, length))


def babble(length: int, bank: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A few babble talkers at equal level, each looped from a random start to the clip's length."""
    talkers = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
    mixed = np.zeros(length)
    for index in rng.choice(len(bank), size=talkers, replace=False):
        voice = bank[int(index)]
        start = int(rng.integers(0, len(voice)))
        mixed += unit_rms(np.resize(np.roll(voice, -start), length))
    return unit_rms(mixed)


def background_noise(length: int, bank: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Babble of a few talkers from `bank` plus pink or brown noise, in a random share."""
    exponent = float(rng.choice([1.0, 2.0]))
    share = float(rng.uniform(*BABBLE_SHARE))
    return np.sqrt(share) * babble(length, bank, rng) + np.sqrt(1 - share) * coloured_noise(length, exponent, rng)


def add_noise(speech: np.ndarray, snr_db: float, bank: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    noise = background_noise(len(speech), bank, rng)
    scale = active_rms(speech) / (float(np.sqrt(np.mean(noise**2))) * 10 ** (snr_db / 20))
    return speech + scale * noise


def peak_normalise(samples: np.ndarray) -> np.ndarray:
    peak = float(np.abs(samples).max())
    return samples * (PEAK / peak) if peak > 0 else samples


def render(job: Job, babble_bank: dict[str, list[np.ndarray]]) -> None:
    clip = job.clip
    rng = np.random.default_rng(clip.seed)
    speech = trim_silence(synthesise(job.voice, clip.rate, clip.pitch, clip.text))
    if clip.task == "commands":
        speech = place_in_window(speech, COMMAND_SECONDS, rng)
    elif clip.task == "sentences":
        speech = pad_edges(speech, rng)
    if clip.snr_db is not None:
        speech = add_noise(speech, clip.snr_db, babble_bank[clip.split], rng)
    write_wav(job.target, peak_normalise(speech))


# ---------------------------------------------------------------------------------------------------- files


def write_atomic(path: Path, data: bytes) -> bool:
    """Write through a hidden temp file and os.replace, so a reader never sees half a file; unchanged
    content is left alone (False), so a re-run does not even touch modification times."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return True


def write_wav(path: Path, samples: np.ndarray) -> None:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    write_atomic(path, buffer.getvalue())


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def clip_row(clip: Clip, path: str) -> list[object]:
    return [path, clip.text, clip.speaker, clip.rate, clip.pitch, "" if clip.snr_db is None else clip.snr_db]


def write_tables(folder: Path, task: str, clips: list[Clip]) -> None:
    """Tables are written after their clips, so a table never names a file that does not exist yet."""
    if task == "sentences":
        for split in SPLITS:
            rows = [clip_row(c, c.path) for c in clips if c.split == split]
            write_atomic(
                folder / f"{split}.csv", csv_bytes(("audio", "text", "speaker", "rate", "pitch", "snr_db"), rows)
            )
    else:
        rows = [clip_row(c, c.path) for c in clips]
        write_atomic(folder / "clips.csv", csv_bytes(("audio", "word", "speaker", "rate", "pitch", "snr_db"), rows))


def prune_stale(folder: Path, clips: list[Clip]) -> int:
    """Delete WAVs a larger earlier run left in this data set's folders, and temp files of a killed run, so
    a reader that globs the folders sees exactly the planned clips. Touches nothing outside the layout."""
    planned = {folder / c.path for c in clips}
    removed = 0
    for directory in {path.parent for path in planned}:
        for path in directory.iterdir():
            stale_wav = path.suffix == ".wav" and path not in planned
            leftover_temp = path.name.startswith(".") and path.suffix == ".tmp"
            if path.is_file() and (stale_wav or leftover_temp):
                path.unlink()
                removed += 1
    return removed


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------- espeak


def espeak_version() -> tuple[str, Path]:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    text = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"text-to-speech:\s*(\S+)\s+Data at:\s*(.+)", text)
    if not match:
        raise SystemExit(f"cannot read espeak-ng's version from {text!r}")
    return match.group(1), Path(match.group(2).strip())


def check_voices(data_dir: Path, accents: Iterable[str], variants: Iterable[str]) -> None:
    """espeak-ng silently falls back to its default for an unknown variant; refuse instead."""
    listed = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    languages = {line.split()[1] for line in listed.splitlines()[1:] if len(line.split()) > 1}
    missing = [a for a in accents if a not in languages]
    missing += [f"+{v}" for v in variants if not (data_dir / "voices" / "!v" / v).is_file()]
    if missing:
        raise SystemExit(f"espeak-ng lacks these voices: {', '.join(missing)}")


# ---------------------------------------------------------------------------------------------------- manifest


def content_key(options: Options, version: str, data_root: Path) -> dict[str, object]:
    """What fixes a clip's bytes besides its size options; a cache made with a different key is refused."""
    key: dict[str, object] = {
        "format_version": FORMAT_VERSION,
        "seed": options.seed,
        "espeak_ng": version,
        "sample_rate": SAMPLE_RATE,
        "words": list(WORDS),
        "speakers": {split: list(names) for split, names in SPEAKERS.items()},
        "conditions": {
            name: {"rate_wpm": list(c.rate), "pitch": list(c.pitch), "snr_db": list(c.snr_db)}
            for name, c in CONDITIONS.items()
        },
        "babble": {
            "accents": list(BABBLE_ACCENTS),
            "variants": list(BABBLE_VARIANTS),
            "per_split": BABBLE_PER_SPLIT,
            "talkers": list(BABBLE_TALKERS),
            "share": list(BABBLE_SHARE),
        },
    }
    banking = data_root / "banking77"
    if (banking / "train.csv").is_file() and (banking / "test.csv").is_file():
        key["banking77_sha256"] = {name: file_digest(banking / name) for name in ("train.csv", "test.csv")}
    return key


def read_manifest(out: Path) -> dict:
    path = out / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def check_cache(out: Path, existing: dict, key: dict[str, object]) -> dict[str, object]:
    """The key to record. Refuses a folder made with other settings: its clips would be skipped as present
    although their bytes are not what this run would write."""
    old = existing.get("content")
    if old is None:
        return key
    hashes = "banking77_sha256"
    # banking77's hashes are only known where it is found; a run without it keeps the recorded ones.
    if hashes not in key and hashes in old:
        key = {**key, hashes: old[hashes]}
    same_recipe = {k: v for k, v in key.items() if k != hashes} == {k: v for k, v in old.items() if k != hashes}
    same_data = hashes not in old or old[hashes] == key.get(hashes)
    if not (same_recipe and same_data):
        raise SystemExit(
            f"{out} was made with other settings (seed, espeak-ng version, recipe or data); "
            "pass another --out or delete that folder"
        )
    return key


def dataset_counts(folder: Path, clips: list[Clip]) -> dict[str, dict[str, float]]:
    import soundfile

    counts: dict[str, dict[str, float]] = {}
    for split in SPLITS:
        files = [folder / c.path for c in clips if c.split == split]
        seconds = sum(soundfile.info(str(path)).duration for path in files)
        counts[split] = {"clips": len(files), "seconds": round(seconds, 2)}
    return counts


def manifest_options(options: Options) -> dict[str, object]:
    """The options of the latest run; --out, --data-root, --jobs and --quiet do not change a byte."""
    return {
        "tasks": list(options.tasks),
        "accents": list(options.accents),
        "conditions": list(options.conditions),
        "commands_per_word_train": options.commands_per_word_train,
        "commands_per_word_eval": options.commands_per_word_eval,
        "sentences_train": options.sentences_train,
        "sentences_val": options.sentences_val,
        "sentences_test": options.sentences_test,
        "seed": options.seed,
    }


def write_manifest(out: Path, key: dict[str, object], options: Options, datasets: dict) -> dict:
    manifest = {
        "generator": "benchmarks/speech/make_accent_data.py",
        "content": key,
        "options": manifest_options(options),
        "datasets": dict(sorted(datasets.items())),
    }
    write_atomic(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


# ---------------------------------------------------------------------------------------------------- run


def run_jobs(jobs: list[Job], workers: int, babble_bank: dict[str, list[np.ndarray]], label: str, quiet: bool) -> None:
    """Threads are enough: each one mostly waits on its espeak-ng process; `workers` caps those processes."""
    if not jobs:
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(render, job, babble_bank) for job in jobs]
        with progress_bar(label, len(jobs), quiet) as advance:
            for future in as_completed(futures):
                if future.exception() is not None:
                    # Stop at the first failure instead of synthesising the rest; finished clips stay cached.
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise future.exception()
                advance()


@contextmanager
def progress_bar(label: str, total: int, quiet: bool) -> Iterator[Callable[[], None]]:
    """rich's bar on a terminal; a plain line every 500 clips otherwise (logs, CI)."""
    if not quiet and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=False) as bar:
            task = bar.add_task(label, total=total)
            yield lambda: bar.advance(task)
        return
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if not quiet and (done % 500 == 0 or done == total):
            print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)

    yield advance


def load_babble_bank(out: Path, pools: dict[str, list[str]], options: Options) -> dict[str, list[np.ndarray]]:
    import soundfile

    folder = out / "noise" / "babble"
    plan = plan_babble(pools)
    jobs = [Job(folder / clip.path, voice, clip) for voice, clip in plan if not (folder / clip.path).is_file()]
    run_jobs(jobs, options.jobs, {}, "babble talkers", options.quiet)
    bank: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for _, clip in plan:
        samples, _rate = soundfile.read(str(folder / clip.path), dtype="float64")
        bank[clip.split].append(samples)
    return bank


def needs_banking77(options: Options) -> bool:
    return "sentences" in options.tasks or "noisy" in options.conditions


def generate(options: Options) -> dict:
    started = time.monotonic()
    version, data_dir = espeak_version()
    check_voices(data_dir, (*options.accents, *BABBLE_ACCENTS), (*sum(SPEAKERS.values(), ()), *BABBLE_VARIANTS))
    out = options.out
    key = content_key(options, version, options.data_root)
    existing = read_manifest(out)
    key = check_cache(out, existing, key)

    pools = sentence_pools(options.data_root, options.seed) if needs_banking77(options) else {}
    bank = load_babble_bank(out, pools, options) if "noisy" in options.conditions else {}

    datasets = dict(existing.get("datasets", {}))
    # Recorded before the first clip, so an interrupted first run still guards its folder against another seed.
    write_manifest(out, key, options, datasets)
    written = skipped = pruned = 0
    for task in options.tasks:
        for condition in options.conditions:
            clips = (
                plan_commands(options, condition) if task == "commands" else plan_sentences(options, condition, pools)
            )
            for accent in options.accents:
                folder = out / task / accent / condition
                todo = [Job(folder / c.path, f"{accent}+{c.speaker}", c) for c in clips]
                missing = [job for job in todo if not job.target.is_file()]
                run_jobs(missing, options.jobs, bank, f"{task}/{accent}/{condition}", options.quiet)
                written, skipped = written + len(missing), skipped + len(todo) - len(missing)
                pruned += prune_stale(folder, clips)
                write_tables(folder, task, clips)
                datasets[f"{task}/{accent}/{condition}"] = dataset_counts(folder, clips)

    manifest = write_manifest(out, key, options, datasets)
    seconds = time.monotonic() - started
    if not options.quiet:
        print(
            f"{out}: {written} clip(s) written, {skipped} already there, {pruned} stale file(s) removed "
            f"in {seconds:.1f} s",
            file=sys.stderr,
        )
    return manifest


# ---------------------------------------------------------------------------------------------------- cli


def comma_list(allowed: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))
        unknown = [item for item in items if item not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)} (got {value!r})")
        return items

    return parse


def non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0, got {value}")
    return number


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tasks", type=comma_list(TASKS), default=TASKS, help="commands,sentences")
    parser.add_argument("--accents", type=comma_list(ACCENTS), default=ACCENTS, help=",".join(ACCENTS))
    parser.add_argument(
        "--conditions", type=comma_list(tuple(CONDITIONS)), default=tuple(CONDITIONS), help="clean,noisy"
    )
    parser.add_argument("--commands-per-word-train", type=non_negative, default=20)
    parser.add_argument("--commands-per-word-eval", type=non_negative, default=10, help="for val and for test each")
    parser.add_argument("--sentences-train", type=non_negative, default=200)
    parser.add_argument("--sentences-val", type=non_negative, default=50)
    parser.add_argument("--sentences-test", type=non_negative, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument(
        "--data-root",
        default=DEFAULT_DATA_ROOT,
        help=f"holds banking77/; relative to the repo root (default {DEFAULT_DATA_ROOT})",
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel espeak-ng processes (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return Options(
        tasks=args.tasks,
        accents=args.accents,
        conditions=args.conditions,
        commands_per_word_train=args.commands_per_word_train,
        commands_per_word_eval=args.commands_per_word_eval,
        sentences_train=args.sentences_train,
        sentences_val=args.sentences_val,
        sentences_test=args.sentences_test,
        seed=args.seed,
        out=args.out.expanduser().resolve(),
        data_root=(REPO_ROOT / args.data_root).resolve(),
        jobs=args.jobs,
        quiet=args.quiet,
    )


def main(argv: Sequence[str] | None = None) -> None:
    generate(parse_options(argv))


if __name__ == "__main__":
    main()
