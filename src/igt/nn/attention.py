"""Global attention over the nodes of each graph in a batch.

Graphs of a PyG batch are stored back to back (``x: [N, d]``, ``batch: [N]``). Attention runs on
padded views ``[B_g, N_g, d]``; :class:`PaddedLayout` holds the node -> padded-slot maps and the
key-padding masks, built once per forward and shared by every layer. Projections (fused QKV,
output) run on the ``N`` real nodes only; only the attention itself sees padding, and padded
keys are masked so a graph's output never depends on what it is batched with.

Molecule sizes are skewed (HIV: mean 25 atoms, max 222), so one ``[B, N_max]`` padding wastes
most of the ``B * N_max^2`` attention work on padding (6-30x on HIV batches of 128). The layout
therefore splits the graphs, sorted by size, into a few groups of similar size (chosen by a
small dynamic programme over the distinct sizes) and pads each group on its own. The result
is the same as one padded batch; only the work differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# Fixed cost of one more padded group, in attention scores per head (about the time of a
# group's handful of extra kernel launches, forward and backward, on CPU).
GROUP_OVERHEAD = 8192


@dataclass(frozen=True)
class PaddedGroup:
    """Graphs of similar size padded together to ``[num_graphs, max_nodes]``.

    Attributes:
        nodes: ``long [n_g]`` the group's nodes (rows of the batch), graph by graph.
        slot: ``long [n_g]`` flat padded position ``graph * max_nodes + position`` of each.
        mask: ``bool [num_graphs, max_nodes]``, True at real nodes.
        attn_mask: ``bool [num_graphs, 1, 1, max_nodes]`` SDPA key mask (True = may be
            attended). Slot 0 stays open for empty graphs so their padded rows stay finite.
        num_graphs: Graphs in the group.
        max_nodes: Largest graph of the group (at least 1).
    """

    nodes: Tensor
    slot: Tensor
    mask: Tensor
    attn_mask: Tensor
    num_graphs: int
    max_nodes: int

    def to_dense(self, rows: Tensor) -> Tensor:
        """Scatter the group's rows ``[n_g, C]`` into a zero-padded ``[num_graphs, max_nodes, C]``."""
        out = rows.new_zeros(self.num_graphs * self.max_nodes, rows.shape[-1])
        return out.index_copy(0, self.slot, rows).view(self.num_graphs, self.max_nodes, rows.shape[-1])

    def to_sparse(self, dense: Tensor) -> Tensor:
        """Gather the real-node rows of ``[num_graphs, max_nodes, C]`` back to ``[n_g, C]``."""
        return dense.reshape(self.num_graphs * self.max_nodes, dense.shape[-1]).index_select(0, self.slot)


@dataclass(frozen=True)
class PaddedLayout:
    """How the nodes of a batch are padded for attention: one or more :class:`PaddedGroup`.

    Build it with :meth:`from_batch` once per forward.

    Attributes:
        groups: The padded groups; every node is in exactly one.
        num_nodes: ``N``.
        identity: True when there is one group holding nodes ``0..N-1`` in order.
        order: ``long [N]`` the groups' nodes concatenated (where grouped rows go back to).
    """

    groups: tuple[PaddedGroup, ...]
    num_nodes: int
    identity: bool
    order: Tensor

    @classmethod
    def from_batch(
        cls, batch: Tensor, num_graphs: int, ptr: Tensor | None = None, group: bool = True
    ) -> "PaddedLayout":
        """Build the layout of a batch.

        Args:
            batch: ``long [N]`` graph of each node, non-decreasing (as in PyG batches).
            num_graphs: Number of graphs ``B`` (graphs may be empty).
            ptr: ``long [B + 1]`` node offsets, computed from ``batch`` when omitted.
            group: Split graphs into size groups; False pads all graphs to the largest.

        Returns:
            The layout.
        """
        device = batch.device
        if ptr is None:
            counts = torch.bincount(batch, minlength=num_graphs)
            ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        counts = ptr.diff()
        sizes = counts.tolist()
        bounds = _group_bounds(sizes) if group else [max(sizes, default=0)]
        if len(bounds) == 1:
            graphs = [torch.arange(num_graphs, device=device)]
        else:
            order = torch.argsort(counts, stable=True)
            sorted_sizes = counts[order]
            cuts = torch.searchsorted(sorted_sizes, torch.tensor(bounds, device=device), right=True).tolist()
            graphs = [order[a:b] for a, b in zip([0, *cuts[:-1]], cuts)]
        groups = tuple(_padded_group(ids, ptr, counts, max(bound, 1)) for ids, bound in zip(graphs, bounds))
        order = torch.cat([g.nodes for g in groups])
        return cls(groups, int(ptr[-1]), identity=len(groups) == 1, order=order)

    def apply(self, fn: Callable[[Tensor, PaddedGroup], Tensor], rows: Tensor) -> Tensor:
        """Run ``fn(dense [B_g, N_g, C], group) -> [B_g, N_g, C']`` per group on node rows.

        Args:
            fn: Per-group computation on the padded tensor.
            rows: ``[N, C]`` node rows.

        Returns:
            ``[N, C']`` node rows in batch order.
        """
        if self.identity:
            group = self.groups[0]
            return group.to_sparse(fn(group.to_dense(rows), group))
        outs = [g.to_sparse(fn(g.to_dense(rows.index_select(0, g.nodes)), g)) for g in self.groups]
        out = torch.cat(outs)
        return out.new_empty(self.num_nodes, out.shape[-1]).index_copy(0, self.order, out)


def _padded_group(graphs: Tensor, ptr: Tensor, counts: Tensor, max_nodes: int) -> PaddedGroup:
    sizes = counts[graphs]
    total = int(sizes.sum())
    local = torch.repeat_interleave(torch.arange(graphs.numel(), device=graphs.device), sizes, output_size=total)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    position = torch.arange(total, device=graphs.device) - starts[local]
    nodes = ptr[graphs][local] + position
    slot = local * max_nodes + position
    mask = torch.arange(max_nodes, device=graphs.device) < sizes.unsqueeze(1)
    attn_mask = mask.clone()
    attn_mask[:, 0] = True
    b = graphs.numel()
    return PaddedGroup(nodes, slot, mask, attn_mask.view(b, 1, 1, max_nodes), b, max_nodes)


def _group_bounds(sizes: list[int]) -> list[int]:
    """Upper size bound of each group minimising ``sum(B_g * N_g^2) + GROUP_OVERHEAD * groups``.

    Optimal groups are runs of the sorted sizes, so a dynamic programme over the distinct sizes
    (a few dozen for molecules) finds them exactly.
    """
    if not sizes:
        return [0]
    distinct = sorted(set(sizes))
    tally: dict[int, int] = {}
    for size in sizes:
        tally[size] = tally.get(size, 0) + 1
    below = [0]
    for size in distinct:
        below.append(below[-1] + tally[size])
    best = [0.0] + [float("inf")] * len(distinct)
    cut = [0] * (len(distinct) + 1)
    for j in range(1, len(distinct) + 1):
        square = distinct[j - 1] ** 2
        for i in range(j):
            cost = best[i] + (below[j] - below[i]) * square + GROUP_OVERHEAD
            if cost < best[j]:
                best[j], cut[j] = cost, i
    bounds, j = [], len(distinct)
    while j > 0:
        bounds.append(distinct[j - 1])
        j = cut[j]
    return bounds[::-1]


class _GroupedAttention(nn.Module):
    """Fused QKV projection on real nodes, attention per padded group, output projection.

    Subclasses define ``_attend(qkv [B_g, N_g, 3 dim], group, query_len) -> [B_g, query_len, dim]``
    (every position when ``query_len`` is None).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden width {dim} is not divisible by {heads} heads")
        self.dim, self.heads = dim, heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.reset_parameters()

    def extra_repr(self) -> str:
        extra = "".join(f", {key}={getattr(self, key)}" for key in ("dropout", "eps") if hasattr(self, key))
        return f"dim={self.dim}, heads={self.heads}{extra}"

    def reset_parameters(self) -> None:
        """Xavier-uniform projections, zero biases (as ``nn.MultiheadAttention``)."""
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        self.out.reset_parameters()
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, layout: PaddedLayout, queries: Tensor | None = None) -> Tensor:
        """Attend among the nodes of each graph.

        Args:
            x: ``[N, dim]`` node features.
            layout: Padded layout of the batch.
            queries: Optional ``bool [N]``: compute outputs only for these rows (they still
                attend to every row of their graph), saving the query-side work when the
                other rows' outputs would be discarded. The saving is largest when each
                graph's query rows come first in it.

        Returns:
            ``[N, dim]`` attention output (after the output projection), or ``[N_q, dim]`` for
            the query rows in row order when ``queries`` is given.
        """
        qkv = self.qkv(x)
        if queries is None:
            return self.out(layout.apply(self._attend, qkv))
        rank = torch.cumsum(queries, 0) - 1  # output row of each query row
        outs, rows = [], []
        for group in layout.groups:
            nodes = group.nodes
            position = group.slot % group.max_nodes
            is_query = queries[nodes]
            if not bool(is_query.any()):
                continue
            query_len = int(position[is_query].max()) + 1
            dense = group.to_dense(qkv if layout.identity else qkv.index_select(0, nodes))
            out = self._attend(dense, group, query_len)  # [B_g, query_len, dim]
            local = group.slot[is_query] // group.max_nodes * query_len + position[is_query]
            outs.append(out.reshape(-1, self.dim).index_select(0, local))
            rows.append(rank[nodes[is_query]])
        if not outs:
            return self.out(qkv.new_zeros(0, self.dim))
        out = torch.cat(outs)
        out = out.new_empty(out.shape).index_copy(0, torch.cat(rows), out)
        return self.out(out)

    def _attend(self, qkv: Tensor, group: PaddedGroup, query_len: int | None = None) -> Tensor:  # pragma: no cover
        """``[B_g, N_g, 3 dim] -> [B_g, query_len or N_g, dim]``: outputs of the first
        ``query_len`` positions of each graph."""
        raise NotImplementedError


class MultiHeadAttention(_GroupedAttention):
    """Softmax multi-head self-attention within each graph, via ``scaled_dot_product_attention``.

    Args:
        dim: Node width (divisible by ``heads``).
        heads: Attention heads.
        dropout: Dropout on attention weights (training only).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        self.dropout = dropout
        super().__init__(dim, heads)

    def _attend(self, qkv: Tensor, group: PaddedGroup, query_len: int | None = None) -> Tensor:
        b, n, h = group.num_graphs, group.max_nodes, self.heads
        q, k, v = qkv.view(b, n, 3, h, self.dim // h).permute(2, 0, 3, 1, 4)
        q = q[:, :, :query_len]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=group.attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return out.transpose(1, 2).reshape(b, q.shape[2], self.dim)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads}, dropout={self.dropout})"


class LinearAttention(_GroupedAttention):
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
        self.eps = eps
        super().__init__(dim, heads)

    def _attend(self, qkv: Tensor, group: PaddedGroup, query_len: int | None = None) -> Tensor:
        b, n, h = group.num_graphs, group.max_nodes, self.heads
        q, k, v = qkv.view(b, n, 3, h, self.dim // h).permute(2, 0, 3, 1, 4)
        q = F.elu(q[:, :, :query_len]) + 1.0
        k = (F.elu(k) + 1.0) * group.mask.view(b, 1, n, 1).to(k.dtype)
        kv = torch.einsum("bhnd,bhne->bhde", k, v)
        norm = torch.einsum("bhnd,bhd->bhn", q, k.sum(dim=2)).unsqueeze(-1) + self.eps
        out = torch.einsum("bhnd,bhde->bhne", q, kv) / norm
        return out.transpose(1, 2).reshape(b, q.shape[2], self.dim)

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
        A module ``(x [N, dim], layout: PaddedLayout) -> [N, dim]``.
    """
    if kind == "softmax":
        return MultiHeadAttention(dim, heads, dropout)
    if kind == "linear":
        return LinearAttention(dim, heads)
    raise ValueError(f"unknown attention {kind!r}; expected softmax or linear")

