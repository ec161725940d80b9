"""Structural encodings: random-walk (RWSE) and Laplacian eigenvector (LapPE) node features.

Definitions (GraphGPS's, with the differences stated):

* **RWSE** ``[N, k]``: for each node ``i``, the return probabilities ``(P^t)_ii`` for
  ``t = 1..k`` of the random walk ``P = D^-1 A``. Isolated nodes (degree 0) get zeros, as in
  GraphGPS (their ``D^-1`` entry is set to 0).
* **LapPE** ``[N, k]``: eigenvectors (unit L2 norm) of the symmetric-normalised Laplacian
  ``L = I - D^-1/2 A D^-1/2`` for the ``k`` smallest eigenvalues *after dropping the first one*
  (the trivial eigenvalue 0, eigenvector ``∝ D^1/2 1``, which carries no position). GraphGPS keeps
  that first eigenvector and pads missing columns with NaN; we drop it and pad with zeros
  (graphs with fewer than ``k + 1`` nodes), so the model needs no NaN masking. Eigenvectors are
  defined only up to sign (and basis, for repeated eigenvalues): the model flips signs randomly
  in training. For a disconnected graph only the first of its zero-eigenvalue vectors is dropped.

Both come from one eigendecomposition per graph: with ``S = D^-1/2 A D^-1/2 = V diag(λ) V^T``,
``P^t = D^-1/2 S^t D^1/2`` has the same diagonal as ``S^t``, so ``(P^t)_ii = Σ_j V_ij² λ_j^t``,
and ``L = I - S`` has the same eigenvectors with eigenvalues ``1 - λ``. Graphs are grouped by
node count and decomposed in batches with ``numpy.linalg.eigh`` on stacked dense matrices, which
is fast for molecule-sized graphs. The adjacency is binary and symmetrised (undirected view).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import Tensor

from igt.data.dataset import GraphDataset

#: Bump when the encodings change: part of their cache key.
ENCODING_VERSION = "1"
# Dense batch size cap: B * n * n float64 entries per eigh call (~64 MB).
_MAX_BATCH_ENTRIES = 8_000_000


def compute_structural_encodings(ds: GraphDataset, rwse_steps: int, lap_k: int) -> dict[str, Tensor]:
    """Compute RWSE and/or LapPE for every node of ``ds``.

    Args:
        ds: The dataset.
        rwse_steps: Random-walk lengths ``1..rwse_steps`` (0: no ``rwse``).
        lap_k: Number of Laplacian eigenvectors (0: no ``lap_pe``).

    Returns:
        ``{"rwse": float [N, rwse_steps], "lap_pe": float [N, lap_k]}`` (only the requested keys).
    """
    if rwse_steps < 0 or lap_k < 0:
        raise ValueError("rwse_steps and lap_k must be >= 0")
    total_nodes = int(ds.node_ptr[-1])
    rwse = np.zeros((total_nodes, rwse_steps), dtype=np.float32)
    lap_pe = np.zeros((total_nodes, lap_k), dtype=np.float32)
    if rwse_steps or lap_k:
        node_ptr = ds.node_ptr.numpy()
        edge_ptr = ds.edge_ptr.numpy()
        edge_index = ds.edge_index.numpy()
        sizes = np.diff(node_ptr)
        steps = np.arange(1, rwse_steps + 1)
        with _single_threaded_blas():
            _encode_by_size(sizes, node_ptr, edge_ptr, edge_index, steps, rwse, lap_pe)
    out: dict[str, Tensor] = {}
    if rwse_steps:
        out["rwse"] = torch.from_numpy(rwse)
    if lap_k:
        out["lap_pe"] = torch.from_numpy(lap_pe)
    return out


def _encode_by_size(
    sizes: np.ndarray,
    node_ptr: np.ndarray,
    edge_ptr: np.ndarray,
    edge_index: np.ndarray,
    steps: np.ndarray,
    rwse: np.ndarray,
    lap_pe: np.ndarray,
) -> None:
    """Fill ``rwse``/``lap_pe`` in place, one batched eigendecomposition per node count."""
    rwse_steps, lap_k = rwse.shape[1], lap_pe.shape[1]
    for n in np.unique(sizes):
        if n == 0:
            continue
        members = np.flatnonzero(sizes == n)
        chunk = max(1, _MAX_BATCH_ENTRIES // int(n * n))
        for start in range(0, members.size, chunk):
            graphs = members[start : start + chunk]
            adjacency = _dense_adjacency(graphs, int(n), edge_ptr, edge_index)
            eigenvalues, eigenvectors = _normalised_eigh(adjacency)
            rows = (node_ptr[graphs][:, None] + np.arange(n)).reshape(-1)
            if rwse_steps:
                # (P^t)_ii = sum_j V_ij^2 * lambda_j^t, for all t at once: [B, n, n] @ [B, n, T].
                powers = eigenvalues[:, :, None] ** steps
                landing = np.matmul(eigenvectors**2, powers)
                # Exact zeros where the probability is zero (odd steps on bipartite graphs, isolated
                # nodes): rounding of the eigen-expansion leaves ~1e-16 there otherwise.
                landing[landing < 1e-10] = 0.0
                landing = np.minimum(landing, 1.0)
                rwse[rows] = landing.reshape(-1, rwse_steps)
            if lap_k and n > 1:  # a single node has only the trivial eigenvector: zeros
                # Laplacian eigenvalues 1 - lambda ascend as lambda descends: reverse, drop the first.
                vectors = eigenvectors[:, :, ::-1][:, :, 1 : 1 + lap_k]
                lap_pe[rows, : vectors.shape[2]] = vectors.reshape(-1, vectors.shape[2])


@contextlib.contextmanager
def _single_threaded_blas():
    """Run LAPACK single-threaded: for thousands of small matrices, BLAS threads only contend
    (measured on HIV: ~100 s multi-threaded vs ~5 s single-threaded on 2 cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it we just run with the default thread count
        yield
        return
    with threadpool_limits(limits=1):
        yield


def add_structural_encodings(ds: GraphDataset, rwse_steps: int, lap_k: int) -> GraphDataset:
    """A copy of ``ds`` (sharing its tensors) with ``node_data["rwse"]``/``["lap_pe"]`` added.

    Args:
        ds: The dataset (not modified).
        rwse_steps: Random-walk lengths ``1..rwse_steps`` (0 disables RWSE).
        lap_k: Laplacian eigenvectors (0 disables LapPE).

    Returns:
        The new dataset. Caching is done by :func:`igt.data.load_dataset`.
    """
    encodings = compute_structural_encodings(ds, rwse_steps, lap_k)
    return with_node_data(ds, encodings)


def add_random_node_features(ds: GraphDataset, k: int, seed: int = 0) -> GraphDataset:
    """A copy of ``ds`` with ``node_data["x_random"]``: ``k`` i.i.d. U(0, 1) features per node.

    DIR's Spurious-Motif gives every node ``rand(4)`` features (and nothing else): noise that
    carries no label information but lets a message-passing GNN tell apart nodes that a constant
    feature leaves identical. They are drawn once for the whole dataset from ``seed`` (before any
    ``limit``), so every run on a dataset sees the same features, as with DIR's stored files.
    """
    if k <= 0:
        return ds
    generator = torch.Generator().manual_seed(seed)
    return with_node_data(ds, {"x_random": torch.rand(ds.x.shape[0], k, generator=generator)})


def with_node_data(ds: GraphDataset, extra: dict[str, Tensor]) -> GraphDataset:
    """A shallow copy of ``ds`` whose ``node_data`` also holds ``extra``."""
    return GraphDataset(
        ds.name, ds.task, ds.features, ds.x, ds.edge_index, ds.edge_attr, ds.y, ds.node_ptr, ds.edge_ptr,
        smiles=ds.smiles, node_data={**ds.node_data, **extra}, edge_data=ds.edge_data, graph_data=ds.graph_data,
    )


def _dense_adjacency(graphs: np.ndarray, n: int, edge_ptr: np.ndarray, edge_index: np.ndarray) -> np.ndarray:
    """Stacked binary, symmetric adjacency matrices ``[B, n, n]`` of the given graphs."""
    starts, counts = edge_ptr[graphs], edge_ptr[graphs + 1] - edge_ptr[graphs]
    adjacency = np.zeros((graphs.size, n, n), dtype=np.float64)
    total = int(counts.sum())
    if total:
        owner = np.repeat(np.arange(graphs.size), counts)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        positions = starts[owner] + np.arange(total) - np.repeat(offsets, counts)
        src, dst = edge_index[0, positions], edge_index[1, positions]
        adjacency[owner, src, dst] = 1.0
        adjacency[owner, dst, src] = 1.0
        # Self-loops would make the walk "return" trivially; molecules have none, drop any others.
        diagonal = np.arange(n)
        adjacency[:, diagonal, diagonal] = 0.0
    return adjacency


def _normalised_eigh(adjacency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of ``D^-1/2 A D^-1/2`` for a stack of graphs."""
    degree = adjacency.sum(axis=2)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0)
    normalised = inv_sqrt[:, :, None] * adjacency * inv_sqrt[:, None, :]
    return np.linalg.eigh(normalised)
