"""Batches: length-grouped training order and shortest-first inference for text, data order restored."""

from __future__ import annotations

import numpy as np
import torch

from transferopt.data import load_task_data
from transferopt.engine import FeatureCache
from transferopt.engine.states import CachedBatches, in_data_order
from transferopt.engine.trainer import predict_probabilities
from transferopt.models import resolve_backbone
from transferopt.models.base import TransferModel

CPU = torch.device("cpu")


def lengths_for(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, 60, size=n)


def batches_of(order: torch.Tensor, size: int) -> list[np.ndarray]:
    return [chunk.numpy() for chunk in torch.split(order, size)]


def padded_tokens(order: torch.Tensor, lengths: np.ndarray, size: int) -> int:
    return sum(int(lengths[batch].max()) * len(batch) for batch in batches_of(order, size))


def test_grouped_training_order_visits_every_example_once_with_less_padding():
    lengths = lengths_for(1000)
    grouped = CachedBatches({}, np.zeros(1000), 32, lengths)
    plain = CachedBatches({}, np.zeros(1000), 32)
    order = grouped.training_order(torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(1000))
    random_order = plain.training_order(torch.Generator().manual_seed(0))
    # Random batches pad to ~their longest (near 60); grouped ones (seven mega-batches of 224 here, each
    # sorted) to within a few tokens of each example.
    assert padded_tokens(order, lengths, 32) < 0.7 * padded_tokens(random_order, lengths, 32)
    assert padded_tokens(order, lengths, 32) < 1.3 * lengths.sum()


def test_grouped_training_order_is_seeded_and_shuffles_batches():
    batches = CachedBatches({}, np.zeros(1000), 32, lengths_for(1000))
    first = batches.training_order(torch.Generator().manual_seed(0))
    assert torch.equal(first, batches.training_order(torch.Generator().manual_seed(0)))
    assert not torch.equal(first, batches.training_order(torch.Generator().manual_seed(1)))
    # Batches do not come longest first (transformers' order within a mega-batch): their maxima are mixed.
    maxima = [int(batches.lengths[b].max()) for b in batches_of(first, 32)]
    assert maxima != sorted(maxima, reverse=True) and maxima != sorted(maxima)


def test_without_lengths_training_is_a_plain_seeded_shuffle():
    batches = CachedBatches({}, np.zeros(50), 8)
    assert torch.equal(
        batches.training_order(torch.Generator().manual_seed(3)),
        torch.randperm(50, generator=torch.Generator().manual_seed(3)),
    )
    assert torch.equal(batches.inference_order(), torch.arange(50))


def test_inference_runs_shortest_first_and_in_data_order_restores():
    lengths = np.array([5, 2, 9, 2, 7])
    batches = CachedBatches({}, np.zeros(5), 2, lengths)
    order = batches.inference_order()
    assert order.tolist() == [1, 3, 0, 4, 2]  # stable among equal lengths
    rows = torch.as_tensor(lengths[order.numpy()], dtype=torch.float32)[:, None]
    assert in_data_order(rows, order)[:, 0].tolist() == lengths.tolist()


def test_text_states_report_their_token_counts(tiny_bert_name, intents_dir):
    task = load_task_data(str(intents_dir))
    bert = resolve_backbone(tiny_bert_name)
    states = FeatureCache(None, use_disk=False).states(bert, "w", task.train, 1, 4, CPU)
    tokens = [len(ids) for ids in bert.tokenizer(list(task.train.inputs.texts))["input_ids"]]
    assert bert.state_lengths(states).tolist() == tokens
    pooled = FeatureCache(None, use_disk=False).states(bert, "w", task.train, bert.num_groups, 4, CPU)
    assert bert.state_lengths(pooled) is None  # pooled features have one size: nothing to group


def test_image_states_have_no_lengths(colour_folder):
    task = load_task_data(str(colour_folder))
    net = resolve_backbone("tiny-effnet")
    net.set_image_size(None, task.train.inputs.median_side())
    states = FeatureCache(None, use_disk=False).states(net, "w", task.train, 1, 4, CPU)
    assert net.state_lengths(states) is None


def test_probabilities_come_back_in_the_data_order(tiny_bert_name, intents_dir):
    task = load_task_data(str(intents_dir))
    bert = resolve_backbone(tiny_bert_name)
    model = TransferModel(bert, task.num_classes).eval()
    states = FeatureCache(None, use_disk=False).states(bert, "w", task.train, 1, 4, CPU)
    lengths = bert.state_lengths(states)
    assert len(set(lengths.tolist())) > 1  # the texts differ in length, so the order matters
    grouped = predict_probabilities(model, CachedBatches(states, task.train.labels, 4, lengths), 1, CPU)
    plain = predict_probabilities(model, CachedBatches(states, task.train.labels, 4), 1, CPU)
    np.testing.assert_allclose(grouped, plain, atol=1e-5)
