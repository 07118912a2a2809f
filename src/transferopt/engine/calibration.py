"""Temperature scaling (Guo et al., ICML 2017), folded into the head so the saved model is calibrated."""

from __future__ import annotations

import numpy as np
import torch


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising validation NLL of softmax(log p / T); log p equals the logits up to a
    per-row constant, which softmax ignores."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        return float(-scaled_log_probabilities(probs, np.exp(log_t))[np.arange(len(labels)), labels].mean())

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def scaled_log_probabilities(probs: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(log p / T)."""
    scaled = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    return scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))


def scaled_probabilities(probs: np.ndarray, temperature: float) -> np.ndarray:
    """What the head predicts once `temperature` is folded in, from what it predicted before: no second
    pass over the data (a full fine-tune's validation pass is seconds of a search's budget)."""
    return np.exp(scaled_log_probabilities(probs, temperature))


def fold_temperature(head: torch.nn.Linear, temperature: float) -> None:
    """softmax((Wx + b) / T) == softmax((W/T) x + b/T): the head itself becomes calibrated."""
    with torch.no_grad():
        head.weight.div_(temperature)
        head.bias.div_(temperature)
