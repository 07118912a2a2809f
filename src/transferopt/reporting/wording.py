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
    steps = [f"labelled only: val {metric} {record['teacher_val']:.4f}"]
    steps += [
        f"round {i}: {r['pseudo_labelled']:,} pseudo-labelled, val {metric} {r['val']:.4f} "
        f"({'kept' if r['kept'] else 'not kept'})"
        for i, r in enumerate(record["rounds"], start=1)
    ]
    if "stopped" in record:
        steps.append(record["stopped"])
    kept = record["kept_rounds"]
    outcome = f"the model kept is round {kept}'s student" if kept else "the model kept is the labelled-only one"
    return f"self-training on {pool}: " + "; ".join(steps) + f" — {outcome}"
