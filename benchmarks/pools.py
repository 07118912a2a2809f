"""Unlabelled pools for the benchmarks: what a user with many unlabelled examples would pass to `--unlabeled`."""

from __future__ import annotations

from pathlib import Path


def write_unlabeled_rest(name: str, data: str, shots: int | None, seed: int, path: Path) -> str:
    """The training texts that are neither among the sampled shots nor in the validation set, their labels
    dropped, as a one-column table at `path`."""
    import pandas as pd

    from transferopt.data import load_task_data

    sampled = load_task_data(data, shots=shots, seed=seed)
    everything = load_task_data(data, seed=seed)
    taken = set(sampled.train.inputs.texts) | set(sampled.val.inputs.texts)
    texts = [t for t in everything.train.inputs.texts + everything.val.inputs.texts if t not in taken]
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    print(f"{name}: {len(texts)} unlabelled training texts (not shots, not validation)", flush=True)
    return str(path)
