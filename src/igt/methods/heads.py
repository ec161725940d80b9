"""Readouts and prediction heads shared by every method."""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from igt.errors import IgtError

_POOLS = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}


def pool(h: Tensor, batch: Tensor, kind: str, num_graphs: int) -> Tensor:
    """Graph readout ``[N, d] -> [B, d]``."""
    try:
        return _POOLS[kind](h, batch, size=num_graphs)
    except KeyError:
        raise IgtError(f"unknown pooling {kind!r}; expected one of {sorted(_POOLS)}") from None


class PredictionHead(nn.Module):
    """Two-layer MLP from a graph vector to the task's outputs.

    Args:
        hidden: Input width.
        out_dim: Number of outputs (tasks or classes).
        dropout: Dropout between the layers.
    """

    def __init__(self, hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
        )

    def reset_parameters(self) -> None:
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def extra_repr(self) -> str:
        first, last = self.mlp[0], self.mlp[-1]
        return f"hidden={first.in_features}, out_dim={last.out_features}, dropout={self.mlp[2].p}"

    def forward(self, graph_vectors: Tensor) -> Tensor:
        return self.mlp(graph_vectors)
