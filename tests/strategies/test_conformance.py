"""Conformance matrix: every registered strategy x tiny timm CNNs, a tiny ViT, a tiny BERT and tiny speech
encoders (Whisper, wav2vec2, HuBERT).

For each pair: exactly the expected parameters require gradients, exactly those receive a gradient
from one backward pass, the head always trains, every trainable parameter sits in a layer group, the
frozen prefix is a valid cache boundary, and unknown options are refused with the valid ones listed.
A newly registered strategy joins the matrix automatically; it must also declare its expected
trainable set in EXPECTED below.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from tests.conftest import TINY_AUDIO_MODELS
from transferopt.data import TextInputs
from transferopt.engine import frozen_prefix
from transferopt.engine.trainer import check_all_trainable_grouped
from transferopt.errors import ConfigError
from transferopt.models import TransferModel, resolve_backbone
from transferopt.strategies import STRATEGIES, ModelShape, make_strategy, trainable_parameter_names

MODELS = ["tiny-effnet", "tiny-resnet", "tiny-vit", "tiny-bert", "tiny-whisper", "tiny-wav2vec2", "tiny-hubert"]
HEAD = {"head.1.weight", "head.1.bias"}
TEXTS = TextInputs(["play some jazz music", "will it rain tomorrow", "order a pizza for dinner"])


def build(name: str, bert_name: str) -> tuple[TransferModel, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    if name == "tiny-bert":
        backbone = resolve_backbone(bert_name)
        state = backbone.prepare(TEXTS, [0, 1, 2])
    elif name in TINY_AUDIO_MODELS:
        backbone = resolve_backbone(name)
        state = backbone.encode_waveforms([0.1 * torch.randn(n).numpy() for n in (8000, 12000, 16000)])
    else:
        backbone = resolve_backbone(name)
        state = {"x": torch.randn(3, 3, 64, 64)}
    return TransferModel(backbone, 3), state


def group_params(model: TransferModel) -> list[set[str]]:
    return [{f"backbone.{n}" for n in group} for group in model.backbone.param_groups()]


def all_params(model: TransferModel) -> set[str]:
    return {n for n, _ in model.named_parameters()}


# -- expected trainable sets, derived from the model's structure (not from the strategy code) ----------


def expect_linear_probe(model, options):
    return set(HEAD)


def expect_full(model, options):
    return all_params(model)


def expect_partial(model, options):
    groups = group_params(model)
    k = options.get("k") or max(1, math.ceil(len(groups) / 3))
    return set().union(*groups[len(groups) - k :]) | HEAD


def expect_bitfit(model, options):
    return {n for n in all_params(model) if n.startswith("backbone.") and n.endswith(".bias")} | HEAD


def is_norm_layer(module: nn.Module) -> bool:
    return any(t.__name__ in ("BatchNorm2d", "LayerNorm", "GroupNorm", "BatchNorm1d") for t in type(module).__mro__)


def expect_norm(model, options):
    names = set()
    for module_name, module in model.backbone.named_modules():
        if is_norm_layer(module):
            names |= {f"backbone.{module_name}.{p}" for p, _ in module.named_parameters(recurse=False)}
    assert names, "model has no normalisation layer"
    return names | HEAD


def expect_lora(model, options):
    # Adapter weights (inserted by peft) and the head; nothing from the pretrained network.
    lora = {n for n in all_params(model) if ".lora_" in n}
    assert lora, "no LoRA parameters were injected"
    return lora | HEAD


def expect_lp_ft(model, options):
    inner = options.get("then", "full")
    return EXPECTED[inner](model, options.get("then_options", {}))


EXPECTED = {
    "linear-probe": expect_linear_probe,
    "full": expect_full,
    "partial": expect_partial,
    "bitfit": expect_bitfit,
    "norm": expect_norm,
    "lora": expect_lora,
    "lp-ft": expect_lp_ft,
}


def backward_once(model: TransferModel, state) -> set[str]:
    model.train()
    logits = model(state)
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2]))
    loss.backward()
    return {n for n, p in model.named_parameters() if p.grad is not None}


def check_conformance(strategy_name: str, options: dict, model: TransferModel, state) -> set[str]:
    strategy = make_strategy(strategy_name, options)
    strategy.apply(model)
    trainable = set(trainable_parameter_names(model))
    assert trainable >= HEAD, "the head must always train"
    if strategy_name not in EXPECTED:
        pytest.fail(f"new strategy {strategy_name!r}: declare its expected trainable parameters in EXPECTED")
    assert trainable == EXPECTED[strategy_name](model, options)
    check_all_trainable_grouped(model)  # raises if a trainable parameter is outside every layer group
    graded = backward_once(model, state)
    missing, extra = trainable - graded, graded - trainable
    assert not missing, f"trainable but no gradient: {sorted(missing)[:5]}"
    assert not extra, f"frozen but got a gradient: {sorted(extra)[:5]}"
    # The frozen prefix: a cache boundary before the first group that trains.
    prefix = frozen_prefix(model)
    groups = group_params(model)
    first = next((i for i, g in enumerate(groups) if g & trainable), len(groups))
    assert prefix in model.backbone.cache_boundaries() and prefix <= first
    assert not set().union(set(), *groups[:prefix]) & trainable
    # Told before any model exists (the search prices trials by it), never later than what trains.
    assert strategy.first_trained_group(len(groups)) <= first
    return trainable


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("strategy_name", STRATEGIES.names())
def test_strategy_conformance(strategy_name, model_name, tiny_bert_name):
    model, state = build(model_name, tiny_bert_name)
    check_conformance(strategy_name, {}, model, state)


@pytest.mark.parametrize("strategy_name", STRATEGIES.names())
def test_unknown_option_lists_the_valid_ones(strategy_name):
    cls = STRATEGIES.get(strategy_name)
    valid = [f.name for f in dataclasses.fields(cls.Options)]
    with pytest.raises(ConfigError) as info:
        make_strategy(strategy_name, {"no_such_option": 1})
    message = str(info.value)
    assert "no_such_option" in message and strategy_name in message
    for option in valid:
        assert option in message
    if not valid:
        assert "valid: none" in message


@pytest.mark.parametrize("strategy_name", STRATEGIES.names())
def test_describe_round_trips(strategy_name):
    strategy = make_strategy(strategy_name)
    described = json.loads(json.dumps(strategy.describe()))
    assert described["name"] == strategy_name
    assert make_strategy(strategy_name, described["options"]).describe() == strategy.describe()
    assert strategy.default_lr("image") > 0 and strategy.default_lr("text") > 0


def test_unknown_strategy_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown strategy 'nope'; valid names: ") as info:
        make_strategy("nope")
    for name in STRATEGIES.names():
        assert name in str(info.value)


# -- strategy specifics ------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["tiny-effnet", "tiny-bert"])
def test_partial_trains_exactly_the_last_k_groups(model_name, tiny_bert_name):
    n = len(build(model_name, tiny_bert_name)[0].backbone.group_names)
    for k in range(1, n + 1):
        model, state = build(model_name, tiny_bert_name)
        trainable = check_conformance("partial", {"k": k}, model, state)
        trained = [i for i, g in enumerate(group_params(model)) if g & trainable]
        assert trained == list(range(n - k, n))
        assert frozen_prefix(model) == n - k
        assert make_strategy("partial", {"k": k}).first_trained_group(n) == n - k


@pytest.mark.parametrize("k", [0, 8])
def test_partial_k_out_of_range(k):
    model = TransferModel(resolve_backbone("tiny-effnet"), 3)
    with pytest.raises(ConfigError, match=r"partial: k must be between 1 and 7"):
        make_strategy("partial", {"k": k}).apply(model)


def test_partial_default_is_a_third_of_the_groups():
    model = TransferModel(resolve_backbone("tiny-effnet"), 3)  # 7 groups -> 3
    make_strategy("partial").apply(model)
    assert frozen_prefix(model) == 4


def test_bitfit_trains_only_biases(tiny_bert_name):
    model, _ = build("tiny-bert", tiny_bert_name)
    make_strategy("bitfit").apply(model)
    backbone = [n for n in trainable_parameter_names(model) if n.startswith("backbone.")]
    assert backbone and all(n.endswith(".bias") for n in backbone)


def test_norm_trains_only_normalisation_layers():
    model, _ = build("tiny-effnet", "")
    make_strategy("norm").apply(model)
    modules = dict(model.named_modules())
    for name in trainable_parameter_names(model):
        if name.startswith("backbone."):
            assert is_norm_layer(modules[name.rsplit(".", 1)[0]]), name


def lora_groups(model: TransferModel) -> list[int]:
    groups = [set(g) for g in model.backbone.param_groups()]
    trainable = {n.removeprefix("backbone.") for n in trainable_parameter_names(model) if ".lora_" in n}
    return sorted({i for i, g in enumerate(groups) if g & trainable})


@pytest.mark.parametrize(("last_k", "groups"), [(1, [2]), (2, [1, 2]), (3, [1, 2]), (None, [1, 2])])
def test_lora_last_k_on_bert(tiny_bert_name, last_k, groups):
    model, state = build("tiny-bert", tiny_bert_name)
    options = {"rank": 2} if last_k is None else {"rank": 2, "last_k": last_k}
    trainable = check_conformance("lora", options, model, state)
    assert lora_groups(model) == groups
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable if ".lora_" in n}
    assert adapted == {"query", "value"}  # the backbone's default targets
    for name, parameter in model.named_parameters():
        if name.endswith("lora_A.default.weight"):
            assert parameter.shape[0] == 2


def test_lora_target_modules(tiny_bert_name):
    model, state = build("tiny-bert", tiny_bert_name)
    trainable = check_conformance("lora", {"target_modules": ["key", "dense"], "last_k": 1}, model, state)
    adapted = {n.split(".lora_")[0] for n in trainable if ".lora_" in n}
    assert adapted == {
        "backbone.net.encoder.layer.1.attention.self.key",
        "backbone.net.encoder.layer.1.attention.output.dense",
        "backbone.net.encoder.layer.1.intermediate.dense",
        "backbone.net.encoder.layer.1.output.dense",
    }


def test_lora_last_k_on_a_cnn():
    model, state = build("tiny-effnet", "")
    check_conformance("lora", {"last_k": 2, "rank": 2}, model, state)
    assert lora_groups(model) == [5]  # blocks.4; the head_conv group has no pointwise block conv
    assert frozen_prefix(model) == 5


def test_lora_with_nothing_to_adapt():
    model = TransferModel(resolve_backbone("tiny-effnet"), 3)
    with pytest.raises(ConfigError, match=r"lora: no Linear/Conv2d module named .* in the last 1 layer groups"):
        make_strategy("lora", {"last_k": 1}).apply(model)


def test_lora_search_space_never_proposes_a_last_k_with_nothing_to_adapt():
    import optuna

    from transferopt.strategies.lora import smallest_last_k

    backbone = resolve_backbone("tiny-effnet")
    shape = ModelShape(num_groups=backbone.num_groups, lora_min_k=smallest_last_k(backbone))
    assert shape.lora_min_k == 2  # head_conv (the last group) holds no pointwise block conv
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        options = STRATEGIES.get("lora").suggest(study.ask(), shape)
        make_strategy("lora", options).apply(TransferModel(resolve_backbone("tiny-effnet"), 3))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rank": 0}, "rank must be >= 1"),
        ({"last_k": 9}, "last_k must be between 1 and 7"),
    ],
)
def test_lora_bad_options(options, message):
    model = TransferModel(resolve_backbone("tiny-effnet"), 3)
    with pytest.raises(ConfigError, match=message):
        make_strategy("lora", options).apply(model)


def test_lora_last_k_zero_is_refused():
    model = TransferModel(resolve_backbone("tiny-effnet"), 3)
    with pytest.raises(ConfigError, match="last_k must be between 1 and 7"):
        make_strategy("lora", {"last_k": 0}).apply(model)


@pytest.mark.parametrize("target", ["conv_head", "conv_stem"])
def test_lora_on_a_group_level_conv(target):
    model, state = build("tiny-effnet", "")
    check_conformance("lora", {"target_modules": [target], "rank": 2}, model, state)


def test_lp_ft_follows_its_inner_strategy(tiny_bert_name):
    model, state = build("tiny-effnet", tiny_bert_name)
    options = {"then": "partial", "then_options": {"k": 2}}
    check_conformance("lp-ft", options, model, state)
    assert frozen_prefix(model) == 5
    strategy = make_strategy("lp-ft", options)
    assert strategy.fits_head_first and strategy.trains
    assert strategy.head_lr_scale(10.0) == 1.0
    assert strategy.default_lr("image") == make_strategy("partial").default_lr("image") / 2


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"then": "linear-probe"}, "cannot be 'linear-probe'"),
        ({"then": "lp-ft"}, "cannot be 'lp-ft'"),
        ({"then": "nope"}, "unknown strategy 'nope'"),
        ({"then": "partial", "then_options": {"q": 1}}, "strategy 'partial' has no option"),
    ],
)
def test_lp_ft_bad_options(options, error):
    with pytest.raises(ConfigError, match=error):
        make_strategy("lp-ft", options)


def test_linear_probe_flags():
    strategy = make_strategy("linear-probe")
    assert strategy.fits_head_first and not strategy.trains
    assert make_strategy("linear-probe", {"c_values": [0.5]}).options.c_values == [0.5]


def test_lora_target_modules_given_as_one_string():
    from transferopt.cli.common import parse_options

    model = TransferModel(resolve_backbone("tiny-effnet"), 3)
    options = parse_options(["target_modules=conv_pwl"])
    try:
        names = make_strategy("lora", options).target_names(model)
    except ConfigError:
        return  # refusing a non-list is acceptable too
    assert names and all(name.endswith(".conv_pwl") for name in names), names


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_search_space_builds_a_valid_strategy(name):
    """Each strategy owns its search space: whatever a trial samples must construct the strategy."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        options = STRATEGIES.get(name).suggest(trial, ModelShape(num_groups=5))
        strategy = make_strategy(name, options)
        assert strategy.options is not None
        seen.update(trial.params)
        study.tell(trial, 0.0)
    assert all(p.startswith(f"{name}.") for p in seen), seen
    if name in ("partial", "lora"):
        assert any(p.endswith((".k", ".last_k")) for p in seen)


def test_first_trained_group_follows_the_options():
    n = 7
    assert make_strategy("linear-probe").first_trained_group(n) == n
    assert make_strategy("full").first_trained_group(n) == 0
    assert make_strategy("lora", {"last_k": 2}).first_trained_group(n) == 5
    assert make_strategy("lp-ft", {"then": "partial", "then_options": {"k": 1}}).first_trained_group(n) == 6
    with pytest.raises(ConfigError, match="lora: last_k must be between 1 and 7"):
        make_strategy("lora", {"last_k": 9}).first_trained_group(n)
