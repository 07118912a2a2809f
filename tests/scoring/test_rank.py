"""Ranking candidates from cached features, with a per-depth profile."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from transferopt.cli.main import app
from transferopt.config import FitConfig
from transferopt.data import task_from_config
from transferopt.engine import FeatureCache
from transferopt.errors import ConfigError
from transferopt.scoring import rank_candidates


def test_rank_image_candidates(tmp_path, colour_folder):
    config = FitConfig(data=str(colour_folder), model="tiny-effnet")
    task = task_from_config(config)
    cache = FeatureCache(tmp_path)
    ranked = rank_candidates(task, ["tiny-effnet", "tiny-resnet"], config, cache=cache)
    assert [c.model for c in ranked] == sorted(
        ["tiny-effnet", "tiny-resnet"], key=lambda m: -next(c for c in ranked if c.model == m).scores["logme"]
    )
    for candidate in ranked:
        # timm models keep their source classifier, so LEEP is available.
        assert {"logme", "h_score", "knn_loo", "linear_cv", "leep"} <= set(candidate.scores)
        assert candidate.best_depth in candidate.depth_profile
    effnet = next(c for c in ranked if c.model == "tiny-effnet")
    assert list(effnet.depth_profile) == [
        "stem",
        *[f"blocks.{i}" for i in range(len(effnet.depth_profile) - 2)],
        "head_conv",
    ]
    # Saved files sort their keys; the saved profile must still run from input to output.
    saved = json.loads(json.dumps(effnet.to_dict(), sort_keys=True))
    assert [entry["group"] for entry in saved["depth_profile"]] == list(effnet.depth_profile)
    # The profile's pass is timed at every cache boundary: the cost of running the network that far.
    assert effnet.boundaries == list(range(len(effnet.depth_profile) + 1))
    assert len(effnet.pass_seconds) == len(effnet.boundaries)
    assert all(b >= a for a, b in zip(effnet.pass_seconds, effnet.pass_seconds[1:], strict=False))
    assert effnet.pass_seconds[-1] > effnet.pass_seconds[0] > 0
    # One forward pass per candidate and split: a second ranking hits the cache only.
    misses = cache.stats.misses
    rank_candidates(task, ["tiny-effnet"], config, cache=cache, profile_depth=False)
    assert cache.stats.misses == misses


def test_rank_text_uses_nleep_without_a_source_head(intents_dir, tiny_bert_name):
    config = FitConfig(data=str(intents_dir), model=tiny_bert_name)
    ranked = rank_candidates(task_from_config(config), [tiny_bert_name], config, profile_depth=False)
    assert "nleep" in ranked[0].scores and "leep" not in ranked[0].scores


def test_rank_by_unknown_score(colour_folder):
    config = FitConfig(data=str(colour_folder), model="tiny-effnet")
    with pytest.raises(ConfigError, match="cannot rank by 'nope'"):
        rank_candidates(task_from_config(config), ["tiny-effnet"], config, key="nope", profile_depth=False)


def test_rank_command(colour_folder):
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(
        app, ["rank", "--data", str(colour_folder), "--candidates", "tiny-effnet,tiny-resnet", "--json", "--no-depth"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["model"] for r in rows} == {"tiny-effnet", "tiny-resnet"}
    table = runner.invoke(app, ["rank", "--data", str(colour_folder), "--candidates", "tiny-effnet"])
    assert table.exit_code == 0 and "tiny-effnet" in table.stdout and "best depth" in table.stdout
