"""Spurious-Motif generator: determinism, ground truth, bias, splits, graph hygiene."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch_geometric.loader import DataLoader

from igt.data.spmotif import BASES, MOTIF_EDGES, MOTIFS, SHAPE_EDGES, VARIANTS, generate_spmotif, spmotif_name
from igt.errors import IgtError

SMALL = (300, 100, 200)
BIASES = (1 / 3, 0.5, 0.7, 0.9)


@pytest.fixture(scope="module")
def ds():
    return generate_spmotif(0.7, seed=0, sizes=SMALL)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant_ds(request):
    return request.param, generate_spmotif(0.7, seed=0, sizes=SMALL, variant=request.param)


def _tensors(d):
    out = {"x": d.x, "edge_index": d.edge_index, "edge_attr": d.edge_attr, "y": d.y,
           "node_ptr": d.node_ptr, "edge_ptr": d.edge_ptr}
    out.update({f"node:{k}": v for k, v in d.node_data.items()})
    out.update({f"edge:{k}": v for k, v in d.edge_data.items()})
    out.update({f"graph:{k}": v for k, v in d.graph_data.items()})
    return out


def _graphs(d):
    """Per graph: (n, undirected edges [m, 2] with u < v, node_gt [n] bool, edge_gt [2m])."""
    for i in range(len(d)):
        n0, n1 = int(d.node_ptr[i]), int(d.node_ptr[i + 1])
        e0, e1 = int(d.edge_ptr[i]), int(d.edge_ptr[i + 1])
        ei = d.edge_index[:, e0:e1].numpy()
        und = ei[:, ei[0] < ei[1]].T
        yield n1 - n0, und, d.node_data["node_gt"][n0:n1].numpy() > 0.5, ei, d.edge_data["edge_gt"][e0:e1].numpy()


def _cell_tolerance(p: float, n: int) -> float:
    """Five binomial standard deviations: fixed seeds make this deterministic, not flaky."""
    return 5 * math.sqrt(p * (1 - p) / n) + 1e-9


def test_schema(ds):
    assert len(ds) == sum(SMALL)
    assert ds.name == "spmotif-0.7"
    assert ds.task.type == "multiclass" and ds.task.num_classes == 3 and ds.task.metric == "accuracy"
    assert ds.task.task_names == ("motif",)
    assert ds.features.node_vocab == (1,) and ds.features.edge_vocab == (1,)
    assert ds.x.dtype == torch.long and ds.x.shape == (int(ds.node_ptr[-1]), 1)
    assert int(ds.x.max()) < ds.features.node_vocab[0] and int(ds.x.min()) >= 0
    assert ds.edge_attr.dtype == torch.long and ds.edge_attr.shape == (ds.edge_index.shape[1], 1)
    assert not ds.edge_attr.any()
    assert ds.y.dtype == torch.long and ds.y.shape == (len(ds),)
    assert ds.node_data["node_gt"].dtype == torch.float32 and ds.edge_data["edge_gt"].dtype == torch.float32
    split = ds.graph_data["split"]
    assert split.dtype == torch.long and ds.graph_data["base"].dtype == torch.long
    # Train, then valid, then test; each split class-balanced.
    assert split.tolist() == [0] * SMALL[0] + [1] * SMALL[1] + [2] * SMALL[2]
    for s, n in enumerate(SMALL):
        counts = torch.bincount(ds.y[split == s], minlength=3)
        assert counts.max() - counts.min() <= 1 and int(counts.sum()) == n


def test_names():
    assert [spmotif_name(b) for b in BIASES] == ["spmotif-0.33", "spmotif-0.5", "spmotif-0.7", "spmotif-0.9"]


def test_default_sizes_are_dirs():
    default = inspect.signature(generate_spmotif).parameters["sizes"].default
    assert tuple(default) == (9000, 3000, 6000)


@pytest.mark.slow
def test_full_default_generation():
    d = generate_spmotif(0.5)
    assert torch.bincount(d.graph_data["split"]).tolist() == [9000, 3000, 6000]


def test_deterministic_and_seed_dependent(ds):
    again = generate_spmotif(0.7, seed=0, sizes=SMALL)
    a, b = _tensors(ds), _tensors(again)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    other = generate_spmotif(0.7, seed=1, sizes=SMALL)
    assert not (torch.equal(ds.y, other.y) and torch.equal(ds.node_ptr, other.node_ptr))
    assert ds.edge_index.shape != other.edge_index.shape or not torch.equal(ds.edge_index, other.edge_index)


def test_valid_and_test_do_not_depend_on_bias(ds):
    other = generate_spmotif(0.9, seed=0, sizes=SMALL)
    keep = ds.graph_data["split"] > 0
    idx = torch.nonzero(keep).flatten()
    a, b = ds.subset(idx), other.subset(idx)
    for key, value in _tensors(a).items():
        assert torch.equal(value, _tensors(b)[key]), key


def test_paper_era_crane_is_a_square_with_a_diagonal_apex():
    """DIR's `crane` (notebook of the paper, commits 9571559/5dae9c0): square 1-2-3-4, node 0 on
    the opposite corners 1 and 3. Not the 2022-09 edit's `varcycle`."""
    crane = {frozenset(e) for e in SHAPE_EDGES["crane"]}
    assert crane == {frozenset(e) for e in [(1, 2), (2, 3), (4, 3), (1, 4), (0, 1), (0, 3)]}
    assert MOTIF_EDGES["crane"] == SHAPE_EDGES["crane"]  # the default generator's class 2
    deg = lambda edges: sorted(np.bincount(np.array(edges).ravel(), minlength=5).tolist())  # noqa: E731
    assert deg(SHAPE_EDGES["crane"]) == deg(SHAPE_EDGES["house"])  # same degrees as the house
    assert VARIANTS["dir-2022-09"].shapes[2] == "varcycle" and len(SHAPE_EDGES["varcycle"]) == 7


def test_one_motif_matching_its_template(variant_ds):
    variant, ds = variant_ds
    templates = {}
    for label, shape in enumerate(VARIANTS[variant].shapes):
        edges = np.array(SHAPE_EDGES[shape])
        deg = np.bincount(edges.ravel(), minlength=5)
        templates[label] = (len(edges), sorted(deg.tolist()), int(deg[0]))

    noise = ds.graph_data["noise_edges"].tolist()
    for (n, und, gt, _, _), label, k in zip(_graphs(ds), ds.y.tolist(), noise):
        n_edges, degrees, anchor_degree = templates[label]
        assert gt.sum() == 5  # every motif has 5 nodes
        inside = gt[und[:, 0]] & gt[und[:, 1]]
        assert inside.sum() == n_edges  # noise never joins two motif nodes
        motif_deg = np.bincount(und[inside].ravel(), minlength=n)[gt]
        assert sorted(motif_deg.tolist()) == degrees
        crossing = und[gt[und[:, 0]] ^ gt[und[:, 1]]]
        assert 1 <= len(crossing) <= 1 + k
        if k == 0:  # exactly one edge joins motif and base, leaving from the anchor node
            motif_end = crossing[0][gt[crossing[0]]][0]
            assert np.bincount(und[inside].ravel(), minlength=n)[motif_end] == anchor_degree


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_noise_edges_follow_dirs_perturb(variant):
    """int(0.05 * E) tries per graph, each kept only when it touches the base: about 0.8 noise
    edges per training graph and 5.8 per test graph in the paper's generator; none in 2022-09."""
    d = generate_spmotif(0.5, seed=1, sizes=(900, 0, 600), variant=variant)
    split, noise = d.graph_data["split"], d.graph_data["noise_edges"].float()
    if VARIANTS[variant].noise == 0:
        assert noise.sum() == 0
        return
    assert 0.5 < noise[split == 0].mean() < 1.1 and 5.0 < noise[split == 2].mean() < 6.6
    for i, (n, und, gt, _, _) in enumerate(_graphs(d)):
        undirected = len(und)
        base_edges = undirected - int(noise[i])
        assert noise[i] <= int(0.05 * base_edges)  # never more than the tries


def test_gsat_variant_uses_height3_trees_where_gsat_does():
    d = generate_spmotif(0.9, seed=0, sizes=(300, 150, 0), variant="gsat")
    split, base, y = d.graph_data["split"], d.graph_data["base"], d.y
    base_nodes = d.num_nodes() - 5
    tall = {15, 40}  # balanced trees of height 3, branching 2 or 3
    cycle_trees = base_nodes[(split == 0) & (base == 0) & (y == 0)].tolist()
    other_trees = base_nodes[(split == 0) & (base == 0) & (y != 0)].tolist()
    valid_trees = base_nodes[(split == 1) & (base == 0)].tolist()
    assert cycle_trees and set(cycle_trees) <= tall and set(valid_trees) <= tall
    assert set(other_trees) <= {1, 3, 4, 7, 13}


def test_2022_09_variant_reproduces_the_earlier_data_bit_for_bit():
    """Runs committed before the generators were named used this data (digest of igt 316d410's
    generator at these sizes)."""
    import hashlib

    for directed, expected in ((False, "e554490f71c5fdda"), (True, "cbbf73410a699629")):
        d = generate_spmotif(0.7, seed=0, sizes=(60, 30, 30), directed=directed, variant="dir-2022-09")
        h = hashlib.sha256()
        for t in (d.x, d.edge_index, d.y, d.node_data["node_gt"], d.edge_data["edge_gt"], d.graph_data["base"]):
            h.update(t.numpy().tobytes())
        assert h.hexdigest()[:16] == expected


def test_old_full_configs_keep_their_generator():
    """A config.yaml written before `spmotif_variant` existed names the 2022-09 data it ran on;
    a partial user config gets today's default."""
    from igt.config import RunConfig

    old = RunConfig.from_dict({"data": {"dataset": "spmotif-0.9", "spmotif_directed": False}})
    assert old.data.spmotif_variant == "dir-2022-09"
    assert RunConfig.from_dict({"data": {"dataset": "spmotif-0.9"}}).data.spmotif_variant == "dir"
    # A molecule run ignores the generator: its old config must not differ from today's grid entry.
    molecule = RunConfig.from_dict({"data": {"dataset": "bace", "spmotif_directed": False}})
    assert molecule.data.spmotif_variant == RunConfig().data.spmotif_variant
    with pytest.raises(IgtError, match="spmotif_variant"):
        from igt.data import load_dataset

        load_dataset(RunConfig().with_overrides(["data.dataset=spmotif-0.5", "data.spmotif_variant=foo"]).data)


def test_base_is_the_declared_base(ds):
    """The non-motif part is a tree / ladder / wheel of an allowed size for its split (plus the
    noise edges that fall inside the base)."""
    small = {"tree": {1, 3, 4, 7, 13}, "ladder": {16, 18, 20, 22}, "wheel": set(range(15, 20))}
    large = {"tree": {15, 31, 63, 40, 121, 364}, "ladder": set(range(60, 100, 2)), "wheel": set(range(60, 80))}
    splits = ds.graph_data["split"].tolist()
    noise = ds.graph_data["noise_edges"].tolist()
    for (n, und, gt, _, _), base, split, k in zip(_graphs(ds), ds.graph_data["base"].tolist(), splits, noise):
        name = BASES[base]
        nb = n - 5
        m = int((~gt[und[:, 0]] & ~gt[und[:, 1]]).sum())
        crossing = int((gt[und[:, 0]] ^ gt[und[:, 1]]).sum())
        assert nb in (large if split == 2 else small)[name]
        expected = {"tree": nb - 1, "ladder": 3 * nb // 2 - 2, "wheel": 2 * (nb - 1)}[name]
        assert m + crossing - 1 == expected + k and m >= expected


def test_edge_gt_is_node_gt_on_both_ends(ds):
    for _, _, gt, ei, edge_gt in _graphs(ds):
        np.testing.assert_array_equal(edge_gt, (gt[ei[0]] & gt[ei[1]]).astype(np.float32))


@pytest.mark.parametrize("bias", BIASES)
def test_train_bias_matches_b(bias):
    n = 3000
    d = generate_spmotif(bias, seed=3, sizes=(n, 0, 0))
    y, base = d.y.numpy(), d.graph_data["base"].numpy()
    assert d.name == spmotif_name(bias)
    for c in range(3):
        of_c = base[y == c]
        for b in range(3):
            p = bias if b == c else (1 - bias) / 2
            assert abs((of_c == b).mean() - p) <= _cell_tolerance(p, len(of_c)), (c, b)
    overall = (y == base).mean()
    assert abs(overall - bias) <= _cell_tolerance(bias, n)


@pytest.mark.parametrize("split", [1, 2])
def test_valid_and_test_are_unbiased(split):
    sizes = (0, 1500, 0) if split == 1 else (0, 0, 1500)
    d = generate_spmotif(0.9, seed=4, sizes=sizes)
    y, base = d.y.numpy(), d.graph_data["base"].numpy()
    for c in range(3):
        of_c = base[y == c]
        for b in range(3):
            assert abs((of_c == b).mean() - 1 / 3) <= _cell_tolerance(1 / 3, len(of_c)), (c, b)


def test_test_bases_are_larger(ds):
    split, base = ds.graph_data["split"], ds.graph_data["base"]
    base_nodes = ds.num_nodes() - 5
    assert base_nodes[split == 2].float().mean() > 3 * base_nodes[split == 0].float().mean()
    for b in range(3):
        train = base_nodes[(split == 0) & (base == b)]
        test = base_nodes[(split == 2) & (base == b)]
        assert test.min() > train.max(), BASES[b]


def test_graphs_connected_simple_and_symmetric(ds):
    owner = torch.repeat_interleave(torch.arange(len(ds)), ds.edge_ptr.diff())
    src = (ds.edge_index[0] + ds.node_ptr[owner]).numpy()
    dst = (ds.edge_index[1] + ds.node_ptr[owner]).numpy()
    n_total = int(ds.node_ptr[-1])
    assert (ds.edge_index >= 0).all()
    assert (ds.edge_index.max(dim=0).values < ds.num_nodes()[owner]).all()
    assert not (src == dst).any()  # no self-loops
    keys = src.astype(np.int64) * n_total + dst
    assert len(np.unique(keys)) == len(keys)  # no duplicates
    assert set(keys.tolist()) == set((dst.astype(np.int64) * n_total + src).tolist())  # both directions
    adj = coo_matrix((np.ones(len(src)), (src, dst)), shape=(n_total, n_total))
    n_components, _ = connected_components(adj, directed=False)
    assert n_components == len(ds)  # graphs are disjoint blocks, so each is connected


def test_node_order_does_not_reveal_the_motif(ds):
    starts = []
    for n, _, gt, _, _ in _graphs(ds):
        positions = np.flatnonzero(gt)
        starts.append(positions.mean() / (n - 1))
    starts = np.array(starts)
    # A fixed layout (motif last) would put every mean relative position near 1.
    assert 0.35 < starts.mean() < 0.65
    assert (starts > 0.9).mean() < 0.2


def test_batches_carry_masks_and_graph_data(ds):
    batch = next(iter(DataLoader(ds, batch_size=16, shuffle=False)))
    assert batch.y.shape == (16,) and batch.y.dtype == torch.long
    assert batch.node_gt.shape == (batch.num_nodes,)
    assert batch.edge_gt.shape == (batch.edge_index.shape[1],)
    assert batch.split.shape == (16,) and batch.base.shape == (16,) and batch.noise_edges.shape == (16,)


def test_rejects_bad_arguments():
    with pytest.raises(IgtError):
        generate_spmotif(1.5, sizes=(3, 0, 0))
    with pytest.raises(IgtError):
        generate_spmotif(0.5, sizes=(3, -1, 0))


def test_limit_keeps_graphs_of_every_predefined_split(tmp_path, monkeypatch):
    """Regression: `data.limit` used to keep the first N graphs, i.e. training graphs only."""
    from igt.config import DataConfig
    from igt.data import load_dataset
    from igt.data.splits import make_split

    monkeypatch.setenv("IGT_CACHE_DIR", str(tmp_path))
    cfg = DataConfig(dataset="spmotif-0.9", limit=150, rwse_steps=0, lap_k=0)
    sizes = {name: idx.numel() for name, idx in make_split(load_dataset(cfg), cfg).items()}
    assert sizes == {"train": 75, "valid": 25, "test": 50}


def test_directed_keeps_each_edge_once_oriented_from_base_to_motif():
    ds = generate_spmotif(0.7, seed=0, sizes=SMALL, variant="dir-2022-09")  # no noise edges
    directed = generate_spmotif(0.7, seed=0, sizes=SMALL, directed=True, variant="dir-2022-09")
    assert torch.equal(directed.x, ds.x) and torch.equal(directed.y, ds.y)
    assert torch.equal(directed.node_data["node_gt"], ds.node_data["node_gt"])
    assert torch.equal(directed.edge_ptr * 2, ds.edge_ptr)  # same graphs, each edge once
    for i in range(len(ds)):
        both, one = ds[i].edge_index, directed[i].edge_index
        assert {tuple(e) for e in both.t().tolist()} == {tuple(e) for e in torch.cat([one, one.flip(0)], 1).t().tolist()}
        # The one edge joining base and motif goes from the base node to the motif's anchor.
        gt = directed[i].node_gt
        crossing = one[:, gt[one[0]] != gt[one[1]]]
        assert crossing.shape[1] == 1 and gt[crossing[0, 0]] == 0 and gt[crossing[1, 0]] == 1
    edge_gt = directed.edge_data["edge_gt"]
    ends = directed.node_data["node_gt"][directed.edge_index + directed.node_ptr[:-1].repeat_interleave(directed.edge_ptr.diff())]
    assert torch.equal(edge_gt, ends[0] * ends[1])


def test_directed_option_reaches_the_dataset_and_its_own_cache(tmp_path, monkeypatch):
    from igt.config import DataConfig
    from igt.data import load_dataset

    monkeypatch.setenv("IGT_CACHE_DIR", str(tmp_path))
    both = load_dataset(DataConfig(dataset="spmotif-0.5", limit=60, rwse_steps=0, lap_k=0))
    one = load_dataset(DataConfig(dataset="spmotif-0.5", limit=60, rwse_steps=0, lap_k=0, spmotif_directed=True))
    assert one.edge_index.shape[1] * 2 == both.edge_index.shape[1]
