"""Peer adapter: AutoGluon MultiModalPredictor (text and images), with its defaults and local weights.

Status: no AutoGluon release installs beside torch 2.14.1 (README.md, "AutoGluon MultiModal"), so
`setup_peers.py` builds its venv only when asked to force it (`setup_peers.py autogluon --force`, outside
AutoGluon's own pins: the numbers come from a setup AutoGluon does not support); without that venv this
adapter fails with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REASON = (
    "autogluon.multimodal cannot be installed with torch 2.14.1: every release pins torch below it "
    "(1.6.3: torch<2.14, torchvision<0.29, transformers<5.15, timm<1.0.7); "
    "`python3.11 benchmarks/peers/setup_peers.py autogluon --force` installs it outside its pins (see README.md)"
)


def timm_checkpoint(peer, name: str, folder: Path) -> str:
    """transferopt's pretrained weights as the directory AutoGluon loads timm models from offline
    (its own save format: config.json with the architecture, plus pytorch_model.bin)."""
    import torch

    backbone = peer.timm_backbone(name)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(backbone.net.state_dict(), folder / "pytorch_model.bin")
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in backbone.data_config.items()}
    config = {"architecture": backbone.arch, "num_features": backbone.num_features, "pretrained_cfg": cfg}
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def export(peer, split, modality: str, prefix: str, workdir: Path) -> dict[str, Any]:
    if modality == "text":
        return {f"{prefix}_texts": split.inputs.texts}
    return {f"{prefix}_images": peer.export_images(split, workdir / f"{prefix}.npz")}


def run(job: dict[str, Any]) -> dict[str, Any]:
    import _peer as peer  # a sibling module: transferopt's peer loader puts this folder on sys.path

    venv = peer.VENVS_DIR / "autogluon"
    if not (venv / ".forced").is_file():
        raise RuntimeError(REASON)
    peer.peer_python("autogluon")
    workdir = Path(job["workdir"]) / "autogluon"
    workdir.mkdir(parents=True, exist_ok=True)
    task = peer.load_task(job)
    if task.modality == "text":
        checkpoint = peer.text_model_dir(job["models"][0])
    else:
        checkpoint = timm_checkpoint(peer, job["models"][0], workdir / "timm")
    spec = {
        "modality": task.modality,
        "checkpoint": checkpoint,
        "num_classes": task.num_classes,
        "seed": job["seed"],
        "settings": (job.get("baselines") or {}).get("autogluon", {}).get(task.modality, {}),
        "train_labels": [int(y) for y in task.train.labels],
        "valid_labels": [int(y) for y in task.val.labels],
    }
    splits = {"train": task.train, "valid": task.val, "eval": task.split(job["report_split"])}
    for prefix, split in splits.items():
        spec.update(export(peer, split, task.modality, prefix, workdir))
    probs, info = peer.run_peer("autogluon", spec, workdir)
    return peer.record(job, task, probs, info, strategy="autogluon multimodal")
