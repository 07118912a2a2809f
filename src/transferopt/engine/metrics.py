"""Classification metrics from predicted probabilities (scikit-learn where it has them)."""

from __future__ import annotations

import numpy as np


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al., 2017); scikit-learn has no multi-class ECE."""
    filled = [b for b in reliability_bins(probs, labels, bins) if b["count"]]
    return float(sum(b["count"] / len(labels) * abs(b["accuracy"] - b["confidence"]) for b in filled))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict]:
    """Confidence versus accuracy per equal-width confidence bin (the reliability diagram's data)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        count = int(inside.sum())
        rows.append(
            {
                "low": float(low),
                "high": float(high),
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return rows


def detailed_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """What a report shows beyond the headline numbers: confusion matrix (rows = true class),
    per-class precision/recall/F1/support, and reliability bins. `probs` rows sum to 1."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    predictions = probs.argmax(axis=1)
    label_ids = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=label_ids, zero_division=0
    )
    return {
        "confusion_matrix": confusion_matrix(labels, predictions, labels=label_ids).tolist(),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for name, p, r, f, n in zip(classes, precision, recall, f1, support, strict=True)
        },
        "reliability": reliability_bins(probs, labels),
    }


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str], detail: bool = False) -> dict:
    from sklearn.metrics import f1_score, recall_score, roc_auc_score

    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)  # float32 softmax sums drift from 1 in float64
    predictions = probs.argmax(axis=1)
    present = np.unique(labels)
    label_ids = list(range(len(classes)))
    recall = recall_score(labels, predictions, labels=label_ids, average=None, zero_division=0)
    metrics = {
        "n": int(len(labels)),
        "accuracy": float((predictions == labels).mean()),
        "macro_f1": float(f1_score(labels, predictions, labels=present, average="macro", zero_division=0)),
        "per_class_recall": {classes[i]: float(recall[i]) for i in label_ids if i in set(present.tolist())},
        "ece": expected_calibration_error(probs, labels),
        "log_loss": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean()),
    }
    if len(classes) == 2 and len(present) == 2:
        metrics["auc"] = float(roc_auc_score(labels, probs[:, 1]))
    elif len(present) == len(classes) > 2:
        metrics["auc"] = float(roc_auc_score(labels, probs, multi_class="ovr", labels=label_ids))
    if detail:
        metrics["detail"] = detailed_metrics(probs, labels, classes)
    return metrics


#: Metrics where lower is better (transcription error rates): `score` negates them.
LOWER_IS_BETTER = ("wer", "cer")


def score(metrics: dict, name: str) -> float:
    """The validation score to maximise; AUC falls back to accuracy when undefined; error rates negated."""
    if name in LOWER_IS_BETTER:
        return signed(name, metrics[name])
    return float(metrics.get(name, metrics["accuracy"]))


def signed(name: str, value: float) -> float:
    """A recorded metric value as a score to maximise."""
    return -float(value) if name in LOWER_IS_BETTER else float(value)
