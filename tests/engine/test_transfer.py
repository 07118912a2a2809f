"""Transfer.run: forward passes per example, frozen statistics, L2-SP, early stopping, hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import transferopt
from transferopt.config import FitConfig
from transferopt.data import load_task_data
from transferopt.engine import FeatureCache, StopTraining, Transfer, frozen_prefix
from transferopt.engine.run import balance_classes, class_weight_tensor, readable
from transferopt.models import TransferModel, configure_backbone, resolve_backbone
from transferopt.models.hf_text import HFTextBackbone
from transferopt.models.timm_backbone import TimmBackbone
from transferopt.strategies import make_strategy


def make_transfer(data: str, model: str, cache: FeatureCache, **options) -> Transfer:
    """What `transferopt.fit` does up to the run, keeping the model at hand."""
    config = FitConfig(data=data, model=model, **options)
    task = load_task_data(data, shots=config.shots, val_fraction=config.val_fraction, seed=config.seed)
    backbone = resolve_backbone(model)
    configure_backbone(backbone, task, config)
    torch.manual_seed(config.seed)
    return Transfer(TransferModel(backbone, task.num_classes), task, config, cache)


@pytest.fixture
def prepared(monkeypatch):
    """Count the examples each backbone class prepares (decodes + transforms)."""
    counts = {"n": 0}
    for cls in (TimmBackbone, HFTextBackbone):
        original = cls.prepare

        def counting(self, inputs, index, train=False, _original=original):
            counts["n"] += len(index)
            return _original(self, inputs, index, train)

        monkeypatch.setattr(cls, "prepare", counting)
    return counts


def bn_buffers(modules) -> dict[str, torch.Tensor]:
    out = {}
    for i, module in enumerate(modules):
        for name, buffer in module.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                out[f"{i}.{name}"] = buffer.detach().clone()
    return out


def test_calibration_improves_validation_nll_and_keeps_predictions(tmp_path, colour_folder):
    plain = transferopt.fit(str(colour_folder), "tiny-effnet", "linear-probe", calibrate=False)
    tuned = transferopt.fit(str(colour_folder), "tiny-effnet", "linear-probe")
    assert plain.metrics["temperature"] is None and tuned.metrics["temperature"] > 0
    assert tuned.metrics["val"]["log_loss"] <= plain.metrics["val"]["log_loss"] + 1e-9
    assert tuned.metrics["val"]["accuracy"] == plain.metrics["val"]["accuracy"]


def test_linear_probe_runs_the_backbone_once_per_example(tmp_path, colour_folder, prepared):
    result = transferopt.fit(str(colour_folder), "tiny-effnet", "linear-probe", cache=FeatureCache(tmp_path))
    assert prepared["n"] == 24 + 9 + 9  # train + val + test, each once
    # A memory hit: val features reused for temperature calibration, whose predictions give the val metrics.
    assert result.metrics["cache"] == {"hits_memory": 1, "hits_disk": 0, "misses": 3}
    assert result.metrics["frozen_prefix"] == 7 and result.history == []
    # Same data again: everything comes from the cache (memory, then disk).
    transferopt.fit(str(colour_folder), "tiny-effnet", "linear-probe", cache=FeatureCache(tmp_path))
    assert prepared["n"] == 42


@pytest.mark.parametrize(
    ("model", "data_fixture", "examples"),
    [
        ("tiny-effnet", "colour_folder", 42),
        ("tiny-bert", "intents_dir", 30),
    ],
)
def test_partial_training_computes_the_frozen_prefix_once(request, tmp_path, prepared, model, data_fixture, examples):
    data = str(request.getfixturevalue(data_fixture))
    name = request.getfixturevalue("tiny_bert_name") if model == "tiny-bert" else model
    result = transferopt.fit(
        data, name, "partial", strategy_options={"k": 1}, epochs=3, patience=5, cache=FeatureCache(tmp_path)
    )
    assert len(result.history) == 3
    assert prepared["n"] == examples  # not once per epoch
    groups = len(result.metrics["layer_groups"])
    assert result.metrics["frozen_prefix"] == groups - 1
    assert result.metrics["trained_groups"] == result.metrics["layer_groups"][-1:]


def test_augmentation_prepares_train_images_every_epoch(tmp_path, colour_folder, prepared):
    transferopt.fit(
        str(colour_folder),
        "tiny-effnet",
        "partial",
        strategy_options={"k": 2},
        epochs=2,
        patience=5,
        augment=True,
        cache=FeatureCache(tmp_path),
    )
    assert prepared["n"] == 2 * 24 + 9 + 9


def test_frozen_batchnorm_statistics_do_not_change_in_partial_training(tmp_path, colour_folder):
    transfer = make_transfer(
        str(colour_folder),
        "tiny-effnet",
        FeatureCache(tmp_path),
        epochs=2,
        patience=5,
        augment=True,
        batch_size=8,
        lr=1e-3,
    )
    backbone = transfer.model.backbone
    before = bn_buffers(backbone.group_modules())
    outcome = transfer.run(make_strategy("partial", {"k": 2}))
    assert outcome.prefix == 5
    after = bn_buffers(backbone.group_modules())
    frozen = [k for k in before if int(k.split(".")[0]) < 5]
    trained = [k for k in before if int(k.split(".")[0]) >= 5]
    assert frozen and trained
    for key in frozen:
        assert torch.equal(before[key], after[key]), f"frozen BatchNorm statistics changed: {key}"
    # The trained groups' statistics do move (the check above is not vacuous).
    assert any(not torch.equal(before[k], after[k]) for k in trained)


def test_frozen_batchnorm_inside_lora_groups_keeps_its_statistics(tmp_path, colour_folder):
    transfer = make_transfer(
        str(colour_folder), "tiny-effnet", FeatureCache(tmp_path), epochs=2, patience=5, batch_size=8, lr=1e-2
    )
    before = bn_buffers([transfer.model.backbone.net])
    outcome = transfer.run(make_strategy("lora", {"rank": 2, "last_k": 3}))
    assert outcome.trained_groups == ["blocks.3", "blocks.4"]
    after = bn_buffers([transfer.model.backbone.net])
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    # The adapters were merged into the weights, which did change.
    fresh = resolve_backbone("tiny-effnet").net.state_dict()
    merged = transfer.model.backbone.net.state_dict()
    assert not torch.equal(fresh["blocks.4.0.conv_pw.weight"], merged["blocks.4.0.conv_pw.weight"])
    assert torch.equal(fresh["blocks.1.0.conv_pwl.weight"], merged["blocks.1.0.conv_pwl.weight"])
    assert not any("lora" in k for k in merged)


def test_lp_ft_keeps_batchnorm_statistics_and_trains_its_scale_and_shift(tmp_path, colour_folder):
    """The probe was fitted on features normalised by the running statistics: LP-FT keeps them."""
    transfer = make_transfer(
        str(colour_folder), "tiny-effnet", FeatureCache(tmp_path), epochs=2, patience=5, batch_size=8, lr=1e-2
    )
    groups = transfer.model.backbone.group_modules()
    statistics = bn_buffers(groups)
    norms = [m for g in groups[5:] for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    affine = [(p, p.detach().clone()) for m in norms for p in (m.weight, m.bias)]
    seen = []  # checked during training: the best epoch restored at the end may be the probe itself

    def check(record: dict) -> None:
        now = bn_buffers(groups)
        seen.append(
            {
                "statistics kept": all(torch.equal(statistics[k], now[k]) for k in statistics),
                "affine moved": any(not torch.equal(p, start) for p, start in affine),
            }
        )

    outcome = transfer.run(make_strategy("lp-ft", {"then": "partial", "then_options": {"k": 2}}), [check])
    assert outcome.prefix == 5 and len(outcome.history.epochs) == 2
    assert statistics and affine and len(seen) == 2
    assert all(s == {"statistics kept": True, "affine moved": True} for s in seen), seen


def distance_from_start(l2sp: float, data: str, tmp_path) -> float:
    transfer = make_transfer(
        data,
        "tiny-effnet",
        FeatureCache(tmp_path),
        epochs=3,
        patience=10,
        batch_size=4,
        lr=1e-2,
        l2sp=l2sp,
        warmup_fraction=0.0,
    )
    start = {n: p.detach().clone() for n, p in transfer.model.backbone.named_parameters()}
    transfer.run(make_strategy("partial", {"k": 2}))
    now = dict(transfer.model.backbone.named_parameters())
    with torch.no_grad():
        return float(sum(((now[n] - p) ** 2).sum() for n, p in start.items()) ** 0.5)


def test_l2sp_keeps_weights_near_the_pretrained_ones(tmp_path, colour_folder):
    free = distance_from_start(0.0, str(colour_folder), tmp_path)
    anchored = distance_from_start(1e4, str(colour_folder), tmp_path)
    assert free > 0
    assert anchored < 0.5 * free, (anchored, free)


def scripted_scores(monkeypatch, values: list[float]) -> list[float]:
    """Make the trainer's validation score follow `values`: the starting point first, then each epoch."""
    import transferopt.engine.trainer as trainer

    calls = []

    def scripted(metrics, name):
        calls.append(name)
        return values[len(calls) - 1]

    monkeypatch.setattr(trainer, "score", scripted)
    return calls


def snapshot_each_epoch(model, store):
    def hook(record):
        store[record["epoch"]] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    return hook


def test_early_stopping_restores_the_best_epoch(tmp_path, colour_folder, monkeypatch):
    transfer = make_transfer(
        str(colour_folder),
        "tiny-effnet",
        FeatureCache(tmp_path),
        epochs=10,
        patience=3,
        lr=1e-2,
        calibrate=False,  # temperature scaling would rescale the restored head
    )
    calls = scripted_scores(monkeypatch, [0.1, 0.5, 0.9, 0.4, 0.6, 0.8, 0.99, 0.99, 0.99, 0.99, 0.99])
    snapshots = {}
    history = transfer.run(
        make_strategy("partial", {"k": 2}), hooks=[snapshot_each_epoch(transfer.model, snapshots)]
    ).history
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4, 5]  # epoch 2, then 3 without gain
    assert len(calls) == 6  # the starting point and five epochs
    assert history.best_epoch == 2 and history.best_score == 0.9 and history.stopped_early
    assert [e["val_accuracy"] for e in history.epochs] != []
    final = transfer.model.state_dict()
    assert any(not torch.equal(snapshots[2][k], snapshots[5][k]) for k in final)
    for key, value in snapshots[2].items():
        assert torch.equal(final[key], value), f"{key} is not the best epoch's"


def test_training_that_never_beats_the_start_keeps_the_start(tmp_path, colour_folder, monkeypatch):
    """After LP-FT's probe, epoch 0 is a real candidate: fine-tuning that never beats it must not
    replace it."""
    transfer = make_transfer(
        str(colour_folder),
        "tiny-effnet",
        FeatureCache(tmp_path),
        epochs=10,
        patience=2,
        lr=1e-2,
        calibrate=False,  # temperature scaling would rescale the restored head
    )
    scripted_scores(monkeypatch, [0.9, 0.5, 0.6, 0.95])
    model = transfer.model
    started = {}
    original = transfer.train

    def remember_start(*args, **kwargs):
        started.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return original(*args, **kwargs)

    transfer.train = remember_start
    history = transfer.run(make_strategy("lp-ft", {"then": "partial", "then_options": {"k": 1}})).history
    assert [e["epoch"] for e in history.epochs] == [1, 2]
    assert history.best_epoch == 0 and history.stopped_early
    final = model.state_dict()
    for key, value in started.items():
        assert torch.equal(final[key], value), key


def test_patience_stops_a_run_that_does_not_improve(tmp_path, intents_dir, tiny_bert_name, monkeypatch):
    transfer = make_transfer(str(intents_dir), tiny_bert_name, FeatureCache(tmp_path), epochs=10, patience=3)
    scripted_scores(monkeypatch, [0.5] * 11)
    history = transfer.run(make_strategy("partial", {"k": 1})).history
    assert len(history.epochs) == 3 and history.stopped_early


def test_no_early_stop_while_improving(tmp_path, intents_dir, tiny_bert_name, monkeypatch):
    transfer = make_transfer(str(intents_dir), tiny_bert_name, FeatureCache(tmp_path), epochs=4, patience=1)
    scripted_scores(monkeypatch, [0.1, 0.2, 0.3, 0.4, 0.5])
    history = transfer.run(make_strategy("partial", {"k": 1})).history
    assert len(history.epochs) == 4 and history.best_epoch == 4 and not history.stopped_early


def test_a_hook_can_stop_training(tmp_path, colour_folder):
    transfer = make_transfer(str(colour_folder), "tiny-effnet", FeatureCache(tmp_path), epochs=10, patience=10)
    seen = []

    def stop_at_two(record):
        seen.append(record)
        if record["epoch"] == 2:
            raise StopTraining

    history = transfer.run(make_strategy("partial", {"k": 1}), hooks=[stop_at_two]).history
    assert [r["epoch"] for r in seen] == [1, 2]
    assert len(history.epochs) == 2 and history.stopped_early
    assert {"epoch", "train_loss", "val_loss", "val_accuracy", "elapsed_s"} <= set(seen[0])


def test_run_outcome_describes_what_trained(tmp_path, colour_folder):
    transfer = make_transfer(str(colour_folder), "tiny-effnet", FeatureCache(tmp_path), epochs=1)
    outcome = transfer.run(make_strategy("bitfit"))
    model = transfer.model
    biases = sum(p.numel() for n, p in model.backbone.named_parameters() if n.endswith(".bias"))
    assert outcome.trainable_params == biases + sum(p.numel() for p in model.head.parameters())
    assert outcome.prefix == frozen_prefix(model) == 0
    assert outcome.head_fit is None and outcome.adapter is None
    assert {"feature_cache_s", "train_s", "fit_s"} <= set(outcome.timing)


def test_class_balancing():
    config = FitConfig(data="x", model="y")
    assert balance_classes(config, np.array([0] * 9 + [1] * 3), 2)
    assert not balance_classes(config, np.array([0] * 5 + [1] * 3), 2)
    assert balance_classes(config.replace(class_weight="balanced"), np.array([0, 1]), 2)
    assert not balance_classes(config.replace(class_weight="none"), np.array([0] * 9 + [1]), 2)
    weights = class_weight_tensor(np.array([0, 0, 0, 1]), 2)
    assert torch.allclose(weights, torch.tensor([4 / 6, 2.0]))


AUGMENTED_RUNS = """
import random, sys
sys.path.insert(0, {root!r})
import tests.conftest  # offline env and the tiny model aliases
import transferopt
losses = []
for noise in (1, 2, 3):
    random.seed(noise)  # whatever state the caller left behind
    result = transferopt.fit({data!r}, "tiny-effnet", "full", epochs=2, lr=1e-2, augment=True, calibrate=False)
    losses.append([e["train_loss"] for e in result.history])
print(losses[0] == losses[1] == losses[2], losses)
"""


def test_augmented_training_is_reproducible_from_the_first_run_of_a_process(colour_folder):
    """Same seed, same augmented run — the first one of a fresh process included. timm's crops draw from
    Python's `random`, and so did the first import of the progress bar's library (rich)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = AUGMENTED_RUNS.format(root=str(root), data=str(colour_folder))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("True"), result.stdout


def test_mid_epoch_checks_reach_the_hooks_without_changing_the_run(colour_folder):
    """checks_per_epoch > 1 validates within epochs (a search prunes on that: data seen as fidelity);
    the history, the chosen epoch and the weights stay exactly those of a run without them."""
    from transferopt.engine.trainer import check_points

    assert check_points(10, 4) == {2, 5, 8} and check_points(10, 1) == set() and check_points(2, 4) == {1}
    runs = []
    for checks in (1, 3):
        records = []
        result = transferopt.fit(
            str(colour_folder), "tiny-effnet", "full", epochs=2, lr=1e-2, batch_size=4, checks_per_epoch=checks,
            hooks=[records.append],
        )  # fmt: skip
        weights = torch.cat([p.detach().flatten() for p in result.model.parameters()])
        runs.append((records, result.history, weights))
    (plain, plain_history, plain_weights), (checked, checked_history, checked_weights) = runs
    assert [r["epoch"] for r in plain] == [1, 2]
    partial = [r for r in checked if r.get("partial")]
    assert [round(r["epoch"], 2) for r in partial] == [0.33, 0.67, 1.33, 1.67]  # 6 batches per epoch

    def timeless(history):
        return [{k: v for k, v in epoch.items() if k != "elapsed_s"} for epoch in history]

    assert timeless(checked_history) == timeless(plain_history)
    assert torch.equal(plain_weights, checked_weights)


def test_a_hook_can_stop_training_mid_epoch(colour_folder):
    def stop_at_first_partial(record):
        if record.get("partial"):
            raise StopTraining

    result = transferopt.fit(
        str(colour_folder), "tiny-effnet", "full", epochs=3, batch_size=4, checks_per_epoch=2,
        hooks=[stop_at_first_partial],
    )  # fmt: skip
    assert result.history == []  # stopped before the first epoch ended


def test_a_text_probe_tries_each_class_name_as_an_example(tmp_path, intents_dir, tiny_bert_name, colour_folder):
    cache = FeatureCache(tmp_path)
    transfer = make_transfer(str(intents_dir), tiny_bert_name, cache)
    names = transfer.class_name_examples([0, 1])
    assert names is not None and names[0].shape == (3, transfer.model.backbone.num_features)
    assert names[1].tolist() == [0, 1, 2]
    assert transfer.class_name_examples([0]) is None  # not asked for
    read = []
    original = cache.states

    def spy(backbone, weights, split, *args):
        read.append(getattr(split.inputs, "texts", None))
        return original(backbone, weights, split, *args)

    cache.states = spy
    outcome = transfer.run(make_strategy("linear-probe"))
    assert read[2] == transfer.data.classes  # the class names, read as text
    assert outcome.head_fit["name_examples"] in (0, 1)
    # Images have no names to read: their probe fits on the images alone.
    image = make_transfer(str(colour_folder), "tiny-effnet", FeatureCache(tmp_path / "images"))
    assert image.class_name_examples([0, 1]) is None
    assert "name_examples" not in image.run(make_strategy("linear-probe")).head_fit


def test_class_names_are_read_as_words():
    assert readable("card_arrival") == "card arrival"
    assert readable("lost-or-stolen  card") == "lost or stolen card"
    assert readable("Refund_not_showing_up") == "Refund not showing up"
