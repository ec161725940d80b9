"""Graph Rationalization with Environment-based Augmentations (GREA; Liu et al., KDD 2022).

* Encoder: the backbone gives node embeddings ``H``.
* Separator: its own GNN plus a gate MLP gives each node a score ``m`` in (0, 1); the rationale
  readout is ``pool(m * H)`` and the environment readout ``pool((1 - m) * H)``.
* Environment replacement: every rationale vector of the batch is added to every environment
  vector (``B * B`` augmented graphs, each labelled with its rationale's label).
* Objective: ``L_rat + L_aug`` (task losses on rationales and on augmented graphs); the
  separator also minimises ``|mean_g(m) - gamma|``.
* Training alternates two players as GREA does: ``separator`` and ``model`` (encoder and
  predictor); by default one epoch updates only the separator, then three epochs only the model.

See ``docs/baselines.md`` for sources and deviations.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from igt.config import GREAConfig
from igt.data.task import TaskSpec
from igt.errors import IgtError
from igt.methods.base import Method, MethodOutput
from igt.methods.heads import PredictionHead, pool
from igt.nn.layers import reset_module
from igt.methods.losses import task_loss


class Separator(nn.Module):
    """A GNN and a gate MLP: ``m = sigmoid(MLP(GNN(G)))``, one score per node.

    Args:
        gnn: Backbone producing ``[N, d]`` node embeddings.
        dropout: Dropout between the MLP layers.
    """

    def __init__(self, gnn: nn.Module, dropout: float) -> None:
        super().__init__()
        self.gnn = gnn
        hidden = gnn.hidden
        self.gate = nn.Sequential(
            nn.Linear(hidden, 2 * hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * hidden, 1)
        )

    def reset_parameters(self) -> None:
        reset_module(self)

    def extra_repr(self) -> str:
        return f"hidden={self.gnn.hidden}, dropout={self.gate[2].p}"

    def forward(self, batch) -> Tensor:
        """``[N]`` node gates in (0, 1)."""
        return torch.sigmoid(self.gate(self.gnn(batch))).squeeze(-1)


class GREA(Method):
    """GREA on any backbone.

    Args:
        config: :class:`GREAConfig`.
        task: The prediction task.
        make_backbone: Builds the encoder and the separator's GNN.
    """

    def __init__(self, config: GREAConfig, task: TaskSpec, make_backbone: Callable[[], nn.Module]) -> None:
        super().__init__(config, task)
        if not 0.0 < config.gamma <= 1.0:
            raise IgtError(f"method.gamma must be in (0, 1], got {config.gamma}")
        if config.alternation not in ("epoch", "batch"):
            raise IgtError(f"method.alternation must be epoch or batch, got {config.alternation!r}")
        if config.separator_turns < 1 or config.predictor_turns < 1:
            raise IgtError("method.separator_turns and method.predictor_turns must be >= 1")
        self.encoder = make_backbone()
        self.separator = Separator(make_backbone(), config.separator_dropout)
        self.predictor = PredictionHead(self.encoder.hidden, task.out_dim)
        self.epoch = 1

    # ---- the game -------------------------------------------------------------------------
    def set_progress(self, epoch: int, epochs: int) -> None:
        self.epoch = epoch

    def active_player(self) -> str | None:
        """The player trained in the current epoch (``None`` under batch alternation: both)."""
        if self.config.alternation == "batch":
            return None
        cycle = self.config.separator_turns + self.config.predictor_turns
        return "separator" if (self.epoch - 1) % cycle < self.config.separator_turns else "model"

    def schedule(self) -> list[tuple[str, int]]:
        if self.config.alternation == "batch":
            return [("separator", self.config.separator_turns), ("model", self.config.predictor_turns)]
        return [("separator", 1), ("model", 1)]

    def player_parameters(self, player: str) -> Iterator[nn.Parameter]:
        if player == "separator":
            return self.separator.parameters()
        if player != "model":
            raise KeyError(player)
        return iter([*self.encoder.parameters(), *self.predictor.parameters()])

    def player_loss(self, batch, player: str, shared: object = None) -> tuple[Tensor, dict[str, float]]:
        if player not in ("separator", "model"):
            raise KeyError(player)
        active = self.active_player()
        if active is not None and active != player:
            # Off turn: a loss connected to no parameter, so the trainer's step leaves the
            # player untouched (Adam skips parameters without gradients).
            return torch.zeros((), device=batch.x.device, requires_grad=True), {}
        losses = self(batch).losses
        loss = losses["rat"] + losses["aug"]
        if player == "separator":
            loss = loss + losses["size"]
        logs = {name: float(value.detach()) for name, value in losses.items()}
        logs["total"] = float(loss.detach())
        return loss, logs

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, batch) -> MethodOutput:
        h = self.encoder(batch)
        gate = self.separator(batch)
        num_graphs = batch.num_graphs
        rationale = pool(gate.unsqueeze(-1) * h, batch.batch, self.config.pooling, num_graphs)
        pred = self.predictor(rationale)
        src, dst = batch.edge_index
        out = MethodOutput(pred=pred, node_scores=gate, edge_scores=gate[src] * gate[dst])
        if self.training:
            environment = pool((1 - gate).unsqueeze(-1) * h, batch.batch, self.config.pooling, num_graphs)
            # Row i * B + j: rationale of graph i with the environment of graph j (label of i).
            augmented = (rationale.unsqueeze(1) + environment.unsqueeze(0)).reshape(num_graphs * num_graphs, -1)
            y_aug = batch.y.repeat_interleave(num_graphs, dim=0)
            ratio = scatter(gate, batch.batch, dim=0, dim_size=num_graphs, reduce="mean")
            out.losses = {
                "rat": task_loss(self.task, pred, batch.y),
                "aug": task_loss(self.task, self.predictor(augmented), y_aug),
                "size": (ratio - self.config.gamma).abs().mean(),
            }
        return out
