"""The Python API: fit, the run directory, load, predict and evaluate."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import transferopt
from tests import helpers
from transferopt.config import FitConfig
from transferopt.data import load_task_data
from transferopt.errors import ConfigError, DataError, RunDirError

RUN_FILES = {
    "config.json",
    "metrics.json",
    "history.json",
    "labels.json",
    "model.json",
    "model.safetensors",
    "data.json",
    "backbone",
    "transferopt-run.json",
    "training_curve.png",
}


def split_images(folder) -> list[str]:
    return [str(p) for p in sorted((folder / "test").rglob("*.png"))]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, colour_folder):
    out = tmp_path_factory.mktemp("runs") / "partial"
    result = transferopt.fit(
        str(colour_folder), "tiny-effnet", "partial", strategy_options={"k": 2}, epochs=2, lr=1e-2, out=out
    )
    return result, out


def test_fit_writes_a_complete_run_directory(image_run, colour_folder):
    result, out = image_run
    assert result.run_dir == out
    assert set(os.listdir(out)) == RUN_FILES
    assert FitConfig.from_dict(json.loads((out / "config.json").read_text())) == result.config
    assert result.config.strategy_options == {"k": 2} and result.config.data == str(colour_folder)
    assert json.loads((out / "labels.json").read_text()) == {"classes": ["blue", "green", "red"]}
    assert json.loads((out / "metrics.json").read_text())["trainable_params"] == result.metrics["trainable_params"]
    assert json.loads((out / "history.json").read_text()) == json.loads(json.dumps(result.history))
    model_info = json.loads((out / "model.json").read_text())
    assert model_info["backbone"]["name"] == "tiny-effnet" and model_info["num_classes"] == 3
    assert model_info["strategy"] == {"name": "partial", "options": {"k": 2}}
    data = json.loads((out / "data.json").read_text())
    assert data["counts"]["train"] == {"blue": 8, "green": 8, "red": 8}
    assert json.loads((out / "transferopt-run.json").read_text())["kind"] == "fit"


def test_metrics_content(image_run):
    result, _ = image_run
    metrics = result.metrics
    for split, n in (("val", 9), ("test", 9)):
        section = metrics[split]
        assert section["n"] == n
        assert {"accuracy", "macro_f1", "per_class_recall", "auc", "ece", "log_loss"} <= set(section)
        assert set(section["per_class_recall"]) == {"blue", "green", "red"}
        assert 0 <= section["accuracy"] <= 1 and 0 <= section["ece"] <= 1
    timing = metrics["timing"]
    assert {"total_s", "feature_cache_s", "train_s"} <= set(timing)
    assert timing["total_s"] >= timing["train_s"] > 0 and timing["feature_cache_s"] >= 0
    trainable = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    assert metrics["trainable_params"] == trainable
    assert metrics["total_params"] == sum(p.numel() for p in result.model.parameters())
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    assert metrics["trained_groups"] == ["blocks.4", "head_conv"] and metrics["frozen_prefix"] == 5
    assert len(result.history) >= 1 and metrics["best_epoch"] is not None


def test_load_reproduces_predictions(image_run, colour_folder):
    result, out = image_run
    loaded = transferopt.load(out)
    images = split_images(colour_folder)
    assert loaded.classes == result.classes and loaded.config == result.config
    assert np.allclose(loaded.predict_proba(images), result.predict_proba(images), atol=1e-5)
    rows = loaded.predict(images)
    assert [r["label"] for r in rows] == [r["label"] for r in result.predict(images)]
    assert [r["input"] for r in rows] == images
    assert all(0 < r["probability"] <= 1 for r in rows)
    assert loaded.metrics == json.loads(json.dumps(result.metrics))


def test_evaluate_matches_the_fit_metrics(image_run, colour_folder):
    result, out = image_run
    loaded = transferopt.load(out)
    for split in ("val", "test"):
        again = loaded.evaluate(str(colour_folder), split)
        assert again["n"] == result.metrics[split]["n"]
        assert again["accuracy"] == pytest.approx(result.metrics[split]["accuracy"])
        assert again["log_loss"] == pytest.approx(result.metrics[split]["log_loss"], abs=1e-4)
    with pytest.raises(DataError, match="no 'nope' split"):
        loaded.evaluate(str(colour_folder), "nope")


def test_evaluate_on_a_subset_of_classes(image_run, tmp_path):
    result, _ = image_run
    helpers.write_colour_images(
        tmp_path,
        layout="flat",
        per_class=3,
        classes={"red": helpers.COLOURS["red"], "blue": helpers.COLOURS["blue"]},
    )
    metrics = result.evaluate(str(tmp_path), "train")
    assert set(metrics["per_class_recall"]) <= {"blue", "red"}
    reference = load_task_data(str(tmp_path))
    probs = result.predict_proba([str(p) for p in reference.train.inputs.paths])
    model_labels = np.array([result.classes.index(reference.classes[i]) for i in reference.train.labels])
    assert metrics["accuracy"] == pytest.approx(float((probs.argmax(1) == model_labels).mean()))


def test_evaluate_with_unknown_classes(image_run, tmp_path):
    result, _ = image_run
    helpers.write_colour_images(
        tmp_path, layout="flat", per_class=3, classes={"red": (255, 0, 0), "pink": (255, 90, 90)}
    )
    with pytest.raises(DataError, match="class.*not trained on: pink"):
        result.evaluate(str(tmp_path), "train")


def test_evaluate_with_the_wrong_modality(image_run, tmp_path):
    result, _ = image_run
    rows = [{"text": f"a {c} thing number {i}", "label": c} for c in ("blue", "green", "red") for i in range(4)]
    helpers.write_table(tmp_path / "colours.csv", rows)
    with pytest.raises((ConfigError, DataError), match="text"):
        result.evaluate(str(tmp_path / "colours.csv"), "val")


def test_predict_errors(image_run, tmp_path):
    result, _ = image_run
    with pytest.raises(DataError, match="no inputs"):
        result.predict([])
    with pytest.raises(DataError, match="image not found: .*missing.png"):
        result.predict([str(tmp_path / "missing.png")])
    broken = helpers.write_corrupt(tmp_path / "broken.png")
    with pytest.raises(DataError, match="cannot decode image"):
        result.predict([str(broken)])


def test_linear_probe_run(tmp_path, colour_folder):
    result = transferopt.fit(str(colour_folder), "tiny-effnet", "linear-probe", out=tmp_path / "run")
    assert result.metrics["trainable_params"] == 256 * 3 + 3
    assert result.metrics["trained_groups"] == [] and result.history == []
    from transferopt.strategies.simple import DEFAULT_C_VALUES

    assert result.metrics["head_fit"]["C"] in DEFAULT_C_VALUES
    assert result.metrics["timing"]["train_s"] == 0.0
    # The colours are separable even with random features.
    assert result.metrics["val"]["accuracy"] == 1.0 and result.metrics["test"]["accuracy"] == 1.0
    loaded = transferopt.load(tmp_path / "run")
    images = split_images(colour_folder)
    assert np.allclose(loaded.predict_proba(images), result.predict_proba(images), atol=1e-5)
    assert [r["label"] for r in loaded.predict(images)] == [p.split("/")[-2] for p in images]


def test_a_model_fitted_without_flips_is_reloaded_without_them(tmp_path, colour_folder):
    result = transferopt.fit(
        str(colour_folder), "tiny-effnet", "bitfit", out=tmp_path / "run", augment=True, flip=False, epochs=1
    )
    assert result.config.flip is False and result.model.backbone.data_config["hflip"] == 0.0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["flip"] is False
    assert transferopt.load(tmp_path / "run").model.backbone.data_config["hflip"] == 0.0


def test_text_run_saves_and_loads(tmp_path, intents_dir, tiny_bert_name):
    result = transferopt.fit(
        str(intents_dir),
        tiny_bert_name,
        "partial",
        strategy_options={"k": 1},
        epochs=2,
        max_length=16,
        out=tmp_path / "run",
    )
    assert set(os.listdir(tmp_path / "run")) == RUN_FILES
    assert (tmp_path / "run" / "backbone" / "config.json").is_file()
    loaded = transferopt.load(tmp_path / "run")
    assert loaded.model.backbone.max_length == 16
    texts = ["play a song by the beatles", "will it snow tomorrow", "order sushi"]
    assert np.allclose(loaded.predict_proba(texts), result.predict_proba(texts), atol=1e-5)
    assert loaded.evaluate(str(intents_dir), "test")["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    with pytest.raises(DataError, match="input 2 is an empty text"):
        loaded.predict(["fine", "  "])


def test_lora_run_saves_a_peft_adapter(tmp_path, colour_folder):
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors.torch import load_file

    from transferopt.models import resolve_backbone

    out = tmp_path / "run"
    result = transferopt.fit(
        str(colour_folder),
        "tiny-effnet",
        "lora",
        strategy_options={"rank": 2, "last_k": 3},
        epochs=2,
        lr=1e-2,
        out=out,
    )
    assert set(os.listdir(out)) == RUN_FILES | {"adapter"}
    assert set(os.listdir(out / "adapter")) == {"adapter_config.json", "adapter_model.safetensors"}
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == "LORA" and adapter_config["r"] == 2
    saved_adapter = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert saved_adapter and all("lora_" in k for k in saved_adapter)
    # peft loads the adapter onto the pretrained network ...
    base = resolve_backbone("tiny-effnet").net
    pretrained = {k: v.clone() for k, v in base.state_dict().items()}
    peft_model = PeftModel.from_pretrained(base, str(out / "adapter"))
    loaded_adapter = get_peft_model_state_dict(peft_model)
    assert set(loaded_adapter) == set(saved_adapter)
    assert all(torch.equal(loaded_adapter[k], saved_adapter[k]) for k in saved_adapter)
    # ... and merging it gives exactly the weights of the saved (merged) model.
    merged = peft_model.merge_and_unload().state_dict()
    weights = load_file(str(out / "model.safetensors"))
    assert not any("lora" in k for k in weights)
    changed = [k for k in merged if not torch.equal(merged[k], pretrained[k])]
    assert changed and all(k.startswith(("blocks.3.", "blocks.4.")) for k in changed)
    for key, value in merged.items():
        assert torch.allclose(weights[f"backbone.net.{key}"], value, atol=1e-6), key
    images = split_images(colour_folder)
    assert np.allclose(transferopt.load(out).predict_proba(images), result.predict_proba(images), atol=1e-5)


def test_out_folder_with_unrelated_files_is_refused(tmp_path, colour_folder):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    (out / "sub").mkdir()
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    with pytest.raises(RunDirError, match="already holds files that are not a transferopt run"):
        transferopt.fit(str(colour_folder), "tiny-effnet", "linear-probe", out=out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "sub",
        "sub/data.bin",
        "thesis.tex",
    ]
    assert (out / "thesis.tex").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["mine"], "a staging folder was left behind"


def test_out_is_a_file(tmp_path, image_run):
    result, _ = image_run
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        result.save(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"


def test_saving_over_a_previous_run_replaces_it(tmp_path, image_run):
    result, _ = image_run
    out = tmp_path / "run"
    result.save(out)
    (out / "extra-from-old-run.txt").write_text("old")
    result.save(out)
    assert set(os.listdir(out)) == RUN_FILES
    assert sorted(os.listdir(tmp_path)) == ["run"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result.save(empty)
    assert set(os.listdir(empty)) == RUN_FILES


def test_load_errors(tmp_path, image_run):
    with pytest.raises(RunDirError, match="run directory not found"):
        transferopt.load(tmp_path / "nope")
    result, _ = image_run
    out = result.save(tmp_path / "run")
    (out / "model.safetensors").unlink()
    with pytest.raises(RunDirError, match="model.safetensors is missing"):
        transferopt.load(out)
    (out / "labels.json").write_text("{not json")
    with pytest.raises(RunDirError, match="labels.json is corrupt"):
        transferopt.load(out)
    (out / "config.json").unlink()
    with pytest.raises(RunDirError, match="config.json is missing"):
        transferopt.load(out)


def test_modality_mismatch(intents_dir):
    with pytest.raises(ConfigError, match=r"model tiny-effnet takes image input but .* holds text data"):
        transferopt.fit(str(intents_dir), "tiny-effnet", "linear-probe")


def test_fit_needs_data_and_model():
    with pytest.raises(ConfigError, match="needs data and model"):
        transferopt.fit(model="tiny-effnet")


def test_fit_with_a_config_object_and_binary_npz(tmp_path):
    path = helpers.write_npz(tmp_path / "grey.npz")
    config = FitConfig(data=str(path), model="tiny-resnet", strategy="linear-probe", seed=3)
    result = transferopt.fit(config=config)
    assert result.config is config and result.classes == ["0", "1"]
    assert "auc" in result.metrics["val"] and "auc" in result.metrics["test"]
    assert result.metrics["val"]["accuracy"] == 1.0  # bright vs dark


def test_public_helpers():
    assert set(transferopt.list_strategies()) >= {
        "linear-probe",
        "partial",
        "full",
        "bitfit",
        "norm",
        "lora",
        "lp-ft",
    }
    assert any(row["name"] == "tiny-effnet" for row in transferopt.list_models())
    assert transferopt.FitConfig is FitConfig
    with pytest.raises(AttributeError):
        transferopt.no_such_attribute  # noqa: B018


def test_evaluate_reproduces_a_held_out_validation_split(tmp_path, colour_flat):
    result = transferopt.fit(str(colour_flat), "tiny-effnet", "linear-probe", seed=4, out=tmp_path / "run")
    again = transferopt.load(tmp_path / "run").evaluate(str(colour_flat), "val")
    assert again["n"] == result.metrics["val"]["n"] == 6
    assert again["log_loss"] == pytest.approx(result.metrics["val"]["log_loss"], abs=1e-5)


def test_shots_run_evaluates_the_same_subsets(tmp_path, colour_flat):
    result = transferopt.fit(str(colour_flat), "tiny-effnet", "linear-probe", shots=3, val_shots=2, seed=2)
    again = result.evaluate(str(colour_flat), "val")
    assert again["n"] == result.metrics["val"]["n"] == 6
    assert again["log_loss"] == pytest.approx(result.metrics["val"]["log_loss"], abs=1e-5)
    assert result.evaluate(str(colour_flat), "train")["n"] == 9


def test_imbalanced_classes_are_weighted(tmp_path):
    data = helpers.write_colour_images(
        tmp_path / "data", layout="flat", per_class=12, classes={"red": helpers.COLOURS["red"]}
    )
    helpers.write_colour_images(
        data,
        layout="flat",
        per_class=3,
        classes={"blue": helpers.COLOURS["blue"], "green": helpers.COLOURS["green"]},
        seed=1,
    )
    result = transferopt.fit(
        str(data), "tiny-effnet", "partial", strategy_options={"k": 1}, epochs=1, val_fraction=0.34
    )
    assert any(note.startswith("balanced class weights") for note in result.metrics["notes"])
    plain = transferopt.fit(
        str(data),
        "tiny-effnet",
        "partial",
        strategy_options={"k": 1},
        epochs=1,
        val_fraction=0.34,
        class_weight="none",
    )
    assert not any(note.startswith("balanced class weights") for note in plain.metrics["notes"])


def test_training_from_scratch_starts_from_seeded_random_weights(tmp_path, colour_folder):
    """`pretrained=False` (`fit --scratch`): the architecture with random weights, reproducible per seed.
    (timm/<name> builds offline only without weights, which is exactly the from-scratch case.)"""

    def backbone_weights(result):
        return torch.cat([p.detach().flatten() for p in result.model.backbone.parameters()])

    runs = [
        transferopt.fit(str(colour_folder), "timm/test_efficientnet", "full", epochs=1, pretrained=False, seed=s)
        for s in (0, 0, 1)
    ]
    assert torch.equal(backbone_weights(runs[0]), backbone_weights(runs[1]))
    assert not torch.equal(backbone_weights(runs[0]), backbone_weights(runs[2]))
    runs[0].save(tmp_path / "scratch")
    again = transferopt.load(tmp_path / "scratch")
    assert again.config.pretrained is False
    assert torch.equal(backbone_weights(again), backbone_weights(runs[0]))


def test_calibration_and_the_validation_metrics_share_one_pass(colour_folder, monkeypatch):
    from transferopt.engine.run import Transfer

    passes = []
    original = Transfer.probabilities

    def counting(self, split, prefix, label):
        passes.append(label)
        return original(self, split, prefix, label)

    monkeypatch.setattr(Transfer, "probabilities", counting)
    result = transferopt.fit(str(colour_folder), "tiny-effnet", "partial", strategy_options={"k": 1}, epochs=1)
    assert result.metrics["temperature"] is not None
    assert passes.count("val") == 1  # the metrics reuse the calibration's predictions
