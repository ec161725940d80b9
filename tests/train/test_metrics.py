import numpy as np
import pytest
import torch
from ogb.graphproppred import Evaluator

from igt.data.task import TaskSpec
from igt.errors import IgtError
from igt.train import metrics
from igt.methods.losses import task_loss


def test_rocauc_matches_ogb_evaluator_on_multitask_with_missing_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(200, 12)).astype(float)
    y[rng.random(y.shape) < 0.2] = np.nan
    y[:, 3] = np.where(np.isnan(y[:, 3]), np.nan, 1.0)  # a task with one class is skipped, as OGB does
    scores = rng.random((200, 12))
    expected = Evaluator("ogbg-moltox21").eval({"y_true": y, "y_pred": scores})["rocauc"]
    assert metrics.rocauc(y, scores) == pytest.approx(expected, abs=1e-12)


def test_rmse_matches_ogb_evaluator():
    rng = np.random.default_rng(1)
    y, pred = rng.normal(size=(50, 1)), rng.normal(size=(50, 1))
    expected = Evaluator("ogbg-molesol").eval({"y_true": y, "y_pred": pred})["rmse"]
    assert metrics.rmse(y, pred) == pytest.approx(expected, abs=1e-12)


def test_rocauc_undefined_is_a_clear_error():
    with pytest.raises(IgtError, match="both a positive and a negative"):
        metrics.rocauc(np.ones((5, 1)), np.random.default_rng(0).random((5, 1)))


def test_explanation_metrics():
    truth = np.array([1, 1, 0, 0, 0, 1, 0], dtype=float)
    perfect = truth * 0.9 + 0.05
    assert metrics.explanation_auc(perfect, truth) == 1.0
    assert metrics.explanation_auc(perfect, np.ones(7)) is None
    ptr = np.array([0, 5, 7])
    # graph 2 has 2 nodes, 1 in the rationale: its top-2 precision is 0.5 whatever the scores
    assert metrics.precision_at_k(perfect, truth, ptr, k=2) == pytest.approx((1.0 + 0.5) / 2)
    assert metrics.precision_at_k(1 - perfect, truth, ptr, k=2) == pytest.approx((0.0 + 0.5) / 2)
    assert metrics.precision_at_k(perfect, truth, ptr, k=1) == 1.0


def test_masked_bce_ignores_missing_labels():
    task = TaskSpec("binary", num_tasks=2)
    pred = torch.tensor([[0.3, -1.0], [2.0, 0.5]])
    y = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    observed = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([0.3, 2.0, 0.5]), torch.tensor([1.0, 0.0, 1.0])
    )
    assert task_loss(task, pred, y) == pytest.approx(float(observed))
    per_graph = task_loss(task, pred, y, reduction="none")
    assert per_graph.shape == (2,) and torch.isfinite(per_graph).all()
