"""A trial's price before it runs, from the pass the ranking timed: the search skips a plan whose first
validation check would land past the budget, instead of starting work it cannot stop in time (computing
a prefix's states, a fine-tune's first epoch, its validation passes)."""

from __future__ import annotations

from typing import Any

from ..strategies import make_strategy
from .space import TrialPlan

#: A training step (forward and backward) costs about three inference passes (backward ≈ two forwards).
TRAIN_PASS_FACTOR = 3.0


def seconds_to_first_check(
    plan: TrialPlan,
    candidate: dict[str, Any],
    n_train: int,
    n_val: int,
    checks_per_epoch: int,
    cached_prefixes: list[int],
) -> float | None:
    """Seconds from a trial's start to its first validation check and its wrap-up, or None when the
    ranking did not time this model. Counted: the frozen prefix's states when not cached; validation
    before training, at the check, and for calibration; training until the check."""
    boundaries, seconds = candidate.get("boundaries") or [], candidate.get("pass_seconds") or []
    if not seconds:
        return None
    strategy = make_strategy(plan.strategy, plan.options)
    if not strategy.trains:
        return 0.0  # a probe fits on the pooled features the ranking cached
    first = strategy.first_trained_group(boundaries[-1])
    slot = max(i for i, b in enumerate(boundaries) if b <= first)
    prefix, through_trained = seconds[slot], seconds[-1] - seconds[slot]
    cached = boundaries[slot] > 0  # states after a frozen prefix are computed once (preparation alone is not)
    augment = bool(plan.overrides.get("augment"))
    fresh_inputs = not cached or augment  # training inputs pass through preparation and the prefix every step
    states = 0.0
    if cached and boundaries[slot] not in cached_prefixes:
        states = prefix * ((0 if augment else n_train) + n_val)
    val_pass = n_val * (through_trained + (0.0 if cached else prefix))
    train_each = TRAIN_PASS_FACTOR * through_trained + (prefix if fresh_inputs else 0.0)
    return states + 3 * val_pass + n_train / checks_per_epoch * train_each
