"""Spurious-Motif (DIR, ICLR 2022), generated locally with known ground-truth rationales.

Every graph is one *base* (tree, ladder or wheel) with one *motif* (cycle, house or crane) hung
on it by a single edge, plus a few random *noise* edges that touch the base. The label is the
motif; the base is the spurious feature: in the training split motif ``c`` sits on base ``c``
with probability ``b`` and on each other base with ``(1 - b) / 2``. Validation and test draw the
base uniformly (unbiased), and the test split uses much larger bases.

Three generators (``variant``), all in use in the literature (``docs/spmotif.md``):

* ``dir`` (default): DIR's notebook as the paper ran it (DIR-GNN commits 9571559, 2022-01-31,
  and 5dae9c0): third motif ``crane``, 5 % noise edges. GSAT, CIGA and GOOD use the same shapes.
* ``dir-2022-09``: the notebook as edited on 2022-09-04 (DIR-GNN 86f558f), seven months after
  the paper: third motif ``varcycle``, no noise edges.
* ``gsat``: GSAT's port (Graph-COM/GSAT ``gen_spmotif.py``): as ``dir``, but every training
  graph of the cycle class and every validation graph with a tree base uses a tree of height 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from igt.data.dataset import GraphDataset, collate_graphs
from igt.data.task import FeatureSpec, TaskSpec
from igt.errors import IgtError

MOTIFS = ("cycle", "house", "crane")
BASES = ("tree", "ladder", "wheel")
SPLITS = ("train", "valid", "test")
DEFAULT_SIZES = (9000, 3000, 6000)
#: Bumped whenever generated graphs change, so cached datasets are rebuilt.
SPMOTIF_VERSION = "2"

# Undirected shape templates on 5 nodes. Node 0 is the anchor that the single edge to the base
# leaves from (DIR's build_graph attaches the shape's first node).
SHAPE_EDGES: dict[str, tuple[tuple[int, int], ...]] = {
    # 5-cycle (DIR's "dircycle" shape, stored undirected).
    "cycle": ((0, 1), (1, 2), (2, 3), (3, 4), (4, 0)),
    # Square 1-2-3-4 with a roof apex 0 on the adjacent corners 1 and 4.
    "house": ((1, 2), (2, 3), (3, 4), (4, 1), (0, 1), (0, 4)),
    # Square 1-2-3-4 with node 0 on the opposite corners 1 and 3: no triangle, and the same
    # degree multiset as the house, so only the arrangement tells them apart.
    "crane": ((1, 2), (2, 3), (4, 3), (1, 4), (0, 1), (0, 3)),
    # Hub 0 joined to every node of the path 1-2-3-4 (the 2022-09 edit's third motif).
    "varcycle": ((0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4)),
}
MOTIF_NODES = 5


@dataclass(frozen=True)
class Variant:
    """One generator of the literature.

    Args:
        shapes: The shape of each label (cycle, house, crane classes).
        noise: DIR's ``perturb(G, p)``: ``int(p * E)`` tries to add an edge touching the base.
        tree_height3_train_labels: Labels whose training graphs use trees of height 3 (GSAT).
        tree_height3_valid: Validation trees all have height 3 (GSAT).
    """

    shapes: tuple[str, str, str]
    noise: float
    tree_height3_train_labels: tuple[int, ...] = ()
    tree_height3_valid: bool = False


VARIANTS: dict[str, Variant] = {
    "dir": Variant(("cycle", "house", "crane"), noise=0.05),
    "dir-2022-09": Variant(("cycle", "house", "varcycle"), noise=0.0),
    "gsat": Variant(("cycle", "house", "crane"), noise=0.05, tree_height3_train_labels=(0,), tree_height3_valid=True),
}
DEFAULT_VARIANT = "dir"

#: The default generator's motif of each label (label name -> undirected edges).
MOTIF_EDGES = {label: SHAPE_EDGES[shape] for label, shape in zip(MOTIFS, VARIANTS[DEFAULT_VARIANT].shapes)}

# Size parameter ranges (inclusive) per base and regime: tree = height (branching 2 or 3, drawn
# per graph), ladder = rungs (2 * rungs nodes), wheel = total nodes (hub + rim).
_SMALL = {"tree": (0, 2), "ladder": (8, 11), "wheel": (15, 19)}  # train and valid
_LARGE = {"tree": (3, 5), "ladder": (30, 49), "wheel": (60, 79)}  # test
_TALL_TREE = {**_SMALL, "tree": (3, 3)}  # GSAT's trees in cycle-class training / validation graphs
_TREE_BRANCHING = (2, 3)


def spmotif_name(bias: float) -> str:
    """``spmotif-0.33`` for b = 1/3, ``spmotif-0.5``, ``spmotif-0.7``, ``spmotif-0.9``."""
    return f"spmotif-{round(float(bias), 2):g}"


def generate_spmotif(
    bias: float,
    seed: int = 0,
    sizes: tuple[int, int, int] = DEFAULT_SIZES,
    directed: bool = False,
    variant: str = DEFAULT_VARIANT,
) -> GraphDataset:
    """Generate Spurious-Motif with bias ``b`` following DIR's protocol.

    Args:
        bias: Probability that a training graph's base matches its motif (1/3 = no bias).
        seed: Seed of the numpy generator; the same seed gives identical tensors. Validation and
            test draw from their own streams that do not depend on ``bias``, so for one seed the
            four biases share the same validation and test graphs.
        sizes: Graphs in the train, valid and test splits (DIR: 9,000 / 3,000 / 6,000). Each split
            is class-balanced (remainders go to the first classes) and shuffled.
        directed: Store each edge once, from the node built first to the one built later (base
            before motif, parent before child), as DIR's files hold them; the same graphs
            otherwise.
        variant: ``dir`` (the paper's generator), ``dir-2022-09`` or ``gsat`` (module docstring).

    Returns:
        A :class:`GraphDataset` named ``spmotif-<b>`` with a 3-class ``motif`` label
        (0 cycle, 1 house, 2 crane), one constant categorical node feature, edges in both
        directions (once with ``directed``), ``node_data["node_gt"]`` / ``edge_data["edge_gt"]``
        (1 on the motif; noise edges are 0), ``graph_data["split"]`` (0 train, 1 valid,
        2 test), ``graph_data["base"]`` (0 tree, 1 ladder, 2 wheel) and
        ``graph_data["noise_edges"]`` (undirected noise edges added). Graphs are ordered train,
        valid, test.
    """
    bias = float(bias)
    if not 0.0 <= bias <= 1.0:
        raise IgtError(f"spmotif bias must lie in [0, 1], got {bias}")
    if len(sizes) != 3 or any(int(n) < 0 for n in sizes):
        raise IgtError(f"spmotif sizes must be three non-negative counts (train, valid, test), got {sizes}")
    if variant not in VARIANTS:
        raise IgtError(f"spmotif variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]

    streams = np.random.SeedSequence(int(seed)).spawn(len(SPLITS))
    graphs: list[dict[str, torch.Tensor]] = []
    labels, bases, splits, noise = [], [], [], []
    for split_id, (n_graphs, stream) in enumerate(zip(sizes, streams)):
        rng = np.random.default_rng(stream)
        y, base = _draw_labels_and_bases(rng, int(n_graphs), bias if split_id == 0 else 1.0 / 3.0)
        regime = _LARGE if split_id == 2 else _SMALL
        for label, base_id in zip(y.tolist(), base.tolist()):
            tall_tree = (split_id == 0 and label in spec.tree_height3_train_labels) or (
                split_id == 1 and spec.tree_height3_valid)
            graph = _build_graph(rng, spec.shapes[label], base_id, _TALL_TREE if tall_tree else regime,
                                 spec.noise, directed)
            noise.append(graph.pop("noise_edges"))
            graphs.append(graph)
        labels.append(y)
        bases.append(base)
        splits.append(np.full(int(n_graphs), split_id))

    task = TaskSpec("multiclass", num_classes=len(MOTIFS), metric="accuracy", task_names=("motif",))
    features = FeatureSpec(node_vocab=(1,), edge_vocab=(1,))
    y_all = torch.from_numpy(np.concatenate(labels)).long()
    ds = collate_graphs(spmotif_name(bias), task, features, graphs, y_all)
    ds.graph_data["split"] = torch.from_numpy(np.concatenate(splits)).long()
    ds.graph_data["base"] = torch.from_numpy(np.concatenate(bases)).long()
    ds.graph_data["noise_edges"] = torch.tensor(noise, dtype=torch.long)
    return ds


def _draw_labels_and_bases(rng: np.random.Generator, n: int, bias: float) -> tuple[np.ndarray, np.ndarray]:
    """Balanced, shuffled labels; base = label with prob ``bias``, else one of the other two."""
    y = rng.permutation(np.arange(n) % len(MOTIFS))
    other = (y + 1 + rng.integers(0, 2, size=n)) % len(BASES)  # each other base with (1-b)/2
    base = np.where(rng.random(n) < bias, y, other)
    return y.astype(np.int64), base.astype(np.int64)


def _build_graph(rng: np.random.Generator, shape: str, base_id: int, regime: dict,
                 noise: float = 0.0, directed: bool = False) -> dict[str, torch.Tensor]:
    base_name = BASES[base_id]
    low, high = regime[base_name]
    size = int(rng.integers(low, high + 1))
    branching = int(rng.choice(_TREE_BRANCHING)) if base_name == "tree" else 0
    base_edges, n_base = _base_template(base_name, size, branching)
    motif = _motif_template(shape)
    plugin = int(rng.integers(n_base))  # base node the motif hangs on, uniform as in DIR
    n = n_base + MOTIF_NODES
    edges = np.concatenate([base_edges, motif + n_base, np.array([[n_base, plugin]])])
    noise_edges = _noise_edges(rng, edges, n, n_base, noise)
    if len(noise_edges):
        edges = np.concatenate([edges, noise_edges])

    # Relabel nodes by a random permutation: built as above, motif nodes would always be the
    # last five, so any order-sensitive component (positional tricks, index-based padding, a
    # buggy non-invariant layer) could read the rationale, or even the label, off the indices.
    new_id = rng.permutation(n)
    built_edges, edges = edges, new_id[edges]
    node_gt = np.zeros(n, dtype=np.float32)
    node_gt[new_id[n_base:]] = 1.0

    # Both directions (or, directed, from the node built first, as networkx lists the edges of
    # DIR's graphs), sorted by (source, target) so edge order depends only on the shuffled ids.
    if directed:
        first = np.minimum(built_edges[:, 0], built_edges[:, 1])
        later = np.maximum(built_edges[:, 0], built_edges[:, 1])
        src, dst = new_id[first], new_id[later]
    else:
        src = np.concatenate([edges[:, 0], edges[:, 1]])
        dst = np.concatenate([edges[:, 1], edges[:, 0]])
    order = np.lexsort((dst, src))
    edge_index = np.stack([src[order], dst[order]])
    edge_gt = node_gt[edge_index[0]] * node_gt[edge_index[1]]
    n_edges = edge_index.shape[1]
    return {
        "x": torch.zeros(n, 1, dtype=torch.long),
        "edge_index": torch.from_numpy(edge_index),
        "edge_attr": torch.zeros(n_edges, 1, dtype=torch.long),
        "node_gt": torch.from_numpy(node_gt),
        "edge_gt": torch.from_numpy(edge_gt),
        "noise_edges": len(noise_edges),
    }


def _noise_edges(rng: np.random.Generator, edges: np.ndarray, n: int, n_base: int, p: float) -> np.ndarray:
    """DIR's ``perturb(G, p, id=role_id)``: ``int(p * E)`` tries (E undirected edges); each draws
    node pairs uniformly until one is distinct and not yet joined, and adds it only when one end is
    a base node (nodes ``< n_base``; DIR's role 0). Returns ``[k, 2]`` with the earlier-built node
    first. Noise edges never join two motif nodes, so the ground truth is unchanged."""
    tries = int(p * len(edges))
    if tries == 0:
        return np.zeros((0, 2), dtype=np.int64)
    present = {(min(a, b), max(a, b)) for a, b in edges.tolist()}
    added = []
    for _ in range(tries):
        while True:
            u, v = int(rng.integers(n)), int(rng.integers(n))
            pair = (min(u, v), max(u, v))
            if u != v and pair not in present:
                break
        if pair[0] < n_base:  # the smaller id is a base node whenever either end is
            present.add(pair)
            added.append(pair)
    return np.array(added, dtype=np.int64).reshape(-1, 2)


@lru_cache(maxsize=None)
def _motif_template(name: str) -> np.ndarray:
    edges = np.array(SHAPE_EDGES[name], dtype=np.int64)
    edges.flags.writeable = False  # cached and shared between graphs
    return edges


@lru_cache(maxsize=None)
def _base_template(name: str, size: int, branching: int = 0) -> tuple[np.ndarray, int]:
    """Undirected edge list ``[E, 2]`` and node count of a base graph."""
    if name == "tree":
        # Balanced tree in breadth-first numbering: node i > 0 hangs under (i - 1) // branching.
        n = sum(branching**level for level in range(size + 1))
        child = np.arange(1, n)
        edges = np.stack([(child - 1) // branching, child], axis=1)
    elif name == "ladder":
        # Two rails of `size` nodes (0..size-1 and size..2size-1) joined by `size` rungs.
        n = 2 * size
        rail = np.arange(size - 1)
        rung = np.arange(size)
        edges = np.concatenate([
            np.stack([rail, rail + 1], axis=1),
            np.stack([rail + size, rail + size + 1], axis=1),
            np.stack([rung, rung + size], axis=1),
        ])
    elif name == "wheel":
        # Hub 0 joined to every node of the rim cycle 1..size-1.
        n = size
        rim = np.arange(1, size)
        edges = np.concatenate([
            np.stack([np.zeros_like(rim), rim], axis=1),
            np.stack([rim, np.roll(rim, -1)], axis=1),
        ])
    else:
        raise ValueError(f"unknown base {name!r}")
    edges = edges.astype(np.int64).reshape(-1, 2)
    edges.flags.writeable = False  # cached and shared between graphs
    return edges, n
