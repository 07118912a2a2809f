"""Self-check of the accent-benchmark generator on a tiny run (about 10 s on 2 cores); not part of the main
suite. Run: .venv/bin/python -m pytest benchmarks/speech -q"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("make_accent_data.py")
ACCENTS = ("en-us", "en-gb-scotland")
CONDITIONS = ("clean", "noisy")
SIZES = {"commands": {"train": 2, "val": 1, "test": 1}, "sentences": {"train": 4, "val": 2, "test": 4}}
TINY = [
    "--commands-per-word-train", "2", "--commands-per-word-eval", "1",
    "--sentences-train", "4", "--sentences-val", "2", "--sentences-test", "4",
    "--accents", ",".join(ACCENTS), "--quiet",
]  # fmt: skip

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def load_script():
    spec = importlib.util.spec_from_file_location("make_accent_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gen = load_script()


def generate(out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), *TINY, "--out", str(out), *extra]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def snapshot(out: Path) -> dict[str, tuple[str, int]]:
    return {
        str(path.relative_to(out)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("accent-bench")
    done = generate(folder)
    assert done.returncode == 0, done.stderr
    return folder


def test_layout(out):
    for accent in ACCENTS:
        for condition in CONDITIONS:
            commands = out / "commands" / accent / condition
            for split, count in SIZES["commands"].items():
                words = sorted(p.name for p in (commands / split).iterdir())
                assert words == sorted(gen.WORDS)
                assert all(len(list((commands / split / w).glob("*.wav"))) == count for w in words)
            sentences = out / "sentences" / accent / condition
            for split, count in SIZES["sentences"].items():
                rows = read_rows(sentences / f"{split}.csv")
                assert len(rows) == count
                assert list(rows[0]) == ["audio", "text", "speaker", "rate", "pitch", "snr_db"]
                assert all((sentences / row["audio"]).is_file() and row["text"].strip() for row in rows)
                assert all(row["audio"].startswith(f"wav/{split}/") for row in rows)
                assert all((row["snr_db"] == "") == (condition == "clean") for row in rows)
    manifest = gen.read_manifest(out)
    assert manifest["datasets"]["commands/en-us/noisy"]["train"]["clips"] == 2 * len(gen.WORDS)
    assert manifest["datasets"]["sentences/en-gb-scotland/clean"]["test"]["clips"] == 4


def test_audio_is_16k_mono_speech(out):
    import soundfile

    wavs = sorted(out.glob("commands/**/*.wav")) + sorted(out.glob("sentences/**/*.wav"))
    assert len(wavs) == 2 * 2 * (4 * len(gen.WORDS) + 10)
    for path in wavs:
        info = soundfile.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), path
        samples, _ = soundfile.read(str(path))
        assert 0.3 < len(samples) / 16000 < 30, path
        assert 0.5 < np.abs(samples).max() <= 0.91, path  # peak-normalised, so neither silent nor clipped


def test_speakers_are_split_and_accents_share_one_plan(out):
    for condition in CONDITIONS:
        speakers = {}
        for split in gen.SPLITS:
            from_names = {p.name.split("_nohash_")[0] for p in out.glob(f"commands/en-us/{condition}/{split}/*/*.wav")}
            from_table = {r["speaker"] for r in read_rows(out / f"sentences/en-us/{condition}/{split}.csv")}
            assert from_names | from_table == set(gen.SPEAKERS[split])
            speakers[split] = from_names | from_table
        assert not speakers["train"] & speakers["test"]
        assert not speakers["train"] & speakers["val"]
        assert not speakers["val"] & speakers["test"]
        # Same words, sentences, speakers, rates, pitches and SNRs for every accent; only the voice differs.
        for table in (f"{condition}/clips.csv", f"{condition}/test.csv"):
            task = "commands" if table.endswith("clips.csv") else "sentences"
            first, second = (read_rows(out / task / accent / table) for accent in ACCENTS)
            assert first == second
        us, scottish = (out / f"sentences/{a}/{condition}/wav/test/000000.wav" for a in ACCENTS)
        assert us.read_bytes() != scottish.read_bytes()


def test_rerun_is_a_no_op_and_regeneration_is_byte_identical(out):
    before = snapshot(out)
    done = generate(out)
    assert done.returncode == 0, done.stderr
    assert snapshot(out) == before  # nothing rewritten: same bytes and same modification times

    removed = [
        *(str(p.relative_to(out)) for p in sorted(out.glob("commands/en-gb-scotland/noisy/test/cat/*.wav"))),
        *(str(p.relative_to(out)) for p in sorted(out.glob("commands/en-us/clean/train/seven/*.wav"))[-1:]),
        "sentences/en-us/noisy/wav/train/000002.wav",
        "sentences/en-gb-scotland/clean/val.csv",
        "noise/babble/test/03.wav",
        "manifest.json",
    ]
    for name in removed:
        (out / name).unlink()
    (out / "commands/en-us/clean/train/seven/m9_nohash_999.wav").write_bytes(b"stale")  # from a larger run
    done = generate(out)
    assert done.returncode == 0, done.stderr
    after = snapshot(out)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert all(after[k][1] == v[1] for k, v in before.items() if k not in removed)


def test_another_seed_is_refused_in_the_same_folder(out):
    done = generate(out, "--seed", "1")
    assert done.returncode != 0
    assert "other settings" in done.stderr


def test_noise_is_mixed_at_the_drawn_snr():
    rng = np.random.default_rng(0)
    seconds = np.arange(16000) / 16000
    speech = np.sin(2 * np.pi * 220 * seconds) * (seconds < 0.5)  # half speech, half silence
    bank = [np.sin(2 * np.pi * f * seconds) for f in (300, 410, 530, 640, 770)]
    for snr in (5, 10, 20):
        noise = gen.add_noise(speech, snr, bank, rng) - speech
        measured = 20 * np.log10(gen.active_rms(speech) / np.sqrt(np.mean(noise**2)))
        assert measured == pytest.approx(snr, abs=0.01)
