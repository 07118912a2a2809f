"""When a search stops paying: the rules that end it before its budget (the budget is a ceiling)."""

from __future__ import annotations

import math

#: Trials in a row without a new best after which the search stops, once at least as much time has gone
#: since the best was found as it took to find it.
PATIENCE_TRIALS = 5
#: Trials in a row after which the search stops at once when each fell clearly short of the best: the
#: plans around it are then not near misses that more tuning might turn into a win, but worse ones. Measured
#: on banking77 (10 shots, one candidate): the LP-FT opening won at 191 s; the next three trials (plain
#: partial tuning of 1, 7 and 2 layers) ended 3-4 points below it on validation (one standard error: 1.3),
#: and the five-trial rule then ran two more, as clearly worse, to stop at 490 s. On hymenoptera the
#: trials after the probe that won stayed within noise of it (one standard error on 153 images: 1.6
#: points; the other probe 2.6 below, LoRA 0.6, LP-FT tied), so that search runs as before.
CLEARLY_WORSE_TRIALS = 3
#: "Clearly": below the best by more than this many standard errors of the validation metric.
NOISE_ERRORS = 2.0


def validation_noise(value: float, examples: int) -> float:
    """Standard error of a proportion-like validation score `value` measured on `examples` examples, with
    Agresti and Coull's adjustment (The American Statistician, 1998: two successes and two failures added),
    so that a perfect score on a small split keeps an error bar. Accuracy and macro-F1 are proportions; for
    AUC it is a cautious scale (Hanley and McNeil's exact error is smaller: 0.0037 against 0.0043 at AUC
    0.99 on pneumoniamnist's 524 validation images), and for word error rates a rough one."""
    p = min(abs(value), 1.0)  # signed scores: a lower-is-better metric arrives negated
    adjusted = (p * examples + 2) / (examples + 4)
    return math.sqrt(adjusted * (1 - adjusted) / (examples + 4))


def search_has_converged(state: dict, spent_s: float, val_examples: int) -> str | None:
    """Why the search should stop now, or None. The values, the count and the times are kept in the state
    file, so the rules hold across a resume. Values are signed scores (higher is better)."""
    best = state.get("best")
    if best is None:
        return None
    recent = state.get("values_since_best", [])[-CLEARLY_WORSE_TRIALS:]
    margin = NOISE_ERRORS * validation_noise(best["value"], val_examples)
    if len(recent) == CLEARLY_WORSE_TRIALS and all(value < best["value"] - margin for value in recent):
        return (
            f"the last {CLEARLY_WORSE_TRIALS} trials each fell short of the best by more than {margin:.3f} "
            f"({NOISE_ERRORS:g} standard errors of the validation score on {val_examples} examples)"
        )
    if state.get("trials_since_best", 0) < PATIENCE_TRIALS:
        return None
    found_at = float(best.get("spent_s", 0.0))
    if spent_s < 2 * found_at:
        return None
    return (
        f"no better plan in the last {state['trials_since_best']} trials "
        f"({spent_s - found_at:.0f}s since the best was found at {found_at:.0f}s)"
    )
