"""FeatureCache: memory and disk layers, keys, corrupt files, text padding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from transferopt.data import load_task_data
from transferopt.engine import FeatureCache
from transferopt.engine.cache import default_cache_dir
from transferopt.models import resolve_backbone

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def task(colour_folder):
    return load_task_data(str(colour_folder))


@pytest.fixture
def backbone(task):
    backbone = resolve_backbone("tiny-effnet")
    backbone.set_image_size(None, task.train.inputs.median_side())
    return backbone


def states(cache, backbone, split, prefix, batch_size=8):
    return cache.states(backbone, backbone.weights_fingerprint(), split, prefix, batch_size, CPU)


def assert_same_states(a, b):
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_miss_then_memory_hit_then_disk_hit(tmp_path, task, backbone):
    cache = FeatureCache(tmp_path)
    first = states(cache, backbone, task.train, 3)
    assert (cache.stats.misses, cache.stats.hits_memory, cache.stats.hits_disk) == (1, 0, 0)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    second = states(cache, backbone, task.train, 3)
    assert (cache.stats.misses, cache.stats.hits_memory, cache.stats.hits_disk) == (1, 1, 0)
    assert_same_states(first, second)
    fresh = FeatureCache(tmp_path)
    third = states(fresh, backbone, task.train, 3)
    assert (fresh.stats.misses, fresh.stats.hits_memory, fresh.stats.hits_disk) == (0, 0, 1)
    assert_same_states(first, third)
    # ... and they are what the backbone computes.
    with torch.no_grad():
        direct = backbone.eval().run_groups(backbone.prepare(task.train.inputs, range(len(task.train))), 0, 3)
    assert torch.allclose(first["x"], direct["x"], atol=1e-5)


def test_disk_hit_does_not_run_the_backbone(tmp_path, task, backbone, monkeypatch):
    states(FeatureCache(tmp_path), backbone, task.val, 2)

    def forbidden(*args, **kwargs):
        raise AssertionError("backbone ran on a disk hit")

    monkeypatch.setattr(backbone, "prepare", forbidden)
    monkeypatch.setattr(backbone, "run_groups", forbidden)
    assert states(FeatureCache(tmp_path), backbone, task.val, 2)["x"].shape[0] == len(task.val)


def test_state_shapes(tmp_path, task, backbone):
    cache = FeatureCache(tmp_path)
    n = len(task.train)
    assert states(cache, backbone, task.train, 0)["x"].shape == (n, 3, 64, 64)
    pooled = states(cache, backbone, task.train, backbone.num_groups)
    assert set(pooled) == {"features"} and pooled["features"].shape == (n, backbone.num_features)


def test_batch_size_does_not_change_the_states(tmp_path, task, backbone):
    a = states(FeatureCache(tmp_path / "a"), backbone, task.train, 7, batch_size=5)
    b = states(FeatureCache(tmp_path / "b"), backbone, task.train, 7, batch_size=64)
    assert torch.allclose(a["features"], b["features"], atol=1e-5)


def test_key_changes_with_data_prefix_preprocessing_and_weights(tmp_path, task, backbone):
    cache = FeatureCache(tmp_path)
    weights = backbone.weights_fingerprint()
    base = cache.key(backbone, weights, task.train, 3)
    assert cache.key(resolve_backbone("tiny-effnet"), weights, task.train, 3) != base  # native 160 px size
    same = resolve_backbone("tiny-effnet")
    same.set_image_size(None, 16)
    assert cache.key(same, same.weights_fingerprint(), task.train, 3) == base
    assert cache.key(backbone, weights, task.val, 3) != base
    assert cache.key(backbone, weights, task.train.subset(np.arange(len(task.train) - 1)), 3) != base
    assert cache.key(backbone, weights, task.train, 2) != base
    assert cache.key(backbone, "other-weights", task.train, 3) != base
    relabelled = task.train.subset(np.arange(len(task.train)))
    relabelled.labels = relabelled.labels[::-1].copy()
    assert cache.key(backbone, weights, relabelled, 3) != base
    backbone.set_image_size(96)
    assert cache.key(backbone, weights, task.train, 3) != base


def test_changed_image_size_is_a_miss(tmp_path, task, backbone):
    cache = FeatureCache(tmp_path)
    small = states(cache, backbone, task.val, 0)
    backbone.set_image_size(96)
    large = states(cache, backbone, task.val, 0)
    assert cache.stats.misses == 2
    assert small["x"].shape[-1] == 64 and large["x"].shape[-1] == 96


def test_touched_image_file_is_a_miss(tmp_path, backbone):
    from tests import helpers

    helpers.write_colour_images(tmp_path / "data", layout="flat", per_class=4)
    split = load_task_data(str(tmp_path / "data")).train
    cache = FeatureCache(tmp_path / "cache")
    key = cache.key(backbone, "w", split, 1)
    path = split.inputs.paths[0]
    helpers.colour_image((0, 0, 0), np.random.default_rng(9)).save(path)
    assert cache.key(backbone, "w", split, 1) != key


def test_corrupt_cache_file_is_a_miss(tmp_path, task, backbone):
    first = states(FeatureCache(tmp_path), backbone, task.val, 4)
    (file,) = tmp_path.glob("*.safetensors")
    file.write_bytes(b"truncated")
    cache = FeatureCache(tmp_path)
    again = states(cache, backbone, task.val, 4)
    assert (cache.stats.misses, cache.stats.hits_disk) == (1, 0)
    assert_same_states(first, again)
    reread = FeatureCache(tmp_path)
    assert_same_states(first, states(reread, backbone, task.val, 4))
    assert reread.stats.hits_disk == 1  # rewritten after the miss


def test_memory_only_cache_writes_nothing(tmp_path, task, backbone):
    cache = FeatureCache(tmp_path, use_disk=False)
    states(cache, backbone, task.val, 4)
    states(cache, backbone, task.val, 4)
    assert (cache.stats.misses, cache.stats.hits_memory) == (1, 1)
    assert not list(tmp_path.iterdir())


def test_default_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFEROPT_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here" / "features"
    assert FeatureCache().directory == tmp_path / "here" / "features"


def test_session_cache_is_isolated(_feature_cache_dir):
    assert default_cache_dir() == _feature_cache_dir / "features"


def test_text_states_with_different_padding_per_batch(tmp_path, tiny_bert_name, intents_dir):
    task = load_task_data(str(intents_dir))
    bert = resolve_backbone(tiny_bert_name).eval()
    cache = FeatureCache(tmp_path)
    # Batches of 4 are padded to different lengths; concatenation pads again. Resuming from the cached
    # states must give the same features as running each text alone.
    for prefix in (0, 1, 2):
        cached = cache.states(bert, "w", task.train, prefix, 4, CPU)
        with torch.no_grad():
            resumed = bert.features(cached, start=prefix)
            for i in (0, 7, 17):
                alone = bert.features(bert.prepare(task.train.inputs, [i]))
                assert torch.allclose(resumed[i], alone[0], atol=1e-5), (prefix, i)


def test_key_changes_with_text_pooling(tmp_path, tiny_bert_dir, intents_dir):
    from transformers import AutoModel, AutoTokenizer

    from transferopt.models.hf_text import HFTextBackbone

    split = load_task_data(str(intents_dir)).train
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    net = AutoModel.from_pretrained(str(tiny_bert_dir), add_pooling_layer=False)
    cache = FeatureCache(tmp_path)
    keys = {
        cache.key(HFTextBackbone("same-name", net, tokenizer, pooling=pooling, normalize=normalize), "w", split, 3)
        for pooling in ("mean", "cls")
        for normalize in (False, True)
    }
    assert len(keys) == 4  # pooled features differ, so must their cache entries
    mean = HFTextBackbone("same-name", net, tokenizer, pooling="mean")
    cls = HFTextBackbone("same-name", net, tokenizer, pooling="cls")
    a = cache.states(mean, "w", split, 3, 8, CPU)["features"]
    b = cache.states(cls, "w", split, 3, 8, CPU)["features"]
    assert cache.stats.misses == 2 and not torch.allclose(a, b)


def test_a_copy_of_the_data_with_new_timestamps_hits_the_cache(tmp_path, backbone):
    import os
    import shutil

    from tests import helpers

    helpers.write_colour_images(tmp_path / "data", layout="flat", per_class=4)
    shutil.copytree(tmp_path / "data", tmp_path / "copy")  # new files, new mtimes
    os.utime(tmp_path / "copy" / "red" / sorted(os.listdir(tmp_path / "copy" / "red"))[0], (1, 1))
    cache = FeatureCache(tmp_path / "cache")
    original = cache.key(backbone, "w", load_task_data(str(tmp_path / "data")).train, 1)
    assert cache.key(backbone, "w", load_task_data(str(tmp_path / "copy")).train, 1) == original


def test_text_features_are_computed_in_batches_of_similar_length(tmp_path, tiny_bert_name, intents_dir, monkeypatch):
    split = load_task_data(str(intents_dir)).train
    bert = resolve_backbone(tiny_bert_name).eval()
    batches = []
    prepare = bert.prepare
    monkeypatch.setattr(
        bert, "prepare", lambda inputs, index, train=False: batches.append(index) or prepare(inputs, index)
    )
    features = FeatureCache(tmp_path).states(bert, "w", split, bert.num_groups, 4, CPU)["features"]
    lengths = [[len(split.inputs.texts[i]) for i in batch] for batch in batches]
    assert [n for batch in lengths for n in batch] == sorted(len(t) for t in split.inputs.texts)
    with torch.no_grad():  # and the rows come back in the data's order
        assert torch.allclose(features[5], bert.features(prepare(split.inputs, [5]))[0], atol=1e-5)


def test_a_split_made_of_parts_is_assembled_from_their_cached_states(tmp_path, tiny_bert_name, intents_dir):
    from transferopt.engine.self_training import unlabelled_split, with_pseudo_labels

    task = load_task_data(str(intents_dir))
    bert = resolve_backbone(tiny_bert_name).eval()
    cache = FeatureCache(tmp_path)
    pool = task.test.inputs
    for prefix in (1, bert.num_groups):
        cache.states(bert, "w", task.train, prefix, 4, CPU)
        cache.states(bert, "w", unlabelled_split(pool), prefix, 4, CPU)
    misses = cache.stats.misses
    index = np.array([5, 0, 3])
    student = with_pseudo_labels(task, pool, index, np.array([1, 0, 1])).train
    direct = FeatureCache(None, use_disk=False)
    for prefix in (1, bert.num_groups):
        assembled = cache.states(bert, "w", student, prefix, 4, CPU)
        assert len(next(iter(assembled.values()))) == len(task.train) + 3
        with torch.no_grad():
            ours = bert.features(assembled, start=prefix)
            reference = bert.features(
                direct.states(bert, "w", dataclasses.replace(student, parts=None), prefix, 4, CPU), start=prefix
            )
        assert torch.allclose(ours, reference, atol=1e-5)
    assert cache.stats.misses == misses  # no example ran through the network again


def test_deeper_states_continue_from_a_shallower_prefix_in_memory(tmp_path, tiny_bert_name, intents_dir):
    task = load_task_data(str(intents_dir))
    bert = resolve_backbone(tiny_bert_name).eval()
    cache = FeatureCache(tmp_path)
    cache.states(bert, "w", task.train, 1, 4, CPU)
    deeper = cache.states(bert, "w", task.train, bert.num_groups, 4, CPU)
    assert cache.stats.continued == 1 and cache.stats.misses == 2
    reference = FeatureCache(None, use_disk=False).states(bert, "w", task.train, bert.num_groups, 4, CPU)
    assert torch.allclose(deeper["features"], reference["features"], atol=1e-5)
    # Other weights share nothing: computed from the inputs.
    cache.states(bert, "other", task.train, bert.num_groups, 4, CPU)
    assert cache.stats.continued == 1


def test_image_states_continue_from_a_shallower_prefix(tmp_path, task, backbone):
    backbone.eval()
    cache = FeatureCache(tmp_path)
    states(cache, backbone, task.train, 2)
    deeper = states(cache, backbone, task.train, backbone.num_groups)
    assert cache.stats.continued == 1
    reference = states(FeatureCache(None, use_disk=False), backbone, task.train, backbone.num_groups)
    assert torch.allclose(deeper["features"], reference["features"], atol=1e-5)
