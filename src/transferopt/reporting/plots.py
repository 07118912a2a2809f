"""Plots for run directories (matplotlib imported lazily, headless backend)."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "path"  # SVG text as paths: no font needed where it is opened
    import matplotlib.pyplot as plt

    return plt


def training_curve_figure(history: list[dict], metric: str = "accuracy"):
    """Train/val loss and the validation metric per epoch."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    figure, (losses, scores) = plt.subplots(1, 2, figsize=(9, 3.5))
    losses.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train")
    losses.plot(epochs, [r["val_loss"] for r in history], marker="o", label="validation")
    losses.set(xlabel="epoch", ylabel="loss", title="loss")
    losses.legend()
    key = f"val_{metric}" if f"val_{metric}" in history[0] else "val_accuracy"
    scores.plot(epochs, [r[key] for r in history], marker="o", color="tab:green")
    scores.set(xlabel="epoch", ylabel=key.removeprefix("val_"), title=f"validation {key.removeprefix('val_')}")
    figure.tight_layout()
    return figure


def plot_training_curve(history: list[dict], path: Path, metric: str = "accuracy") -> None:
    """The training curve as PNG."""
    figure = training_curve_figure(history, metric)
    figure.savefig(path, dpi=100)
    pyplot().close(figure)
