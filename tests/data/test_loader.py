"""``GraphDataset.batch`` and ``graph_loader`` must give exactly what PyG's collation gives."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from igt.data.dataset import collate_graphs, concat_ranges, graph_loader
from igt.data.encodings import add_random_node_features, add_structural_encodings
from igt.data.spmotif import generate_spmotif
from igt.data.task import TaskSpec

from graph_testing import TOY_FEATURES, path_graph


def toy_dataset(sizes, task=TaskSpec("binary", num_tasks=2)):
    generator = torch.Generator().manual_seed(0)
    graphs = [path_graph(n, generator) for n in sizes]
    y = torch.rand(len(sizes), task.num_tasks, generator=generator)
    y[0, 1] = float("nan")  # a missing label travels like any other
    # SMILES ride along as a list (the fingerprint baselines read them from the batch).
    dataset = collate_graphs("toy", task, TOY_FEATURES, graphs, y, smiles=["C" * (n + 1) for n in sizes])
    return add_random_node_features(add_structural_encodings(dataset, 4, 2), 3)


@pytest.fixture(scope="module")
def spmotif():
    return generate_spmotif(0.7, seed=0, sizes=(9, 3, 3))


def assert_same_batch(expected: Batch, actual: Batch) -> None:
    assert list(actual.keys()) == list(expected.keys())
    for key in expected.keys():
        value = expected[key]
        if isinstance(value, torch.Tensor):
            # Exact equality, NaN (a missing label) included.
            torch.testing.assert_close(actual[key], value, rtol=0, atol=0, equal_nan=True, msg=key)
        else:
            assert actual[key] == value, key
    assert actual.num_graphs == expected.num_graphs
    assert actual._num_nodes == expected._num_nodes
    for key, slices in expected._slice_dict.items():
        assert torch.equal(actual._slice_dict[key], slices), key
    for key, incs in expected._inc_dict.items():
        assert (actual._inc_dict[key] is None) if incs is None else torch.equal(actual._inc_dict[key], incs), key


# Sizes include an isolated node and an empty graph: both must keep their place in the batch.
SIZES = [3, 1, 5, 0, 2, 7, 4]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, len(SIZES) - 1), min_size=1, max_size=12))
def test_batch_equals_pyg_collation_on_any_selection(indices):
    dataset = toy_dataset(SIZES)
    expected = Batch.from_data_list([dataset[i] for i in indices])
    assert_same_batch(expected, dataset.batch(indices))


def test_batch_splits_back_into_the_original_graphs(spmotif):
    batch = spmotif.batch([4, 0, 7])
    for position, graph in zip([4, 0, 7], batch.to_data_list()):
        original = spmotif[position]
        for key in original.keys():
            value = original[key]
            assert torch.equal(graph[key], value) if isinstance(value, torch.Tensor) else graph[key] == value, key


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_yields_pyg_dataloader_batches_in_the_same_seeded_order(spmotif, shuffle):
    def make(loader_cls):
        generator = torch.Generator().manual_seed(3)
        if loader_cls is DataLoader:
            return DataLoader(spmotif, batch_size=4, shuffle=shuffle, generator=generator, drop_last=shuffle)
        return graph_loader(spmotif, batch_size=4, shuffle=shuffle, generator=generator, drop_last=shuffle)

    ours, theirs = make(graph_loader), make(DataLoader)
    assert len(ours) == len(theirs)
    for _ in range(2):  # the second epoch draws a new order from the same generator
        batches = list(ours)
        expected = list(theirs)
        assert len(batches) == len(expected)
        for a, b in zip(expected, batches):
            assert_same_batch(a, b)


def test_batching_benchmark_reports_both_loaders_on_the_same_graphs(spmotif):
    from igt.bench import bench_batching_vs_pyg

    result = bench_batching_vs_pyg(spmotif, batch_size=4, repeats=1)
    assert result["batching_graphs"] == len(spmotif)
    assert result["batching_ours_per_s"] > 0 and result["batching_pyg_per_s"] > 0
    assert result["batching_vs_pyg"] == pytest.approx(result["batching_ours_per_s"] / result["batching_pyg_per_s"])


_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


@pytest.mark.parametrize("device", _DEVICES)
@given(sizes=st.lists(st.integers(0, 5), max_size=6), offset=st.integers(0, 20))
@settings(max_examples=30, deadline=None)
def test_concat_ranges_joins_the_ranges_on_the_device_of_its_inputs(device, sizes, offset):
    # IGT's intervention indexes GPU token rows with this: a CPU arange inside crashed on CUDA
    # (found by scripts/gpu_check.py on an H200).
    starts = torch.tensor([offset + 10 * i for i in range(len(sizes))], dtype=torch.long, device=device)
    got = concat_ranges(starts, torch.tensor(sizes, dtype=torch.long, device=device))
    expected = [s + k for s, n in zip(starts.tolist(), sizes) for k in range(n)]
    assert got.device == starts.device and got.tolist() == expected
