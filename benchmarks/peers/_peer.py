"""Plumbing shared by the peer adapters (runs in transferopt's bench worker, with transferopt's venv).

A peer trains in its own virtual environment (`.venvs/<peer>/`, made by `setup_peers.py`) because its
dependency pins differ from transferopt's. The adapter loads the job's data with transferopt itself (same
splits, same shots, same seed), writes what the peer needs to a spec file in the job's work directory,
runs `scripts/run_<peer>.py` with the peer's interpreter, reads back class probabilities of the report
split and scores them with transferopt's own metric function, so every system is scored identically.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

PEERS_DIR = Path(__file__).resolve().parent
VENVS_DIR = PEERS_DIR / ".venvs"
SCRIPTS_DIR = PEERS_DIR / "scripts"

# Nothing may download at run time: the peers get local weights and must never reach a hub.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def setup_command(peer: str) -> str:
    return f"python3.11 benchmarks/peers/setup_peers.py {peer}"


def peer_python(peer: str) -> Path:
    """The peer venv's interpreter; building the venv is a separate step so it never counts as run time."""
    python = VENVS_DIR / peer / "bin" / "python"
    ready = VENVS_DIR / peer / ".installed"
    if not python.is_file() or not ready.is_file():
        raise RuntimeError(f"peer venv for {peer} is missing or incomplete: run `{setup_command(peer)}` first")
    return python


def model_modality(name: str) -> str:
    """A model name's modality without loading it (aliases know theirs; timm/ is image, hf/ is text)."""
    from transferopt.models.registry import ALIASES

    if name in ALIASES:
        return ALIASES.get(name).modality
    if name.startswith("timm/"):
        return "image"
    if name.startswith("hf/"):
        return "text"
    raise RuntimeError(f"cannot tell the modality of model {name!r}")


def not_applicable(job: dict[str, Any], peer: str, modality: str) -> dict[str, Any] | None:
    """The record of a job this peer does not cover (the runner runs every system on every data set),
    or None when it applies. No metrics, so the table counts no seed and plots nothing for it."""
    have = model_modality(job["models"][0])
    if have == modality:
        return None
    return {
        "metrics": {},
        "trainable_params": 0,
        "strategy": "not applicable",
        "model": job["models"][0],
        "not_applicable": f"{peer} covers {modality} data; {job['dataset']} is {have} data",
    }


def load_task(job: dict[str, Any]):
    """The job's data exactly as transferopt's systems see it (same shots, seed and splits)."""
    from transferopt.config import FitConfig
    from transferopt.data import task_from_config

    return task_from_config(FitConfig(data=job["data"], model=job["models"][0], shots=job["shots"], seed=job["seed"]))


def text_model_dir(name: str) -> str:
    """The local sentence-transformers directory of a transferopt text model (never a hub name)."""
    if name == "minilm-l6":
        from transferopt.models.registry import _minilm_dir

        return str(_minilm_dir())
    if name.startswith("hf/") and Path(name.removeprefix("hf/")).is_dir():
        return name.removeprefix("hf/")
    raise RuntimeError(f"no local weights for text model {name!r} (use minilm-l6 or hf/<local dir>)")


def timm_backbone(name: str):
    """transferopt's pretrained timm backbone of `name` (ImageNet classifier already removed)."""
    from transferopt.models.registry import resolve_backbone

    backbone = resolve_backbone(name, pretrained=True)
    if backbone.kind != "timm":
        raise RuntimeError(f"model {name!r} is not a timm image model")
    return backbone


def export_images(split, path: Path) -> dict[str, Any]:
    """File paths as they are; in-memory arrays (e.g. MedMNIST) as RGB uint8 in an .npz file."""
    if split.inputs.paths is not None:
        return {"paths": [str(p) for p in split.inputs.paths]}
    arrays = np.asarray(split.inputs.arrays, dtype=np.uint8)
    if arrays.ndim == 3:  # grayscale (N, H, W): three equal channels, as transferopt feeds them
        arrays = np.repeat(arrays[..., None], 3, axis=-1)
    elif arrays.shape[-1] == 1:
        arrays = np.repeat(arrays, 3, axis=-1)
    np.savez(path, images=arrays)
    return {"npz": str(path)}


def run_peer(peer: str, spec: dict[str, Any], workdir: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Run the peer's script on `spec` in its venv; return (report-split probabilities, its info).

    The script's output goes to a log file, so a failure is reported as its last line (the bench runner
    keeps only one line per failed job)."""
    python = peer_python(peer)
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path, log_path = workdir / "spec.json", workdir / f"{peer}.log"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, **OFFLINE_ENV}
    env.pop("PYTHONPATH", None)  # transferopt's paths must not leak into the peer's interpreter
    with log_path.open("w") as log:
        # cwd is the job's temp dir: peers write checkpoints/models relative to it.
        done = subprocess.run([str(python), str(SCRIPTS_DIR / f"run_{peer}.py"), str(spec_path)],
                              cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)  # fmt: skip
    if done.returncode != 0:
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"{peer} failed (exit {done.returncode}): {lines[-1] if lines else 'no output'}")
    info = json.loads((workdir / "out.json").read_text())
    return np.load(workdir / "probs.npy"), info


def record(job: dict[str, Any], task, probs: np.ndarray, info: dict[str, Any], strategy: str) -> dict[str, Any]:
    """The bench record: transferopt's metrics of the report split, as the built-in systems return them."""
    from transferopt.engine.metrics import classification_metrics

    split = task.split(job["report_split"])
    metrics = classification_metrics(probs, np.asarray(split.labels), task.classes)
    return {
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
        "trainable_params": int(info["trainable_params"]),
        "strategy": strategy,
        "model": job["models"][0],
        "peer": {k: v for k, v in info.items() if k != "trainable_params"},
    }
