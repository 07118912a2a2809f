"""Precision: which dtype autocast runs in, what it leaves in float32, and that runs under it still train."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import transferopt
from transferopt.cli.main import app
from transferopt.config import FitConfig
from transferopt.engine import FeatureCache, precision
from transferopt.engine.precision import autocast, autocast_dtype
from transferopt.errors import ConfigError

CPU = torch.device("cpu")


def test_fp32_never_autocasts_and_bf16_always_does_on_cpu():
    assert autocast_dtype("fp32", CPU) is None
    assert autocast_dtype("bf16", CPU) is torch.bfloat16


@pytest.mark.parametrize("native", [True, False])
def test_auto_picks_bf16_only_where_the_cpu_has_bfloat16_instructions(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert autocast_dtype("auto", CPU) is (torch.bfloat16 if native else None)


def test_auto_skips_gpus_that_would_only_emulate_bf16(monkeypatch):
    """Before Ampere, torch emulates bf16 on a GPU (slower than float32): auto keeps float32 there, while an
    explicit bf16 is the user's choice."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    cuda = torch.device("cuda")
    assert autocast_dtype("auto", cuda) is None
    assert autocast_dtype("bf16", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert autocast_dtype("auto", cuda) is torch.bfloat16


def test_auto_is_float32_on_devices_without_a_bf16_autocast():
    assert autocast_dtype("auto", torch.device("mps")) is None


def test_bf16_on_a_device_that_cannot_run_it_names_the_device():
    with pytest.raises(ConfigError, match=r"--precision bf16: the mps device here cannot run bfloat16"):
        autocast_dtype("bf16", torch.device("mps"))


def test_an_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"--precision must be one of auto, fp32, bf16, got 'fp16'"):
        FitConfig(data="builtin:digits", model="tiny-effnet", precision="fp16")
    with pytest.raises(ValueError, match=r"got 'half'"):
        autocast_dtype("half", CPU)


def test_precision_round_trips_with_the_config():
    config = FitConfig(data="builtin:digits", model="tiny-effnet", precision="bf16")
    assert FitConfig.from_json(config.to_json()).precision == "bf16"
    assert FitConfig(data="builtin:digits", model="tiny-effnet").precision == "auto"


def test_autocast_runs_matrix_products_in_bf16_and_float32_is_untouched():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast(CPU, torch.bfloat16):
        assert layer(x).dtype is torch.bfloat16
    with autocast(CPU, None):
        assert layer(x).dtype is torch.float32


@pytest.mark.parametrize("model", ["tiny-effnet", "tiny-bert"])
def test_a_bf16_run_trains_float32_weights_and_predicts_like_fp32(tmp_path, intents_dir, tiny_bert_name, model):
    """Mixed precision: the weights (and so the saved model) stay float32; predictions match fp32's within
    bf16's rounding."""
    data, name = ("builtin:digits", model) if model == "tiny-effnet" else (str(intents_dir), tiny_bert_name)
    runs = {}
    for chosen in ("fp32", "bf16"):
        runs[chosen] = transferopt.fit(
            data, name, "full", epochs=1, seed=0, precision=chosen, cache=FeatureCache(use_disk=False)
        )
    bf16 = runs["bf16"]
    assert bf16.config.precision == "bf16" and bf16.metrics["precision"] == "bf16"
    assert runs["fp32"].metrics["precision"] == "fp32" and bf16.metrics["device"] == "cpu"
    assert all(p.dtype is torch.float32 for p in bf16.model.parameters())
    assert np.isfinite(bf16.history[0]["train_loss"])
    out = tmp_path / "run"
    bf16.save(out)
    loaded = transferopt.load(out)
    assert loaded.config.precision == "bf16"
    assert all(p.dtype is torch.float32 for p in loaded.model.parameters())
    # The same trained weights evaluated in bf16 and in float32: only the arithmetic differs.
    in_bf16 = loaded.evaluate(data, split="val")
    loaded.config = loaded.config.replace(precision="fp32")
    in_fp32 = loaded.evaluate(data, split="val")
    assert in_bf16["accuracy"] == pytest.approx(in_fp32["accuracy"], abs=0.05)
    assert in_bf16["log_loss"] == pytest.approx(in_fp32["log_loss"], rel=0.05)


def test_a_bf16_models_evaluation_agrees_with_its_runs_metrics(tmp_path):
    """The run scored its test split from float32 cached states of the frozen prefix; the saved model,
    evaluated again, runs that prefix in float32 too, so it reports the same probabilities."""
    result = transferopt.fit(
        "builtin:digits",
        "tiny-effnet",
        "partial",
        epochs=1,
        seed=0,
        precision="bf16",
        cache=FeatureCache(use_disk=False),
    )
    assert result.metrics["frozen_prefix"] > 0
    result.save(tmp_path / "run")
    again = transferopt.load(tmp_path / "run").evaluate("builtin:digits", split="test")
    assert again["log_loss"] == pytest.approx(result.metrics["test"]["log_loss"], abs=1e-6)
    assert again["accuracy"] == result.metrics["test"]["accuracy"]


def test_fit_and_optimize_take_precision_on_the_command_line():
    runner = CliRunner()
    for command in ("fit", "optimize"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--precision" in result.output
    arguments = ["fit", "--data", "builtin:digits", "--model", "tiny-effnet", "--precision", "fp16", "--out", "x"]
    bad = runner.invoke(app, arguments)
    assert bad.exit_code != 0 and "--precision must be one of auto, fp32, bf16, got 'fp16'" in bad.output


def test_the_feature_cache_is_shared_across_precisions(intents_dir, tiny_bert_name):
    """The cache computes in float32 whatever the run's precision, so a bf16 run reuses a fp32 run's features."""
    cache = FeatureCache(use_disk=False)
    transferopt.fit(str(intents_dir), tiny_bert_name, "linear-probe", precision="fp32", cache=cache)
    misses = cache.stats.misses
    transferopt.fit(str(intents_dir), tiny_bert_name, "linear-probe", precision="bf16", cache=cache)
    assert misses > 0 and cache.stats.misses == misses


def test_bf16_transcription_keeps_its_spectrograms_in_float32(spoken_dir):
    """Whisper's feature extractor returns numpy: a spectrogram computed under autocast would be bf16, which
    numpy cannot hold; batches are prepared outside autocast."""
    result = transferopt.fit(str(spoken_dir), "tiny-whisper-asr", "full", epochs=1, precision="bf16")
    clips = [str(p) for p in sorted((spoken_dir / "wav").glob("test*.wav"))]
    assert len(result.transcribe(clips)) == len(clips) and "wer" in result.metrics["test"]


def test_the_reproduce_commands_carry_a_chosen_precision():
    from transferopt.reporting.report import fit_command, optimize_command

    config = FitConfig(data="builtin:digits", model="tiny-effnet", precision="bf16").to_dict()
    assert "--precision bf16" in fit_command(config)
    assert "--precision" not in fit_command({**config, "precision": "auto"})
    settings = {"data": "d", "candidates": ["m"], "budget_s": 60, "seed": 0, "metric": "accuracy", "out": "o"}
    assert "--precision fp32" in optimize_command({**settings, "precision": "fp32"})
    assert "--precision" not in optimize_command(settings)
