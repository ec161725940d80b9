"""Global attention over the nodes of each graph in a batch.

Graphs of a PyG batch are stored back to back (``x: [N, d]``, ``batch: [N]``). Attention runs on
a padded view ``[B, N_max, d]``; :class:`DenseIndex` holds the node -> padded-slot map and the
key-padding mask, built once per forward and shared by every layer. Projections (fused QKV,
output) run on the ``N`` real nodes only; only the attention itself sees padding, and padded
keys are masked so a graph's output never depends on what it is batched with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from igt.errors import IgtError


@dataclass(frozen=True)
class DenseIndex:
    """Where each node of a batch sits in the padded ``[B, N_max]`` layout.

    Build it with :meth:`from_batch`. Nodes must be grouped by graph (PyG batches are).

    Attributes:
        slot: ``long [N]`` flat index ``graph * max_nodes + position`` of each node.
        mask: ``bool [B, N_max]``, True at real nodes.
        attn_mask: ``bool [B, 1, 1, N_max]`` key mask for SDPA (True = may be attended). A graph
            with no nodes keeps slot 0 open so its (discarded) padded rows stay finite.
        num_graphs: ``B``.
        max_nodes: ``N_max``.
    """

    slot: Tensor
    mask: Tensor
    attn_mask: Tensor
    num_graphs: int
    max_nodes: int

    @classmethod
    def from_batch(cls, batch: Tensor, num_graphs: int, ptr: Tensor | None = None) -> "DenseIndex":
        """Build the index of a batch.

        Args:
            batch: ``long [N]`` graph of each node, non-decreasing.
            num_graphs: Number of graphs ``B`` (graphs may be empty).
            ptr: ``long [B + 1]`` node offsets, computed from ``batch`` when omitted.

        Returns:
            The index.
        """
        counts = torch.bincount(batch, minlength=num_graphs) if ptr is None else ptr.diff()
        if ptr is None:
            ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        max_nodes = max(int(counts.max()) if counts.numel() else 0, 1)
        position = torch.arange(batch.numel(), device=batch.device) - ptr[batch]
        slot = batch * max_nodes + position
        mask = torch.arange(max_nodes, device=batch.device) < counts.unsqueeze(1)
        attn_mask = mask.clone()
        attn_mask[:, 0] = True
        return cls(slot, mask, attn_mask.view(num_graphs, 1, 1, max_nodes), num_graphs, max_nodes)

    def to_dense(self, x: Tensor) -> Tensor:
        """Scatter node rows ``[N, C]`` into a zero-padded ``[B, N_max, C]`` tensor."""
        out = x.new_zeros(self.num_graphs * self.max_nodes, x.shape[-1])
        return out.index_copy(0, self.slot, x).view(self.num_graphs, self.max_nodes, x.shape[-1])

    def to_sparse(self, dense: Tensor) -> Tensor:
        """Gather the real-node rows of ``[B, N_max, C]`` back to ``[N, C]``."""
        return dense.reshape(self.num_graphs * self.max_nodes, -1).index_select(0, self.slot)


class MultiHeadAttention(nn.Module):
    """Softmax multi-head self-attention within each graph, via ``scaled_dot_product_attention``.

    Args:
        dim: Node width (divisible by ``heads``).
        heads: Attention heads.
        dropout: Dropout on attention weights (training only).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden width {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform projections, zero biases (as ``nn.MultiheadAttention``)."""
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        self.out.reset_parameters()
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, index: DenseIndex) -> Tensor:
        """Attend among the nodes of each graph.

        Args:
            x: ``[N, dim]`` node features.
            index: Padded layout of the batch.

        Returns:
            ``[N, dim]`` attention output (after the output projection).
        """
        b, n, h = index.num_graphs, index.max_nodes, self.heads
        qkv = index.to_dense(self.qkv(x)).view(b, n, 3, h, self.dim // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            qkv[0], qkv[1], qkv[2], attn_mask=index.attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        out = out.transpose(1, 2).reshape(b * n, self.dim).index_select(0, index.slot)
        return self.out(out)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads}, dropout={self.dropout})"


class LinearAttention(nn.Module):
    """Kernelised (Performer-style) linear attention within each graph.

    Softmax similarity is replaced by ``phi(q) . phi(k)`` with the positive feature map
    ``phi = elu + 1`` (Katharopoulos et al.), so each graph costs ``O(N d^2)`` instead of
    ``O(N^2 d)``. Padded keys are zeroed after the feature map, so they add nothing to either
    the numerator or the normaliser.

    Args:
        dim: Node width (divisible by ``heads``).
        heads: Attention heads.
        eps: Added to the normaliser.
    """

    def __init__(self, dim: int, heads: int, eps: float = 1e-6) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden width {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.eps = dim, heads, eps
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform projections, zero biases."""
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        self.out.reset_parameters()
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, index: DenseIndex) -> Tensor:
        """Attend among the nodes of each graph.

        Args:
            x: ``[N, dim]`` node features.
            index: Padded layout of the batch.

        Returns:
            ``[N, dim]`` attention output (after the output projection).
        """
        b, n, h = index.num_graphs, index.max_nodes, self.heads
        qkv = index.to_dense(self.qkv(x)).view(b, n, 3, h, self.dim // h).permute(2, 0, 3, 1, 4)
        q = F.elu(qkv[0]) + 1.0
        k = (F.elu(qkv[1]) + 1.0) * index.mask.view(b, 1, n, 1).to(x.dtype)
        v = qkv[2]
        kv = torch.einsum("bhnd,bhne->bhde", k, v)
        norm = torch.einsum("bhnd,bhd->bhn", q, k.sum(dim=2)).unsqueeze(-1) + self.eps
        out = torch.einsum("bhnd,bhde->bhne", q, kv) / norm
        out = out.transpose(1, 2).reshape(b * n, self.dim).index_select(0, index.slot)
        return self.out(out)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads})"


def make_attention(kind: str, dim: int, heads: int, dropout: float = 0.0) -> nn.Module:
    """Resolve ``BackboneConfig.attention`` to a module.

    Args:
        kind: ``softmax`` (dense SDPA) or ``linear`` (kernelised).
        dim: Node width.
        heads: Attention heads.
        dropout: Attention-weight dropout (softmax attention only).

    Returns:
        A module ``(x [N, dim], index: DenseIndex) -> [N, dim]``.
    """
    if kind == "softmax":
        return MultiHeadAttention(dim, heads, dropout)
    if kind == "linear":
        return LinearAttention(dim, heads)
    raise IgtError(f"backbone.attention: unknown attention {kind!r}; expected softmax or linear")

