"""Train fastai's `vision_learner` + `fine_tune` and write report-split probabilities. Runs in `.venvs/fastai`.

Usage: python run_fastai.py SPEC.json  (writes probs.npy and out.json beside SPEC.json)
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

DEFAULT_BATCH = 64  # fastai's default batch size


def image_getter(images: dict):
    """Item i -> a PIL image fastai can transform: from a file path or an RGB uint8 array."""
    from fastai.vision.all import PILImage

    if "paths" in images:
        paths = images["paths"]
        return len(paths), lambda i: PILImage.create(paths[i])
    arrays = np.load(images["npz"])["images"]
    return len(arrays), lambda i: PILImage.create(arrays[i])


def dataloaders(spec: dict, batch: int):
    """fastai's DataBlock over the train and valid splits, with the quick start's `Resize` and nothing else."""
    from fastai.vision.all import CategoryBlock, DataBlock, ImageBlock, IndexSplitter, Resize

    n_train, train = image_getter(spec["train_images"])
    n_valid, valid = image_getter(spec["valid_images"])
    labels = spec["train_labels"] + spec["valid_labels"]
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(range(spec["num_classes"])))),
        get_x=lambda i: train(i) if i < n_train else valid(i - n_train),
        get_y=lambda i: labels[i],
        splitter=IndexSplitter(list(range(n_train, n_train + n_valid))),
        item_tfms=Resize(spec["size"]),
    )
    return block.dataloaders(list(range(n_train + n_valid)), bs=batch)


def check_weights(body, path: str) -> None:
    """timm loads a classifier-less file non-strictly: make sure every body tensor really came from it."""
    import torch

    expected = torch.load(path, map_location="cpu", weights_only=True)
    actual = body.state_dict()
    if set(expected) != set(actual) or any(not torch.equal(expected[k], actual[k]) for k in expected):
        raise RuntimeError(f"fastai's timm body does not hold the weights of {path}")


def predict(learn, images: dict) -> np.ndarray:
    n, getter = image_getter(images)
    dl = learn.dls.test_dl([getter(i) for i in range(n)])
    probs, _ = learn.get_preds(dl=dl)  # softmax of the head's outputs, columns in vocab (class id) order
    return probs.numpy()


def main(spec_path: str) -> int:
    from fastai.vision.all import accuracy, set_seed, vision_learner

    spec = json.loads(Path(spec_path).read_text())
    set_seed(spec["seed"], reproducible=True)
    batch = min(DEFAULT_BATCH, len(spec["train_labels"]))  # fastai drops the last partial training batch
    dls = dataloaders(spec, batch)
    # A timm name takes fastai's timm path (its head, timm's normalisation); the overlay makes timm read
    # our local file instead of downloading.
    learn = vision_learner(dls, spec["arch"], metrics=accuracy, pretrained_cfg_overlay={"file": spec["weights"]})
    check_weights(learn.model[0].model, spec["weights"])
    learn.fine_tune(spec["settings"]["epochs"])
    probs = predict(learn, spec["eval_images"])
    out = Path(spec_path).parent
    np.save(out / "probs.npy", probs)
    info = {
        "trainable_params": sum(p.numel() for p in learn.model.parameters() if p.requires_grad),
        "versions": {p: version(p) for p in ("fastai", "timm", "torch")},
        "settings": {"seed": spec["seed"], "batch_size": batch, "size": spec["size"], **spec["settings"]},
    }
    (out / "out.json").write_text(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
