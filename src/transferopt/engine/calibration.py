"""Temperature scaling (Guo et al., ICML 2017), folded into the head so the saved model is calibrated."""

from __future__ import annotations

import numpy as np
import torch


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising validation NLL of softmax(log p / T); log p equals the logits up to a
    per-row constant, which softmax ignores."""
    from scipy.optimize import minimize_scalar

    log_probs = np.log(np.clip(probs, 1e-12, 1.0))

    def nll(log_t: float) -> float:
        scaled = log_probs / np.exp(log_t)
        scaled -= scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        return float((log_norm - scaled[np.arange(len(labels)), labels]).mean())

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def fold_temperature(head: torch.nn.Linear, temperature: float) -> None:
    """softmax((Wx + b) / T) == softmax((W/T) x + b/T): the head itself becomes calibrated."""
    with torch.no_grad():
        head.weight.div_(temperature)
        head.bias.div_(temperature)
