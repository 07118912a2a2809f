"""wav2vec2 and HuBERT transcribing through their CTC head: groups, strategies, decoding, saving, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import transferopt
from tests import helpers
from transferopt.engine import FeatureCache
from transferopt.errors import ModelError
from transferopt.models import resolve_backbone

ENCODER = ["feature_encoder", "layer.0", "layer.1"]


@pytest.fixture(scope="module", params=["wav2vec2", "hubert"])
def ctc_name(request, tmp_path_factory) -> str:
    return "hf/" + str(helpers.make_tiny_ctc(tmp_path_factory.mktemp(f"ctc-{request.param}"), request.param))


@pytest.fixture(scope="module")
def wav2vec2_ctc(tmp_path_factory) -> str:
    return "hf/" + str(helpers.make_tiny_ctc(tmp_path_factory.mktemp("ctc-wav2vec2")))


def test_groups_are_the_encoder_then_the_ctc_head(ctc_name):
    backbone = resolve_backbone(ctc_name, task="transcription")
    assert backbone.kind == "ctc-asr" and backbone.group_names == [*ENCODER, "ctc_head"]
    owned = [p for module in backbone.group_modules() for p in module.parameters()]
    assert len(owned) == len({id(p) for p in owned}) == len(list(backbone.net.parameters()))
    assert backbone.cache_boundaries() == [0, 1, 2, 3]  # the head is never cached: it is what trains last


def test_targets_follow_the_vocabulary_case_and_drop_what_it_cannot_write(wav2vec2_ctc):
    backbone = resolve_backbone(wav2vec2_ctc, task="transcription")
    targets = backbone.tokenize_transcripts(["a high tone", "pay 100 pounds!"])
    tokenizer = backbone.processor.tokenizer
    first = tokenizer.decode([i for i in targets[0].tolist() if i >= 0], group_tokens=False)
    second = tokenizer.decode([i for i in targets[1].tolist() if i >= 0], group_tokens=False)
    assert first == "A HIGH TONE" and second == "PAY POUNDS"
    assert targets.shape[1] == len("A|HIGH|TONE") and targets[1, -1] == -100  # padded to the longest


@pytest.mark.parametrize(
    ("strategy", "options", "groups"),
    [
        ("full", {}, [*ENCODER, "ctc_head"]),
        ("partial", {"k": 1}, ["ctc_head"]),
        ("lora", {"last_k": 2}, ["layer.1"]),  # adapters on attention; the pretrained head stays as it is
        ("bitfit", {}, [*ENCODER, "ctc_head"]),
        ("norm", {}, ENCODER),
    ],
)
def test_each_strategy_trains_the_expected_groups_and_is_scored_by_wer(
    tmp_path, spoken_dir, ctc_name, strategy, options, groups
):
    out = tmp_path / "run"
    result = transferopt.fit(str(spoken_dir), ctc_name, strategy, strategy_options=options, epochs=1, out=out)
    metrics = result.metrics
    assert result.config.metric == "wer" and metrics["trained_groups"] == groups
    assert {"wer", "cer", "n"} <= set(metrics["val"]) and metrics["test"]["n"] == 3
    loaded = transferopt.load(out)
    clips = [str(p) for p in sorted((spoken_dir / "wav").glob("test*.wav"))]
    assert loaded.transcribe(clips) == result.transcribe(clips)


def test_the_head_alone_trains_on_the_cached_encoder(spoken_dir, wav2vec2_ctc, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    result = transferopt.fit(str(spoken_dir), wav2vec2_ctc, "partial", strategy_options={"k": 1}, epochs=1, cache=cache)
    assert result.metrics["frozen_prefix"] == 3
    again = FeatureCache(tmp_path / "cache")
    transferopt.fit(str(spoken_dir), wav2vec2_ctc, "partial", strategy_options={"k": 1}, epochs=1, cache=again)
    assert again.stats.misses == 0 and again.stats.hits_disk > 0


def test_training_lowers_the_ctc_loss(spoken_dir, wav2vec2_ctc):
    result = transferopt.fit(str(spoken_dir), wav2vec2_ctc, "full", epochs=5, lr=3e-3, patience=5, batch_size=4)
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0] * 0.9 and losses == sorted(losses, reverse=True), losses


def test_greedy_decoding_merges_repeats_drops_blanks_and_ignores_padding(wav2vec2_ctc):
    from transferopt.models.ctc_asr import CTCModel

    backbone = resolve_backbone(wav2vec2_ctc, task="transcription")
    model = CTCModel(backbone).eval()
    vocab = backbone.processor.tokenizer.get_vocab()
    path = [vocab["C"], vocab["C"], 0, vocab["A"], vocab["B"], vocab["B"], 0, vocab["B"], vocab["|"], vocab["A"]]
    frames = torch.full((1, 12, len(vocab)), -20.0)
    for t, label in enumerate(path):
        frames[0, t, label] = 0.0
    frames[0, 10:, vocab["Z"]] = 0.0  # beyond the clip's real audio: must not be written
    backbone.log_probs = lambda state, start=0: (frames, torch.tensor([10]))
    assert model.transcribe({}) == ["CABB A"]


def test_a_wav2vec2_without_a_ctc_vocabulary_is_refused(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    Wav2Vec2Model(Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 conv_dim=(16,), conv_stride=(5,), conv_kernel=(10,), num_conv_pos_embeddings=16,
                                 num_conv_pos_embedding_groups=2)).save_pretrained(tmp_path)  # fmt: skip
    Wav2Vec2FeatureExtractor().save_pretrained(tmp_path)
    with pytest.raises(ModelError, match=r"has no CTC vocabulary \(vocab.json\).*fine-tuned for CTC"):
        resolve_backbone(f"hf/{tmp_path}", task="transcription")


def test_optimize_searches_a_ctc_model(spoken_dir, wav2vec2_ctc, tmp_path):
    summary = transferopt.optimize(str(spoken_dir), [wav2vec2_ctc], out=tmp_path / "opt", budget="40s", max_trials=3)
    strategies = [row["strategy"] for row in summary["leaderboard"]]
    assert summary["metric"] == "wer" and strategies
    assert set(strategies) <= {"full", "lora", "partial", "bitfit", "norm"}
    heard = transferopt.load(tmp_path / "opt").transcribe([str(spoken_dir / "wav" / "test0.wav")])
    assert isinstance(heard[0], str) and np.isfinite(summary["winner"]["val_wer"])


def test_zero_shot_transcription_from_the_command_line(spoken_dir, wav2vec2_ctc):
    import json

    from typer.testing import CliRunner

    from transferopt.cli.main import app

    runner = CliRunner()
    clip = str(spoken_dir / "wav" / "test0.wav")
    heard = runner.invoke(app, ["predict", "--model", wav2vec2_ctc, "--task", "speech-recognition", "--json", clip])
    assert heard.exit_code == 0, heard.output
    assert json.loads(heard.output)[0]["input"] == clip and isinstance(json.loads(heard.output)[0]["text"], str)
    scored = runner.invoke(app, ["evaluate", "--model", wav2vec2_ctc, "--data", str(spoken_dir)])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["n"] == 3 and json.loads(scored.output)["wer"] >= 0
