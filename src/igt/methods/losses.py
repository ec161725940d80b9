"""Task losses. Missing labels (NaN) in multi-task data are masked out, as OGB's examples do."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from igt.data.task import TaskSpec


def task_loss(task: TaskSpec, pred: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Loss of ``pred`` against ``y`` for ``task``.

    Args:
        task: Decides the loss: masked BCE-with-logits (``binary``), cross-entropy
            (``multiclass``), masked MSE (``regression``; on standardised targets when the task
            carries a target scaler, so ``pred`` is then in standard units).
        pred: ``[B, out_dim]`` logits or values.
        y: ``[B, T]`` float labels with NaN for missing, or ``[B]`` class indices.
        reduction: ``mean`` over observed labels, or ``none`` for one loss per graph
            (mean over its observed labels; 0 for a graph with none), as DIR/GREA need.
    """
    if task.type == "multiclass":
        return F.cross_entropy(pred, y.view(-1).long(), reduction=reduction)
    y = y.view(pred.shape).to(pred.dtype)
    if task.type == "regression":
        y = task.standardize(y)
    observed = ~torch.isnan(y)
    target = torch.where(observed, y, torch.zeros_like(y))
    if task.type == "binary":
        elementwise = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
    else:
        elementwise = (pred - target) ** 2
    elementwise = elementwise * observed
    if reduction == "none":
        return elementwise.sum(1) / observed.sum(1).clamp(min=1)
    return elementwise.sum() / observed.sum().clamp(min=1)


def predict_transform(task: TaskSpec, pred: Tensor) -> Tensor:
    """Logits to what users read: probabilities for classification, values in the label's units
    for regression."""
    if task.type == "binary":
        return torch.sigmoid(pred)
    if task.type == "multiclass":
        return torch.softmax(pred, dim=-1)
    return task.destandardize(pred)
