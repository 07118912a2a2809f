"""Peer adapter: SetFit (contrastive fine-tuning of a sentence-transformers body + logistic-regression head).

Text data sets only. SetFit starts from the same local all-MiniLM-L6-v2 directory transferopt's `minilm-l6`
uses and trains with SetFit's default `TrainingArguments()` on the job's training split; only the seed is
set (to the job's seed). A suite may override SetFit's arguments with `baselines: {setfit: {text: {...}}}`
(`fewshot.yaml` sets `num_iterations: 20`: the default draws every sentence pair, see README.md); the
record states them under `peer.settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(job: dict[str, Any]) -> dict[str, Any]:
    import _peer as peer  # a sibling module: transferopt's peer loader puts this folder on sys.path

    if skipped := peer.not_applicable(job, "setfit", "text"):
        return skipped
    peer.peer_python("setfit")  # fail fast, before loading data, when the venv is missing
    task = peer.load_task(job)
    settings = (job.get("baselines") or {}).get("setfit", {}).get("text", {})
    spec = {
        "model_dir": peer.text_model_dir(job["models"][0]),
        "num_classes": task.num_classes,
        "seed": job["seed"],
        "settings": settings,
        "train_texts": task.train.inputs.texts,
        "train_labels": [int(y) for y in task.train.labels],
        "eval_texts": task.split(job["report_split"]).inputs.texts,
    }
    probs, info = peer.run_peer("setfit", spec, Path(job["workdir"]) / "setfit")
    return peer.record(job, task, probs, info, strategy="setfit")
