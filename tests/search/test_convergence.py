"""When a search stops before its budget: clearly worse trials, or patience and time."""

from __future__ import annotations

import math

import pytest

from transferopt.search.convergence import (
    CLEARLY_WORSE_TRIALS,
    NOISE_ERRORS,
    PATIENCE_TRIALS,
    search_has_converged,
    validation_noise,
)


def test_validation_noise_is_the_adjusted_binomial_error():
    # Agresti-Coull: 770 examples at 0.8532 -> p = (0.8532 * 770 + 2) / 774
    p = (0.8532 * 770 + 2) / 774
    assert validation_noise(0.8532, 770) == pytest.approx(math.sqrt(p * (1 - p) / 774))
    assert validation_noise(0.8532, 770) == pytest.approx(0.0128, abs=1e-4)
    assert validation_noise(1.0, 9) > 0.08  # a perfect score on a small split keeps an error bar
    assert validation_noise(-0.2, 100) == validation_noise(0.2, 100)  # signed scores (a negated WER)
    assert validation_noise(0.9, 10_000) < validation_noise(0.9, 100)


def state_with(best: float, since: list[float], found_at: float = 100.0) -> dict:
    return {
        "best": {"value": best, "spent_s": found_at},
        "values_since_best": since,
        "trials_since_best": len(since),
    }


def test_three_clearly_worse_trials_stop_the_search_at_once():
    margin = NOISE_ERRORS * validation_noise(0.85, 770)  # about 0.026
    worse = [0.85 - margin - 0.001] * CLEARLY_WORSE_TRIALS
    reason = search_has_converged(state_with(0.85, worse), spent_s=101.0, val_examples=770)
    assert reason is not None and reason.startswith(f"the last {CLEARLY_WORSE_TRIALS} trials each fell short")
    assert "770 examples" in reason
    # two are not enough, and one near miss among the last three keeps the search going
    assert search_has_converged(state_with(0.85, worse[:-1]), 101.0, 770) is None
    near_miss = [worse[0], 0.85 - margin + 0.001, worse[0]]
    assert search_has_converged(state_with(0.85, near_miss), 101.0, 770) is None
    # only the last three count: an older near miss does not
    assert search_has_converged(state_with(0.85, [0.85, *worse]), 101.0, 770) is not None


def test_the_same_gaps_are_noise_on_a_small_validation_split():
    gaps = [0.85 - 0.03] * CLEARLY_WORSE_TRIALS  # clearly worse on 770 examples, not on 50
    assert search_has_converged(state_with(0.85, gaps), 101.0, 770) is not None
    assert search_has_converged(state_with(0.85, gaps), 101.0, 50) is None


def test_patience_needs_enough_trials_and_as_much_time_again():
    near = [0.849] * PATIENCE_TRIALS  # near misses: only patience can stop the search
    assert search_has_converged(state_with(0.85, near[:-1], found_at=100.0), 500.0, 770) is None
    assert search_has_converged(state_with(0.85, near, found_at=100.0), 150.0, 770) is None
    reason = search_has_converged(state_with(0.85, near, found_at=100.0), 200.0, 770)
    assert reason == f"no better plan in the last {PATIENCE_TRIALS} trials (100s since the best was found at 100s)"


def test_no_best_yet_never_converges():
    assert search_has_converged({"trials_since_best": 9, "values_since_best": [0.1] * 9}, 999.0, 770) is None


def test_a_state_from_before_the_values_were_kept_uses_patience_alone():
    state = {"best": {"value": 0.9, "spent_s": 10.0}, "trials_since_best": PATIENCE_TRIALS}
    assert search_has_converged(state, 30.0, 100).startswith("no better plan")
