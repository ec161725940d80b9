"""Padded layouts and global attention: exactness against a per-graph reference, masking, grouping."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igt.nn import attention
from igt.nn.attention import LinearAttention, MultiHeadAttention, PaddedLayout, _group_bounds, make_attention


def layout_of(sizes: list[int], group: bool = True) -> PaddedLayout:
    counts = torch.tensor(sizes, dtype=torch.long)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), counts)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return PaddedLayout.from_batch(batch, len(sizes), ptr, group=group)


def reference(module: torch.nn.Module, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Attention computed graph by graph with no padding at all."""
    dim, heads = module.dim, module.heads
    width = dim // heads
    outs = []
    for rows in torch.split(x, sizes):
        q, k, v = module.qkv(rows).view(-1, 3, heads, width).unbind(1)  # [n, h, w]
        if isinstance(module, MultiHeadAttention):
            weights = torch.softmax(torch.einsum("ihw,jhw->hij", q, k) / math.sqrt(width), dim=-1)
            out = torch.einsum("hij,jhw->ihw", weights, v)
        else:
            q, k = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
            scores = torch.einsum("ihw,jhw->hij", q, k)
            out = torch.einsum("hij,jhw->ihw", scores / (scores.sum(-1, keepdim=True) + module.eps), v)
        outs.append(module.out(out.reshape(-1, dim)))
    return torch.cat(outs)


@pytest.mark.parametrize("cls", [MultiHeadAttention, LinearAttention])
@pytest.mark.parametrize("overhead", [0, attention.GROUP_OVERHEAD, None], ids=["every-size", "default", "one-padding"])
@settings(max_examples=10, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_matches_per_graph_attention(cls: type, overhead: int | None, sizes: list[int], seed: int) -> None:
    torch.manual_seed(seed)
    module = cls(8, 2).eval()
    x = torch.randn(sum(sizes), 8)
    original = attention.GROUP_OVERHEAD
    attention.GROUP_OVERHEAD = overhead if overhead is not None else original
    try:
        layout = layout_of(sizes, group=overhead is not None)
    finally:
        attention.GROUP_OVERHEAD = original
    with torch.no_grad():
        torch.testing.assert_close(module(x, layout), reference(module, x, sizes), atol=1e-5, rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=30), min_size=0, max_size=12))
def test_layout_covers_every_node_once_and_round_trips(sizes: list[int]) -> None:
    layout = layout_of(sizes)
    nodes = torch.cat([g.nodes for g in layout.groups])
    assert sorted(nodes.tolist()) == list(range(sum(sizes)))
    assert sum(g.num_graphs for g in layout.groups) == len(sizes)
    for g in layout.groups:
        assert int(g.mask.sum()) == g.nodes.numel()
    x = torch.randn(sum(sizes), 3)
    torch.testing.assert_close(layout.apply(lambda dense, group: dense * 2, x), 2 * x)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=7),
    overhead=st.sampled_from([0, 5, 40]),
)
def test_group_bounds_are_optimal(sizes: list[int], overhead: int) -> None:
    def cost(bounds: list[int]) -> int:
        total, lower = 0, -1
        for bound in bounds:
            members = [s for s in sizes if lower < s <= bound]
            total += len(members) * bound**2 + overhead
            lower = bound
        return total

    original = attention.GROUP_OVERHEAD
    attention.GROUP_OVERHEAD = overhead
    try:
        bounds = _group_bounds(sizes)
    finally:
        attention.GROUP_OVERHEAD = original
    distinct = sorted(set(sizes))
    assert bounds == sorted(bounds) and bounds[-1] == max(sizes) and set(bounds) <= set(distinct)
    best = min(
        cost([*chosen, distinct[-1]])
        for r in range(len(distinct))
        for chosen in itertools.combinations(distinct[:-1], r)
    )
    assert cost(bounds) == best


def test_molecule_like_batch_is_split() -> None:
    sizes = [20 + i % 15 for i in range(127)] + [150]
    layout = layout_of(sizes)
    assert len(layout.groups) > 1
    padded = sum(g.num_graphs * g.max_nodes**2 for g in layout.groups)
    assert padded < len(sizes) * 150**2 / 5


@pytest.mark.parametrize("cls", [MultiHeadAttention, LinearAttention])
@pytest.mark.parametrize("group", [True, False], ids=["grouped", "one-padding"])
@settings(max_examples=10, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=6),
       seed=st.integers(0, 2**16), prefix_only=st.booleans())
def test_query_rows_get_the_full_attention_output(cls: type, group: bool, sizes: list[int], seed: int,
                                                  prefix_only: bool) -> None:
    """``queries=`` returns exactly the selected rows of the all-rows output, in row order,
    whether or not the query rows come first in their graph (and for graphs with none)."""
    torch.manual_seed(seed)
    module = cls(8, 2).eval()
    x = torch.randn(sum(sizes), 8)
    if prefix_only:  # the intervener's pattern: each graph's first rows
        queries = torch.cat([torch.arange(n) < torch.randint(0, n + 1, ()) for n in sizes])
    else:
        queries = torch.rand(sum(sizes)) < 0.5
    layout = layout_of(sizes, group=group)
    with torch.no_grad():
        full = module(x, layout)
        picked = module(x, layout, queries=queries)
    assert picked.shape == (int(queries.sum()), 8)
    torch.testing.assert_close(picked, full[queries], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cls", [MultiHeadAttention, LinearAttention])
def test_empty_graphs_and_training_mode(cls: type) -> None:
    torch.manual_seed(0)
    module = cls(8, 2, 0.5) if cls is MultiHeadAttention else cls(8, 2)
    sizes = [3, 0, 1, 5, 0]
    x = torch.randn(sum(sizes), 8, requires_grad=True)
    out = module.train()(x, layout_of(sizes))
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


def test_padded_keys_do_not_change_a_graph() -> None:
    torch.manual_seed(0)
    for module in (MultiHeadAttention(8, 2).eval(), LinearAttention(8, 2).eval()):
        x_small = torch.randn(3, 8)
        x_big = torch.randn(25, 8)
        with torch.no_grad():
            alone = module(x_small, layout_of([3], group=False))
            mixed = module(torch.cat([x_small, x_big]), layout_of([3, 25], group=False))[:3]
        torch.testing.assert_close(mixed, alone, atol=1e-5, rtol=1e-4)


def test_make_attention() -> None:
    assert isinstance(make_attention("softmax", 8, 2, 0.1), MultiHeadAttention)
    assert isinstance(make_attention("linear", 8, 2), LinearAttention)
    with pytest.raises(ValueError, match="unknown attention 'performer'"):
        make_attention("performer", 8, 2)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
