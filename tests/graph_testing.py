"""Helpers shared by the tests."""

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from igt.data.dataset import collate_graphs
from igt.data.task import FeatureSpec, TaskSpec

TOY_FEATURES = FeatureSpec((4, 3), (2,))


def path_graph(n: int, generator: torch.Generator) -> dict:
    """A path of ``n`` nodes (both edge directions) with random categorical features."""
    edges = torch.stack([torch.arange(n - 1), torch.arange(1, n)]) if n > 1 else torch.zeros(2, 0, dtype=torch.long)
    edges = torch.cat([edges, edges.flip(0)], 1)
    return {
        "x": torch.randint(0, 3, (n, 2), generator=generator),
        "edge_index": edges,
        "edge_attr": torch.randint(0, 2, (edges.shape[1], 1), generator=generator),
    }


def make_batch(sizes, seed=0, task=TaskSpec("binary")):
    """One batch of path graphs of the given sizes with random labels, and its dataset."""
    generator = torch.Generator().manual_seed(seed)
    graphs = [path_graph(n, generator) for n in sizes]
    if task.type == "multiclass":
        y = torch.randint(0, task.num_classes, (len(sizes),), generator=generator)
    else:
        y = torch.randint(0, 2, (len(sizes), task.num_tasks), generator=generator).float()
    dataset = collate_graphs("toy", task, TOY_FEATURES, graphs, y)
    return next(iter(DataLoader(dataset, batch_size=len(sizes)))), dataset


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


def outputs_before_and_after_permuting(model, dataset, seed: int):
    """``model``'s outputs on [graph 0, graph 1] and on [graph 0, graph 1 with its nodes permuted],
    and the permutation (graph 0 keeps the batch's environment fixed)."""
    data = dataset[1]
    permuted, perm = permute_graph(data, seed)
    return model(Batch.from_data_list([dataset[0], data])), model(Batch.from_data_list([dataset[0], permuted])), perm
