"""Train AutoGluon's MultiModalPredictor with its defaults and write report-split probabilities.
Runs in `.venvs/autogluon`. Usage: python run_autogluon.py SPEC.json (writes probs.npy and out.json).

Only the backbone checkpoint is set, to local weights (a hub download is impossible offline): the local
MiniLM directory for text (`model.hf_text.checkpoint_name`) or a timm directory (config.json +
pytorch_model.bin, AutoGluon's own save format) for images (`model.timm_image.checkpoint_name`).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np


def frame(spec: dict, split: str, out: Path):
    """A DataFrame AutoGluon reads: a text column, or an image-path column (arrays written as PNGs)."""
    import pandas as pd

    data = {}
    if spec["modality"] == "text":
        data["text"] = spec[f"{split}_texts"]
    else:
        data["image"] = image_paths(spec[f"{split}_images"], out / split)
    if f"{split}_labels" in spec:
        data["label"] = spec[f"{split}_labels"]
    return pd.DataFrame(data)


def image_paths(images: dict, folder: Path) -> list[str]:
    if "paths" in images:
        return images["paths"]
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, array in enumerate(np.load(images["npz"])["images"]):
        paths.append(str(folder / f"{i}.png"))
        Image.fromarray(array).save(paths[-1])
    return paths


def main(spec_path: str) -> int:
    from autogluon.multimodal import MultiModalPredictor

    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec_path).parent
    key = "model.hf_text.checkpoint_name" if spec["modality"] == "text" else "model.timm_image.checkpoint_name"
    problem = "binary" if spec["num_classes"] == 2 else "multiclass"
    predictor = MultiModalPredictor(label="label", problem_type=problem, path=str(out / "ag"), verbosity=2)
    predictor.fit(
        frame(spec, "train", out),
        tuning_data=frame(spec, "valid", out),
        hyperparameters={key: spec["checkpoint"], **spec["settings"]},
        seed=spec["seed"],
    )
    probs = predictor.predict_proba(frame(spec, "eval", out), as_pandas=True)
    full = np.zeros((len(probs), spec["num_classes"]))
    full[:, [int(c) for c in probs.columns]] = probs.to_numpy()  # only classes seen in training have columns
    np.save(out / "probs.npy", full)
    info = {
        "trainable_params": int(sum(p.numel() for p in predictor._learner._model.parameters() if p.requires_grad)),
        "versions": {p: version(p) for p in ("autogluon.multimodal", "torch", "transformers", "timm")},
        "settings": {"seed": spec["seed"], **spec["settings"]},
    }
    (out / "out.json").write_text(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
