"""Speech recognition end to end on a tiny Whisper: which groups train, WER scoring, saving, zero-shot."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import transferopt
from transferopt.cli.main import app
from transferopt.engine import FeatureCache
from transferopt.engine.transcription import transcription_metrics
from transferopt.errors import ConfigError

MODEL = "tiny-whisper-asr"
ENCODER = ["encoder.feature_encoder", "encoder.layer.0", "encoder.layer.1"]
DECODER = ["decoder.embeddings", "decoder.layer.0", "decoder.layer.1"]


def test_error_rates_are_measured_after_whisper_normalisation():
    heard, said = ["I paid one hundred pounds for the colour TV."], ["i paid 100 pounds for the color tv"]
    same = transcription_metrics(heard, said)
    assert same["wer"] == 0.0 and same["cer"] == 0.0
    assert transcription_metrics(["the cat sat"], ["the cat sat on the mat"])["wer"] == pytest.approx(0.5)
    empty = transcription_metrics(["", "hello"], ["uh", "hello"])  # "uh" normalises to nothing
    assert empty["empty_references"] == 1 and empty["wer"] == 0.0


@pytest.mark.parametrize(
    ("strategy", "options", "groups"),
    [
        ("full", {}, ENCODER + DECODER),
        ("partial", {"k": 2}, DECODER[1:]),
        ("lora", {"last_k": 2}, DECODER[1:]),
        ("bitfit", {}, ENCODER + DECODER[1:]),  # token and position embeddings have no bias
        ("norm", {}, ENCODER[1:] + DECODER[1:]),
    ],
)
def test_each_strategy_trains_the_expected_groups_and_is_scored_by_wer(tmp_path, spoken_dir, strategy, options, groups):
    out = tmp_path / "run"
    result = transferopt.fit(str(spoken_dir), MODEL, strategy, strategy_options=options, epochs=1, out=out)
    metrics = result.metrics
    assert result.config.metric == "wer" and metrics["trained_groups"] == groups
    assert {"wer", "cer", "n"} <= set(metrics["val"]) and metrics["test"]["n"] == 3
    assert len(metrics["val"]["examples"]) == 3 and metrics["val"]["examples"][0]["reference"] == "a high tone"
    assert "val_wer" in result.history[0] and "val_loss" in result.history[0]
    loaded = transferopt.load(out)
    clips = [str(p) for p in sorted((spoken_dir / "wav").glob("test*.wav"))]
    assert loaded.transcribe(clips) == result.transcribe(clips)


def test_a_frozen_encoder_is_computed_once_and_cached(spoken_dir, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    result = transferopt.fit(str(spoken_dir), MODEL, "partial", strategy_options={"k": 3}, epochs=1, cache=cache)
    assert result.metrics["frozen_prefix"] == 3  # the whole encoder: decoder states depend on the targets
    again = FeatureCache(tmp_path / "cache")
    transferopt.fit(str(spoken_dir), MODEL, "partial", strategy_options={"k": 3}, epochs=1, cache=again)
    assert again.stats.misses == 0 and again.stats.hits_disk > 0


def test_training_lowers_the_transcript_loss(spoken_dir):
    result = transferopt.fit(str(spoken_dir), MODEL, "full", epochs=6, lr=3e-3, patience=6, batch_size=4)
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0] - 0.5 and losses == sorted(losses, reverse=True), losses


def test_spec_augment_masks_every_training_batch_afresh(spoken_dir, monkeypatch):
    from transferopt.models.hf_audio import HFAudioBackbone

    masked = []
    original = HFAudioBackbone.spec_augment

    def counting(self, state, lengths):
        masked.append(len(lengths))
        original(self, state, lengths)

    monkeypatch.setattr(HFAudioBackbone, "spec_augment", counting)
    result = transferopt.fit(str(spoken_dir), MODEL, "full", epochs=2, patience=2, batch_size=4, augment=True)
    train = result.data_summary["counts"]["train"]["utterances"]
    assert sum(masked) == 2 * train  # each epoch, every training utterance; never validation or test
    assert len(result.history) == 2 and result.metrics["val"]["wer"] >= 0


@pytest.mark.parametrize("strategy", ["linear-probe", "lp-ft"])
def test_strategies_that_fit_a_new_head_are_refused(spoken_dir, strategy):
    with pytest.raises(ConfigError, match=rf"strategy {strategy} fits a new classification head; transcription"):
        transferopt.fit(str(spoken_dir), MODEL, strategy)


def test_error_rate_metrics_are_refused_for_classification(tones_dir):
    with pytest.raises(ConfigError, match=r"--metric wer is for speech recognition"):
        transferopt.fit(str(tones_dir), "tiny-whisper", "linear-probe", metric="wer")


def test_a_model_that_cannot_transcribe_says_so(spoken_dir):
    with pytest.raises(Exception, match=r"model tiny-wav2vec2 cannot transcribe speech"):
        transferopt.fit(str(spoken_dir), "tiny-wav2vec2", "full")


def test_zero_shot_predict_and_evaluate_from_the_command_line(spoken_dir):
    runner = CliRunner()
    clip = str(spoken_dir / "wav" / "test0.wav")
    heard = runner.invoke(app, ["predict", "--model", MODEL, "--task", "speech-recognition", "--json", clip])
    assert heard.exit_code == 0, heard.output
    assert json.loads(heard.output)[0]["input"] == clip and "text" in json.loads(heard.output)[0]
    scored = runner.invoke(app, ["evaluate", "--model", MODEL, "--data", str(spoken_dir)])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["n"] == 3 and "wer" in json.loads(scored.output)
    both = runner.invoke(app, ["evaluate", "somewhere", "--model", MODEL, "--data", str(spoken_dir)])
    assert both.exit_code != 0 and "give a run directory or --model NAME (not both)" in both.output
    wrong = runner.invoke(app, ["predict", "--model", MODEL, "--task", "audio-classification", clip])
    assert wrong.exit_code != 0 and "--task 'audio-classification'" in wrong.output


def test_decoding_is_capped_by_the_clip_duration_and_never_repeats_a_4gram(spoken_dir):
    # A random decoder loops; the cap (10 + 8 tokens per second of real audio) and the 4-gram ban bound it.
    model = transferopt.pretrained(MODEL)
    backbone = model.model.backbone
    clip = spoken_dir / "wav" / "test0.wav"
    text = model.transcribe([str(clip)])[0]
    ids = backbone.processor.tokenizer(text, add_special_tokens=False).input_ids
    seconds = transferopt.data.AudioInputs([clip]).longest_seconds()
    assert len(ids) <= 10 + 8 * seconds + 2  # re-tokenising decoded text may merge or split a token
    grams = [tuple(ids[i : i + 4]) for i in range(len(ids) - 3)]
    assert len(grams) == len(set(grams))


def test_rank_explains_that_transcription_has_no_transferability_score(spoken_dir):
    result = CliRunner().invoke(app, ["rank", "--data", str(spoken_dir), "--candidates", MODEL])
    assert result.exit_code != 0 and "transferability scores need class labels" in result.output
