"""What each compared system does with one job (data set x shots x seed). Runs inside a worker process.

A job is a plain dict (it crosses a process boundary as JSON); a system returns the metrics on the
report split plus what it trained. Peers (other tools) live in adapter files `<peers_dir>/<name>.py`
that define `run(job) -> dict` the same way, so adding one is one file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# The usual defaults of each fixed recipe, per modality (the "naive" settings; from scratch gets
# a higher rate and more epochs, as random weights need). A suite's `baselines:` section overrides them.
# Speech: 1e-5 is the learning rate of the Whisper fine-tuning recipes users copy (Hugging Face's blog).
DEFAULT_BASELINES: dict[str, dict[str, dict[str, Any]]] = {
    "naive-fine-tune": {
        "text": {"lr": 2e-5, "epochs": 3},
        "image": {"lr": 1e-4, "epochs": 10},
        "audio": {"lr": 1e-5, "epochs": 10},
    },
    "scratch": {
        "text": {"lr": 1e-4, "epochs": 20},
        "image": {"lr": 1e-3, "epochs": 30},
        "audio": {"lr": 3e-4, "epochs": 30},
    },
}


def fit_settings(job: dict[str, Any]) -> dict[str, Any]:
    return {"shots": job["shots"], "seed": job["seed"], "metric": job["metric"]}


def load_task(job: dict[str, Any]):
    """The job's data, loaded once: a baseline needs its modality before `fit` trains on it."""
    from ..config import FitConfig
    from ..data import task_from_config

    return task_from_config(FitConfig(data=job["data"], model=job["models"][0], shots=job["shots"], seed=job["seed"]))


def baseline(job: dict[str, Any], system: str, modality: str) -> dict[str, Any]:
    settings = dict(DEFAULT_BASELINES[system][modality])
    settings.update((job.get("baselines") or {}).get(system, {}).get(modality, {}))
    return settings


def outcome(result, metrics: dict[str, Any]) -> dict[str, Any]:
    """What a record keeps of a trained model: the numeric metrics of the report split and what trained."""
    return {
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
        "trainable_params": result.metrics["trainable_params"],
        "strategy": result.config.strategy,
        "model": result.config.model,
    }


def reported(result, job: dict[str, Any]) -> dict[str, Any]:
    return outcome(result, result.metrics.get(job["report_split"]) or result.metrics["val"])


def run_linear_probe(job: dict[str, Any]) -> dict[str, Any]:
    from ..api import fit

    return reported(fit(job["data"], job["models"][0], "linear-probe", **fit_settings(job)), job)


def run_naive_fine_tune(job: dict[str, Any]) -> dict[str, Any]:
    from ..api import fit

    task = load_task(job)
    settings = baseline(job, "naive-fine-tune", task.modality)
    # A fixed number of epochs, as the recipe has it: no early stop.
    result = fit(
        job["data"], job["models"][0], "full", task=task, patience=settings["epochs"], **settings, **fit_settings(job)
    )
    return reported(result, job)


def run_scratch(job: dict[str, Any]) -> dict[str, Any]:
    from ..api import fit

    task = load_task(job)
    settings = baseline(job, "scratch", task.modality)
    # A fixed number of epochs, no early stop: from random weights the validation score sits at chance for
    # several epochs before it climbs (measured: whisper-base's encoder on 300 spoken commands stopped at
    # chance after the default 3 epochs of patience).
    result = fit(
        job["data"], job["models"][0], "full", task=task, pretrained=False, patience=settings["epochs"], **settings,
        **fit_settings(job),
    )  # fmt: skip
    return reported(result, job)


def run_transferopt(job: dict[str, Any]) -> dict[str, Any]:
    from .. import optimize
    from ..api import load

    out = Path(job["workdir"]) / "optimize"
    summary = optimize(
        job["data"], job["models"], out=out, budget=job["budget"], shots=job["shots"], seed=job["seed"],
        metric=job["metric"],
    )  # fmt: skip
    trials = [
        {"strategy": r["strategy"], "trainable_params": r["trainable_params"], "val": r["val"]}
        for r in summary["leaderboard"]
    ]
    # The saved winner's own metrics, as the baselines report theirs: scoring the split again would charge
    # transferopt alone a second pass over it (12 s of a 20 s hymenoptera run).
    return {**reported(load(out), job), "trials": trials}


BUILTIN = {
    "transferopt": run_transferopt,
    "linear-probe": run_linear_probe,
    "naive-fine-tune": run_naive_fine_tune,
    "scratch": run_scratch,
}


def find_system(name: str, peers_dir: str | Path | None):
    """The runner of a built-in system, or `run` from the peer adapter `<peers_dir>/<name>.py`."""
    if name in BUILTIN:
        return BUILTIN[name]
    path = Path(peers_dir or ".") / f"{name.replace('-', '_')}.py"
    if not path.is_file():
        raise ConfigError(f"unknown system {name!r}: not built in ({', '.join(BUILTIN)}) and no adapter {path}")
    # Adapters may share helpers as sibling modules (`import _peer`): their folder joins the import path
    # of this worker process, which runs this one job only.
    if str(path.parent.resolve()) not in sys.path:
        sys.path.insert(0, str(path.parent.resolve()))
    spec = importlib.util.spec_from_file_location(f"transferopt_peer_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ConfigError(f"peer adapter {path} defines no run(job) function")
    return module.run
