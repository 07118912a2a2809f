"""Synthetic tasks whose right answer is known: the optimizer must find it.

* Colours a frozen network already separates: nothing beats a linear probe, so the probe must win.
* Colours a colour-blind "pretrained" network cannot see: its frozen features are useless at every depth,
  and only tuning down to the stem (new low-level features) can solve the task, so deep tuning must win.
"""

from __future__ import annotations

import pytest
import torch

from tests import helpers
from transferopt.models import ALIASES, ModelAlias, register_alias
from transferopt.search import OptimizeSettings, optimize
from transferopt.strategies.base import Strategy

COLOUR_BLIND = "colour-blind-effnet"
# Equal channel sums: a network that only sees R+G+B cannot tell these apart.
SAME_BRIGHTNESS = {"reddish": (170, 60, 60), "greenish": (60, 170, 60), "bluish": (60, 60, 170)}


def build_colour_blind(pretrained: bool):
    """tiny-effnet whose stem sees only brightness: each filter weighs the raw R, G and B values alike
    (the per-channel normalisation is undone in the weights), so equal-brightness colours look the same."""
    import timm

    backbone = ALIASES.get("tiny-effnet").build(pretrained)
    backbone.name = COLOUR_BLIND
    std = torch.tensor(timm.data.resolve_data_config({}, model=backbone.net)["std"]).view(1, 3, 1, 1)
    stem = backbone.net.conv_stem
    with torch.no_grad():
        stem.weight.copy_(stem.weight.mean(dim=1, keepdim=True) * std)
    return backbone


if COLOUR_BLIND not in ALIASES:
    register_alias(
        COLOUR_BLIND,
        ModelAlias(
            kind="timm",
            modality="image",
            description="tiny-effnet with a colour-blind stem (tests)",
            build=build_colour_blind,
            weights_present=lambda: True,
        ),
    )


@pytest.fixture(scope="module")
def same_brightness_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("same-brightness")
    return helpers.write_colour_images(root, per_class=12, val=6, test=6, classes=SAME_BRIGHTNESS, seed=3)


def test_separable_features_make_the_linear_probe_win(tmp_path, colour_folder):
    settings = OptimizeSettings(
        data=str(colour_folder), candidates=["tiny-effnet"], budget_s=20, out=tmp_path / "s", max_epochs=3
    )
    summary = optimize(settings)
    assert summary["winner"]["strategy"] == "linear-probe"
    assert summary["winner"]["val_accuracy"] == 1.0


def test_a_task_needing_new_low_level_features_makes_deep_tuning_win(tmp_path, same_brightness_folder, monkeypatch):
    # A randomly initialised tiny network with a dozen images per class needs far larger steps than a
    # pretrained one (measured: full fine-tuning learns this task at lr 1e-2, not at 2e-3 within 8
    # epochs), so the search's learning-rate range is centred there. The decision under test is the depth.
    monkeypatch.setattr(Strategy, "default_lr", lambda self, modality: 1e-2)
    settings = OptimizeSettings(
        data=str(same_brightness_folder), candidates=[COLOUR_BLIND], budget_s=60, out=tmp_path / "s", max_epochs=6
    )
    summary = optimize(settings)
    probe = summary["best_linear_probe"]
    winner = summary["winner"]
    assert probe["val_accuracy"] <= 0.5  # the frozen features carry (almost) nothing
    assert "stem" in winner["trained_groups"], winner
    assert winner["val_accuracy"] >= probe["val_accuracy"] + 0.3
