"""Every registered strategy end to end (fit, save, load) on a tiny CNN, a tiny BERT and tiny speech encoders."""

from __future__ import annotations

import os

import numpy as np
import pytest

import transferopt
from transferopt.strategies import STRATEGIES

TEXTS = ["play a song by the beatles", "will it snow tomorrow", "order sushi for lunch"]


@pytest.mark.parametrize("model", ["tiny-effnet", "tiny-bert", "tiny-whisper", "tiny-wav2vec2"])
@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_fit_save_load(tmp_path, request, strategy, model, colour_folder, intents_dir):
    if model == "tiny-bert":
        name, data = request.getfixturevalue("tiny_bert_name"), intents_dir
        inputs = TEXTS
    elif model.startswith("tiny-w"):
        name, data = model, request.getfixturevalue("tones_dir")
        inputs = [str(p) for p in sorted((data / "test").rglob("*.wav"))]
    else:
        name, data = model, colour_folder
        inputs = [str(p) for p in sorted((colour_folder / "test").rglob("*.png"))]
    out = tmp_path / "run"
    result = transferopt.fit(str(data), name, strategy, epochs=1, out=out)
    metrics = result.metrics
    assert metrics["strategy"]["name"] == strategy
    assert metrics["val"]["n"] > 0 and metrics["test"]["n"] > 0
    groups = metrics["layer_groups"]
    assert set(metrics["trained_groups"]) <= set(groups)
    assert metrics["frozen_prefix"] <= len(groups)
    if STRATEGIES.get(strategy).trains:
        assert metrics["trained_groups"] and len(result.history) >= 1
    else:
        assert metrics["trained_groups"] == [] and result.history == []
    assert ("adapter" in os.listdir(out)) == (strategy == "lora")
    loaded = transferopt.load(out)
    assert np.allclose(loaded.predict_proba(inputs), result.predict_proba(inputs), atol=1e-5)
