"""Plain-language lines on a run's records, shared by the command line, the search summary and the report
(no torch here: `transferopt report` stays quick to start)."""

from __future__ import annotations

from typing import Any


def describe_self_training(record: dict[str, Any], metric: str) -> str:
    """One line on a self-training record: how much unlabelled data, what each round gave on validation,
    which model was kept."""
    used, given = record.get("unlabeled", 0), record.get("unlabeled_given", record.get("unlabeled", 0))
    if "skipped" in record:
        return f"self-training on {given:,} unlabelled example(s) did not run: {record['skipped']}"
    pool = f"{used:,} unlabelled example(s)" if used == given else f"a random {used:,} of {given:,} unlabelled examples"
    if epochs := record.get("student_epochs"):
        pool += f" (students of {epochs} epoch{'' if epochs == 1 else 's'})"
    steps = [f"labelled only: val {metric} {record['teacher_val']:.4f}"]
    steps += [
        f"round {i}: {r['pseudo_labelled']:,} pseudo-labelled{share_of_pool(record, r)}, val {metric} {r['val']:.4f} "
        f"({'kept' if r['kept'] else 'not kept'})"
        for i, r in enumerate(record["rounds"], start=1)
    ]
    if "stopped" in record:
        steps.append(record["stopped"])
    kept = record["kept_rounds"]
    outcome = f"the model kept is round {kept}'s student" if kept else "the model kept is the labelled-only one"
    return f"self-training on {pool}: " + "; ".join(steps) + f" — {outcome}"


def share_of_pool(record: dict[str, Any], round_record: dict[str, Any]) -> str:
    """The round's share in words, e.g. " (80% of the pool)", when the share grows round by round (a
    curriculum); nothing when every round labels the same share."""
    return f" ({round_record['share']:.0%} of the pool)" if record.get("share_step") else ""


#: The rule of the searches that recorded none (before 2026-12-02): the best two by LogME, one standard error.
DEFAULT_KEEPING = {"by_logme": 2, "probe_noise_errors": 1.0}


def standard_errors(count: float) -> str:
    return f"{count:g} standard error" + ("" if count == 1 else "s")


def describe_keeping(keeping: dict[str, Any] | None) -> str:
    """Which candidates a search tries, as its settings had it."""
    rule = keeping or DEFAULT_KEEPING
    best = "best candidate" if rule["by_logme"] == 1 else f"best {rule['by_logme']}"
    return (
        f"the {best} by LogME and any other whose cross-validated probe accuracy (linear_cv) is within "
        f"{standard_errors(rule['probe_noise_errors'])} of theirs"
    )


def describe_left_out(keeping: dict[str, Any] | None) -> str:
    """Why a scored candidate was left out of the search."""
    rule = keeping or DEFAULT_KEEPING
    return (
        "ranked below by LogME, and a cross-validated probe accuracy more than "
        f"{standard_errors(rule['probe_noise_errors'])} under the best searched one's"
    )
