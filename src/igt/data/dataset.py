"""A compact in-memory graph dataset: concatenated tensors plus per-graph offsets.

Storing one tensor per attribute (not 41k ``Data`` objects) makes the on-disk cache a single
``torch.save`` that loads in well under a second with ``weights_only=True``, and lets
structural encodings and ground-truth masks ride along as extra node/edge columns.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler
from torch_geometric.data import Batch, Data
from torch_geometric.utils import cumsum

from igt.data.task import FeatureSpec, TaskSpec
from igt.fileio import atomic_torch_save


class GraphDataset(Dataset):
    """Graphs stored as concatenated tensors.

    Args:
        name: Dataset name shown to users.
        task: The prediction task.
        features: Categorical feature cardinalities.
        x: ``long [N_total, F]`` node features.
        edge_index: ``long [2, E_total]`` edges with node indices *local to their graph*.
        edge_attr: ``long [E_total, F_e]`` edge features.
        y: ``[G, T]`` float labels (NaN = missing) or ``[G]`` long class labels.
        node_ptr: ``long [G + 1]`` node offsets; graph ``i`` owns nodes ``node_ptr[i]:node_ptr[i+1]``.
        edge_ptr: ``long [G + 1]`` edge offsets.
        smiles: Optional SMILES string per graph.
        node_data: Extra per-node tensors (``rwse``, ``lap_pe``, ``node_gt``), first dim ``N_total``.
        edge_data: Extra per-edge tensors (``edge_gt``), first dim ``E_total``.
        graph_data: Extra per-graph tensors, first dim ``G``.
    """

    def __init__(
        self,
        name: str,
        task: TaskSpec,
        features: FeatureSpec,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        y: Tensor,
        node_ptr: Tensor,
        edge_ptr: Tensor,
        smiles: Sequence[str] | None = None,
        node_data: dict[str, Tensor] | None = None,
        edge_data: dict[str, Tensor] | None = None,
        graph_data: dict[str, Tensor] | None = None,
    ) -> None:
        self.name = name
        self.task = task
        self.features = features
        self.x = x
        self.edge_index = edge_index
        self.edge_attr = edge_attr
        self.y = y
        self.node_ptr = node_ptr
        self.edge_ptr = edge_ptr
        self.smiles = list(smiles) if smiles is not None else None
        self.node_data = dict(node_data or {})
        self.edge_data = dict(edge_data or {})
        self.graph_data = dict(graph_data or {})

    def __len__(self) -> int:
        return self.node_ptr.numel() - 1

    def __getitem__(self, index: int) -> Data:
        i = int(index)
        n0, n1 = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        e0, e1 = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        data = Data(
            x=self.x[n0:n1],
            edge_index=self.edge_index[:, e0:e1],
            edge_attr=self.edge_attr[e0:e1],
            y=self.y[i : i + 1],
            num_nodes=n1 - n0,
            idx=torch.tensor([i]),
        )
        for key, value in self.node_data.items():
            data[key] = value[n0:n1]
        for key, value in self.edge_data.items():
            data[key] = value[e0:e1]
        for key, value in self.graph_data.items():
            data[key] = value[i : i + 1]
        if self.smiles is not None:  # what the fingerprint baselines read
            data.smiles = self.smiles[i]
        return data

    def batch(self, indices: Sequence[int] | Tensor) -> Batch:
        """The PyG ``Batch`` of the graphs at ``indices``, gathered straight from the concatenated
        tensors: the same batch ``Batch.from_data_list([self[i] for i in indices])`` builds
        (values, ``batch``/``ptr`` and the slice/increment bookkeeping of ``to_data_list``), without
        a ``Data`` object per graph, which made loading most of a small model's epoch."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        node_sizes, edge_sizes, node_sel, edge_sel = self._selection(idx)
        node_ptr, edge_ptr = cumsum(node_sizes), cumsum(edge_sizes)
        graph_ptr = torch.arange(idx.numel() + 1)
        # Edge indices are stored local to their graph; shift them to the batch's node numbering.
        shift = torch.repeat_interleave(node_ptr[:-1], edge_sizes)
        # key -> (value, slices), in PyG's attribute order; ``num_nodes`` goes between the two parts.
        head = {
            "x": (self.x[node_sel], node_ptr),
            "edge_index": (self.edge_index[:, edge_sel] + shift, edge_ptr),
            "edge_attr": (self.edge_attr[edge_sel], edge_ptr),
            "y": (self.y[idx], graph_ptr),
        }
        tail = {
            "idx": (idx.clone(), graph_ptr),
            **{key: (value[node_sel], node_ptr) for key, value in self.node_data.items()},
            **{key: (value[edge_sel], edge_ptr) for key, value in self.edge_data.items()},
            **{key: (value[idx], graph_ptr) for key, value in self.graph_data.items()},
        }
        if self.smiles is not None:
            tail["smiles"] = ([self.smiles[i] for i in idx.tolist()], graph_ptr)
        out = Batch(_base_cls=Data)
        for key, (value, _) in head.items():
            out[key] = value
        out._num_nodes = node_sizes.tolist()
        out.num_nodes = int(node_ptr[-1])
        for key, (value, _) in tail.items():
            out[key] = value
        out.batch = torch.repeat_interleave(torch.arange(idx.numel()), node_sizes)
        out.ptr = node_ptr
        out._num_graphs = idx.numel()
        columns = {**head, **tail}
        out._slice_dict = {key: slices for key, (_, slices) in columns.items()}
        zeros = torch.zeros(idx.numel(), dtype=torch.long)
        out._inc_dict = {key: node_ptr[:-1] if key == "edge_index" else None if key == "smiles" else zeros
                         for key in columns}
        return out

    def _selection(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Node and edge counts of the graphs at ``idx``, and the rows of their nodes and edges."""
        node_sizes, edge_sizes = self.node_ptr.diff()[idx], self.edge_ptr.diff()[idx]
        node_sel = concat_ranges(self.node_ptr[idx], node_sizes)
        edge_sel = concat_ranges(self.edge_ptr[idx], edge_sizes)
        return node_sizes, edge_sizes, node_sel, edge_sel

    def num_nodes(self) -> Tensor:
        """Node count of every graph, ``long [G]``."""
        return self.node_ptr.diff()

    def subset(self, indices: Sequence[int] | Tensor) -> "GraphDataset":
        """A new dataset holding the graphs at ``indices``, in that order."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        node_sizes, edge_sizes, node_sel, edge_sel = self._selection(idx)
        return GraphDataset(
            self.name,
            self.task,
            self.features,
            self.x[node_sel],
            self.edge_index[:, edge_sel],
            self.edge_attr[edge_sel],
            self.y[idx],
            cumsum(node_sizes),
            cumsum(edge_sizes),
            smiles=[self.smiles[i] for i in idx.tolist()] if self.smiles is not None else None,
            node_data={k: v[node_sel] for k, v in self.node_data.items()},
            edge_data={k: v[edge_sel] for k, v in self.edge_data.items()},
            graph_data={k: v[idx] for k, v in self.graph_data.items()},
        )

    def state(self) -> dict:
        """Plain tensors/strings/numbers only, so ``torch.load(weights_only=True)`` can read it."""
        return {
            "name": self.name,
            "task": {**self.task.__dict__, "task_names": list(self.task.task_names)},
            "features": {"node_vocab": list(self.features.node_vocab), "edge_vocab": list(self.features.edge_vocab)},
            "x": self.x,
            "edge_index": self.edge_index,
            "edge_attr": self.edge_attr,
            "y": self.y,
            "node_ptr": self.node_ptr,
            "edge_ptr": self.edge_ptr,
            "smiles": self.smiles,
            "node_data": self.node_data,
            "edge_data": self.edge_data,
            "graph_data": self.graph_data,
        }

    @classmethod
    def from_state(cls, state: dict) -> "GraphDataset":
        task = dict(state["task"])
        task["task_names"] = tuple(task.get("task_names", ()))
        features = FeatureSpec(tuple(state["features"]["node_vocab"]), tuple(state["features"]["edge_vocab"]))
        return cls(
            state["name"], TaskSpec(**task), features,
            state["x"], state["edge_index"], state["edge_attr"], state["y"],
            state["node_ptr"], state["edge_ptr"], state["smiles"],
            state["node_data"], state["edge_data"], state["graph_data"],
        )

    def save(self, path: Path) -> None:
        atomic_torch_save(self.state(), path)

    @classmethod
    def load(cls, path: Path) -> "GraphDataset":
        return cls.from_state(torch.load(path, weights_only=True))

    def __repr__(self) -> str:
        return f"GraphDataset({self.name!r}, graphs={len(self)}, task={self.task.type}, metric={self.task.metric})"


class _BatchView(Dataset):
    """Indexed by a list of graph positions, returns their collated ``Batch``."""

    def __init__(self, dataset: GraphDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: list[int]) -> Batch:
        return self.dataset.batch(indices)


def _as_is(batch: Batch) -> Batch:
    return batch


def graph_loader(
    dataset: GraphDataset,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    shard: tuple[int, int] | None = None,
) -> DataLoader:
    """Mini-batches of ``dataset`` built by :meth:`GraphDataset.batch`.

    Batches, and with ``shuffle`` their order for a given ``generator``, are identical to those of
    ``torch_geometric.loader.DataLoader(dataset, batch_size, shuffle, generator=generator)``: the
    same samplers draw from the generator in the same order.

    ``shard=(rank, world_size)`` gives one process of a data-parallel run its part of every
    epoch: :class:`ShardedBatches` when shuffling (``drop_last`` is then its own rule),
    :class:`StridedBatches` otherwise. The generator is drawn exactly as without ``shard``.
    """
    sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    batches: Sampler[list[int]]
    if shard is None:
        batches = BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last)
    elif shuffle:
        batches = ShardedBatches(sampler, batch_size, *shard)
    else:
        batches = StridedBatches(BatchSampler(sampler, batch_size=batch_size, drop_last=False), *shard)
    return DataLoader(
        _BatchView(dataset),
        sampler=batches,
        batch_size=None,
        collate_fn=_as_is,
        generator=generator,
    )


class ShardedBatches(Sampler[list[int]]):
    """One process's training batches of a data-parallel epoch.

    The epoch's order is drawn by ``sampler`` exactly as a single process draws it, then cut into
    global batches of ``batch_size * world_size`` graphs; process ``rank`` takes the ``rank``-th
    slice of ``batch_size`` of each. So the run is a single process with batch size
    ``batch_size * world_size`` over the same order (DDP averages the per-process mean gradients).
    An incomplete last global batch is split into ``world_size`` near-equal parts when each gets
    at least two graphs (BatchNorm needs two), else dropped: every process takes the same number of
    steps, which DDP requires.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.sampler, self.batch_size, self.rank, self.world_size = sampler, batch_size, rank, world_size

    def _rest_is_kept(self, rest: int) -> bool:
        return rest >= 2 * self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)  # draws the whole epoch from the generator, as BatchSampler does
        step = self.batch_size * self.world_size
        full = len(order) // step * step
        for start in range(self.rank * self.batch_size, full, step):
            yield order[start : start + self.batch_size]
        rest = order[full:]
        if self._rest_is_kept(len(rest)):
            yield rest[self.rank * len(rest) // self.world_size : (self.rank + 1) * len(rest) // self.world_size]

    def __len__(self) -> int:
        total = len(self.sampler)  # type: ignore[arg-type]
        step = self.batch_size * self.world_size
        return total // step + int(self._rest_is_kept(total % step))


class StridedBatches(Sampler[list[int]]):
    """Every ``world_size``-th batch of ``batches``, from the ``rank``-th: one process's share of
    an evaluation, whose per-batch results the processes gather back in batch order."""

    def __init__(self, batches: Sampler[list[int]], rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.batches), self.rank, None, self.world_size)

    def __len__(self) -> int:
        return max(0, (len(self.batches) - self.rank + self.world_size - 1) // self.world_size)  # type: ignore[arg-type]


def concat_ranges(starts: Tensor, sizes: Tensor) -> Tensor:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), without a Python loop."""
    total = int(sizes.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=sizes.device)
    owner = torch.repeat_interleave(torch.arange(sizes.numel(), device=sizes.device), sizes)
    within = torch.arange(total, device=sizes.device) - torch.repeat_interleave(cumsum(sizes)[:-1], sizes)
    return starts[owner] + within


def collate_graphs(
    name: str,
    task: TaskSpec,
    features: FeatureSpec,
    graphs: Sequence[dict[str, Tensor]],
    y: Tensor,
    smiles: Sequence[str] | None = None,
) -> GraphDataset:
    """Build a :class:`GraphDataset` from per-graph dicts of ``x``, ``edge_index``, ``edge_attr``.

    Extra keys go to node data when they start with ``node_`` (e.g. ``node_gt``) and to edge
    data when they start with ``edge_`` (e.g. ``edge_gt``); all graphs carry the same keys.
    """
    node_sizes = torch.tensor([g["x"].shape[0] for g in graphs], dtype=torch.long)
    edge_sizes = torch.tensor([g["edge_index"].shape[1] for g in graphs], dtype=torch.long)
    extra = [k for k in (graphs[0] if graphs else {}) if k not in ("x", "edge_index", "edge_attr")]
    node_data = {k: torch.cat([g[k] for g in graphs]) for k in extra if k.startswith("node_")}
    edge_data = {k: torch.cat([g[k] for g in graphs]) for k in extra if k.startswith("edge_")}
    stray = set(extra) - set(node_data) - set(edge_data)
    if stray:
        raise ValueError(f"graph keys {sorted(stray)} must start with node_ or edge_")
    width = len(features.node_vocab)
    ewidth = len(features.edge_vocab)
    return GraphDataset(
        name, task, features,
        torch.cat([g["x"] for g in graphs]) if graphs else torch.zeros(0, width, dtype=torch.long),
        torch.cat([g["edge_index"] for g in graphs], dim=1) if graphs else torch.zeros(2, 0, dtype=torch.long),
        torch.cat([g["edge_attr"] for g in graphs]) if graphs else torch.zeros(0, ewidth, dtype=torch.long),
        y, cumsum(node_sizes), cumsum(edge_sizes), smiles, node_data, edge_data,
    )
