"""Helpers shared by the tests."""

import torch
from torch_geometric.data import Data


def permute_graph(data: Data, seed: int) -> tuple[Data, torch.Tensor]:
    """Relabel the nodes of one graph at random (edge order kept): new node ``i`` is old node
    ``perm[i]``. Returns the permuted graph and ``perm``."""
    perm = torch.randperm(data.num_nodes, generator=torch.Generator().manual_seed(seed))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    permuted = data.clone()
    permuted.x = data.x[perm]
    permuted.edge_index = inverse[data.edge_index]
    return permuted, perm
