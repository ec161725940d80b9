"""Graph encoders that turn a PyG batch into node embeddings, registered by name.

``build_backbone(cfg, features, data)`` looks ``cfg.name`` up in :data:`BACKBONES`. Every backbone
returns ``[N, hidden]`` node embeddings (no pooling, no head) and accepts ``edge_weight [E]`` in
``[0, 1]`` that scales the messages of its local message passing: the hook through which
rationalization methods inject edge masks. The plain ``transformer`` has no message passing
and ignores ``edge_weight``.
"""

from __future__ import annotations

import dataclasses

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from igt.config import BackboneConfig, DataConfig
from igt.data.task import FeatureSpec
from igt.errors import IgtError
from igt.nn.attention import PaddedLayout
from igt.nn.encoders import CategoricalEncoder, LapPEEncoder, RWSEEncoder, require
from igt.nn.layers import GINEConv, GPSLayer, GTLayer, TransformerLayer, VirtualNode, make_norm, reset_module
from igt.registry import Registry


def graph_layout(batch: object) -> tuple[Tensor, Tensor, int]:
    """``(batch [N], ptr [B + 1], B)`` of a PyG ``Batch`` (or of a single ``Data``)."""
    num_nodes = batch.x.shape[0]
    vector = getattr(batch, "batch", None)
    ptr = getattr(batch, "ptr", None)
    if vector is None:
        vector = torch.zeros(num_nodes, dtype=torch.long, device=batch.x.device)
    if ptr is None:
        num_graphs = int(vector.max()) + 1 if num_nodes else 0
        counts = torch.bincount(vector, minlength=num_graphs)
        ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return vector, ptr, ptr.numel() - 1


def edge_features(batch: object) -> Tensor:
    """``long [E, F_e]`` edge features, or ``[E, 0]`` when the batch carries none."""
    edge_attr = getattr(batch, "edge_attr", None)
    if edge_attr is None:
        return torch.zeros(batch.edge_index.shape[1], 0, dtype=torch.long, device=batch.edge_index.device)
    return edge_attr


class NodeInput(nn.Module):
    """Initial node embeddings: categorical features plus projected RWSE, Laplacian PE and
    random node features.

    Args:
        node_vocab: Cardinalities of the node feature columns.
        dim: Embedding width.
        rwse_steps: RWSE length to read from ``batch.rwse`` (0: not used).
        lap_k: Eigenvectors to read from ``batch.lap_pe`` (0: not used).
        random_features: Width of ``batch.x_random`` (0: not used).
    """

    def __init__(self, node_vocab: tuple[int, ...], dim: int, rwse_steps: int = 0, lap_k: int = 0,
                 random_features: int = 0) -> None:
        super().__init__()
        self.atoms = CategoricalEncoder(node_vocab, dim)
        self.rwse = RWSEEncoder(rwse_steps, dim) if rwse_steps > 0 else None
        self.lap_pe = LapPEEncoder(lap_k, dim) if lap_k > 0 else None
        self.random = nn.Linear(random_features, dim) if random_features > 0 else None
        self._options = f"dim={dim}, rwse_steps={rwse_steps}, lap_k={lap_k}, random_features={random_features}"

    def extra_repr(self) -> str:
        return self._options

    def reset_parameters(self) -> None:
        """Reset every encoder."""
        reset_module(self)

    def forward(self, batch: object) -> Tensor:
        """Encode the nodes of ``batch``.

        Args:
            batch: PyG batch with ``x`` (and ``rwse`` / ``lap_pe`` / ``x_random`` when used).

        Returns:
            ``[N, dim]``.
        """
        h = self.atoms(batch.x)
        if self.rwse is not None:
            h = h + self.rwse(require(batch, "rwse", "set data.rwse_steps > 0 or backbone.use_rwse=false"))
        if self.lap_pe is not None:
            lap_pe = require(batch, "lap_pe", "set data.lap_k > 0 or backbone.use_lap_pe=false")
            vector, _, num_graphs = graph_layout(batch)
            h = h + self.lap_pe(lap_pe, vector, num_graphs)
        if self.random is not None:
            h = h + self.random(require(batch, "x_random", "set data.random_node_features > 0").to(h.dtype))
        return h


class Backbone(nn.Module):
    """Base class: ``forward(batch, edge_weight=None) -> [N, hidden]`` node embeddings.

    Args:
        hidden: Width of the node embeddings.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self._options = f"hidden={hidden}"

    def extra_repr(self) -> str:
        return self._options

    def reset_parameters(self) -> None:
        """Reset every sub-module."""
        reset_module(self)

    def forward(self, batch: object, edge_weight: Tensor | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError


def _backbone_options(cfg: BackboneConfig) -> str:
    """``extra_repr`` of a backbone: its configuration."""
    return ", ".join(f"{f.name}={getattr(cfg, f.name)!r}" for f in dataclasses.fields(cfg))


def _check_heads(cfg: BackboneConfig) -> None:
    if cfg.heads < 1 or cfg.hidden % cfg.heads:
        raise IgtError(f"backbone.hidden={cfg.hidden} must be divisible by backbone.heads={cfg.heads}")


def _node_input(cfg: BackboneConfig, features: FeatureSpec, data: DataConfig, force_lap_pe: bool = False) -> NodeInput:
    rwse_steps = data.rwse_steps if cfg.use_rwse else 0
    lap_k = data.lap_k if (cfg.use_lap_pe or force_lap_pe) else 0
    return NodeInput(features.node_vocab, cfg.hidden, rwse_steps, lap_k, data.random_node_features)


class GINBackbone(Backbone):
    """OGB-style GINE (optionally with a virtual node), plus optional RWSE / LapPE input.

    Each layer has its own bond encoder; ``GINE -> norm -> ReLU (not after the last layer) ->
    dropout``, GIN's MLP being ``Linear(d, 2d) -> norm -> ReLU -> Linear(2d, d)``.

    Args:
        cfg: Width, depth, dropout, norm, PE switches.
        features: Node and edge vocabularies.
        data: RWSE / LapPE sizes.
        virtual_node: Add OGB's virtual node.
    """

    def __init__(
        self, cfg: BackboneConfig, features: FeatureSpec, data: DataConfig, virtual_node: bool = False
    ) -> None:
        super().__init__(cfg.hidden)
        self._options = _backbone_options(cfg)
        d = cfg.hidden
        self.dropout = cfg.dropout
        self.input = _node_input(cfg, features, data)
        self.bonds = nn.ModuleList(CategoricalEncoder(features.edge_vocab, d) for _ in range(cfg.layers))
        self.convs = nn.ModuleList(
            GINEConv(nn.Sequential(nn.Linear(d, 2 * d), make_norm(cfg.norm, 2 * d), nn.ReLU(), nn.Linear(2 * d, d)))
            for _ in range(cfg.layers)
        )
        self.norms = nn.ModuleList(make_norm(cfg.norm, d) for _ in range(cfg.layers))
        self.virtual_node = VirtualNode(d, cfg.layers, cfg.dropout, cfg.norm) if virtual_node else None

    def forward(self, batch: object, edge_weight: Tensor | None = None) -> Tensor:
        """Node embeddings.

        Args:
            batch: PyG batch (``x``, ``edge_index``, ``edge_attr``, ``batch``, ``ptr``, PEs).
            edge_weight: Optional ``[E]`` message weights.

        Returns:
            ``[N, hidden]``.
        """
        vector, _, num_graphs = graph_layout(batch)
        edge_attr = edge_features(batch)
        h = self.input(batch)
        vn = self.virtual_node.initial(num_graphs) if self.virtual_node is not None else None
        last = len(self.convs) - 1
        for i, (bond, conv, norm) in enumerate(zip(self.bonds, self.convs, self.norms)):
            if vn is not None:
                h = h + vn.index_select(0, vector)
            out = norm(conv(h, batch.edge_index, bond(edge_attr), edge_weight))
            if i < last:
                out = F.relu(out)
            out = F.dropout(out, self.dropout, self.training)
            if vn is not None and i < last:
                vn = self.virtual_node.update(i, h, vn, vector)
            h = out
        return h


class GPSBackbone(Backbone):
    """GraphGPS: GINE + global attention per layer (Rampasek et al., 2022).

    Edge features are encoded once at the input and shared by all layers; the padded layout
    used by global attention is built once per forward.

    Args:
        cfg: Width, depth, heads, dropouts, norm, attention kind, PE switches.
        features: Node and edge vocabularies.
        data: RWSE / LapPE sizes.
    """

    def __init__(self, cfg: BackboneConfig, features: FeatureSpec, data: DataConfig) -> None:
        super().__init__(cfg.hidden)
        self._options = _backbone_options(cfg)
        _check_heads(cfg)
        self.input = _node_input(cfg, features, data)
        self.bonds = CategoricalEncoder(features.edge_vocab, cfg.hidden)
        self.layers = nn.ModuleList(
            GPSLayer(cfg.hidden, GINEConv(nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(),
                                                        nn.Linear(cfg.hidden, cfg.hidden))),
                     cfg.heads, cfg.dropout, cfg.attn_dropout, cfg.norm, cfg.attention)
            for _ in range(cfg.layers)
        )

    def forward(self, batch: object, edge_weight: Tensor | None = None) -> Tensor:
        """Node embeddings.

        Args:
            batch: PyG batch (``x``, ``edge_index``, ``edge_attr``, ``batch``, ``ptr``, PEs).
            edge_weight: Optional ``[E]`` weights of the GINE messages.

        Returns:
            ``[N, hidden]``.
        """
        vector, ptr, num_graphs = graph_layout(batch)
        layout = PaddedLayout.from_batch(vector, num_graphs, ptr)
        h = self.input(batch)
        e = self.bonds(edge_features(batch))
        for layer in self.layers:
            h = layer(h, batch.edge_index, e, layout, edge_weight)
        return h


class GTBackbone(Backbone):
    """Dwivedi & Bresson's graph transformer: neighbour attention with edge features.

    Uses Laplacian PE whenever ``data.lap_k > 0`` (whatever ``use_lap_pe`` says), as in the
    paper; RWSE follows ``use_rwse``.

    Args:
        cfg: Width, depth, heads, dropouts, norm, PE switches.
        features: Node and edge vocabularies.
        data: RWSE / LapPE sizes.
    """

    def __init__(self, cfg: BackboneConfig, features: FeatureSpec, data: DataConfig) -> None:
        super().__init__(cfg.hidden)
        self._options = _backbone_options(cfg)
        _check_heads(cfg)
        self.input = _node_input(cfg, features, data, force_lap_pe=True)
        self.bonds = CategoricalEncoder(features.edge_vocab, cfg.hidden)
        self.layers = nn.ModuleList(
            GTLayer(cfg.hidden, cfg.heads, cfg.dropout, cfg.attn_dropout, cfg.norm, update_edges=i < cfg.layers - 1)
            for i in range(cfg.layers)
        )

    def forward(self, batch: object, edge_weight: Tensor | None = None) -> Tensor:
        """Node embeddings.

        Args:
            batch: PyG batch (``x``, ``edge_index``, ``edge_attr``, ``batch``, ``ptr``, PEs).
            edge_weight: Optional ``[E]`` multipliers of the attention messages.

        Returns:
            ``[N, hidden]``.
        """
        h = self.input(batch)
        e = self.bonds(edge_features(batch))
        for layer in self.layers:
            h, e = layer(h, e, batch.edge_index, edge_weight)
        return h


class TransformerBackbone(Backbone):
    """Plain transformer over each graph's nodes; structure enters only through RWSE / LapPE.

    ``edge_weight`` is accepted for interface compatibility and ignored (no message passing).

    Args:
        cfg: Width, depth, heads, dropouts, norm, attention kind, PE switches.
        features: Node vocabularies.
        data: RWSE / LapPE sizes.
    """

    def __init__(self, cfg: BackboneConfig, features: FeatureSpec, data: DataConfig) -> None:
        super().__init__(cfg.hidden)
        self._options = _backbone_options(cfg)
        _check_heads(cfg)
        self.input = _node_input(cfg, features, data)
        self.layers = nn.ModuleList(
            TransformerLayer(cfg.hidden, cfg.heads, cfg.dropout, cfg.attn_dropout, cfg.norm, cfg.attention)
            for _ in range(cfg.layers)
        )

    def forward(self, batch: object, edge_weight: Tensor | None = None) -> Tensor:
        """Node embeddings.

        Args:
            batch: PyG batch (``x``, ``batch``, ``ptr``, PEs).
            edge_weight: Ignored.

        Returns:
            ``[N, hidden]``.
        """
        vector, ptr, num_graphs = graph_layout(batch)
        layout = PaddedLayout.from_batch(vector, num_graphs, ptr)
        h = self.input(batch)
        for layer in self.layers:
            h = layer(h, layout)
        return h


BackboneFactory = Callable[[BackboneConfig, FeatureSpec, DataConfig], Backbone]
BACKBONES: Registry[BackboneFactory] = Registry("backbone")
BACKBONES.register("gin")(GINBackbone)
BACKBONES.register("gps")(GPSBackbone)
BACKBONES.register("gt")(GTBackbone)
BACKBONES.register("transformer")(TransformerBackbone)


@BACKBONES.register("gin-vn")
def _gin_virtual_node(cfg: BackboneConfig, features: FeatureSpec, data: DataConfig) -> Backbone:
    return GINBackbone(cfg, features, data, virtual_node=True)


def build_backbone(cfg: BackboneConfig, features: FeatureSpec, data: DataConfig) -> Backbone:
    """Build the backbone named ``cfg.name``.

    Args:
        cfg: Backbone options.
        features: Categorical vocabularies of the dataset.
        data: Data options (RWSE length, Laplacian PE size).

    Returns:
        A :class:`Backbone` producing ``[N, cfg.hidden]`` node embeddings.

    Raises:
        IgtError: Unknown name, norm or attention, or ``hidden`` not divisible by ``heads``.
    """
    if cfg.layers < 1 or cfg.hidden < 1:
        raise IgtError(f"backbone.layers and backbone.hidden must be >= 1, got {cfg.layers} and {cfg.hidden}")
    return BACKBONES.get(cfg.name)(cfg, features, data)
