"""Label maps, validation splits and K-shot sampling, all seeded."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .sources import RawData, RawSplit
from .types import Split, TaskData


def build_task(
    raw: RawData,
    source: str,
    shots: int | None = None,
    val_shots: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> TaskData:
    if raw.task == "transcription":
        return build_transcription_task(raw, source, shots, val_shots, val_fraction, seed)
    classes = sorted(set(raw.splits["train"].labels), key=natural_key)
    check_classes(classes, raw.splits["train"], source)
    index = {name: i for i, name in enumerate(classes)}
    encoded = {name: encode(split, index, source, name) for name, split in raw.splits.items()}
    train = encoded["train"]
    val = encoded.get("val")
    notes = []
    rng = np.random.default_rng(seed)
    if shots is not None:
        train_idx = sample_per_class(train.labels, shots, rng, classes, source, "train")
        if val is None:
            rest = np.setdiff1d(np.arange(len(train)), train_idx)
            val_idx = rest[sample_up_to_per_class(train.labels[rest], val_shots or shots, rng)]
            if len(val_idx) == 0:
                raise DataError(f"{source}: no examples left for validation after taking {shots} shots per class")
            val = train.subset(val_idx)
            notes.append(f"validation: up to {val_shots or shots} per class held out from train")
        train = train.subset(train_idx)
        notes.append(f"train: {shots} examples per class (seed {seed})")
    elif val is None:
        train, val = stratified_holdout(train, val_fraction, seed, classes, source)
        notes.append(f"validation: stratified {val_fraction:.0%} of train (seed {seed})")
    noise = getattr(train.inputs, "noise", [])
    if noise:
        notes.append(f"background noise: {len(noise)} recording(s), mixed into training clips when augmenting")
    return TaskData(
        modality=raw.modality,
        classes=classes,
        train=train,
        val=val,
        test=encoded.get("test"),
        source=source,
        skipped=list(raw.skipped),
        notes=notes,
    )


def natural_key(name: str) -> tuple:
    """Sort '2' before '10' so numeric class names keep their numeric order."""
    return (0, int(name), "") if name.lstrip("-").isdigit() else (1, 0, name)


def check_classes(classes: list[str], train: RawSplit, source: str) -> None:
    if not train.labels:
        raise DataError(f"{source}: the training data is empty")
    if len(classes) < 2:
        raise DataError(f"{source}: only one class ({classes[0]!r}); classification needs at least two")


def encode(split: RawSplit, index: dict[str, int], source: str, split_name: str) -> Split:
    unknown = sorted(set(split.labels) - set(index))
    if unknown:
        raise DataError(f"{source}: {split_name} split has label(s) not seen in train: {', '.join(unknown[:5])}")
    return Split(split.inputs, np.array([index[label] for label in split.labels], dtype=np.int64))


def sample_per_class(
    labels: np.ndarray, shots: int, rng: np.random.Generator, classes: list[str], source: str, split: str
) -> np.ndarray:
    chosen = []
    for label, name in enumerate(classes):
        members = np.flatnonzero(labels == label)
        if len(members) < shots:
            raise DataError(
                f"{source}: --shots {shots} is larger than class {name!r} ({len(members)} {split} examples)"
            )
        chosen.append(rng.choice(members, size=shots, replace=False))
    return np.sort(np.concatenate(chosen))


def sample_up_to_per_class(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.choice(members, size=min(count, len(members)), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


def stratified_holdout(
    train: Split, fraction: float, seed: int, classes: list[str], source: str
) -> tuple[Split, Split]:
    from sklearn.model_selection import train_test_split

    counts = train.class_counts(len(classes))
    single = [classes[i] for i in np.flatnonzero(counts < 2)]
    if single:
        raise DataError(
            f"{source}: class {single[0]!r} has a single example; each class needs at least 2 "
            "to hold one out for validation (or provide a val split)"
        )
    val_size = max(int(round(fraction * len(train))), len(classes))
    if len(train) - val_size < len(classes):
        raise DataError(f"{source}: too few examples ({len(train)}) for {len(classes)} classes plus validation")
    train_idx, val_idx = train_test_split(
        np.arange(len(train)), test_size=val_size, stratify=train.labels, random_state=seed
    )
    return train.subset(np.sort(train_idx)), train.subset(np.sort(val_idx))


def build_transcription_task(
    raw: RawData, source: str, utterances: int | None, val_utterances: int | None, val_fraction: float, seed: int
) -> TaskData:
    """Speech-to-text: `shots` counts training utterances (there are no classes to count per)."""
    splits = {name: as_transcribed(split) for name, split in raw.splits.items()}
    train, val = splits["train"], splits.get("val")
    if len(train) < 2:
        raise DataError(f"{source}: {len(train)} usable training utterance(s); transcription needs at least 2")
    rng = np.random.default_rng(seed)
    notes = []
    order = rng.permutation(len(train))
    if utterances is not None:
        if utterances > len(train):
            raise DataError(f"{source}: --shots {utterances} is more than the {len(train)} training utterances")
        if val is None:
            held = min(val_utterances or utterances, len(train) - utterances)
            if held < 1:
                raise DataError(f"{source}: no utterances left for validation after taking {utterances}")
            val = train.subset(np.sort(order[utterances : utterances + held]))
            notes.append(f"validation: {held} utterances held out from train")
        train = train.subset(np.sort(order[:utterances]))
        notes.append(f"train: {utterances} utterances (seed {seed})")
    elif val is None:
        held = max(1, int(round(val_fraction * len(train))))
        val, train = train.subset(np.sort(order[:held])), train.subset(np.sort(order[held:]))
        notes.append(f"validation: random {val_fraction:.0%} of train (seed {seed})")
    return TaskData(
        modality=raw.modality,
        classes=[],
        train=train,
        val=val,
        test=splits.get("test"),
        source=source,
        skipped=list(raw.skipped),
        notes=notes,
        task="transcription",
    )


def as_transcribed(split: RawSplit) -> Split:
    return Split(split.inputs, np.zeros(len(split.labels), dtype=np.int64), list(split.labels))
