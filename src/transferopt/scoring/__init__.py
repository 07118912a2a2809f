"""Scoring: transferability scores (pure functions) and candidate ranking from cached features."""

from .rank import CandidateScores, rank_candidates
from .scores import h_score, knn_loo_accuracy, leep, linear_probe_cv_accuracy, logme, nleep

__all__ = [
    "CandidateScores",
    "h_score",
    "knn_loo_accuracy",
    "leep",
    "linear_probe_cv_accuracy",
    "logme",
    "nleep",
    "rank_candidates",
]
