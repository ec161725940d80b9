"""Graph Stochastic Attention (GSAT; Miao, Liu & Li, ICML 2022).

An extractor scores every edge (or node) from GNN node embeddings; the scores are relaxed to
stochastic attention with the concrete (Gumbel-sigmoid) trick in training and a plain sigmoid at
inference, and the classifier GNN runs again with its messages scaled by that attention (the
backbone's ``edge_weight`` hook). The information bottleneck is a KL divergence that pulls every
attention value toward a Bernoulli prior ``r`` that decays during training. See
``docs/baselines.md`` for the sources of every default and the deviations from the paper's code.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch_geometric.nn import InstanceNorm
from torch_geometric.utils import scatter

from igt.config import GSATConfig
from igt.data.task import TaskSpec
from igt.errors import IgtError
from igt.methods.base import Method, MethodOutput
from igt.methods.heads import PredictionHead, pool
from igt.nn.layers import reset_module
from igt.methods.losses import task_loss

_KL_EPS = 1e-6  # GSAT's epsilon inside the KL logarithms


def gsat_r(epoch: int, init_r: float, decay_r: float, decay_interval: int, final_r: float) -> float:
    """Bernoulli prior of the 1-based ``epoch``: ``max(final_r, init_r - floor((epoch-1)/interval) * decay_r)``."""
    r = init_r - ((epoch - 1) // decay_interval) * decay_r
    return max(final_r, round(r, 10))  # rounding: 0.9 - 2 * 0.1 must equal 0.7 exactly


def concrete_sample(logits: Tensor, temperature: float, training: bool) -> Tensor:
    """``sigmoid((logits + logistic noise) / temperature)`` in training, ``sigmoid(logits)`` otherwise."""
    if not training:
        return torch.sigmoid(logits)
    u = torch.empty_like(logits).uniform_(1e-10, 1.0 - 1e-10)
    return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)


def bernoulli_kl(att: Tensor, r: float) -> Tensor:
    """Mean ``KL(Bern(att) || Bern(r))`` over all entries (0 when there are none)."""
    if att.numel() == 0:
        return att.new_zeros(())
    kl = att * torch.log(att / r + _KL_EPS) + (1 - att) * torch.log((1 - att) / (1 - r + _KL_EPS) + _KL_EPS)
    return kl.mean()


def reverse_edge(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``[E]`` position of each edge's reverse ``(dst, src)``, or -1 when the batch lacks it."""
    src, dst = edge_index
    if src.numel() == 0:
        return src.new_empty(0)
    keys = src * num_nodes + dst
    sorted_keys, order = torch.sort(keys)
    wanted = dst * num_nodes + src
    pos = torch.searchsorted(sorted_keys, wanted).clamp(max=keys.numel() - 1)
    return torch.where(sorted_keys[pos] == wanted, order[pos], torch.full_like(pos, -1))


def symmetrize_edge_scores(scores: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
    """Average each edge's score with its reverse edge's (edges without a reverse keep theirs)."""
    rev = reverse_edge(edge_index, num_nodes)
    has_rev = rev >= 0
    return torch.where(has_rev, (scores + scores[rev.clamp(min=0)]) / 2, scores)


def edge_to_node_scores(edge_scores: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
    """A node's score is the highest score of its incident edges (0 for isolated nodes)."""
    ends = torch.cat([edge_index[0], edge_index[1]])
    return scatter(edge_scores.repeat(2), ends, dim=0, dim_size=num_nodes, reduce="max")


class Extractor(nn.Module):
    """GSAT's attention MLP: ``[2d, 4d, d, 1]`` on endpoint pairs or ``[d, 2d, d, 1]`` on nodes.

    Each hidden layer is ``Linear - norm - ReLU - Dropout``. GSAT's norm is PyG's per-graph
    ``InstanceNorm``: it standardises the hidden features within each graph, so the last layer
    cannot push every score of a graph to the same saturated value through its bias alone.

    Args:
        hidden: Node embedding width ``d``.
        on_edges: Score node pairs (concatenated endpoint embeddings) instead of nodes.
        dropout: Dropout after each hidden layer.
        norm: ``instance`` (GSAT's) or ``none``.
    """

    def __init__(self, hidden: int, on_edges: bool, dropout: float, norm: str = "instance") -> None:
        super().__init__()
        widths = [2 * hidden, 4 * hidden, hidden, 1] if on_edges else [hidden, 2 * hidden, hidden, 1]
        layers: list[nn.Module] = []
        for i in range(1, len(widths)):
            layers.append(nn.Linear(widths[i - 1], widths[i]))
            if i < len(widths) - 1:
                layers += [InstanceNorm(widths[i])] if norm == "instance" else []
                layers += [nn.ReLU(), nn.Dropout(dropout)]
        self.mlp = nn.Sequential(*layers)
        self.on_edges = on_edges

    def reset_parameters(self) -> None:
        reset_module(self)

    def extra_repr(self) -> str:
        widths = [self.mlp[0].in_features, *(m.out_features for m in self.mlp if isinstance(m, nn.Linear))]
        return f"widths={widths}, on_edges={self.on_edges}"

    def forward(self, h: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Attention logits: ``[E]`` (edges) or ``[N]`` (nodes); ``batch`` maps nodes to graphs."""
        if self.on_edges:
            h = torch.cat([h[edge_index[0]], h[edge_index[1]]], dim=-1)
            batch = batch[edge_index[0]]
        for layer in self.mlp:
            h = layer(h, batch, num_graphs) if isinstance(layer, InstanceNorm) else layer(h)
        return h.squeeze(-1)


class GSAT(Method):
    """GSAT on any backbone.

    Args:
        config: :class:`GSATConfig`.
        task: The prediction task.
        make_backbone: Builds the classifier GNN (and the extractor's when not shared).
    """

    def __init__(self, config: GSATConfig, task: TaskSpec, make_backbone: Callable[[], nn.Module]) -> None:
        super().__init__(config, task)
        if config.attention not in ("edge", "node"):
            raise IgtError(f"method.attention must be edge or node, got {config.attention!r}")
        if not 0.0 < config.final_r <= config.init_r < 1.0:
            raise IgtError("method.final_r and method.init_r must satisfy 0 < final_r <= init_r < 1")
        if config.decay_interval < 1 or config.temperature <= 0:
            raise IgtError("method.decay_interval must be >= 1 and method.temperature > 0")
        self.encoder = make_backbone()
        self.extractor_encoder = None if config.shared_encoder else make_backbone()
        hidden = self.encoder.hidden
        self.extractor = Extractor(
            hidden, config.attention == "edge", config.extractor_dropout, config.extractor_norm
        )
        self.head = PredictionHead(hidden, task.out_dim)
        self.epoch = 1

    def set_progress(self, epoch: int, epochs: int) -> None:
        self.epoch = epoch

    @property
    def r(self) -> float:
        """The Bernoulli prior of the current epoch."""
        c = self.config
        return gsat_r(self.epoch, c.init_r, c.decay_r, c.decay_interval, c.final_r)

    def forward(self, batch) -> MethodOutput:
        num_nodes = batch.x.shape[0]
        edge_index = batch.edge_index
        h = self.encoder(batch)  # GSAT's ``clf.get_emb``: the classifier's embeddings, no attention
        emb = h if self.extractor_encoder is None else self.extractor_encoder(batch)
        logits = self.extractor(emb, edge_index, batch.batch, batch.num_graphs)
        att = concrete_sample(logits, self.config.temperature, self.training)
        if self.config.attention == "edge":
            edge_att = symmetrize_edge_scores(att, edge_index, num_nodes)
            node_scores = edge_to_node_scores(edge_att, edge_index, num_nodes)
        else:
            edge_att = att[edge_index[0]] * att[edge_index[1]]
            node_scores = att
        h_att = self.encoder(batch, edge_weight=edge_att)
        pred = self.head(pool(h_att, batch.batch, self.config.pooling, batch.num_graphs))
        out = MethodOutput(pred=pred, node_scores=node_scores, edge_scores=edge_att)
        if self.training:
            out.losses = {"task": task_loss(self.task, pred, batch.y), "info": bernoulli_kl(att, self.r)}
        return out

    def player_loss(self, batch, player: str, shared: object = None) -> tuple[Tensor, dict[str, float]]:
        if player != "model":
            raise KeyError(player)
        losses = self(batch).losses
        loss = losses["task"] + self.config.info_loss_coef * losses["info"]
        logs = {name: float(value.detach()) for name, value in losses.items()}
        logs.update(total=float(loss.detach()), r=self.r)
        return loss, logs
