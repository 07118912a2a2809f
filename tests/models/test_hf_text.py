"""HFTextBackbone on a tiny BERT: groups, layer-by-layer equivalence, pooling, truncation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests import helpers
from transferopt.data import TextInputs
from transferopt.errors import ModelError
from transferopt.models import resolve_backbone
from transferopt.models.hf_text import HFTextBackbone

TEXTS = TextInputs(
    [
        "play some jazz music",
        "will it rain tomorrow",
        "book a table at the italian restaurant for dinner tonight",
    ]
)


@pytest.fixture
def bert(tiny_bert_name):
    return resolve_backbone(tiny_bert_name).eval()


def test_groups(bert):
    assert bert.group_names == ["embeddings", "layer.0", "layer.1"]
    assert bert.cache_boundaries() == [0, 1, 2, 3]
    groups = bert.param_groups()
    flat = [n for g in groups for n in g]
    assert len(flat) == len(set(flat))
    assert set(flat) == {n for n, _ in bert.named_parameters()}
    assert all("embeddings" in n for n in groups[0])
    assert all(".layer.0." in n for n in groups[1]) and all(".layer.1." in n for n in groups[2])


def test_tokenizer_knows_the_test_vocabulary(bert):
    ids = bert.prepare(TEXTS, [0])["input_ids"][0].tolist()
    assert bert.tokenizer.unk_token_id not in ids


def test_layer_by_layer_equals_the_model(bert):
    state = bert.prepare(TEXTS, [0, 1, 2])
    with torch.no_grad():
        ours = bert.run_groups(state, 0, bert.num_groups)["hidden"]
        reference = bert.net(**state).last_hidden_state
        valid = state["attention_mask"].bool()
        assert torch.allclose(ours[valid], reference[valid], atol=1e-5)
        full = bert.features(state)
        for cut in bert.cache_boundaries():
            resumed = bert.features(bert.run_groups(state, 0, cut), start=cut)
            assert torch.allclose(resumed, full, atol=1e-5), f"resuming at group {cut} differs"


def test_mean_pooling_ignores_padding(bert):
    with torch.no_grad():
        alone = bert.features(bert.prepare(TEXTS, [0]))
        batched = bert.features(bert.prepare(TEXTS, [0, 2]))
        # Extra all-padding columns (as in concatenated cached batches) change nothing either.
        state = bert.prepare(TEXTS, [0])
        padded = {k: torch.nn.functional.pad(v, (0, 5)) for k, v in state.items()}
        assert padded["input_ids"].shape[1] == state["input_ids"].shape[1] + 5
        again = bert.features(padded)
    assert torch.allclose(alone[0], batched[0], atol=1e-5)
    assert torch.allclose(alone, again, atol=1e-5)


def test_mean_pooling_is_the_masked_mean(bert):
    state = bert.prepare(TEXTS, [0, 2])
    with torch.no_grad():
        hidden = bert.net(**state).last_hidden_state
        pooled = bert.features(state)
    mask = state["attention_mask"].float()[..., None]
    expected = (hidden * mask).sum(1) / mask.sum(1)
    assert torch.allclose(pooled, expected, atol=1e-5)


def test_cls_pooling_and_normalisation(tiny_bert_dir):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    net = AutoModel.from_pretrained(str(tiny_bert_dir), add_pooling_layer=False).eval()
    cls = HFTextBackbone("x", net, tokenizer, pooling="cls")
    state = cls.prepare(TEXTS, [0, 1, 2])
    with torch.no_grad():
        hidden = net(**state).last_hidden_state
        assert torch.allclose(cls.features(state), hidden[:, 0], atol=1e-5)
        normalised = HFTextBackbone("x", net, tokenizer, pooling="mean", normalize=True).features(state)
    mask = state["attention_mask"].float()[..., None]
    mean = (hidden * mask).sum(1) / mask.sum(1)
    assert not torch.allclose(mean.norm(dim=-1), mean.norm(dim=-1)[:1].expand(3), atol=1e-3)
    # Normalised: the direction of the mean, the same length for every text (whatever the scale).
    norms = normalised.norm(dim=-1)
    assert torch.allclose(normalised / norms[:, None], nn.functional.normalize(mean, dim=-1), atol=1e-5)
    assert torch.allclose(norms, norms[:1].expand(3), atol=1e-4)
    with pytest.raises(ModelError, match="pooling must be 'mean' or 'cls'"):
        HFTextBackbone("x", net, tokenizer, pooling="max")


def test_max_length_truncates_and_changes_the_signature(bert):
    signature = bert.preprocessing_signature()
    assert bert.prepare(TEXTS, [2])["input_ids"].shape[1] > 4
    bert.set_max_length(4)
    assert bert.prepare(TEXTS, [2])["input_ids"].shape[1] == 4
    assert bert.preprocessing_signature() != signature


def test_default_lora_targets(bert):
    assert bert.default_lora_targets() == ["query", "value"]


def test_unsupported_architecture_is_a_model_error(bert):
    with pytest.raises(ModelError, match="unsupported text architecture"):
        HFTextBackbone("x", nn.Linear(2, 2), bert.tokenizer)


def test_mismatching_architecture_is_refused():
    """RoBERTa-PreLayerNorm applies a final LayerNorm after its layers: running the layers one by one
    does not reproduce the model, and the constructor must say so."""
    import transformers

    words = helpers.vocabulary()
    tokenizer = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    config = transformers.RobertaPreLayerNormConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    net = transformers.RobertaPreLayerNormModel(config, add_pooling_layer=False).eval()
    with pytest.raises(ModelError, match="layer-by-layer run does not match the model"):
        HFTextBackbone("prelayernorm", net, tokenizer)


def test_export_writes_config_and_tokenizer(bert, tmp_path):
    bert.export(tmp_path)
    assert (tmp_path / "config.json").is_file()
    assert (tmp_path / "tokenizer_config.json").is_file()
    assert not (tmp_path / "model.safetensors").exists()  # weights go in the run's model.safetensors
