"""Pricing a trial before it runs, from the ranking's timed pass."""

from __future__ import annotations

import pytest

from transferopt.search.cost import TRAIN_PASS_FACTOR, seconds_to_first_check
from transferopt.search.space import TrialPlan

# Four groups; reaching boundary b costs pass_seconds[b] per example (preparing the inputs: 1).
CANDIDATE = {"boundaries": [0, 1, 2, 3, 4], "pass_seconds": [1.0, 2.0, 4.0, 6.0, 10.0]}
N_TRAIN, N_VAL = 40, 10


def price(strategy: str, options: dict | None = None, cached: list[int] | None = None, checks: int = 1, **overrides):
    plan = TrialPlan("m", strategy, options or {}, overrides)
    return seconds_to_first_check(plan, CANDIDATE, N_TRAIN, N_VAL, checks, cached or [])


def test_a_probe_is_free_and_an_untimed_model_is_not_priced():
    assert price("linear-probe") == 0.0
    plan = TrialPlan("m", "full", {}, {})
    assert seconds_to_first_check(plan, {"boundaries": [], "pass_seconds": []}, N_TRAIN, N_VAL, 1, []) is None


def test_partial_tuning_pays_for_its_prefix_states_once():
    # k=1 trains group 3 (boundary 3 -> 4: 4 s per example); the prefix costs 6 s per example.
    trained = 10.0 - 6.0
    cached = price("partial", {"k": 1}, cached=[3])
    assert cached == pytest.approx(3 * N_VAL * trained + N_TRAIN * TRAIN_PASS_FACTOR * trained)
    assert price("partial", {"k": 1}) == pytest.approx(cached + 6.0 * (N_TRAIN + N_VAL))
    # LP-FT prices as its fine-tuning phase.
    assert price("lp-ft", {"then": "partial", "then_options": {"k": 1}}, cached=[3]) == pytest.approx(cached)


def test_a_full_fine_tune_prepares_its_inputs_every_step_and_checks_sooner_on_large_data():
    each_val, each_train = 10.0, 1.0 + TRAIN_PASS_FACTOR * 9.0  # validation runs the whole network
    assert price("full") == pytest.approx(3 * N_VAL * each_val + N_TRAIN * each_train)
    assert price("full", checks=4) == pytest.approx(3 * N_VAL * each_val + N_TRAIN / 4 * each_train)


def test_augmented_training_recomputes_the_prefix_but_caches_validation():
    trained = 10.0 - 6.0
    expected = 6.0 * N_VAL + 3 * N_VAL * trained + N_TRAIN * (6.0 + TRAIN_PASS_FACTOR * trained)
    assert price("partial", {"k": 1}, augment=True) == pytest.approx(expected)
