"""The optimizer on speech: transcription searches only decoder-keeping strategies and reports error
rates; audio classification ranks speech encoders like any other candidates."""

from __future__ import annotations

import json

import pytest

import transferopt


def test_optimize_transcription_follows_the_task(tmp_path, spoken_dir):
    out = tmp_path / "opt"
    summary = transferopt.optimize(str(spoken_dir), ["tiny-whisper-asr"], out=out, budget="90s", max_trials=4)
    assert summary["metric"] == "wer"
    strategies = [r["strategy"] for r in summary["leaderboard"]]
    assert strategies and not {"linear-probe", "lp-ft"} & set(strategies)
    # The openings: everything at the speech fine-tuning rate (with SpecAugment, then without), LoRA,
    # then the decoder's layers alone, all in small batches (a few utterances make few steps an epoch at
    # fit's default of 32).
    opened = {r["trial"]: r for r in summary["leaderboard"]}
    assert [opened[t]["batch_size"] for t in range(4)] == [8, 8, 8, 8]
    assert [(opened[t]["strategy"], opened[t]["augment"]) for t in range(2)] == [("full", True), ("full", False)]
    assert opened[0]["lr"] == opened[1]["lr"] == pytest.approx(1e-5)
    assert opened[2]["strategy"] == "lora"
    assert opened[3]["strategy"] == "partial"
    assert opened[3]["trained_groups"] == ["decoder.layer.0", "decoder.layer.1"]
    wers = [r["val_wer"] for r in summary["leaderboard"] if r["state"] == "complete"]
    assert wers == sorted(wers)  # best (lowest error) first
    assert summary["ranking"][0]["scores"] == {}
    # Trials skip the test split (minutes of decoding each on a CPU); the winner is scored after the search.
    assert all(r["test"] is None for r in summary["leaderboard"] if r["trial"] != summary["winner"]["trial"])
    assert "wer" in summary["winner"]["test"]
    assert json.loads((out / "model" / "metrics.json").read_text())["test"]["n"] == 3
    assert "| tiny-whisper-asr | — |" in (out / "summary.md").read_text()
    report = (out / "report.html").read_text()
    assert "Transcripts on the test split" in report and "utterances" in report
    loaded = transferopt.load(out)
    assert loaded.evaluate(str(spoken_dir))["n"] == 3


def test_optimize_audio_classification_ranks_speech_encoders(tmp_path, tones_dir):
    out = tmp_path / "opt"
    summary = transferopt.optimize(str(tones_dir), ["tiny-whisper", "tiny-hubert"], out=out, budget="60s", max_trials=4)
    assert summary["metric"] == "accuracy"
    assert {c["model"] for c in summary["ranking"]} == {"tiny-whisper", "tiny-hubert"}
    assert all("logme" in c["scores"] for c in summary["ranking"])
    assert [entry["group"] for entry in summary["ranking"][0]["depth_profile"]] == [
        "feature_encoder",
        "layer.0",
        "layer.1",
    ]
    assert json.loads((out / "summary.json").read_text())["winner"]["model"] in {"tiny-whisper", "tiny-hubert"}
