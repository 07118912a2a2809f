"""Each transferability score agrees with a reference computation and orders easy above hard."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from transferopt.scoring import h_score, knn_loo_accuracy, leep, linear_probe_cv_accuracy, logme, nleep


@pytest.fixture(scope="module")
def tasks():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 150)
    noise = rng.normal(size=(150, 16))
    separable = noise.copy()
    separable[:, 0] += 4 * labels
    return labels, noise, separable


def reference_logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME exactly as the paper's published algorithm (You et al. 2021, Algorithm 1), via SVD."""
    f = features.astype(np.float64)
    n, d = f.shape
    v, s, vh = np.linalg.svd(f.T @ f, full_matrices=True)
    evidences = []
    for c in range(int(labels.max()) + 1):
        y = (labels == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        lam = alpha / beta
        tmp = vh @ (f.T @ y)
        for _ in range(11):
            gamma = (s / (s + lam)).sum()
            m = v @ (tmp * beta / (alpha + beta * s))
            alpha_de = (m * m).sum()
            alpha = gamma / alpha_de
            beta_de = ((y - f @ m) ** 2).sum()
            beta = (n - gamma) / beta_de
            new_lam = alpha / beta
            if abs(new_lam - lam) / lam < 0.01:
                break
            lam = new_lam
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * np.log(alpha + beta * s).sum()
            - beta / 2 * beta_de
            - alpha / 2 * alpha_de
            - n / 2 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def test_logme_matches_the_published_algorithm(tasks):
    labels, noise, separable = tasks
    for features in (noise, separable):
        assert logme(features, labels) == pytest.approx(reference_logme(features, labels), rel=1e-3)
    assert logme(separable, labels) > logme(noise, labels)


@pytest.fixture(scope="module")
def wide_tasks():
    """Fewer examples than dimensions, the few-shot case: the scores take the n x n route there."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 10)
    noise = rng.normal(size=(30, 80))
    separable = noise.copy()
    separable[:, :3] += 3 * np.eye(3)[labels]
    return labels, noise, separable


def direct_logme(features: np.ndarray, labels: np.ndarray) -> float:
    """logme's own iteration on the d x d eigen-decomposition of F^T F, forming m and y - F m each step."""
    f = features.astype(np.float64)
    n, d = f.shape
    s, v = np.linalg.eigh(f.T @ f)
    s = np.clip(s, 0.0, None)
    evidences = []
    for c in range(int(labels.max()) + 1):
        y = (labels == c).astype(np.float64)
        projected = v.T @ (f.T @ y)
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            gamma = (beta * s / (alpha + beta * s)).sum()
            m = v @ (beta * projected / (alpha + beta * s))
            new_alpha, new_beta = gamma / (m @ m), (n - gamma) / ((y - f @ m) ** 2).sum()
            converged = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 0.01
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        m = v @ (beta * projected / (alpha + beta * s))
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * np.log(alpha + beta * s).sum()
            - beta / 2 * ((y - f @ m) ** 2).sum()
            - alpha / 2 * (m @ m)
            - n / 2 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def test_logme_with_fewer_examples_than_dimensions_agrees_with_the_d_by_d_route(wide_tasks):
    # The n x n Gram route must give the d x d route's evidence (the published algorithm's iteration
    # differs from ours only in when it stops, which matters more here: 11 steps do not converge on noise).
    labels, noise, separable = wide_tasks
    for features in (noise, separable):
        assert logme(features, labels) == pytest.approx(direct_logme(features, labels), rel=1e-9)
        assert logme(features, labels) == pytest.approx(reference_logme(features, labels), rel=1e-2)
    assert logme(separable, labels) > logme(noise, labels)


def test_leep_by_hand():
    # Two source classes, two target classes; source predictions are fixed distributions.
    theta = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.3, 0.7]])
    labels = np.array([0, 0, 1, 1])
    joint = np.zeros((2, 2))
    for p, y in zip(theta, labels, strict=True):
        joint[y] += p / 4
    conditional = joint / joint.sum(axis=0, keepdims=True)
    expected = np.mean(
        [np.log(sum(conditional[y, z] * p[z] for z in range(2))) for p, y in zip(theta, labels, strict=True)]
    )
    assert leep(theta, labels) == pytest.approx(expected, abs=1e-12)
    # Source predictions that already are the target labels give the maximum, log 1 = 0.
    assert leep(np.eye(2)[labels], labels) == pytest.approx(0.0, abs=1e-9)


def h_score_by_definition(features: np.ndarray, labels: np.ndarray) -> float:
    """tr(cov(f)^-1 cov(E[f|y])) with sklearn's Ledoit-Wolf estimator, inverted outright."""
    centred = features - features.mean(axis=0)
    means = np.stack([centred[labels == c].mean(axis=0) for c in labels])  # each example's class mean
    covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    return float(np.trace(np.linalg.inv(covariance) @ (means.T @ means / len(labels))))


def test_h_score_matches_its_definition(tasks):
    labels, noise, separable = tasks
    assert h_score(separable, labels) == pytest.approx(h_score_by_definition(separable, labels), rel=1e-6)
    assert h_score(separable, labels) > 5 * h_score(noise, labels)


def test_h_score_with_fewer_examples_than_dimensions_matches_its_definition(wide_tasks):
    labels, noise, separable = wide_tasks
    for features in (noise, separable):
        assert h_score(features, labels) == pytest.approx(h_score_by_definition(features, labels), rel=1e-6)
    assert h_score(separable, labels) > h_score(noise, labels)


def test_knn_is_leave_one_out():
    # Each point's only same-class partner is far away; its nearest neighbour is the other class.
    features = np.array([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0], [0.05, 1.0]])
    labels = np.array([0, 1, 0, 1])
    assert knn_loo_accuracy(features, labels, k=1) == 0.0  # counting itself would give 1.0
    assert knn_loo_accuracy(features, np.array([0, 0, 1, 1]), k=1) == 1.0


def test_linear_probe_cv_and_nleep_order_easy_above_hard(tasks):
    labels, noise, separable = tasks
    assert linear_probe_cv_accuracy(separable, labels) > 0.9  # Bayes accuracy here is about 0.97
    assert linear_probe_cv_accuracy(noise, labels) < 0.6
    assert nleep(separable, labels) > nleep(noise, labels)
