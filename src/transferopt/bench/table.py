"""The suite's results table (mean ± std over seeds, time ratio to transferopt) and its three plots."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from ..reporting.plots import pyplot

REFERENCE = "transferopt"


def shots_label(shots: int | None) -> str:
    return "full" if shots is None else str(shots)


def mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def group(records: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["shots"], r["system"])].append(r)
    return groups


def table_row(shots: int | None, system: str, runs: list[dict], metric: str, reference: list[float]) -> str:
    ok = [r for r in runs if "error" not in r]
    values = [r["metrics"][metric] for r in ok if metric in r.get("metrics", {})]
    walls = [r["wall_s"] for r in ok]
    failed = [r["error"] for r in runs if "error" in r]
    failures = f"{len(failed)}{': ' + failed[0][:80] if failed else ''}"
    if system == REFERENCE and (budgets := sorted({str(r["budget"]) for r in runs if r.get("budget")})):
        system = f"{system} ({', '.join(budgets)} budget)"  # what the search was given, beside what it took
    if not walls:
        return f"| {shots_label(shots)} | {system} | — | 0 | — | — | — | {failures} |"
    ratio = f"{statistics.mean(walls) / statistics.mean(reference):.2f}" if reference else "—"
    memory = max(r["peak_memory_mb"] for r in ok)
    return (
        f"| {shots_label(shots)} | {system} | {mean_std(values)} | {len(values)} | {statistics.mean(walls):.0f} | "
        f"{ratio} | {memory:.0f} | {failures} |"
    )


def write_table(
    records: list[dict],
    path: Path,
    title: str,
    command: str,
    notes: str = "",
    targets: dict | None = None,
    planned: set[tuple] | None = None,
) -> Path:
    """`planned` holds the suite's (data set, shots, system) jobs: a system a shot count does not run gets
    no row there (without it, every system seen on a data set gets a row at each of its shot counts)."""
    groups = group(records)
    lines = [f"# {title}", "", f"Reproduce: `{command}`", ""]
    if notes:
        lines += [notes, ""]
    lines += [
        "Mean ± standard deviation over seeds of the metric on each data set's report split; time and peak",
        "memory are per run (each run in its own process); the time ratio is the system's mean time over",
        f"{REFERENCE}'s at the same data set and shots. Failed runs are counted and their reason shown.",
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        metric = next(r["metric"] for r in records if r["dataset"] == dataset)
        split = next(r["report_split"] for r in records if r["dataset"] == dataset)
        lines += [f"## {dataset} ({split} {metric})", ""]
        lines += ["| shots | system | " + metric + " | seeds | time (s) | time ratio | peak memory (MB) | failed |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        for shots in dict.fromkeys(r["shots"] for r in records if r["dataset"] == dataset):
            reference = [r["wall_s"] for r in groups.get((dataset, shots, REFERENCE), []) if "error" not in r]
            for system in dict.fromkeys(r["system"] for r in records if r["dataset"] == dataset):
                if planned is not None and (dataset, shots, system) not in planned:
                    continue
                runs = groups.get((dataset, shots, system), [])
                lines.append(table_row(shots, system, runs, metric, reference))
        lines.append("")
        if targets and dataset in targets:
            lines += target_lines(groups, dataset, metric, targets[dataset])
    path.write_text("\n".join(lines) + "\n")
    return path


def mean_of(runs: list[dict], key) -> float | None:
    values = [key(r) for r in runs if "error" not in r]
    return statistics.mean(values) if values else None


def target_lines(groups: dict, dataset: str, metric: str, target) -> list[str]:
    """Each shot count checked against the data set's targets: the margin over the peer, the time ratio
    to it, the margin over training from scratch, and whether 10 shots reach what scratch gets from all
    the data (the learning-curve claim)."""

    def metric_of(shots: int | None, system: str) -> float | None:
        return mean_of(groups.get((dataset, shots, system), []), lambda r: r["metrics"][metric])

    def time_of(shots: int | None, system: str) -> float | None:
        return mean_of(groups.get((dataset, shots, system), []), lambda r: r["wall_s"])

    peer = target.peer
    lines = [
        f"Targets against {peer}: at least {target.margin * 100:+.1f} points of {metric}, in at most "
        f"{target.time_ratio:.2f} of its time.",
        "",
        f"| shots | {REFERENCE} − {peer} | met | time {REFERENCE} / {peer} | met | {REFERENCE} − scratch |",
        "|---|---|---|---|---|---|",
    ]
    for shots in dict.fromkeys(s for (d, s, _) in groups if d == dataset):
        ours, theirs, scratch = (metric_of(shots, name) for name in (REFERENCE, peer, "scratch"))
        if ours is None or theirs is None:
            continue
        margin, ratio = ours - theirs, time_of(shots, REFERENCE) / time_of(shots, peer)
        over_scratch = f"{(ours - scratch) * 100:+.1f} points" if scratch is not None else "—"
        lines.append(
            f"| {shots_label(shots)} | {margin * 100:+.1f} points | {'yes' if margin >= target.margin else 'NO'} | "
            f"{ratio:.2f} | {'yes' if ratio <= target.time_ratio else 'NO'} | {over_scratch} |"
        )
    few, full = metric_of(10, REFERENCE), metric_of(None, "scratch")
    if few is None or full is None:
        curve = f"not measured here ({REFERENCE} at 10 shots or scratch on all the data is missing)."
    else:
        reached = "reaches" if few >= full else "does NOT reach"
        curve = (
            f"{REFERENCE} with 10 examples per class ({few:.4f}) {reached} what training from scratch gets from "
            f"all the data ({full:.4f})."
        )
    return lines + ["", f"Learning curve: {curve}", ""]


def save(figure, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    figure.savefig(paths[0], dpi=110, bbox_inches="tight")
    figure.savefig(paths[1], bbox_inches="tight")
    pyplot().close(figure)
    return paths


def write_plots(records: list[dict], stem: Path) -> list[Path]:
    """Metric versus labelled examples per class ("needs less data"), metric versus time ("trains
    faster"), and trainable parameters versus metric for each strategy the search tried."""
    plt = pyplot()
    ok = [r for r in records if "error" not in r and r["metric"] in r.get("metrics", {})]
    datasets = list(dict.fromkeys(r["dataset"] for r in ok))
    if not datasets:
        return []
    written = []
    figure, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=True):
        rows = [r for r in ok if r["dataset"] == dataset]
        shot_values = sorted({r["shots"] for r in rows}, key=lambda s: float("inf") if s is None else s)
        for system in dict.fromkeys(r["system"] for r in rows):
            xs, ys, es = [], [], []
            for i, shots in enumerate(shot_values):
                values = [r["metrics"][r["metric"]] for r in rows if r["system"] == system and r["shots"] == shots]
                if values:
                    xs.append(i)
                    ys.append(statistics.mean(values))
                    es.append(statistics.stdev(values) if len(values) > 1 else 0.0)
            axis.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=system)
        axis.set_xticks(range(len(shot_values)), [shots_label(s) for s in shot_values])
        axis.set(xlabel="labelled examples per class", ylabel=rows[0]["metric"], title=dataset)
        axis.legend(fontsize=8)
    written += save(figure, stem.with_name(stem.name + "_data"))

    figure, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=True):
        rows = [r for r in ok if r["dataset"] == dataset]
        for system in dict.fromkeys(r["system"] for r in rows):
            mine = [r for r in rows if r["system"] == system]
            axis.scatter([r["wall_s"] for r in mine], [r["metrics"][r["metric"]] for r in mine], label=system)
        axis.set_xscale("log")
        axis.set(xlabel="wall-clock seconds (log)", ylabel=rows[0]["metric"], title=dataset)
        axis.legend(fontsize=8)
    written += save(figure, stem.with_name(stem.name + "_time"))

    figure, axis = plt.subplots(figsize=(6, 4))
    by_strategy: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in ok:
        for trial in r.get("trials", []):
            value = trial["val"].get(r["metric"])
            if value is not None:
                by_strategy[trial["strategy"]].append((trial["trainable_params"], value))
        if r["system"] != REFERENCE:
            by_strategy[f"{r['system']} ({r.get('strategy')})"].append(
                (r["trainable_params"], r["metrics"][r["metric"]])
            )
    for name, points in by_strategy.items():
        axis.scatter([p for p, _ in points], [v for _, v in points], label=name, alpha=0.7)
    axis.set_xscale("log")
    axis.set(xlabel="trainable parameters (log)", ylabel="metric (search trials: validation)", title="size vs result")
    if by_strategy:
        axis.legend(fontsize=7)
    written += save(figure, stem.with_name(stem.name + "_params"))
    return written
