"""Empirical risk minimisation: backbone, graph readout, prediction head. No rationale."""

from __future__ import annotations

from typing import Callable

from torch import nn

from igt.config import MethodConfig
from igt.data.task import TaskSpec
from igt.methods.base import Method, MethodOutput
from igt.methods.heads import PredictionHead, pool
from igt.methods.losses import task_loss


class ERM(Method):
    """A backbone trained on the task loss alone (the ``gin``/``gps``/... models of ``igt train``).

    Args:
        config: Method options (pooling).
        task: The prediction task.
        make_backbone: Builds a fresh backbone (node embeddings).
    """

    def __init__(self, config: MethodConfig, task: TaskSpec, make_backbone: Callable[[], nn.Module]) -> None:
        super().__init__(config, task)
        self.encoder = make_backbone()
        self.head = PredictionHead(self.encoder.hidden, task.out_dim)

    def forward(self, batch) -> MethodOutput:
        h = self.encoder(batch)
        pred = self.head(pool(h, batch.batch, self.config.pooling, batch.num_graphs))
        losses = {"task": task_loss(self.task, pred, batch.y)} if self.training else {}
        return MethodOutput(pred=pred, losses=losses)
