"""Train SetFit with its defaults and write report-split probabilities. Runs in `.venvs/setfit`.

Usage: python run_setfit.py SPEC.json  (writes probs.npy and out.json beside SPEC.json)
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np


def trainable_params(model) -> int:
    """The body's parameters (all fine-tuned by the contrastive phase) plus the logistic head's."""
    body = sum(p.numel() for p in model.model_body.parameters() if p.requires_grad)
    head = model.model_head
    return int(body + head.coef_.size + head.intercept_.size)


def full_width(probs: np.ndarray, seen: np.ndarray, num_classes: int) -> np.ndarray:
    """Columns for every class: scikit-learn's head only has columns for the labels it was trained on."""
    out = np.zeros((len(probs), num_classes))
    out[:, seen.astype(int)] = probs
    return out


def main(spec_path: str) -> int:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    spec = json.loads(Path(spec_path).read_text())
    model = SetFitModel.from_pretrained(spec["model_dir"])
    # SetFit's own defaults; only the seed follows the job, plus any suite override.
    args = TrainingArguments(seed=spec["seed"], **spec["settings"])
    train = Dataset.from_dict({"text": spec["train_texts"], "label": spec["train_labels"]})
    trainer = Trainer(model=model, args=args, train_dataset=train)
    trainer.train()
    probs = model.predict_proba(spec["eval_texts"], as_numpy=True)
    probs = full_width(np.asarray(probs), model.model_head.classes_, spec["num_classes"])
    out = Path(spec_path).parent
    np.save(out / "probs.npy", probs)
    info = {
        "trainable_params": trainable_params(model),
        "versions": {p: version(p) for p in ("setfit", "sentence-transformers", "transformers", "torch")},
        "settings": {"seed": spec["seed"], **spec["settings"]},
    }
    (out / "out.json").write_text(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
