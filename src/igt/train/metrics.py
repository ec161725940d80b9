"""Evaluation metrics with OGB's semantics, and rationale (explanation) metrics."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from igt.data.task import TaskSpec
from igt.errors import IgtError


def rocauc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean ROC-AUC over tasks that have both classes among their observed labels (OGB's rule)."""
    y_true, y_score = np.asarray(y_true, dtype=float), np.asarray(y_score, dtype=float)
    if y_true.ndim == 1:
        y_true, y_score = y_true[:, None], y_score[:, None]
    scores = []
    for t in range(y_true.shape[1]):
        observed = ~np.isnan(y_true[:, t])
        labels = y_true[observed, t]
        if labels.size and 0 < labels.sum() < labels.size:
            scores.append(roc_auc_score(labels, y_score[observed, t]))
    if not scores:
        raise IgtError("ROC-AUC is undefined: no task has both a positive and a negative label in this split")
    return float(np.mean(scores))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over tasks of the RMSE over observed labels (OGB's rule)."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    values = []
    for t in range(y_true.shape[1]):
        observed = ~np.isnan(y_true[:, t])
        if observed.any():
            values.append(np.sqrt(np.mean((y_true[observed, t] - y_pred[observed, t]) ** 2)))
    return float(np.mean(values))


def accuracy(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_prob).argmax(-1) == np.asarray(y_true).reshape(-1)))


def score(task: TaskSpec, y_true: np.ndarray, y_out: np.ndarray) -> float:
    """The task's metric on transformed predictions (probabilities or values)."""
    if task.metric == "rocauc":
        return rocauc(y_true, y_out)
    if task.metric == "rmse":
        return rmse(y_true, y_out)
    if task.metric == "accuracy":
        return accuracy(y_true, y_out)
    raise ValueError(f"unknown metric {task.metric!r}")


def explanation_auc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """ROC-AUC of rationale scores against a ground-truth mask, pooled over all items
    (GSAT's protocol). ``None`` when the mask is all one class."""
    truth = np.asarray(truth).reshape(-1) > 0.5
    if truth.all() or not truth.any():
        return None
    return float(roc_auc_score(truth, np.asarray(scores).reshape(-1)))


def precision_at_k(scores: np.ndarray, truth: np.ndarray, ptr: np.ndarray, k: int = 5) -> float | None:
    """Mean over graphs of the fraction of a graph's top-``k`` scored nodes that are ground truth
    (``k`` capped at the graph's size). ``ptr`` holds node offsets ``[G + 1]``."""
    values = []
    for start, end in zip(ptr[:-1], ptr[1:]):
        if end == start:
            continue
        top = np.argsort(-scores[start:end], kind="stable")[: min(k, end - start)]
        values.append(float(np.mean(truth[start:end][top] > 0.5)))
    return float(np.mean(values)) if values else None
