"""Structural encodings: RWSE matches the random-walk definition, LapPE the Laplacian, both cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from igt.config import DataConfig
from igt.data import _first_graphs, encodings, load_dataset
from igt.data.dataset import GraphDataset
from igt.data.encodings import add_structural_encodings
from igt.data.task import FeatureSpec, TaskSpec


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGT_CACHE_DIR", str(tmp_path / "cache"))


def _dataset(graphs: list[tuple[int, list[tuple[int, int]]]]) -> GraphDataset:
    """Graphs given as (node count, undirected edges); both directions are stored."""
    xs, edges, node_sizes, edge_sizes = [], [], [], []
    for n, pairs in graphs:
        xs.append(torch.zeros(n, 1, dtype=torch.long))
        directed = [(i, j) for i, j in pairs] + [(j, i) for i, j in pairs]
        edges.append(torch.tensor(directed, dtype=torch.long).reshape(-1, 2).T)
        node_sizes.append(n)
        edge_sizes.append(len(directed))
    ptr = lambda sizes: torch.tensor([0, *np.cumsum(sizes)], dtype=torch.long)  # noqa: E731
    return GraphDataset(
        "toy", TaskSpec("binary"), FeatureSpec((1,), (1,)), torch.cat(xs), torch.cat(edges, dim=1),
        torch.zeros(sum(edge_sizes), 1, dtype=torch.long), torch.zeros(len(graphs), 1), ptr(node_sizes), ptr(edge_sizes),
    )


def _rwse_by_matrix_powers(n: int, pairs: list[tuple[int, int]], steps: int) -> np.ndarray:
    adjacency = np.zeros((n, n))
    for i, j in pairs:
        adjacency[i, j] = adjacency[j, i] = 1
    degree = adjacency.sum(1)
    walk = np.divide(adjacency, degree[:, None], out=np.zeros_like(adjacency), where=degree[:, None] > 0)
    power, out = np.eye(n), []
    for _ in range(steps):
        power = power @ walk
        out.append(np.diag(power))
    return np.stack(out, axis=1)


HOUSE = (5, [(0, 1), (1, 2), (2, 3), (3, 0), (2, 4), (3, 4)])
TRIANGLE_WITH_ISOLATED = (4, [(0, 1), (1, 2), (2, 0)])
STAR = (4, [(0, 1), (0, 2), (0, 3)])


def test_rwse_matches_random_walk_definition() -> None:
    graphs = [HOUSE, TRIANGLE_WITH_ISOLATED, STAR, (1, [])]
    ds = add_structural_encodings(_dataset(graphs), rwse_steps=6, lap_k=0)
    rwse = ds.node_data["rwse"]
    assert rwse.dtype == torch.float32 and rwse.shape == (14, 6) and "lap_pe" not in ds.node_data
    expected = np.concatenate([_rwse_by_matrix_powers(n, pairs, 6) for n, pairs in graphs])
    np.testing.assert_allclose(rwse.numpy(), expected, atol=1e-6)
    assert torch.all(rwse[8] == 0) and torch.all(rwse[13] == 0)  # isolated node, single-node graph
    assert torch.all(rwse[9:13, 0::2] == 0)  # odd steps on a star (bipartite): exactly 0


def test_rwse_is_permutation_equivariant() -> None:
    n, pairs = HOUSE
    permutation = [3, 0, 4, 1, 2]  # new node k is old node permutation[k]
    inverse = {old: new for new, old in enumerate(permutation)}
    permuted = [(inverse[i], inverse[j]) for i, j in pairs]
    original = add_structural_encodings(_dataset([HOUSE]), 8, 0).node_data["rwse"]
    moved = add_structural_encodings(_dataset([(n, permuted)]), 8, 0).node_data["rwse"]
    torch.testing.assert_close(moved, original[permutation], atol=1e-6, rtol=0)


def test_lap_pe_are_nontrivial_laplacian_eigenvectors_zero_padded() -> None:
    ds = add_structural_encodings(_dataset([HOUSE, (2, [(0, 1)])]), rwse_steps=0, lap_k=3)
    lap = ds.node_data["lap_pe"]
    assert lap.shape == (7, 3) and not lap.isnan().any()
    n, pairs = HOUSE
    adjacency = np.zeros((n, n))
    for i, j in pairs:
        adjacency[i, j] = adjacency[j, i] = 1
    d = adjacency.sum(1) ** -0.5
    laplacian = np.eye(n) - d[:, None] * adjacency * d[None, :]
    eigenvalues = np.linalg.eigvalsh(laplacian)
    vectors = lap[:5].double().numpy()
    for k in range(3):
        np.testing.assert_allclose(np.linalg.norm(vectors[:, k]), 1.0, atol=1e-5)
        np.testing.assert_allclose(laplacian @ vectors[:, k], eigenvalues[k + 1] * vectors[:, k], atol=1e-5)
    # Two nodes: one non-trivial eigenvector, the other two columns are zero padding.
    assert torch.allclose(lap[5:, 0].abs(), torch.full((2,), 2**-0.5)) and torch.all(lap[5:, 1:] == 0)


def test_lap_pe_permutation_invariant_up_to_sign() -> None:
    n, pairs = HOUSE
    permutation = [2, 4, 0, 3, 1]
    inverse = {old: new for new, old in enumerate(permutation)}
    permuted = [(inverse[i], inverse[j]) for i, j in pairs]
    original = add_structural_encodings(_dataset([HOUSE]), 0, 4).node_data["lap_pe"][permutation]
    moved = add_structural_encodings(_dataset([(n, permuted)]), 0, 4).node_data["lap_pe"]
    for k in range(4):  # the house graph's Laplacian spectrum is simple: only signs may differ
        sign = torch.sign((original[:, k] * moved[:, k]).sum())
        torch.testing.assert_close(moved[:, k], sign * original[:, k], atol=1e-5, rtol=0)


def test_load_dataset_adds_and_caches_encodings(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = DataConfig(dataset="bace", rwse_steps=5, lap_k=4, limit=60)
    ds = load_dataset(cfg)
    assert ds.node_data["rwse"].shape == (int(ds.node_ptr[-1]), 5) and ds.node_data["lap_pe"].shape[1] == 4
    assert not ds.node_data["rwse"].isnan().any() and not ds.node_data["lap_pe"].isnan().any()

    def must_not_run(*args: object) -> None:
        raise AssertionError("encodings should come from the cache")

    monkeypatch.setattr(encodings, "compute_structural_encodings", must_not_run)
    monkeypatch.setattr("igt.data.compute_structural_encodings", must_not_run)
    again = load_dataset(cfg)
    assert torch.equal(again.node_data["lap_pe"], ds.node_data["lap_pe"])
    assert again[0].rwse.shape[1] == 5  # rides along into PyG Data objects


def test_cached_encodings_that_do_not_fit_the_dataset_are_rebuilt(tmp_path, monkeypatch):
    """Regression: encodings cached for another selection of graphs (an older key that missed
    how `limit` picks graphs) were attached to the wrong nodes and broke training."""
    import torch

    from igt.config import DataConfig
    from igt.data import load_dataset

    monkeypatch.setenv("IGT_CACHE_DIR", str(tmp_path / "cache"))
    cfg = DataConfig(dataset="spmotif-0.9", limit=60, rwse_steps=4, lap_k=0)
    dataset = load_dataset(cfg)
    for path in (tmp_path / "cache").rglob("*.pt"):
        if "encodings" in path.parts:  # corrupt every cached encoding: one row too few
            stale = torch.load(path, weights_only=True)
            torch.save({k: v[:-1] for k, v in stale.items()}, path)
    reloaded = load_dataset(cfg)
    assert reloaded.node_data["rwse"].shape[0] == reloaded.x.shape[0] == dataset.x.shape[0]
    assert torch.equal(reloaded.node_data["rwse"], dataset.node_data["rwse"])


def test_random_node_features_are_fixed_per_dataset_and_survive_limit() -> None:
    full = load_dataset(DataConfig(dataset="spmotif-0.9", random_node_features=4, rwse_steps=0, lap_k=0))
    again = load_dataset(DataConfig(dataset="spmotif-0.9", random_node_features=4, rwse_steps=0, lap_k=0))
    noise = full.node_data["x_random"]
    assert noise.shape == (full.x.shape[0], 4) and noise.min() >= 0 and noise.max() < 1
    assert torch.equal(noise, again.node_data["x_random"])
    # a limited run sees the very features its graphs have in the full dataset
    limited = load_dataset(DataConfig(dataset="spmotif-0.9", random_node_features=4, rwse_steps=0, lap_k=0, limit=90))
    last = limited[len(limited) - 1]  # a test graph, far from the start of the full dataset
    position = int(_first_graphs(full, 90)[-1])
    assert position > 12_000
    start = int(full.node_ptr[position])
    assert torch.equal(last.x_random, noise[start : start + last.num_nodes])
    assert "x_random" not in load_dataset(DataConfig(dataset="spmotif-0.9", rwse_steps=0, lap_k=0, limit=90)).node_data
