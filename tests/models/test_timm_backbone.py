"""TimmBackbone: layer groups, running groups piecewise, preprocessing and the kept source head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferopt.data import load_task_data
from transferopt.models import TransferModel, resolve_backbone

GROUPS = {
    "tiny-effnet": ["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "head_conv"],
    "tiny-resnet": ["stem", "layer1", "layer2", "layer3", "layer4"],
    "tiny-vit": ["features"],
}


@pytest.fixture(scope="module")
def colour_task(colour_folder):
    return load_task_data(str(colour_folder))


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_group_names_and_boundaries(name):
    backbone = resolve_backbone(name)
    assert backbone.group_names == GROUPS[name]
    n = len(GROUPS[name])
    if name == "tiny-vit":  # not decomposable: one group, cacheable only before or after it
        assert backbone.cache_boundaries() == [0, 1]
    else:
        assert backbone.cache_boundaries() == list(range(n + 1))


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_param_groups_partition_every_parameter(name):
    backbone = resolve_backbone(name)
    groups = backbone.param_groups()
    assert len(groups) == backbone.num_groups
    flat = [p for group in groups for p in group]
    assert len(flat) == len(set(flat)), "a parameter is in two groups"
    assert set(flat) == {n for n, _ in backbone.named_parameters()}
    assert all(groups), "empty layer group"


def test_param_groups_follow_the_network_order():
    backbone = resolve_backbone("tiny-effnet")
    groups = backbone.param_groups()
    assert all(n.startswith("net.conv_stem") or n.startswith("net.bn1") for n in groups[0])
    for i in range(5):
        assert all(n.startswith(f"net.blocks.{i}.") for n in groups[i + 1])
    assert all(n.startswith("net.conv_head") or n.startswith("net.bn2") for n in groups[-1])


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_groups_run_piecewise_equal_the_network(name, colour_task):
    torch.manual_seed(0)
    backbone = resolve_backbone(name).eval()
    backbone.set_image_size(None, colour_task.train.inputs.median_side())
    state = backbone.prepare(colour_task.train.inputs, [0, 9, 17])
    with torch.no_grad():
        reference = backbone.net.forward_head(backbone.net.forward_features(state["x"]), pre_logits=True)
        assert torch.allclose(backbone.features(state), reference, atol=1e-5)
        for cut in backbone.cache_boundaries():
            prefix = backbone.run_groups(state, 0, cut)
            resumed = backbone.features(prefix, start=cut)
            assert torch.allclose(resumed, reference, atol=1e-5), f"resuming at group {cut} differs"
        # An already pooled state passes through.
        assert backbone.features({"features": reference}) is reference
    assert reference.shape == (3, backbone.num_features)


def test_image_size_is_picked_from_small_sources():
    backbone = resolve_backbone("tiny-effnet")
    native = backbone.image_size
    signature = backbone.preprocessing_signature()
    backbone.set_image_size(None, 16)  # 16 px squares: twice the side, at least 64
    assert backbone.image_size == 64
    assert backbone.data_config["crop_pct"] == 1.0
    assert backbone.preprocessing_signature() != signature
    backbone.set_image_size(None, 8)
    assert backbone.image_size == 64
    mid = resolve_backbone("tiny-effnet")
    mid.set_image_size(None, 48)  # twice the side, in multiples of 32
    assert mid.image_size == 96 < native
    other = resolve_backbone("tiny-effnet")
    other.set_image_size(None, 1000)  # large images: keep the native size
    assert other.image_size == native
    other.set_image_size(96)  # explicit size wins
    assert other.image_size == 96
    # few training images: four times the side (their compute is small either way)
    few = resolve_backbone("tiny-effnet")
    few.set_image_size(None, 28, n_images=20)
    assert few.image_size == 128
    many = resolve_backbone("tiny-effnet")
    many.set_image_size(None, 28, n_images=3882)
    assert many.image_size == 64


def test_flips_can_be_turned_off_for_augmented_training():
    from torchvision.transforms import RandomHorizontalFlip

    def flips(backbone) -> bool:
        return any(isinstance(t, RandomHorizontalFlip) for t in backbone.transform(train=True).transforms)

    backbone = resolve_backbone("tiny-effnet")
    evaluation, training = backbone.preprocessing_signature(), backbone.preprocessing_signature(train=True)
    assert flips(backbone)
    backbone.set_flip(False)
    assert not flips(backbone)
    assert backbone.preprocessing_signature() == evaluation  # evaluation inputs never flip: their cache serves
    assert backbone.preprocessing_signature(train=True) != training
    backbone.set_flip(True)
    assert flips(backbone) and backbone.preprocessing_signature(train=True) == training


def test_prepare_uses_the_current_size(colour_task):
    backbone = resolve_backbone("tiny-effnet")
    backbone.set_image_size(None, 16)
    assert backbone.prepare(colour_task.train.inputs, [0, 1])["x"].shape == (2, 3, 64, 64)
    backbone.set_image_size(96)
    assert backbone.prepare(colour_task.train.inputs, [0])["x"].shape == (1, 3, 96, 96)
    assert backbone.preprocessing_signature(False) != backbone.preprocessing_signature(True)


def test_train_transform_is_random_and_eval_is_not(colour_task):
    backbone = resolve_backbone("tiny-effnet")
    backbone.set_image_size(None, 16)
    torch.manual_seed(0)
    a = backbone.prepare(colour_task.train.inputs, list(range(6)), train=True)["x"]
    b = backbone.prepare(colour_task.train.inputs, list(range(6)), train=True)["x"]
    assert not torch.equal(a, b)
    c = backbone.prepare(colour_task.train.inputs, list(range(6)))["x"]
    d = backbone.prepare(colour_task.train.inputs, list(range(6)))["x"]
    assert torch.equal(c, d)


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_source_classifier_is_kept_aside(name):
    backbone = resolve_backbone(name)
    assert isinstance(backbone.source_head, nn.Linear)
    assert backbone.source_head.in_features == backbone.num_features
    assert backbone.source_head.out_features == 1000
    names = [n for n, _ in backbone.named_parameters()]
    assert not any("source_head" in n for n in names)
    assert "source_head" not in str(list(backbone.state_dict()))
    # The network itself no longer has a classifier: its pooled output is the feature vector.
    assert isinstance(backbone.net.get_classifier(), nn.Identity)


def test_transfer_model_head_shape():
    backbone = resolve_backbone("tiny-resnet")
    model = TransferModel(backbone, 4)
    assert model.classifier.in_features == backbone.num_features and model.classifier.out_features == 4
    with torch.no_grad():
        out = model.eval()({"x": torch.randn(2, 3, 64, 64)})
    assert out.shape == (2, 4)


def test_weights_fingerprint_tracks_weights():
    a = resolve_backbone("tiny-effnet")
    b = resolve_backbone("tiny-effnet")
    assert a.weights_fingerprint() == b.weights_fingerprint()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    assert a.weights_fingerprint() != b.weights_fingerprint()


def test_default_lora_targets():
    assert resolve_backbone("tiny-effnet").default_lora_targets() == ["conv_pw", "conv_pwl"]
    assert resolve_backbone("tiny-resnet").default_lora_targets() == ["conv1", "conv2", "conv3"]
    assert resolve_backbone("tiny-vit").default_lora_targets() == ["qkv", "proj", "fc1", "fc2"]
