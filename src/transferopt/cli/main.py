"""`transferopt` command: fit, evaluate, predict, models, strategies."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..config import OPTIMIZE_PSEUDO_LABEL_SHARE_STEP, OPTIMIZE_SELF_TRAINING_ROUNDS
from ..errors import ConfigError
from .common import (
    comma_separated,
    config_option,
    epoch_printer,
    fit_config_from_options,
    parse_candidates,
    parse_options,
    print_json,
    user_errors_as_messages,
)

app = typer.Typer(
    help="Optimal transfer learning without expert effort.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
@user_errors_as_messages
def fit(
    data: str = config_option("data"),
    model: str = config_option("model"),
    strategy: str = config_option("strategy"),
    out: Path = typer.Option(..., "--out", help="run directory to write"),
    option: list[str] = typer.Option(None, "--option", "-o", help="strategy option key=value (repeatable)"),
    shots: int = config_option("shots"),
    val_shots: int = config_option("val_shots"),
    seed: int = config_option("seed"),
    epochs: int = config_option("epochs"),
    lr: float = config_option("lr"),
    batch_size: int = config_option("batch_size"),
    weight_decay: float = config_option("weight_decay"),
    layer_decay: float = config_option("layer_decay"),
    l2sp: float = config_option("l2sp"),
    patience: int = config_option("patience"),
    augment: bool = config_option("augment", "--augment/--no-augment"),
    flip: bool = config_option("flip", "--flip/--no-flip"),
    image_size: int = config_option("image_size"),
    max_length: int = config_option("max_length"),
    audio_seconds: float = config_option("audio_seconds"),
    class_weight: str = config_option("class_weight"),
    metric: str = config_option("metric"),
    calibrate: bool = config_option("calibrate", "--calibrate/--no-calibrate"),
    pretrained: bool = config_option("pretrained", "--pretrained/--scratch"),
    text_col: str = config_option("text_col"),
    label_col: str = config_option("label_col"),
    audio_col: str = config_option("audio_col"),
    unlabeled: str = config_option("unlabeled"),
    self_training_rounds: int = config_option("self_training_rounds"),
    pseudo_label_share: float = config_option("pseudo_label_share"),
    pseudo_label_share_step: float = config_option("pseudo_label_share_step"),
    self_training_epochs: int = config_option("self_training_epochs"),
    device: str = config_option("device"),
    precision: str = config_option("precision"),
) -> None:
    """Adapt MODEL to DATA with one STRATEGY and save the run directory."""
    options = dict(locals())  # the command's options, taken before any other name is bound here
    from ..api import fit as run_fit

    config = fit_config_from_options(options, strategy_options=parse_options(option))
    result = run_fit(config=config, out=out, hooks=[epoch_printer])
    from ..reporting.report import write_report

    write_report(result.run_dir)
    print_fit_summary(result)


def precision_note(metrics: dict) -> str:
    """What --precision resolved to (", bf16 on cpu"), where the run recorded it (older runs did not)."""
    return f", {metrics['precision']} on {metrics['device']}" if "precision" in metrics else ""


def print_fit_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    metrics = result.metrics
    table = Table(title=f"{result.config.model} · {result.config.strategy}")
    table.add_column("split")
    for column in ("accuracy", "macro_f1", "auc", "ece"):
        table.add_column(column, justify="right")
    for split in ("val", "test"):
        if split in metrics:
            values = metrics[split]
            table.add_row(
                split,
                *(f"{values[c]:.4f}" if c in values else "—" for c in ("accuracy", "macro_f1", "auc", "ece")),
            )
    console = Console()
    console.print(table)
    timing = metrics["timing"]
    console.print(
        f"trained groups: {', '.join(metrics['trained_groups']) or 'none (head only)'}; "
        f"trainable params {metrics['trainable_params']:,} of {metrics['total_params']:,}; "
        f"time {timing['total_s']:.1f}s (features {timing['feature_cache_s']:.1f}s, train {timing['train_s']:.1f}s"
        f"{precision_note(metrics)})"
    )
    if "self_training" in metrics:
        from ..reporting.wording import describe_self_training

        console.print(describe_self_training(metrics["self_training"], result.config.metric))
    for note in result.data_summary.get("skipped", [])[:1]:
        console.print(f"skipped {len(result.data_summary['skipped'])} unreadable input(s), e.g. {note}")
    console.print(f"saved to {result.run_dir} (open report.html there for the full picture)")


@app.command()
@user_errors_as_messages
def optimize(
    data: str = config_option("data"),
    candidates: str = typer.Option(..., "--candidates", help="comma-separated model names"),
    budget: str = typer.Option("15m", "--budget", help="wall-clock budget, e.g. 90s, 15m, 1h"),
    out: Path = typer.Option(..., "--out", help="run directory (study, summary, best model)"),
    shots: int = config_option("shots"),
    seed: int = config_option("seed"),
    metric: str = typer.Option("accuracy", "--metric", help="accuracy | macro_f1 | auc"),
    storage: str = typer.Option(None, "--storage", help="Optuna storage URL (default: SQLite in --out)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted search in --out"),
    flip: bool = config_option("flip", "--flip/--no-flip"),
    early_stop: bool = typer.Option(
        True, "--early-stop/--no-early-stop", help="end before the budget once trials stop finding better plans"
    ),
    max_trials: int = typer.Option(None, "--max-trials", help="stop after this many trials (default: budget)"),
    unlabeled: str = typer.Option(
        None, "--unlabeled", help="unlabelled inputs (table, .txt, folder, .npz): self-train the winner on them"
    ),
    self_training_rounds: int = typer.Option(
        OPTIMIZE_SELF_TRAINING_ROUNDS,
        "--self-training-rounds",
        help="rounds of self-training at most (each must beat the last on validation and fit the budget)",
    ),
    pseudo_label_share: float = config_option("pseudo_label_share"),
    pseudo_label_share_step: float = typer.Option(
        OPTIMIZE_PSEUDO_LABEL_SHARE_STEP,
        "--pseudo-label-share-step",
        help="added to the share each round, up to the whole pool (a curriculum; 0 keeps one share)",
    ),
    self_training_epochs: int = typer.Option(
        None, "--self-training-epochs", help="epochs each self-training student trains (default: the winner's)"
    ),
    precision: str = config_option("precision"),
) -> None:
    """Rank the candidates, then search what to update and how within the budget."""
    from .. import optimize as run_optimize

    summary = run_optimize(
        data,
        parse_candidates(candidates),
        out=out,
        budget=budget,
        shots=shots,
        seed=seed,
        metric=metric,
        storage=storage,
        resume=resume,
        flip=flip,
        early_stop=early_stop,
        max_trials=max_trials,
        unlabeled=unlabeled,
        self_training_rounds=self_training_rounds,
        pseudo_label_share=pseudo_label_share,
        pseudo_label_share_step=pseudo_label_share_step,
        self_training_epochs=self_training_epochs,
        precision=precision,
    )
    typer.echo((out / "summary.md").read_text())
    typer.echo(f"best model saved in {out / summary['model_dir']} (use it with evaluate/predict {out})")
    typer.echo(f"report: {out / 'report.html'}")


@app.command()
@user_errors_as_messages
def bench(
    suite: Path = typer.Argument(..., help="suite file (YAML), e.g. benchmarks/suites/quick.yaml"),
    data_root: Path = typer.Option(Path("../shared/datasets"), "--data-root", help="where the data sets live"),
    seeds: int = typer.Option(None, "--seeds", help="seeds per configuration (default: the suite's)"),
    out: Path = typer.Option(None, "--out", help="results folder (default: benchmarks/results/<suite>)"),
    only: str = typer.Option(None, "--only", help="comma-separated data sets to run now (the table keeps the rest)"),
    systems: str = typer.Option(None, "--systems", help="comma-separated systems to run now (default: all)"),
    table_only: bool = typer.Option(False, "--table-only", help="run nothing: rewrite the table and plots"),
) -> None:
    """Run transferopt, the fixed baselines and the peers of SUITE on the same splits; write the table."""
    import shlex

    from ..bench import load_suite, run_suite, write_plots, write_table
    from ..bench.runner import jobs

    spec = load_suite(suite)
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    explicit_out = out is not None
    out = out or Path("benchmarks/results") / spec.name
    if only is not None and (table_only or not comma_separated(only)):
        raise ConfigError("--only needs data set names, and runs them: it does not go with --table-only")
    if systems is not None and (table_only or not comma_separated(systems)):
        raise ConfigError("--systems needs system names, and runs them: it does not go with --table-only")
    records = run_suite(
        spec, data_root, out, seeds, only=comma_separated(only) or None, run=not table_only,
        systems=comma_separated(systems) or None,
    )  # fmt: skip
    # What a reader runs to reproduce the whole table (not this call's --only, --systems or --table-only).
    reproduce = ["transferopt", "bench", str(suite), "--data-root", str(data_root)]
    reproduce += ["--seeds", str(seeds)] if seeds is not None else []
    reproduce += ["--out", str(out)] if explicit_out else []
    command = shlex.join(reproduce)
    targets = {d.name: d.targets for d in spec.datasets if d.targets}
    planned = {(j["dataset"], j["shots"], j["system"]) for j in jobs(spec, data_root, seeds=1)}
    title = f"Benchmark suite {spec.name}"
    table = write_table(records, out.with_suffix(".md"), title, command, spec.notes, targets, planned)
    plots = write_plots(records, out.parent / f"{spec.name}")
    typer.echo(table.read_text())
    typer.echo(f"records in {out}/records; plots: {', '.join(str(p) for p in plots)}")


@app.command()
@user_errors_as_messages
def report(run_dir: Path = typer.Argument(..., help="a run directory from fit or optimize")) -> None:
    """(Re)build RUN_DIR/report.html: one self-contained page that opens offline."""
    from ..reporting.report import write_report

    typer.echo(f"report written to {write_report(run_dir)}")


@app.command()
@user_errors_as_messages
def rank(
    data: str = typer.Option(..., "--data", help="data set to rank the candidates for"),
    candidates: str = typer.Option(..., "--candidates", help="comma-separated model names"),
    shots: int = typer.Option(None, "--shots", help="labelled examples per class"),
    seed: int = typer.Option(0, "--seed"),
    key: str = typer.Option("logme", "--by", help="score to sort by"),
    depth: bool = typer.Option(True, "--depth/--no-depth", help="also score each layer group's features"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rank candidate models by transferability scores from one forward pass each."""
    from ..config import FitConfig
    from ..data import task_from_config
    from ..scoring import rank_candidates

    names = parse_candidates(candidates)
    config = FitConfig(data=data, model=names[0], shots=shots, seed=seed)
    task = task_from_config(config)
    ranked = rank_candidates(task, names, config, key=key, profile_depth=depth)
    if as_json:
        print_json([c.to_dict() for c in ranked])
        return
    from rich.console import Console
    from rich.table import Table

    keys = sorted({k for c in ranked for k in c.scores})
    table = Table(title=f"candidates for {data} (sorted by {key})")
    for column in ("model", *keys, "best depth", "s"):
        table.add_column(column, justify="left" if column in ("model", "best depth") else "right")
    for c in ranked:
        depth_note = f"{c.best_depth} ({c.depth_profile[c.best_depth]:.3f})" if c.best_depth else "—"
        table.add_row(
            c.model, *(f"{c.scores[k]:.4f}" if k in c.scores else "—" for k in keys), depth_note, f"{c.seconds:.0f}"
        )
    Console().print(table)


@app.command()
@user_errors_as_messages
def evaluate(
    run_dir: Path = typer.Argument(None, help="a run directory from fit/optimize (or give --model)"),
    data: str = typer.Option(None, "--data", help="data set (default: the one the run was trained on)"),
    split: str = typer.Option("test", "--split", help="train | val | test"),
    model: str = typer.Option(None, "--model", help="score a pretrained model as it is (zero-shot)"),
    task: str = typer.Option("speech-recognition", "--task", help="with --model: speech-recognition"),
) -> None:
    """Print the metrics of a run (or of an untrained --model) on a data split as JSON."""
    result = result_to_use(run_dir, model, task)
    if data is None and model is not None:
        raise ConfigError("evaluate --model needs --data")
    print_json(result.evaluate(data or result.config.data, split))


def result_to_use(run_dir: Path | None, model: str | None, task: str):
    """A saved run, or with --model a pretrained model used as it is."""
    from ..api import load, pretrained

    if (run_dir is None) == (model is None):
        raise ConfigError("give a run directory or --model NAME (not both)")
    return pretrained(model, task) if model is not None else load(run_dir)


@app.command()
@user_errors_as_messages
def predict(
    args: list[str] = typer.Argument(
        ..., help="RUN_DIR then image/audio paths or texts ('-' reads lines from stdin); with --model, the inputs"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    model: str = typer.Option(None, "--model", help="use a pretrained model as it is (zero-shot)"),
    task: str = typer.Option("speech-recognition", "--task", help="with --model: speech-recognition"),
) -> None:
    """Predict the label and probability of each input, or the transcript of each audio file."""
    run_dir, inputs = (None, args) if model is not None else (Path(args[0]), args[1:])
    if not inputs:
        raise ConfigError("no inputs to predict: give image/audio paths or texts after the run directory")
    result = result_to_use(run_dir, model, task)
    items = [line.rstrip("\n") for line in sys.stdin if line.strip()] if inputs == ["-"] else inputs
    predictions = result.predict(items)
    if as_json:
        print_json(predictions)
        return
    for row in predictions:
        if "text" in row:
            typer.echo(f"{row['input']}\t{row['text']}")
        else:
            typer.echo(f"{row['label']}\t{row['probability']:.4f}\t{row['input']}")


@app.command()
@user_errors_as_messages
def models(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the available models and whether their weights are present offline."""
    from ..models import list_models

    rows = list_models()
    if as_json:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("name", "modality", "offline", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["modality"], "yes" if row["offline"] else "no", row["description"])
    Console().print(table)


@app.command()
@user_errors_as_messages
def strategies(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the transfer strategies and their options."""
    import dataclasses

    from ..strategies import STRATEGIES

    rows = []
    for name in STRATEGIES.names():
        cls = STRATEGIES.get(name)
        options = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls.Options)}
        rows.append({"name": name, "summary": (cls.__doc__ or "").strip().splitlines()[0], "options": options})
    if as_json:
        print_json(rows)
        return
    for row in rows:
        extra = f"  [options: {', '.join(row['options'])}]" if row["options"] else ""
        typer.echo(f"{row['name']:<14} {row['summary']}{extra}")


if __name__ == "__main__":
    app()
