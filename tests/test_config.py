"""FitConfig: validation, JSON round trip, unknown fields."""

from __future__ import annotations

import dataclasses

import pytest

from transferopt.config import FitConfig
from transferopt.errors import ConfigError


def test_json_round_trip():
    config = FitConfig(
        data="d",
        model="m",
        strategy="lp-ft",
        strategy_options={"then": "lora", "then_options": {"rank": 4}},
        shots=5,
        lr=1e-3,
        image_size=96,
        text_col="t",
        label_col="l",
    )
    assert FitConfig.from_json(config.to_json()) == config
    assert FitConfig.from_dict(config.to_dict()) == config
    assert set(config.to_dict()) == {f.name for f in dataclasses.fields(FitConfig)}


def test_unknown_field():
    values = FitConfig(data="d", model="m").to_dict()
    values["learning_rate"] = 1
    with pytest.raises(ConfigError, match="unknown config field.*learning_rate"):
        FitConfig.from_dict(values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"shots": 0}, "--shots must be >= 1"),
        ({"val_shots": 0}, "--val-shots must be >= 1"),
        ({"val_fraction": 0.0}, "val_fraction must be in"),
        ({"val_fraction": 1.0}, "val_fraction must be in"),
        ({"epochs": 0}, "--epochs must be >= 1"),
        ({"lr": 0.0}, "--lr must be positive"),
        ({"batch_size": 0}, "--batch-size must be >= 1"),
        ({"layer_decay": 0.0}, "layer_decay must be in"),
        ({"layer_decay": 1.5}, "layer_decay must be in"),
        ({"l2sp": -1.0}, "l2sp must be >= 0"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
        ({"warmup_fraction": 1.0}, "warmup_fraction must be in"),
        ({"image_size": 8}, "--image-size too small"),
        ({"class_weight": "heavy"}, "class_weight must be one of"),
        ({"metric": "loss"}, "--metric must be one of"),
    ],
)
def test_invalid_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        FitConfig(data="d", model="m", **changes)


def test_replace_validates():
    config = FitConfig(data="d", model="m")
    assert config.replace(epochs=3).epochs == 3
    with pytest.raises(ConfigError):
        config.replace(epochs=0)
