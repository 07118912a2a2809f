"""Metrics against scikit-learn and hand computations; the logistic-regression head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score

from transferopt.engine import classification_metrics
from transferopt.engine.head import HeadSearch, fit_logistic_head, softmax_parameters
from transferopt.engine.metrics import expected_calibration_error, score


def test_binary_metrics():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1, 0])
    m = classification_metrics(probs, labels, ["no", "yes"])
    predictions = np.array([0, 1, 1, 0, 1])
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro"))
    assert m["per_class_recall"] == {"no": pytest.approx(1 / 2), "yes": pytest.approx(2 / 3)}
    assert m["auc"] == pytest.approx(roc_auc_score(labels, probs[:, 1]))
    expected_log_loss = -np.mean(np.log([0.9, 0.6, 0.8, 0.3, 0.45]))
    assert m["log_loss"] == pytest.approx(expected_log_loss)
    assert 0.0 <= m["ece"] <= 1.0


def test_multiclass_metrics_and_missing_classes():
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    m = classification_metrics(probs, np.array([0, 1, 2]), ["a", "b", "c"])
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["auc"] == 1.0
    partial = classification_metrics(probs[:2], np.array([0, 1]), ["a", "b", "c"])
    assert set(partial["per_class_recall"]) == {"a", "b"}
    assert "auc" not in partial  # undefined with a class absent


def test_float32_probabilities_that_do_not_sum_to_one():
    probs = np.array([[0.3333333, 0.3333333, 0.3333333]], dtype=np.float32)
    m = classification_metrics(np.repeat(probs, 3, axis=0), np.array([0, 1, 2]), ["a", "b", "c"])
    assert np.isfinite(m["log_loss"]) and m["log_loss"] == pytest.approx(np.log(3))


def test_expected_calibration_error_by_hand():
    # Two confident correct (0.9), two at 0.6 with one correct: |1-0.9|*0.5 + |0.5-0.6|*0.5 = 0.1
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 0])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.1)
    perfect = np.eye(2)[[0, 1, 1]]
    assert expected_calibration_error(perfect, np.array([0, 1, 1])) == pytest.approx(0.0)


def test_score_falls_back_to_accuracy():
    assert score({"accuracy": 0.5, "auc": 0.9}, "auc") == 0.9
    assert score({"accuracy": 0.5}, "auc") == 0.5


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_softmax_parameters_reproduce_predict_proba(num_classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = np.arange(60) % num_classes
    x[:, 0] += y
    model = LogisticRegression().fit(x, y)
    weight, bias = softmax_parameters(model, num_classes)
    assert np.allclose(softmax(x @ weight.T + bias), model.predict_proba(x), atol=1e-6)


def test_softmax_parameters_with_a_class_absent_from_training():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    y = np.where(np.arange(40) % 2 == 0, 0, 2)  # class 1 never seen
    x[:, 1] += y
    model = LogisticRegression().fit(x, y)
    weight, bias = softmax_parameters(model, 3)
    probs = softmax(x @ weight.T + bias)
    assert np.allclose(probs[:, 1], 0.0)
    assert np.allclose(probs[:, [0, 2]], model.predict_proba(x), atol=1e-6)


def test_fit_logistic_head_picks_the_best_c_and_fills_the_head():
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    # Imbalanced training data: an over-regularised model predicts the majority class everywhere.
    y_train, y_val = np.array([0] * 20 + [1] * 5 + [2] * 5), np.arange(15) % 3
    x_train = centers[y_train] + rng.normal(scale=0.5, size=(30, 4))
    x_val = centers[y_val] + rng.normal(scale=0.5, size=(15, 4))
    head = torch.nn.Linear(4, 3)
    search = HeadSearch([1e-4, 1.0])
    info = fit_logistic_head(head, (x_train, y_train), (x_val, y_val), ["a", "b", "c"], search, None, "accuracy", 0)
    assert info == {"C": 1.0, "val_accuracy": 1.0}
    with torch.no_grad():
        predictions = head(torch.as_tensor(x_val, dtype=torch.float32)).argmax(1).numpy()
    assert (predictions == y_val).all()
    reference = LogisticRegression(C=1.0, max_iter=2000, tol=1e-3).fit(x_train, y_train)
    with torch.no_grad():
        probs = torch.softmax(head(torch.as_tensor(x_val, dtype=torch.float32)), 1).numpy()
    assert np.allclose(probs, reference.predict_proba(x_val), atol=1e-2)


def test_extra_examples_join_training_only_when_validation_prefers_them():
    # Class 2 is missing from training: only its extra example (say, its name's features) teaches it.
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0]])
    y_train, y_val = np.array([0] * 5 + [1] * 5), np.arange(9) % 3
    x_train = centers[y_train] + rng.normal(scale=0.3, size=(10, 3))
    x_val = centers[y_val] + rng.normal(scale=0.3, size=(9, 3))
    names = (centers, np.arange(3))
    head = torch.nn.Linear(3, 3)
    search = HeadSearch([1.0, 10.0], names, [0, 2])
    info = fit_logistic_head(head, (x_train, y_train), (x_val, y_val), ["a", "b", "c"], search, None, "accuracy", 0)
    assert info["name_examples"] == 2 and info["val_accuracy"] == 1.0
    # Misleading names (each class's name sits on another class's examples) are left out.
    wrong = (centers[[1, 2, 0]], np.arange(3))
    y_train3 = np.arange(30) % 3
    x_train3 = centers[y_train3] + rng.normal(scale=0.3, size=(30, 3))
    search = HeadSearch([1.0], wrong, [0, 1])
    info = fit_logistic_head(head, (x_train3, y_train3), (x_val, y_val), ["a", "b", "c"], search, None, "accuracy", 0)
    assert info["name_examples"] == 0
