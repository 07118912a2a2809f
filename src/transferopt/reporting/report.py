"""`report.html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched) that shows
what a run did: data, candidate ranking, leaderboard, the network with its trained layer groups,
curves, confusion matrix, per-class metrics, calibration, time, and the command that reproduces it.

It reads only the files a run directory already holds, so `transferopt report RUN_DIR` can rebuild it
at any time. Works for `optimize` directories (summary + model/) and plain `fit` directories.
"""

from __future__ import annotations

import html
import io
import json
import shlex
from pathlib import Path
from typing import Any

from .plots import pyplot, training_curve_figure
from .rundir import read_json
from .wording import describe_keeping, describe_self_training

REPORT_FILE = "report.html"
# Above this many classes a confusion matrix becomes unreadable; the most confused pairs are listed instead.
MAX_MATRIX_CLASSES = 25

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2330;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d7dbe3}
.muted{color:#5d6678}.decision{background:#eef5ff;border-left:4px solid #2f6fde;padding:.8rem 1rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #d7dbe3;padding:.25rem .55rem;
text-align:right}th{background:#f3f5f9}td.l,th.l{text-align:left}tr.win td{background:#e9f7ec;font-weight:600}
.groups{display:flex;flex-wrap:wrap;gap:4px;margin:.6rem 0}.g{border:1px solid #9aa3b5;border-radius:4px;
padding:.3rem .5rem;font-size:.8rem;background:#f7f8fa;min-width:4rem;text-align:center}
.g.on{background:#2f6fde;color:#fff;border-color:#1f4fa8}.g small{display:block;opacity:.8}
.head{background:#e2a33a;color:#fff;border-color:#b57a17}
code,pre{background:#f3f5f9;border-radius:4px;padding:.1rem .3rem}pre{padding:.7rem;overflow-x:auto}
.fig{display:inline-block;vertical-align:top;margin-right:1rem}svg{max-width:100%;height:auto}
"""


# ----------------------------------------------------------------------------------------------- entry


def write_report(run_dir: str | Path) -> Path:
    """Build `report.html` inside `run_dir` (written atomically) and return its path."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    page = render(run)
    target = run_dir / REPORT_FILE
    partial = run_dir / f".{REPORT_FILE}.partial"
    partial.write_text(page, encoding="utf-8")
    partial.replace(target)
    return target


def load_run(run_dir: Path) -> dict[str, Any]:
    """Everything the page needs, from the files of an optimize or fit run directory."""
    from ..errors import RunDirError

    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} does not exist")
    summary = read_if_present(run_dir / "summary.json", None)
    model_dir = run_dir / summary["model_dir"] if summary else run_dir
    if not (model_dir / "metrics.json").is_file():
        raise RunDirError(f"{run_dir} is not a transferopt run directory (no metrics.json, no summary.json)")
    return {
        "dir": run_dir,
        "summary": summary,
        "state": read_if_present(run_dir / "optimize.json", None),
        "config": read_json(model_dir / "config.json"),
        "metrics": read_json(model_dir / "metrics.json"),
        "history": read_if_present(model_dir / "history.json", []),
        "data": read_if_present(model_dir / "data.json", {}),
    }


def read_if_present(path: Path, default: Any) -> Any:
    return read_json(path) if path.is_file() else default


# ----------------------------------------------------------------------------------------------- page


def render(run: dict[str, Any]) -> str:
    config, metrics, summary = run["config"], run["metrics"], run["summary"]
    split = "test" if "test" in metrics else "val"
    title = f"transferopt — {config['data']}"
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>",
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='muted'>{'optimize' if summary else 'fit'} run in <code>{esc(str(run['dir']))}</code></p>",
        decision_section(run, split),
        data_section(run["data"]),
    ]
    if summary:
        parts += [ranking_section(summary), leaderboard_section(summary)]
    parts += [
        network_section(metrics),
        curves_section(run["history"], config.get("metric", "accuracy")),
        errors_section(metrics, split),
        calibration_section(metrics, split),
        time_section(run),
        reproduce_section(run),
        "</body></html>",
    ]
    return "\n".join(parts)


def decision_section(run: dict[str, Any], split: str) -> str:
    config, metrics, summary = run["config"], run["metrics"], run["summary"]
    metric = config.get("metric", "accuracy")
    groups = ", ".join(metrics.get("trained_groups") or []) or "none (head only)"
    options = json.dumps(config.get("strategy_options") or {})
    lines = [
        f"<b>{esc(config['model'])}</b> with <b>{esc(config['strategy'])}</b> <code>{esc(options)}</code>; "
        f"trained layer groups: {esc(groups)} ({metrics.get('trainable_params', 0):,} of "
        f"{metrics.get('total_params', 0):,} parameters).",
        f"Validation {esc(metric)} {fmt(metrics['val'].get(metric))}; {headline(metrics[split], split)}.",
    ]
    if summary:
        for label, key in (("best linear probe", "best_linear_probe"), ("best full fine-tune", "best_full_fine_tune")):
            other = summary.get(key)
            lines.append(
                f"Versus the {label}: {fmt(other[f'val_{metric}'])} ({esc(other['model'])})."
                if other
                else f"No {label} ran within the budget."
            )
        if summary.get("stopped_early"):
            lines.append(f"The search stopped early: {esc(summary['stopped_early'])}.")
    # An optimize run's record also says when self-training did not run; a fit's is in its metrics.
    if record := (summary or {}).get("self_training") or metrics.get("self_training"):
        line = describe_self_training(record, metric)
        lines.append(esc(line[0].upper() + line[1:]) + ".")
    return "<h2>Decision</h2><div class='decision'>" + "<br>".join(lines) + "</div>"


def headline(figures: dict[str, Any], split: str) -> str:
    """The split's main figures: error rates for transcription, else accuracy, AUC and macro-F1."""
    if "wer" in figures:
        return f"{split} WER {fmt(figures['wer'])}, CER {fmt(figures['cer'])} ({figures.get('n', 0)} utterances)"
    auc = f", AUC {fmt(figures['auc'])}" if "auc" in figures else ""
    return f"{split} accuracy {fmt(figures.get('accuracy'))}{auc}, macro-F1 {fmt(figures.get('macro_f1'))}"


def transcription_data_section(data: dict[str, Any]) -> str:
    counts = data.get("counts", {})
    rows = [[esc(split), str(c.get("utterances", 0))] for split, c in counts.items()]
    parts = [
        "<h2>Data</h2>",
        f"<p>{esc(data.get('source', ''))} — {esc(data.get('modality', ''))}, speech with transcripts.</p>",
        table(["split", "utterances"], rows, left=1),
    ]
    return "\n".join(parts + skipped_and_notes(data))


def skipped_and_notes(data: dict[str, Any]) -> list[str]:
    parts = []
    skipped = data.get("skipped") or []
    if skipped:
        shown = "".join(f"<li>{esc(str(item))}</li>" for item in skipped[:20])
        more = f"<li>… and {len(skipped) - 20} more</li>" if len(skipped) > 20 else ""
        parts.append(f"<p>Skipped {len(skipped)} unreadable or empty item(s):</p><ul>{shown}{more}</ul>")
    for note in data.get("notes") or []:
        parts.append(f"<p class='muted'>{esc(str(note))}</p>")
    return parts


def data_section(data: dict[str, Any]) -> str:
    if not data:
        return ""
    if data.get("task") == "transcription":
        return transcription_data_section(data)
    counts = data.get("counts", {})
    classes = data.get("classes", [])
    splits = list(counts)
    rows = [[esc(c)] + [str(counts[s].get(c, 0)) for s in splits] for c in classes]
    rows.append(["<b>total</b>"] + [f"<b>{sum(counts[s].values())}</b>" for s in splits])
    train = [n for n in counts.get("train", {}).values() if n]
    imbalance = max(train) / min(train) if train else float("nan")
    parts = [
        "<h2>Data</h2>",
        f"<p>{esc(data.get('source', ''))} — {esc(data.get('modality', ''))}, {len(classes)} classes; "
        f"training imbalance (largest / smallest class): {imbalance:.1f}×.</p>",
        table(["class", *splits], rows, left=1),
    ]
    return "\n".join(parts + skipped_and_notes(data))


def ranking_section(summary: dict[str, Any]) -> str:
    ranking = summary.get("ranking") or []
    if not ranking:
        return ""
    keys = sorted({k for c in ranking for k in c["scores"]})
    searched = summary.get("searched")  # absent in runs made before the search recorded it
    rows = [
        [esc(c["model"])]
        + [fmt(c["scores"].get(k)) for k in keys]
        + [esc(c.get("best_depth") or "—")]
        + ([] if searched is None else ["yes" if c["model"] in searched else "no"])
        for c in ranking
    ]
    profiles = [c for c in ranking if c.get("depth_profile")]
    figure = depth_profile_svg(profiles) if profiles else ""
    return (
        "<h2>Candidate ranking</h2><p class='muted'>Transferability scores from one forward pass per candidate "
        "(ordered by LogME); the depth profile is a cross-validated linear probe on each layer group's "
        "features: the deeper the best group sits below the top, the deeper tuning must reach. The search "
        f"tries {esc(describe_keeping(summary.get('keeping')))}.</p>"
        + table(["model", *keys, "best depth", *([] if searched is None else ["searched"])], rows, left=1)
        + figure
    )


def leaderboard_section(summary: dict[str, Any]) -> str:
    metric = summary["metric"]
    winner = (summary.get("winner") or {}).get("trial")
    rows, classes = [], []
    for r in summary["leaderboard"]:
        test = (r.get("test") or {}).get(metric)
        rows.append(
            [
                str(r["trial"]),
                esc(r["model"]),
                esc(r["strategy"]),
                f"<code>{esc(json.dumps(r['options']))}</code>" if r["options"] else "",
                fmt(r.get("lr"), "{:.1e}"),
                str(r.get("epochs", "")) if r.get("lr") else "—",
                "yes" if r.get("augment") else "",
                fmt(r[f"val_{metric}"]),
                fmt(test),
                f"{r['trainable_params']:,}",
                esc(r["state"]),
                f"{r['seconds']:.0f}",
            ]
        )
        classes.append("win" if r["trial"] == winner else "")
    headers = ["trial", "model", "strategy", "options", "lr", "epochs", "augmented", f"val {metric}", f"test {metric}"]
    headers += ["trainable", "state", "s"]
    return "<h2>Leaderboard</h2>" + table(headers, rows, left=4, row_classes=classes)


def network_section(metrics: dict[str, Any]) -> str:
    names = metrics.get("layer_groups") or []
    if not names:
        return ""
    trained = set(metrics.get("trained_groups") or [])
    counts = metrics.get("group_params") or [None] * len(names)
    boxes = "".join(
        f"<div class='g{' on' if name in trained else ''}' title='{esc(name)}'>{esc(name)}"
        f"<small>{compact(count)}</small></div>"
        for name, count in zip(names, counts, strict=False)
    )
    boxes += "<div class='g head'>head<small>trained</small></div>"
    return (
        "<h2>Network</h2><p class='muted'>Layer groups from input (left) to output; blue groups were updated "
        "(by the strategy's own parameters, e.g. LoRA adapters or biases), grey ones stayed frozen.</p>"
        f"<div class='groups'>{boxes}</div>"
    )


def curves_section(history: list[dict], metric: str) -> str:
    if not history:
        return "<h2>Training curves</h2><p>No gradient training in this run (the head was fitted directly).</p>"
    return "<h2>Training curves</h2>" + curves_svg(history, metric)


def transcripts_section(figures: dict[str, Any], split: str) -> str:
    """What the model heard next to what was said, for the first utterances of the split."""
    rows = [[esc(e["reference"]), esc(e["transcript"])] for e in figures.get("examples") or []]
    if not rows:
        return ""
    return (
        f"<h2>Transcripts on the {split} split</h2><p class='muted'>The first {len(rows)} utterances; error rates "
        "are measured after Whisper's English normalisation.</p>" + table(["said", "heard"], rows, left=2)
    )


def errors_section(metrics: dict[str, Any], split: str) -> str:
    if "wer" in metrics[split]:
        return transcripts_section(metrics[split], split)
    detail = metrics[split].get("detail")
    if not detail:
        return ""
    per_class = detail["per_class"]
    names = list(per_class)
    rows = [
        [esc(n), fmt(v["precision"]), fmt(v["recall"]), fmt(v["f1"]), str(v["support"])] for n, v in per_class.items()
    ]
    parts = [f"<h2>Errors on the {split} split</h2>"]
    matrix = detail["confusion_matrix"]
    if len(names) <= MAX_MATRIX_CLASSES:
        parts.append(f"<div class='fig'>{confusion_svg(matrix, names)}</div>")
    else:
        pairs = sorted(
            ((matrix[i][j], names[i], names[j]) for i in range(len(names)) for j in range(len(names)) if i != j),
            reverse=True,
        )[:15]
        parts.append("<p>Most frequent confusions (true → predicted):</p>")
        parts.append(table(["count", "true", "predicted"], [[str(n), esc(a), esc(b)] for n, a, b in pairs if n]))
    parts.append(
        "<div class='fig'>" + table(["class", "precision", "recall", "F1", "support"], rows, left=1) + "</div>"
    )
    return "\n".join(parts)


def calibration_section(metrics: dict[str, Any], split: str) -> str:
    detail = metrics[split].get("detail")
    if not detail:
        return ""
    temperature = metrics.get("temperature")
    note = f"temperature scaling on validation (T = {temperature:.2f})" if temperature else "no temperature scaling"
    return (
        f"<h2>Calibration</h2><p class='muted'>Confidence versus accuracy on the {split} split; {note}; "
        f"expected calibration error {fmt(metrics[split].get('ece'), '{:.3f}')}.</p>"
        + reliability_svg(detail["reliability"])
    )


def time_section(run: dict[str, Any]) -> str:
    metrics, summary = run["metrics"], run["summary"]
    rows = []
    if summary:
        for c in summary.get("ranking") or []:
            rows.append([f"ranking {esc(c['model'])}", f"{c.get('seconds', 0):.1f}"])
        by_strategy: dict[str, float] = {}
        for r in summary["leaderboard"]:
            by_strategy[r["strategy"]] = by_strategy.get(r["strategy"], 0.0) + r["seconds"]
        rows += [[f"trials: {esc(k)}", f"{v:.1f}"] for k, v in sorted(by_strategy.items(), key=lambda kv: -kv[1])]
        rows.append(["<b>whole search</b>", f"<b>{summary['spent_s']:.1f}</b> of {summary['budget_s']:.0f}"])
    timing = metrics.get("timing") or {}
    label = "winning run" if summary else "run"
    for key in ("feature_cache_s", "head_fit_s", "train_s", "eval_s", "total_s"):
        if key in timing:
            rows.append([f"{label}: {key.removesuffix('_s').replace('_', ' ')}", f"{timing[key]:.1f}"])
    return "<h2>Time (seconds)</h2>" + table(["step", "seconds"], rows, left=1)


def reproduce_section(run: dict[str, Any]) -> str:
    lines = []
    state = run["state"]
    if state:
        lines.append(optimize_command(state["settings"]))
    lines.append(fit_command(run["config"]))
    text = "\n\n".join(lines)
    what = "The search, then the winning plan alone:" if state else "This run:"
    return f"<h2>Reproduce</h2><p>{what}</p><pre>{esc(text)}</pre>"


# ----------------------------------------------------------------------------------------------- commands


def optimize_command(settings: dict[str, Any]) -> str:
    args = ["transferopt", "optimize", "--data", settings["data"], "--candidates", ",".join(settings["candidates"])]
    args += ["--budget", f"{settings['budget_s']:g}s", "--seed", str(settings["seed"]), "--metric", settings["metric"]]
    if settings.get("shots") is not None:
        args += ["--shots", str(settings["shots"])]
    if settings.get("storage"):
        args += ["--storage", settings["storage"]]
    if settings.get("early_stop") is False:
        args.append("--no-early-stop")
    if settings.get("flip") is False:
        args.append("--no-flip")
    if settings.get("precision", "auto") != "auto":
        args += ["--precision", settings["precision"]]
    if settings.get("max_trials"):
        args += ["--max-trials", str(settings["max_trials"])]
    if settings.get("unlabeled"):
        args += ["--unlabeled", settings["unlabeled"], "--self-training-rounds", str(settings["self_training_rounds"])]
        args += ["--pseudo-label-share", f"{settings['pseudo_label_share']:g}"]
        # Always written: optimize's default step is not 0, and a run older than the flag had none.
        args += ["--pseudo-label-share-step", f"{settings.get('pseudo_label_share_step', 0.0):g}"]
        if settings.get("self_training_epochs"):
            args += ["--self-training-epochs", str(settings["self_training_epochs"])]
    args += ["--out", settings["out"]]
    return shlex.join(args)


# FitConfig fields the `fit` command takes as flags (others keep their defaults in every run it makes).
FIT_FLAGS = (
    "shots", "val_shots", "seed", "epochs", "lr", "batch_size", "weight_decay", "layer_decay", "l2sp", "patience",
    "augment", "flip", "image_size", "max_length", "audio_seconds", "class_weight", "metric", "calibrate", "text_col",
    "label_col", "audio_col", "pretrained", "unlabeled", "self_training_rounds", "pseudo_label_share",
    "pseudo_label_share_step", "self_training_epochs", "precision",
)  # fmt: skip


def fit_command(config: dict[str, Any]) -> str:
    from ..config import FitConfig

    defaults = FitConfig(data=config["data"], model=config["model"]).to_dict()
    args = ["transferopt", "fit", "--data", config["data"], "--model", config["model"]]
    args += ["--strategy", config["strategy"]]
    for key, value in (config.get("strategy_options") or {}).items():
        args += ["-o", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    for key in FIT_FLAGS:
        value = config.get(key)
        if value == defaults.get(key):
            continue
        flag = "--" + key.replace("_", "-")
        if key == "pretrained":
            args.append("--pretrained" if value else "--scratch")
        elif isinstance(value, bool):
            args.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif value is not None:
            args += [flag, f"{value:.6g}" if isinstance(value, float) else str(value)]
    args += ["--out", "RUN_DIR"]
    return shlex.join(args)


# ----------------------------------------------------------------------------------------------- figures


def svg_of(figure) -> str:
    """The figure as inline SVG (glyphs drawn as paths, so no font has to be present)."""
    plt = pyplot()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def curves_svg(history: list[dict], metric: str) -> str:
    return svg_of(training_curve_figure(history, metric))


def depth_profile_svg(profiles: list[dict]) -> str:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 2.8))
    for c in profiles:
        scores = [entry["score"] for entry in c["depth_profile"]]
        axis.plot(range(len(scores)), scores, marker="o", label=c["model"])
    longest = max(profiles, key=lambda c: len(c["depth_profile"]))["depth_profile"]
    axis.set_xticks(range(len(longest)), [entry["group"] for entry in longest], rotation=45, ha="right")
    axis.set(ylabel="linear-probe CV accuracy", title="features by depth")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return svg_of(figure)


def confusion_svg(matrix: list[list[int]], names: list[str]) -> str:
    import numpy as np

    plt = pyplot()
    values = np.asarray(matrix)
    size = min(7.0, 2.0 + 0.35 * len(names))
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(values, cmap="Blues")
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(names)), names, fontsize=8)
    axis.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    if len(names) <= 12:
        for (i, j), n in np.ndenumerate(values):
            axis.text(j, i, str(n), ha="center", va="center", color="white" if n > values.max() / 2 else "black")
    figure.tight_layout()
    return svg_of(figure)


def reliability_svg(bins: list[dict]) -> str:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4, 4))
    filled = [b for b in bins if b["count"]]
    width = bins[0]["high"] - bins[0]["low"] if bins else 0.1
    axis.bar([b["low"] for b in filled], [b["accuracy"] for b in filled], width=width, align="edge",
             edgecolor="black", alpha=0.7, label="accuracy")  # fmt: skip
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    axis.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title="reliability")
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return svg_of(figure)


# ----------------------------------------------------------------------------------------------- helpers


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def fmt(value: Any, pattern: str = "{:.4f}") -> str:
    return pattern.format(value) if isinstance(value, int | float) else "—"


def compact(count: int | None) -> str:
    if count is None:
        return ""
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if count >= limit:
            return f"{count / limit:.1f}{suffix}"
    return str(count)


def table(headers: list[str], rows: list[list[str]], left: int = 0, row_classes: list[str] | None = None) -> str:
    """Cells are already escaped HTML; the first `left` columns are left-aligned."""

    def cell(tag: str, index: int, content: str) -> str:
        return f"<{tag}{' class=l' if index < left else ''}>{content}</{tag}>"

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        css = (row_classes or [""] * len(rows))[r]
        body.append(f"<tr{f' class={css}' if css else ''}>" + "".join(cell("td", i, c) for i, c in enumerate(row)))
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"
