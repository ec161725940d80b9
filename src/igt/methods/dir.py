"""Discovering Invariant Rationales (DIR; Wu et al., ICLR 2022).

* Rationale generator: a GNN scores each edge from its endpoints' embeddings; the top
  ``floor(causal_ratio * E_g)`` edges of each graph form the causal subgraph, the rest the
  spurious one. Causal edges pass messages with weight ``sigmoid(s)``, spurious ones with
  ``sigmoid(-s)`` (DIR's edge masks), through the backbone's ``edge_weight`` hook.
* One GNN encodes both subgraphs (as in DIR); a subgraph's readout pools over the nodes its
  edges touch. The causal head predicts from the causal readout, the spurious head from the
  (detached) spurious readout.
* Interventions: graph i's causal logits times ``sigmoid`` of graph j's spurious logits, for
  every spurious part j of the batch; the risk ``R_j`` of intervention j is the task loss over
  the batch. The model minimises ``L_causal + lambda_t * (mean_j R_j + Var_j R_j)`` with
  ``lambda_t = alpha * (epoch - 1) ** 1.6``; the spurious head (its own player) minimises its
  own task loss.

See ``docs/baselines.md`` for sources and deviations.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from igt.config import DIRConfig
from igt.data.task import TaskSpec
from igt.errors import IgtError
from igt.methods.base import Method, MethodOutput
from igt.methods.gsat import edge_to_node_scores
from igt.methods.heads import PredictionHead
from igt.methods.losses import task_loss

_LAMBDA_POWER = 1.6  # DIR's schedule: alpha * epoch ** 1.6


def dir_lambda(epoch: int, alpha: float) -> float:
    """Intervention weight of the 1-based ``epoch`` (0 in the first epoch, as in DIR)."""
    return alpha * max(epoch - 1, 0) ** _LAMBDA_POWER


def top_ratio_edges(scores: Tensor, group: Tensor, num_groups: int, ratio: float) -> Tensor:
    """``bool [E]``: True on the ``floor(ratio * E_g)`` highest scores of each group ``g``."""
    counts = torch.bincount(group, minlength=num_groups)
    keep = torch.floor(counts.to(torch.float64) * ratio + 1e-9).long()
    starts = torch.cumsum(counts, 0) - counts
    # Sort by (group, descending score) with two stable sorts; rank = position - group start.
    by_score = torch.argsort(scores, descending=True, stable=True)
    order = by_score[torch.argsort(group[by_score], stable=True)]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=scores.device) - starts[group[order]]
    return rank < keep[group]


def masked_pool(h: Tensor, mask: Tensor, batch: Tensor, kind: str, num_graphs: int) -> Tensor:
    """Readout over the nodes of ``mask`` in each graph; a graph with none uses all its nodes.

    Args:
        h: ``[N, d]`` node embeddings.
        mask: ``bool [N]`` nodes of the subgraph.
        batch: ``[N]`` graph of each node.
        kind: ``mean``, ``sum`` or ``max``.
        num_graphs: ``B``.
    """
    present = scatter(mask.to(h.dtype), batch, dim=0, dim_size=num_graphs, reduce="sum") > 0
    mask = mask | ~present[batch]
    if kind == "max":
        filled = h.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        return scatter(filled, batch, dim=0, dim_size=num_graphs, reduce="max")
    weight = mask.to(h.dtype).unsqueeze(-1)
    total = scatter(weight * h, batch, dim=0, dim_size=num_graphs, reduce="sum")
    if kind == "sum":
        return total
    return total / scatter(weight, batch, dim=0, dim_size=num_graphs, reduce="sum").clamp(min=1)


class DIR(Method):
    """DIR on any backbone.

    Args:
        config: :class:`DIRConfig`.
        task: The prediction task.
        make_backbone: Builds the generator's GNN and the (shared causal/spurious) encoder.
    """

    def __init__(self, config: DIRConfig, task: TaskSpec, make_backbone: Callable[[], nn.Module]) -> None:
        super().__init__(config, task)
        if not 0.0 < config.causal_ratio < 1.0:
            raise IgtError(f"method.causal_ratio must be in (0, 1), got {config.causal_ratio}")
        if config.alpha < 0:
            raise IgtError(f"method.alpha must be >= 0, got {config.alpha}")
        if config.pooling not in ("mean", "sum", "max"):
            raise IgtError(f"unknown pooling {config.pooling!r}; expected one of ['max', 'mean', 'sum']")
        self.generator = make_backbone()
        hidden = self.generator.hidden
        self.edge_scorer = nn.Sequential(nn.Linear(2 * hidden, 4 * hidden), nn.ReLU(), nn.Linear(4 * hidden, 1))
        self.encoder = make_backbone()
        self.causal_head = PredictionHead(hidden, task.out_dim)
        # DIR's spurious branch: an MLP (whose sigmoid scales the interventions) then a linear map.
        self.spurious_head = PredictionHead(hidden, task.out_dim)
        self.spurious_out = nn.Linear(task.out_dim, task.out_dim)
        self.epoch = 1

    # ---- the game -------------------------------------------------------------------------
    def set_progress(self, epoch: int, epochs: int) -> None:
        self.epoch = epoch

    @property
    def lam(self) -> float:
        return dir_lambda(self.epoch, self.config.alpha)

    def schedule(self) -> list[tuple[str, int]]:
        return [("spurious", 1), ("model", 1)]

    def _spurious_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.spurious_head.parameters()
        yield from self.spurious_out.parameters()

    def player_parameters(self, player: str) -> Iterator[nn.Parameter]:
        if player == "spurious":
            return self._spurious_parameters()
        if player != "model":
            raise KeyError(player)
        spurious = {id(p) for p in self._spurious_parameters()}
        return (p for p in self.parameters() if id(p) not in spurious)

    def player_loss(self, batch, player: str, shared: object = None) -> tuple[Tensor, dict[str, float]]:
        if player == "spurious":
            with torch.no_grad():  # DIR detaches the spurious readout: only the head learns here
                rep = self._spurious_rep(batch, *self._split(batch))
            loss = task_loss(self.task, self.spurious_out(self.spurious_head(rep)), batch.y)
            return loss, {"task": float(loss.detach())}
        if player != "model":
            raise KeyError(player)
        losses = self(batch).losses
        loss = losses["causal"] + self.lam * (losses["int_mean"] + losses["int_var"])
        logs = {name: float(value.detach()) for name, value in losses.items()}
        logs.update(total=float(loss.detach()), lambda_=self.lam)
        return loss, logs

    # ---- forward ----------------------------------------------------------------------------
    def _split(self, batch) -> tuple[Tensor, Tensor]:
        """Edge logits ``s`` and the causal edge mask (``bool``), both ``[E]``."""
        src, dst = batch.edge_index
        g = self.generator(batch)
        logits = self.edge_scorer(torch.cat([g[src], g[dst]], dim=-1)).squeeze(-1)
        keep = top_ratio_edges(logits.detach(), batch.batch[src], batch.num_graphs, self.config.causal_ratio)
        return logits, keep

    def _readout(self, batch, edge_weight: Tensor, edges: Tensor) -> Tensor:
        """Encode with messages scaled by ``edge_weight`` (0 outside ``edges``); pool over the
        nodes that ``edges`` touch."""
        h = self.encoder(batch, edge_weight=torch.where(edges, edge_weight, torch.zeros_like(edge_weight)))
        touched = torch.zeros(h.shape[0], dtype=torch.bool, device=h.device)
        touched[batch.edge_index[:, edges].flatten()] = True
        return masked_pool(h, touched, batch.batch, self.config.pooling, batch.num_graphs)

    def _spurious_rep(self, batch, logits: Tensor, keep: Tensor) -> Tensor:
        return self._readout(batch, torch.sigmoid(-logits), ~keep)

    def forward(self, batch) -> MethodOutput:
        logits, keep = self._split(batch)
        causal_rep = self._readout(batch, torch.sigmoid(logits), keep)
        pred = self.causal_head(causal_rep)
        edge_scores = torch.sigmoid(logits)
        node_scores = edge_to_node_scores(edge_scores, batch.edge_index, batch.x.shape[0])
        extras = {"causal_edges": keep.to(edge_scores.dtype)}
        out = MethodOutput(pred=pred, node_scores=node_scores, edge_scores=edge_scores, extras=extras)
        if self.training:
            out.losses = self._losses(batch, pred, logits.detach(), keep)
        return out

    def _losses(self, batch, causal_pred: Tensor, logits: Tensor, keep: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():  # DIR detaches the spurious readout and the gate built from it
            spurious_rep = self._spurious_rep(batch, logits, keep)
            spurious_hidden = self.spurious_head(spurious_rep)
            spurious_pred = self.spurious_out(spurious_hidden)
        risks = self._intervention_risks(causal_pred, torch.sigmoid(spurious_hidden), batch.y)
        # One graph gives one "intervention" (its own spurious part): no variance to penalise.
        variance = risks.var() if risks.numel() > 1 else risks.new_zeros(())
        return {
            "causal": task_loss(self.task, causal_pred, batch.y),
            "spurious": task_loss(self.task, spurious_pred, batch.y),
            "int_mean": risks.mean(),
            "int_var": variance,
        }

    def _intervention_risks(self, causal_pred: Tensor, spurious_gate: Tensor, y: Tensor) -> Tensor:
        """``[B]``: risk of intervention j, every causal prediction scaled by ``spurious_gate[j]``."""
        num_graphs = causal_pred.shape[0]
        combined = (spurious_gate.unsqueeze(1) * causal_pred.unsqueeze(0)).reshape(num_graphs * num_graphs, -1)
        targets = y.repeat(num_graphs, *([1] * (y.dim() - 1)))  # block j holds the whole batch
        per_graph = task_loss(self.task, combined, targets, reduction="none").view(num_graphs, num_graphs)
        # Weight graphs by their observed labels so R_j equals the task loss over the batch.
        if self.task.type == "multiclass":
            observed = torch.ones(num_graphs, device=y.device, dtype=per_graph.dtype)
        else:
            observed = (~torch.isnan(y.view(num_graphs, -1))).sum(1).to(per_graph.dtype)
        return (per_graph * observed).sum(1) / observed.sum().clamp(min=1)
