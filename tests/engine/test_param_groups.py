"""Optimizer groups: layer-wise LR decay, head LR scale, weight decay only on weight matrices."""

from __future__ import annotations

import pytest

from transferopt.engine.param_groups import build_param_groups
from transferopt.models import TransferModel, resolve_backbone
from transferopt.strategies import make_strategy


def model_with(strategy: str, options: dict | None = None, name: str = "tiny-effnet") -> TransferModel:
    model = TransferModel(resolve_backbone(name), 3)
    make_strategy(strategy, options).apply(model)
    return model


def by_identity(model: TransferModel) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


@pytest.mark.parametrize("decay", [1.0, 0.5, 0.8])
def test_layer_decay(decay):
    model = model_with("full")
    lr, n = 1e-3, model.backbone.num_groups
    groups = build_param_groups(model, lr, head_lr_scale=10.0, layer_decay=decay, weight_decay=0.05)
    names = by_identity(model)
    backbone_groups = model.backbone.param_groups()
    for group in groups:
        members = [names[id(p)] for p in group["params"]]
        if group["name"].startswith("head"):
            assert all(m.startswith("head.") for m in members)
            assert group["lr"] == pytest.approx(lr * 10.0)
            continue
        index = int(group["name"].split(".")[0].removeprefix("group"))
        assert {m.removeprefix("backbone.") for m in members} <= set(backbone_groups[index])
        assert group["lr"] == pytest.approx(lr * decay ** (n - index))


def test_every_trainable_parameter_is_in_exactly_one_group():
    model = model_with("full")
    groups = build_param_groups(model, 1e-3, 10.0, 0.7, 0.05)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    assert all(g["params"] for g in groups), "empty optimizer group"


def test_frozen_parameters_are_left_out():
    model = model_with("partial", {"k": 2})
    groups = build_param_groups(model, 1e-3, 10.0, 0.5, 0.05)
    names = by_identity(model)
    included = {names[id(p)] for g in groups for p in g["params"]}
    assert included == {n for n, p in model.named_parameters() if p.requires_grad}
    assert {g["name"].split(".")[0] for g in groups} == {"group5", "group6", "head"}


def test_weight_decay_only_on_weight_matrices():
    model = model_with("full", name="tiny-vit")
    names = by_identity(model)
    for group in build_param_groups(model, 1e-3, 10.0, 1.0, 0.05):
        for p in group["params"]:
            name = names[id(p)]
            if p.ndim > 1 and not name.endswith("bias"):
                assert group["weight_decay"] == 0.05, name
            else:  # biases, norm scales, 1-d tensors
                assert group["weight_decay"] == 0.0, name


def test_no_backbone_weight_decay_with_l2sp():
    model = model_with("full")
    for group in build_param_groups(model, 1e-3, 10.0, 1.0, 0.05, decay_backbone=False):
        expected = 0.05 if group["name"] == "head.decay" else 0.0
        assert group["weight_decay"] == expected, group["name"]


def test_linear_probe_optimizes_only_the_head():
    model = model_with("linear-probe")
    groups = build_param_groups(model, 1e-3, 5.0, 0.5, 0.0)
    assert [g["name"] for g in groups] == ["head.decay", "head.no_decay"]
    assert all(g["lr"] == pytest.approx(5e-3) for g in groups)


def test_cpu_optimizer_is_fused_and_updates_as_plain_adamw():
    import torch

    from transferopt.engine.trainer import make_optimizer

    def after_two_steps(fused: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = model_with("full")
        groups = build_param_groups(model, 1e-2, head_lr_scale=10.0, layer_decay=0.8, weight_decay=0.05)
        optimizer = make_optimizer(groups, torch.device("cpu" if fused else "meta"))
        assert optimizer.defaults["fused"] is fused
        for step in range(2):
            for p in model.parameters():
                if p.requires_grad:
                    p.grad = torch.full_like(p, 0.1 * (step + 1))
            optimizer.step()
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    fused, plain = after_two_steps(True), after_two_steps(False)
    assert fused.keys() == plain.keys()
    for name in fused:
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)
