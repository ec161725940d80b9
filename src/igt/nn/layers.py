"""Building blocks of the backbones: GINE with edge weights, GPS, GT and transformer layers,
and the virtual node.

:class:`GINEConv`, the local message passing of ``gin``, ``gin-vn`` and ``gps``, is a PyG
:class:`~torch_geometric.nn.conv.MessagePassing` layer, so PyG's explainers and
``torch_geometric.explain.metric.fidelity`` reach it: an edge mask set with
``torch_geometric.explain.algorithm.utils.set_masks`` multiplies its messages (on top of the
``edge_weight`` argument, the hook through which GSAT/DIR inject rationales). The other layers
(GT's neighbour attention, the virtual node) are written with ``index_select`` / ``index_add_``
on ``edge_index`` (source row 0, target row 1, PyG convention); PyG edge masks do not reach them.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax as segment_softmax

from igt.nn.attention import PaddedLayout, make_attention


def make_norm(kind: str, dim: int) -> nn.Module:
    """Resolve ``BackboneConfig.norm`` to a module over ``[M, dim]`` rows.

    Args:
        kind: ``batch`` (``BatchNorm1d``) or ``layer`` (``LayerNorm``).
        dim: Feature width.

    Returns:
        The normalisation module.
    """
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    raise ValueError(f"unknown norm {kind!r}; expected batch or layer")


def feed_forward(dim: int, hidden: int, dropout: float) -> nn.Sequential:
    """``Linear -> ReLU -> Dropout -> Linear -> Dropout``: the transformer feed-forward block.

    Args:
        dim: Input and output width.
        hidden: Inner width.
        dropout: Dropout after the activation and after the output.

    Returns:
        The block.
    """
    return nn.Sequential(
        nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
    )


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode inside the block, and back in the mode it had after it (as PyG's
    ``Explainer`` does): evaluating or explaining a model mid-training must not leave it in eval."""
    training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(training)


def reset_module(module: nn.Module) -> None:
    """Reset each child that has ``reset_parameters``; descend into plain containers."""
    for child in module.children():
        if hasattr(child, "reset_parameters"):
            child.reset_parameters()
        else:
            reset_module(child)


def sum_neighbours(messages: Tensor, target: Tensor, num_nodes: int) -> Tensor:
    """Sum ``messages [E, ...]`` into their target nodes: ``[num_nodes, ...]``."""
    out = messages.new_zeros((num_nodes, *messages.shape[1:]))
    return out.index_add_(0, target, messages)


class GINEConv(MessagePassing):
    """GIN with edge features (Hu et al.), with optional per-edge message weights.

    ``h_i' = mlp((1 + eps) h_i + sum_{j -> i} w_ji * relu(h_j + e_ji))``, as a PyG
    ``MessagePassing`` layer with ``aggr="add"``. ``w_ji`` is the ``edge_weight`` argument; an
    edge mask set by PyG's explain tools (``set_masks``) multiplies the messages as well.

    Args:
        mlp: The update network ``[N, dim] -> [N, out]`` (injected, as in PyG).
        train_eps: Learn ``eps`` (initialised at 0) instead of fixing it at 0.
    """

    def __init__(self, mlp: nn.Module, train_eps: bool = True) -> None:
        super().__init__(aggr="add", node_dim=0)
        self.mlp = mlp
        self.eps = nn.Parameter(torch.zeros(1)) if train_eps else None
        self.reset_parameters()

    def extra_repr(self) -> str:
        return f"train_eps={self.eps is not None}"

    def reset_parameters(self) -> None:
        """Reset the MLP and set ``eps`` to 0."""
        reset_module(self.mlp)
        if self.eps is not None:
            nn.init.zeros_(self.eps)

    def forward(self, x: Tensor, edge_index: Tensor, edge_emb: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """Aggregate neighbour messages and update.

        Args:
            x: ``[N, dim]`` node features.
            edge_index: ``long [2, E]`` (source, target).
            edge_emb: ``[E, dim]`` edge embeddings.
            edge_weight: Optional ``[E]`` multipliers of the messages (edge rationales).

        Returns:
            ``[N, out]`` updated node features.
        """
        aggregated = self.propagate(edge_index, x=x, edge_emb=edge_emb, edge_weight=edge_weight, size=None)
        root = x if self.eps is None else x * (1 + self.eps)
        return self.mlp(root + aggregated)

    def message(self, x_j: Tensor, edge_emb: Tensor, edge_weight: Tensor | None) -> Tensor:
        """``w_ji * relu(h_j + e_ji)`` per edge."""
        messages = F.relu(x_j + edge_emb)
        if edge_weight is not None:
            messages = messages * edge_weight.view(-1, 1).to(messages.dtype)
        return messages

    def aggregate(self, inputs: Tensor, index: Tensor, dim_size: int | None = None) -> Tensor:
        """Sum messages into their targets with ``index_add_`` (faster on CPU than the
        ``scatter_add_`` of PyG's ``SumAggregation``; same sums)."""
        return sum_neighbours(inputs, index, dim_size if dim_size is not None else int(index.max()) + 1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(mlp={self.mlp})"


class GPSLayer(nn.Module):
    """One GraphGPS layer (Rampasek et al.): local GINE + global attention, then feed-forward.

    ``h_local = norm(h + drop(GINE(h)))``, ``h_global = norm(h + drop(Attn(h)))``,
    ``h = h_local + h_global``, ``h = norm(h + FFN(h))`` with a ``2 * dim`` feed-forward.

    Takes its local model as PyG's ``GPSConv`` takes ``conv``: any module called as
    ``conv(h, edge_index, edge_emb, edge_weight)`` (GraphGPS's default, and igt's, is
    :class:`GINEConv`), or ``None`` for attention alone.

    Args:
        dim: Node width.
        conv: The local message-passing model, or ``None``.
        heads: Attention heads.
        dropout: Dropout on branch outputs and inside the feed-forward.
        attn_dropout: Dropout on attention weights.
        norm: ``batch`` or ``layer``.
        attention: ``softmax`` or ``linear``.
    """

    def __init__(
        self, dim: int, conv: nn.Module | None, heads: int, dropout: float = 0.0, attn_dropout: float = 0.0,
        norm: str = "batch", attention: str = "softmax",
    ) -> None:
        super().__init__()
        self._options = f"dim={dim}, heads={heads}, dropout={dropout}, attn_dropout={attn_dropout}, norm={norm!r}, attention={attention!r}"
        self.dim, self.dropout = dim, dropout
        self.local = conv
        self.attn = make_attention(attention, dim, heads, attn_dropout)
        self.norm_local = make_norm(norm, dim)
        self.norm_attn = make_norm(norm, dim)
        self.ffn = feed_forward(dim, 2 * dim, dropout)
        self.norm_out = make_norm(norm, dim)

    def extra_repr(self) -> str:
        return self._options

    def reset_parameters(self) -> None:
        """Reset every sub-module."""
        reset_module(self)

    def forward(
        self, h: Tensor, edge_index: Tensor, edge_emb: Tensor, layout: PaddedLayout, edge_weight: Tensor | None = None
    ) -> Tensor:
        """Update node features.

        Args:
            h: ``[N, dim]`` node features.
            edge_index: ``long [2, E]``.
            edge_emb: ``[E, dim]`` edge embeddings.
            layout: Padded layout of the batch (shared by all layers of a forward).
            edge_weight: Optional ``[E]`` weights of the local messages.

        Returns:
            ``[N, dim]``.
        """
        local = None
        if self.local is not None:  # first: dropout draws in GraphGPS's order
            local = self.norm_local(h + F.dropout(self.local(h, edge_index, edge_emb, edge_weight), self.dropout,
                                                  self.training))
        glob = self.norm_attn(h + F.dropout(self.attn(h, layout), self.dropout, self.training))
        h = glob if local is None else local + glob
        return self.norm_out(h + self.ffn(h))


class TransformerLayer(nn.Module):
    """Post-norm transformer encoder layer over the nodes of each graph (no message passing).

    Args:
        dim: Node width.
        heads: Attention heads.
        dropout: Dropout on the attention output and inside the feed-forward.
        attn_dropout: Dropout on attention weights.
        norm: ``batch`` or ``layer``.
        attention: ``softmax`` or ``linear``.
    """

    def __init__(
        self, dim: int, heads: int, dropout: float = 0.0, attn_dropout: float = 0.0,
        norm: str = "batch", attention: str = "softmax",
    ) -> None:
        super().__init__()
        self._options = f"dim={dim}, heads={heads}, dropout={dropout}, attn_dropout={attn_dropout}, norm={norm!r}, attention={attention!r}"
        self.dim, self.dropout = dim, dropout
        self.attn = make_attention(attention, dim, heads, attn_dropout)
        self.norm_attn = make_norm(norm, dim)
        self.ffn = feed_forward(dim, 2 * dim, dropout)
        self.norm_out = make_norm(norm, dim)

    def extra_repr(self) -> str:
        return self._options

    def reset_parameters(self) -> None:
        """Reset every sub-module."""
        reset_module(self)

    def forward(self, h: Tensor, layout: PaddedLayout) -> Tensor:
        """Update node features.

        Args:
            h: ``[N, dim]`` node features.
            layout: Padded layout of the batch.

        Returns:
            ``[N, dim]``.
        """
        h = self.norm_attn(h + F.dropout(self.attn(h, layout), self.dropout, self.training))
        return self.norm_out(h + self.ffn(h))


class GTLayer(nn.Module):
    """Graph transformer layer with edge features (Dwivedi & Bresson, 2021).

    Node ``i`` attends over its in-neighbours ``j``. Per head and channel the score is
    ``s_ij = (Q h_i * K h_j / sqrt(d_head)) * E e_ij``; the attention weight is the softmax over
    incoming edges of ``sum_channels s_ij``, the node update is ``sum_j w_ij V h_j`` and the edge
    update is ``O_e s_ij``. Both streams then get residual + norm + FFN + residual + norm.

    Args:
        dim: Node and edge width.
        heads: Attention heads.
        dropout: Dropout on the outputs and inside the feed-forwards.
        attn_dropout: Dropout on the attention weights.
        norm: ``batch`` or ``layer``.
        update_edges: Compute the edge stream's output (the last layer of a node-level backbone
            does not need it, and would otherwise hold parameters that get no gradient).
    """

    def __init__(
        self, dim: int, heads: int, dropout: float = 0.0, attn_dropout: float = 0.0,
        norm: str = "batch", update_edges: bool = True,
    ) -> None:
        super().__init__()
        self._options = f"dim={dim}, heads={heads}, dropout={dropout}, attn_dropout={attn_dropout}, norm={norm!r}, update_edges={update_edges}"
        if dim % heads:
            raise ValueError(f"hidden width {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.dropout, self.attn_dropout = dim, heads, dropout, attn_dropout
        self.update_edges = update_edges
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.edge_proj = nn.Linear(dim, dim, bias=False)
        self.out_node = nn.Linear(dim, dim)
        self.norm_node = make_norm(norm, dim)
        self.ffn_node = feed_forward(dim, 2 * dim, dropout)
        self.norm_node_out = make_norm(norm, dim)
        if update_edges:
            self.out_edge = nn.Linear(dim, dim)
            self.norm_edge = make_norm(norm, dim)
            self.ffn_edge = feed_forward(dim, 2 * dim, dropout)
            self.norm_edge_out = make_norm(norm, dim)

    def extra_repr(self) -> str:
        return self._options

    def reset_parameters(self) -> None:
        """Reset every sub-module."""
        reset_module(self)

    def forward(
        self, h: Tensor, e: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Update node and edge features.

        Args:
            h: ``[N, dim]`` node features.
            e: ``[E, dim]`` edge features.
            edge_index: ``long [2, E]`` (source ``j``, target ``i``).
            edge_weight: Optional ``[E]`` multipliers of the attention-weighted messages.

        Returns:
            ``(h [N, dim], e [E, dim])``; ``e`` is returned unchanged when ``update_edges`` is off.
        """
        n, heads, width = h.shape[0], self.heads, self.dim // self.heads
        src, dst = edge_index[0], edge_index[1]
        q, k, v = self.qkv(h).view(n, 3, heads, width).unbind(dim=1)
        score = q.index_select(0, dst) * k.index_select(0, src) * (1.0 / math.sqrt(width))
        score = score * self.edge_proj(e).view(-1, heads, width)
        weight = segment_softmax(score.sum(dim=-1), dst, num_nodes=n)
        weight = F.dropout(weight, self.attn_dropout, self.training)
        if edge_weight is not None:
            weight = weight * edge_weight.view(-1, 1).to(weight.dtype)
        messages = v.index_select(0, src) * weight.unsqueeze(-1)
        node_out = sum_neighbours(messages, dst, n).view(n, self.dim)
        h = self.norm_node(h + F.dropout(self.out_node(node_out), self.dropout, self.training))
        h = self.norm_node_out(h + self.ffn_node(h))
        if self.update_edges:
            edge_out = self.out_edge(score.reshape(-1, self.dim))
            e = self.norm_edge(e + F.dropout(edge_out, self.dropout, self.training))
            e = self.norm_edge_out(e + self.ffn_edge(e))
        return h, e


class VirtualNode(nn.Module):
    """OGB's virtual node: one extra node per graph, connected to every node of it.

    Before each message-passing layer its embedding is added to every node of its graph; after
    every layer but the last it is updated by a per-layer MLP on (sum-pooled nodes + itself).

    Args:
        dim: Node width.
        layers: Message-passing layers of the backbone (``layers - 1`` update MLPs).
        dropout: Dropout after each update MLP.
        norm: ``batch`` or ``layer`` inside the update MLPs.
    """

    def __init__(self, dim: int, layers: int, dropout: float = 0.0, norm: str = "batch") -> None:
        super().__init__()
        self._options = f"dim={dim}, layers={layers}, dropout={dropout}, norm={norm!r}"
        self.dim, self.dropout = dim, dropout
        self.embedding = nn.Parameter(torch.zeros(1, dim))
        self.mlps = nn.ModuleList(
            nn.Sequential(
                nn.Linear(dim, 2 * dim), make_norm(norm, 2 * dim), nn.ReLU(),
                nn.Linear(2 * dim, dim), make_norm(norm, dim), nn.ReLU(),
            )
            for _ in range(max(layers - 1, 0))
        )

    def extra_repr(self) -> str:
        return self._options

    def reset_parameters(self) -> None:
        """Zero the initial embedding (as OGB) and reset the MLPs."""
        nn.init.zeros_(self.embedding)
        reset_module(self.mlps)

    def initial(self, num_graphs: int) -> Tensor:
        """``[B, dim]`` starting embeddings of the virtual nodes."""
        return self.embedding.expand(num_graphs, self.dim)

    def update(self, layer: int, h: Tensor, vn: Tensor, batch: Tensor) -> Tensor:
        """Virtual-node embeddings after layer ``layer`` (``0 <= layer < layers - 1``).

        Args:
            layer: Index of the layer just run.
            h: ``[N, dim]`` that layer's input (nodes with the virtual node added).
            vn: ``[B, dim]`` current virtual-node embeddings.
            batch: ``long [N]`` graph of each node.

        Returns:
            ``[B, dim]``.
        """
        pooled = sum_neighbours(h, batch, vn.shape[0]) + vn
        return F.dropout(self.mlps[layer](pooled), self.dropout, self.training)


__all__ = [
    "GINEConv", "GPSLayer", "GTLayer", "TransformerLayer", "VirtualNode",
    "feed_forward", "make_norm", "reset_module", "sum_neighbours",
]
