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
    paper's fixed-point iteration, on one eigen-decomposition shared by all classes.
    """
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    targets = one_hot_targets(labels)
    s, projected = feature_spectrum(f, targets)
    zero_eigenvalues = d - len(s)  # F^T F's eigenvalues beyond the n of F F^T, when examples are fewer
    evidences = []
    for c in range(projected.shape[1]):
        p, y_norm = projected[:, c], float(targets[:, c].sum())  # p = V^T F^T y; |y|^2 for a 0/1 target
        alpha, beta = 1.0, 1.0
        for _ in range(max_iterations):
            gamma = (beta * s / (alpha + beta * s)).sum()
            alpha_term, residual = posterior_terms(alpha, beta, s, p, y_norm)
            new_alpha = gamma / max(alpha_term, 1e-12)
            new_beta = (n - gamma) / max(residual, 1e-12)
            converged = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 0.01
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        alpha_term, residual = posterior_terms(alpha, beta, s, p, y_norm)
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * (np.log(alpha + beta * s).sum() + zero_eigenvalues * np.log(alpha))
            - beta / 2 * residual
            - alpha / 2 * alpha_term
            - n / 2 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def posterior_terms(alpha: float, beta: float, s: np.ndarray, p: np.ndarray, y_norm: float) -> tuple[float, float]:
    """|m|^2 and |y - F m|^2 for LogME's posterior mean m = V w, w = beta p / (alpha + beta s), from the
    spectrum alone: |m|^2 = |w|^2 and |y - F m|^2 = |y|^2 - 2 p.w + sum(s w^2)."""
    w = beta * p / (alpha + beta * s)
    return float(w @ w), max(y_norm - 2 * float(p @ w) + float((s * w * w).sum()), 0.0)


def feature_spectrum(f: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eigenvalues s of F^T F (its non-zero ones, when examples are fewer than dimensions) and each
    target projected on its eigenvectors, V^T F^T y. With fewer examples than dimensions (the few-shot
    case) they come from the n x n Gram matrix F F^T = U diag(s) U^T instead, since V^T F^T y =
    sqrt(s) U^T y: 544 images of a 1,280-dimensional model take 0.1 s there against 0.8 s for F^T F."""
    n, d = f.shape
    if n >= d:
        s, v = np.linalg.eigh(f.T @ f)
        return np.clip(s, 0.0, None), v.T @ (f.T @ targets)
    s, u = np.linalg.eigh(f @ f.T)
    s = np.clip(s, 0.0, None)
    return s, np.sqrt(s)[:, None] * (u.T @ targets)


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
    from sklearn.covariance import ledoit_wolf_shrinkage

    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(axis=0)
    classes, counts = np.unique(labels, return_counts=True)
    means = np.stack([f[labels == c].mean(axis=0) for c in classes])
    # cov(E[f|y]) = sum_c n_c mu_c mu_c^T / n, so the trace needs one solve per class, not an inverse.
    solved = solve_shrunk_covariance(f, ledoit_wolf_shrinkage(f, assume_centered=True), means.T)
    return float((counts * (means.T * solved).sum(axis=0)).sum() / len(f))


def solve_shrunk_covariance(f: np.ndarray, shrinkage: float, rhs: np.ndarray) -> np.ndarray:
    """Solve C x = rhs for sklearn's Ledoit-Wolf covariance of the centred features f (n x d),
    C = (1 - shrinkage) F^T F / n + shrinkage * mu * I with mu = tr(F^T F / n) / d.

    With fewer examples than dimensions C is a scaled identity plus a rank-n term, so the Woodbury
    identity solves it through the n x n Gram matrix: C^-1 = (I - F^T (a/b I + F F^T)^-1 F) / a for
    a = shrinkage * mu, b = (1 - shrinkage) / n. Written here because sklearn only offers the d x d
    matrix (1 s to solve at d = 1,280 on two cores; 0.1 s this way for 544 examples)."""
    from scipy.linalg import solve
    from sklearn.covariance import empirical_covariance, shrunk_covariance

    n, d = f.shape
    mu = float((f * f).sum()) / (n * d)
    a, b = shrinkage * mu, (1.0 - shrinkage) / n
    if n >= d or a <= 0.0:
        covariance = shrunk_covariance(empirical_covariance(f, assume_centered=True), shrinkage)
        return solve(covariance, rhs, assume_a="pos")
    if b <= 0.0:
        return rhs / a
    gram = f @ f.T
    gram.flat[:: n + 1] += a / b
    return (rhs - f.T @ solve(gram, f @ rhs, assume_a="pos")) / a


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
