"""Transferability scores: pure functions of (features, labels[, source probabilities]) -> float.

Higher is better for every score. Each estimates, without fine-tuning, how well a pretrained model's
features (or predictions) suit the target labels, so candidates can be ranked from one forward pass.
"""

from __future__ import annotations

import numpy as np


def one_hot_targets(labels: np.ndarray) -> np.ndarray:
    classes = int(labels.max()) + 1
    return (labels[:, None] == np.arange(classes)[None, :]).astype(np.float64)


def logme(features: np.ndarray, labels: np.ndarray, max_iterations: int = 11) -> float:
    """LogME: mean per-class log maximum evidence of a Bayesian linear model on the features.

    You, Liu, Wang, Long, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
    ICML 2021. Evidence is maximised over the prior precision alpha and noise precision beta by the
    paper's fixed-point iteration, using one eigen-decomposition of F^T F shared by all classes.
    """
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    s, v = np.linalg.eigh(f.T @ f)  # F^T F = V diag(s) V^T
    s = np.clip(s, 0.0, None)
    projected = v.T @ (f.T @ one_hot_targets(labels))  # V^T F^T y for every class at once
    evidences = []
    for c in range(projected.shape[1]):
        y = (labels == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        for _ in range(max_iterations):
            gamma = (beta * s / (alpha + beta * s)).sum()
            m = v @ (beta * projected[:, c] / (alpha + beta * s))
            alpha_term = float(m @ m)
            residual = float(((y - f @ m) ** 2).sum())
            new_alpha = gamma / max(alpha_term, 1e-12)
            new_beta = (n - gamma) / max(residual, 1e-12)
            converged = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 0.01
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        m = v @ (beta * projected[:, c] / (alpha + beta * s))
        alpha_term = float(m @ m)
        residual = float(((y - f @ m) ** 2).sum())
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * np.log(alpha + beta * s).sum()
            - beta / 2 * residual
            - alpha / 2 * alpha_term
            - n / 2 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def leep(source_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """LEEP: log expected empirical prediction through the source head's label distribution.

    Nguyen, Hassner, Seeger, Archambeau, "LEEP: A New Measure to Evaluate Transferability of Learned
    Representations", ICML 2020.
    """
    theta = np.asarray(source_probabilities, dtype=np.float64)
    joint = one_hot_targets(labels).T @ theta / len(labels)  # P(y, z)
    conditional = joint / np.clip(joint.sum(axis=0, keepdims=True), 1e-12, None)  # P(y | z)
    expected = theta @ conditional.T  # sum_z P(y|z) theta_z(x)
    return float(np.mean(np.log(np.clip(expected[np.arange(len(labels)), labels], 1e-12, None))))


def nleep(features: np.ndarray, labels: np.ndarray, components_per_class: int = 5, seed: int = 0) -> float:
    """N-LEEP: LEEP with a Gaussian mixture on PCA-reduced features in place of the source head.

    Li et al., "Ranking Neural Checkpoints", CVPR 2021. Useful when the model has no source classifier
    (e.g. sentence encoders). PCA keeps 80% of the variance, as in the paper.
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    reduced = PCA(n_components=0.8, svd_solver="full", random_state=seed).fit_transform(features)
    classes = int(labels.max()) + 1
    components = max(1, min(components_per_class * classes, len(labels) // 2))
    mixture = GaussianMixture(components, covariance_type="diag", random_state=seed, reg_covar=1e-4)
    return leep(mixture.fit(reduced).predict_proba(reduced), labels)


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score with a shrinkage covariance: tr(cov(f)^-1 cov(E[f|y])).

    Bao et al., "An Information-theoretic Approach to Transferability in Task Transfer Learning",
    ICIP 2019; the Ledoit-Wolf shrinkage estimate follows Ibrahim, Ponomareva, Mazumder, "Newer is not
    always better: rethinking transferability metrics", ICLR 2023 (plain covariance is singular when
    examples are fewer than dimensions, the usual few-shot case).
    """
    from scipy.linalg import solve
    from sklearn.covariance import ledoit_wolf

    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(axis=0)
    # The function, not the estimator: LedoitWolf().fit also inverts the d x d matrix (1 s at d = 1280).
    covariance, _ = ledoit_wolf(f, assume_centered=True)
    classes, counts = np.unique(labels, return_counts=True)
    means = np.stack([f[labels == c].mean(axis=0) for c in classes])
    # cov(E[f|y]) = sum_c n_c mu_c mu_c^T / n, so the trace needs one solve per class, not an inverse.
    solved = solve(covariance, means.T, assume_a="pos")
    return float((counts * (means.T * solved).sum(axis=0)).sum() / len(f))


def knn_loo_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out accuracy of a cosine k-nearest-neighbour vote on the features."""
    from sklearn.neighbors import NearestNeighbors

    k = max(1, min(k, len(labels) - 1))
    neighbours = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(features)
    _, index = neighbours.kneighbors(features)
    votes = labels[index[:, 1:]]  # column 0 is the example itself
    classes = int(labels.max()) + 1
    counts = np.stack([(votes == c).sum(axis=1) for c in range(classes)], axis=1)
    return float((counts.argmax(axis=1) == labels).mean())


def linear_probe_cv_accuracy(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Stratified k-fold accuracy of logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    folds = max(2, min(folds, int(np.bincount(labels).min())))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, tol=1e-3))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=1):
        return float(cross_val_score(model, features, labels, cv=splitter).mean())
