"""The Invariant Graph Transformer (IGT): node-level (IGT-N) and virtual-node-level (IGT-VN)
intervention through self-attention, trained as a min-max game.

Read next to ``docs/method.md``; section numbers below refer to it.

* Encoder (§1): any backbone of the project, ``H = Enc(G)``.
* Augmenter (§2): :class:`NodeAugmenter` scores nodes; :class:`VirtualNodeAugmenter` pools nodes
  into K virtual nodes by cross-attention and scores those.
* Intervener (§3): :class:`Intervener`, one pre-norm Transformer block over graph b's rationale
  tokens followed by the environment tokens of graph pi(b) (a derangement of the batch).
* Predictor (§4): one head ``g`` on the rationale readout ``r_b`` and the intervened readout ``z_b``.
* Objective (§5): the model player minimises ``L_rat + alpha L_int + beta L_size``; the adversary
  (the intervener) maximises ``L_int - mu ||phi||^2``.

Token sets are ragged: graph b's set holds ``n_b + n_pi(b)`` tokens (IGT-N) or ``2K`` (IGT-VN);
attention runs on them through :class:`~igt.nn.attention.PaddedLayout`, so padding is masked by
construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter
from torch_geometric.utils.sparse import ptr2index

from igt.config import IGTConfig, TrainConfig
from igt.data.dataset import concat_ranges
from igt.data.task import TaskSpec
from igt.errors import IgtError
from igt.methods.base import Method, MethodOutput
from igt.methods.heads import PredictionHead
from igt.nn.attention import MultiHeadAttention, PaddedGroup, PaddedLayout
from igt.nn.layers import reset_module
from igt.methods.losses import task_loss

_EPS = 1e-8


class NodeAugmenter(nn.Module):
    """``s = sigmoid(MLP_aug(H))``: each node's probability of belonging to the rationale (§2).

    Args:
        hidden: Node width.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.scorer = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def reset_parameters(self) -> None:
        reset_module(self)

    def extra_repr(self) -> str:
        return f"hidden={self.scorer[0].in_features}"

    def forward(self, h: Tensor) -> Tensor:
        """``[T, d] -> [T]`` scores in (0, 1)."""
        return torch.sigmoid(self.scorer(h)).squeeze(-1)


class VirtualNodeAugmenter(nn.Module):
    """K learned queries pool a graph's nodes by cross-attention (§2, IGT-VN).

    ``A_b = softmax_nodes(Q W_q (H_b W_k)^T / sqrt(d))``, ``V_b = A_b H_b W_v``; the virtual nodes
    are scored by a :class:`NodeAugmenter`.

    Args:
        hidden: Node width ``d``.
        num_virtual_nodes: ``K``.
    """

    def __init__(self, hidden: int, num_virtual_nodes: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.empty(num_virtual_nodes, hidden))
        self.w_q = nn.Linear(hidden, hidden, bias=False)
        self.w_k = nn.Linear(hidden, hidden, bias=False)
        self.w_v = nn.Linear(hidden, hidden, bias=False)
        self.scorer = NodeAugmenter(hidden)
        nn.init.normal_(self.queries, std=hidden**-0.5)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.queries, std=self.queries.shape[1] ** -0.5)
        reset_module(self)

    def extra_repr(self) -> str:
        return f"hidden={self.queries.shape[1]}, num_virtual_nodes={self.queries.shape[0]}"

    def forward(self, h: Tensor, index: PaddedGroup) -> tuple[Tensor, Tensor]:
        """Pool nodes into virtual nodes.

        Args:
            h: ``[N, d]`` node embeddings.
            index: All graphs of the batch padded together, in batch order.

        Returns:
            ``V``: ``[B, K, d]`` virtual nodes and ``A``: ``[B, K, N_max]`` assignments
            (zero at padding; each row sums to one over the graph's nodes).
        """
        keys = index.to_dense(self.w_k(h))  # [B, N_max, d]
        logits = self.w_q(self.queries) @ keys.transpose(1, 2) / math.sqrt(h.shape[-1])
        logits = logits.masked_fill(~index.mask.unsqueeze(1), float("-inf"))
        assignment = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # empty graphs: all -inf rows
        values = assignment @ index.to_dense(self.w_v(h))
        return values, assignment


class Intervener(nn.Module):
    """One pre-norm Transformer block over rationale + environment tokens (§3).

    Type embeddings ``t_rat``/``t_env`` tell the block which tokens are the rationale's.

    Args:
        hidden: Token width.
        heads: Attention heads.
        dropout: Dropout on attention weights and the feed-forward output.
    """

    def __init__(self, hidden: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.type_embedding = nn.Embedding(2, hidden)  # 0: rationale, 1: environment
        self.norm_attn = nn.LayerNorm(hidden)
        self.attention = MultiHeadAttention(hidden, heads, dropout)
        self.norm_ff = nn.LayerNorm(hidden)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden, 2 * hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * hidden, hidden)
        )

    def reset_parameters(self) -> None:
        reset_module(self)

    def extra_repr(self) -> str:
        return f"hidden={self.attention.dim}, heads={self.attention.heads}, dropout={self.feed_forward[2].p}"

    def forward(self, tokens: Tensor, token_type: Tensor, token_set: Tensor, num_sets: int) -> Tensor:
        """Attend within each token set; return the outputs at the rationale positions.

        The readout ``z`` uses only those, so the environment tokens serve as keys and values
        but get no query, attention output or feed-forward of their own (the same ``z`` as
        transforming every token, for about half the work).

        Args:
            tokens: ``[T, d]`` token features, grouped by set.
            token_type: ``long [T]``, 0 for rationale and 1 for environment tokens.
            token_set: ``long [T]`` set (graph pairing) of each token, non-decreasing.
            num_sets: Number of token sets.

        Returns:
            ``[T_rat, d]`` transformed rationale tokens, in token order.
        """
        x = tokens + self.type_embedding(token_type)
        layout = PaddedLayout.from_batch(token_set, num_sets)
        is_rationale = token_type == 0
        x = x[is_rationale] + self.attention(self.norm_attn(x), layout, queries=is_rationale)
        return x + self.feed_forward(self.norm_ff(x))


def random_derangement(size: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """A uniformly random permutation without fixed points (rejection sampling, ~e tries).

    ``size`` must be at least 2: a single graph has no other graph to take an environment from.
    """
    if size < 2:
        raise ValueError("a derangement needs at least 2 elements")
    identity = torch.arange(size)
    while True:
        perm = torch.randperm(size, generator=generator)
        if not bool((perm == identity).any()):
            return perm.to(device)


def hard_top_ratio(scores: Tensor, ptr: Tensor, ratio: float) -> Tensor:
    """Straight-through hard split: 1 on each group's top-ceil(ratio * n) scores, 0 elsewhere,
    with the soft scores' gradient (§2, option). ``ptr`` holds the group offsets."""
    sizes = ptr.diff()
    keep = torch.ceil(sizes.to(scores.dtype) * ratio).long().clamp(min=1)
    group = torch.repeat_interleave(torch.arange(sizes.numel(), device=scores.device), sizes)
    # Order by (group, descending score) with two stable sorts; rank = position - group start.
    by_score = torch.argsort(scores.detach(), descending=True, stable=True)
    order = by_score[torch.argsort(group[by_score], stable=True)]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=scores.device) - ptr[group[order]]
    hard = (rank < keep[group]).to(scores.dtype)
    return hard + (scores - scores.detach())  # exactly 0/1 forward, identity gradient


class IGT(Method):
    """IGT-N (``config.name == "igt-n"``) or IGT-VN (``"igt-vn"``).

    Args:
        config: :class:`IGTConfig`.
        task: The prediction task.
        make_backbone: Builds the encoder.
    """

    def __init__(self, config: IGTConfig, task: TaskSpec, make_backbone: Callable[[], nn.Module]) -> None:
        super().__init__(config, task)
        if config.split not in ("soft", "hard"):
            raise IgtError(f"method.split must be soft or hard, got {config.split!r}")
        if config.updates not in ("alternating", "simultaneous"):
            raise IgtError(f"method.updates must be alternating or simultaneous, got {config.updates!r}")
        if not 0.0 < config.gamma <= 1.0:
            raise IgtError(f"method.gamma must be in (0, 1], got {config.gamma}")
        if config.environments < 1 or config.adversary_steps < 1 or config.num_virtual_nodes < 1:
            raise IgtError("method.environments, method.adversary_steps and method.num_virtual_nodes must be >= 1")
        self.virtual = config.name == "igt-vn"
        self.encoder = make_backbone()
        hidden = self.encoder.hidden
        if self.virtual:
            self.augmenter: nn.Module = VirtualNodeAugmenter(hidden, config.num_virtual_nodes)
        else:
            self.augmenter = NodeAugmenter(hidden)
        self.intervener = Intervener(hidden, config.intervener_heads, config.dropout)
        self.predictor = PredictionHead(hidden, task.out_dim, config.dropout)

    # ---- the game -------------------------------------------------------------------------
    def schedule(self) -> list[tuple[str, int]]:
        if not self.config.adversarial:
            return [("model", 1)]
        if self.config.updates == "simultaneous":
            return [("game", 1)]
        return [("adversary", self.config.adversary_steps), ("model", 1)]

    def player_parameters(self, player: str) -> Iterator[nn.Parameter]:
        if player == "adversary":
            return self.intervener.parameters()
        if player == "game" or (player == "model" and not self.config.adversarial):
            return self.parameters()
        if player != "model":
            raise KeyError(player)
        return self.player_parameters_of_model()

    def player_param_groups(self, player: str, train: TrainConfig) -> list[dict]:
        if player == "adversary":
            return [{"params": list(self.intervener.parameters()), "lr": self.config.adversary_lr}]
        if player == "game":  # both players in one optimizer, each at its own learning rate
            return [
                {"params": list(self.player_parameters_of_model()), "lr": train.lr},
                {"params": list(self.intervener.parameters()), "lr": self.config.adversary_lr},
            ]
        return super().player_param_groups(player, train)

    def player_parameters_of_model(self) -> Iterator[nn.Parameter]:
        """theta: everything but the intervener."""
        intervener = set(map(id, self.intervener.parameters()))
        return (p for p in self.parameters() if id(p) not in intervener)

    def prepare_batch(self, batch) -> "EncodedBatch":
        """Encode once per mini-batch: the adversary changes only the intervener, so the
        encoder and augmenter outputs stay valid for the model player's step that follows."""
        return self._encode(batch)

    def player_loss(self, batch, player: str, shared: "EncodedBatch | None" = None) -> tuple[Tensor, dict[str, float]]:
        enc = shared if shared is not None else self._encode(batch)
        if player == "adversary":
            # The adversary sees the split as given (detached): its gradient reaches only phi.
            loss_int = self._intervention_loss(batch, enc.tokens.detach(), enc.token_scores.detach(), enc.token_ptr)
            l2 = sum((p**2).sum() for p in self.intervener.parameters())
            loss = -loss_int + self.config.mu * l2
            losses = {"int": loss_int}
        elif player == "model":
            losses = self._losses(batch, enc)
            loss = losses["rat"] + self.config.alpha * losses["int"] + self.config.beta * losses["size"]
        elif player == "game":
            losses, loss = self._simultaneous_loss(batch, enc)
        else:
            raise KeyError(player)
        logs = {name: float(value.detach()) for name, value in losses.items()}
        logs["total"] = float(loss.detach())
        return loss, logs

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, batch) -> MethodOutput:
        enc = self._encode(batch)
        src, dst = batch.edge_index
        edge_scores = enc.node_scores[src] * enc.node_scores[dst]
        out = MethodOutput(pred=enc.pred, node_scores=enc.node_scores, edge_scores=edge_scores, extras=enc.extras)
        if self.training:
            out.losses = self._losses(batch, enc)
        return out

    def _encode(self, batch) -> "EncodedBatch":
        """Encoder, augmenter and the rationale-path prediction ``y_rat = g(r)`` (§1, §2, §4)."""
        h = self.encoder(batch)
        if self.virtual:
            tokens, token_scores, token_ptr, node_scores, extras = self._virtual_tokens(h, batch)
        else:
            tokens, token_ptr = h, batch.ptr
            token_scores = node_scores = self.augmenter(h)
            extras = {}
        if self.config.split == "hard":
            token_scores = hard_top_ratio(token_scores, token_ptr, self.config.gamma)
            if not self.virtual:
                node_scores = token_scores
        rationale = _weighted_mean(tokens, token_scores, ptr2index(token_ptr), batch.num_graphs)
        return EncodedBatch(tokens, token_scores, token_ptr, node_scores, self.predictor(rationale), extras)

    def _virtual_tokens(self, h: Tensor, batch):
        index = PaddedLayout.from_batch(batch.batch, batch.num_graphs, batch.ptr, group=False).groups[0]
        values, assignment = self.augmenter(h, index)  # [B, K, d], [B, K, N_max]
        num_graphs, k, hidden = values.shape
        virtual_scores = self.augmenter.scorer(values.reshape(-1, hidden))  # [B*K]
        # Node scores for explanation: assignment-weighted average of virtual-node scores.
        node_assignment = index.to_sparse(assignment.transpose(1, 2))  # [N, K]
        weighted = (node_assignment * virtual_scores.view(num_graphs, k)[batch.batch]).sum(-1)
        node_scores = weighted / node_assignment.sum(-1).clamp(min=_EPS)
        token_ptr = torch.arange(0, (num_graphs + 1) * k, k, device=h.device)
        extras = {"virtual_assignment": node_assignment, "virtual_scores": virtual_scores.view(num_graphs, k)}
        return values.reshape(-1, hidden), virtual_scores, token_ptr, node_scores, extras

    def _rationale_terms(self, batch, enc: "EncodedBatch") -> dict[str, Tensor]:
        """``L_rat`` and ``L_size`` (§5), shared by both update schemes."""
        ratio = scatter(enc.node_scores, ptr2index(batch.ptr), dim=0, dim_size=batch.num_graphs, reduce="mean")
        return {"rat": task_loss(self.task, enc.pred, batch.y), "size": (ratio - self.config.gamma).abs().mean()}

    def _losses(self, batch, enc: "EncodedBatch") -> dict[str, Tensor]:
        """The model player's terms: ``L_rat``, ``L_int`` and ``L_size`` (§5)."""
        losses = self._rationale_terms(batch, enc)
        losses["int"] = self._intervention_loss(batch, enc.tokens, enc.token_scores, enc.token_ptr)
        return losses

    def _simultaneous_loss(self, batch, enc: "EncodedBatch") -> tuple[dict[str, Tensor], Tensor]:
        """Both players' objectives in one differentiable scalar (``updates=simultaneous``).

        ``z`` is computed from inputs that pass a gradient-reversal layer scaled by alpha, and
        scored by the head with frozen weights: so ``-l(g(z), y)`` gives the intervener
        ``-grad L_int`` (ascent), the encoder/augmenter ``+alpha grad L_int``, and the head gets
        its ``+alpha grad L_int`` from a second term on ``z`` detached.
        """
        losses = self._rationale_terms(batch, enc)
        loss = losses["rat"] + self.config.beta * losses["size"]
        l2 = sum((p**2).sum() for p in self.intervener.parameters())
        if batch.num_graphs < 2:
            losses["int"] = enc.pred.new_zeros(())
            return losses, loss + self.config.mu * l2
        alpha = self.config.alpha
        z = self._intervene(_reverse_gradient(enc.tokens, alpha), _reverse_gradient(enc.token_scores, alpha),
                            enc.token_ptr, batch.num_graphs)
        y = batch.y.repeat(self.config.environments, *([1] * (batch.y.dim() - 1)))
        frozen_head = {name: value.detach() for name, value in self.predictor.named_parameters()}
        adversarial = task_loss(self.task, torch.func.functional_call(self.predictor, frozen_head, (z,)), y)
        head_term = task_loss(self.task, self.predictor(z.detach()), y)
        losses["int"] = adversarial
        return losses, loss + alpha * head_term - adversarial + self.config.mu * l2

    def _intervention_loss(self, batch, tokens: Tensor, scores: Tensor, ptr: Tensor) -> Tensor:
        """``L_int = l(g(z), y)`` over all (rationale, environment) pairings of the batch."""
        if batch.num_graphs < 2:
            # A batch of one graph has no other environment; the intervention term is skipped.
            return tokens.new_zeros(())
        intervened = self._intervene(tokens, scores, ptr, batch.num_graphs)
        y = batch.y.repeat(self.config.environments, *([1] * (batch.y.dim() - 1)))
        return task_loss(self.task, self.predictor(intervened), y)

    def _intervene(self, tokens: Tensor, scores: Tensor, ptr: Tensor, num_graphs: int) -> Tensor:
        """``z``: readout over the rationale positions of ``T_int([R_b; E_pi(b)])``, for
        ``environments`` derangements pi stacked one after another (``[m * B, d]``)."""
        device = tokens.device
        sizes, starts = ptr.diff(), ptr[:-1]
        graphs = torch.arange(num_graphs, device=device)
        perms = [random_derangement(num_graphs, device=device) for _ in range(self.config.environments)]
        pairs = torch.cat(perms)  # environment donor of each token set
        owners = graphs.repeat(self.config.environments)  # rationale owner of each token set
        seg_starts = torch.stack([starts[owners], starts[pairs]], 1).flatten()
        seg_sizes = torch.stack([sizes[owners], sizes[pairs]], 1).flatten()
        source = concat_ranges(seg_starts, seg_sizes)  # token rows, set by set: rationale then environment
        num_sets = owners.numel()
        seg_type = torch.tensor([0, 1], device=device).repeat(num_sets)
        token_type = torch.repeat_interleave(seg_type, seg_sizes)
        token_set = torch.repeat_interleave(torch.arange(num_sets, device=device), seg_sizes[0::2] + seg_sizes[1::2])
        s = scores[source]
        is_rationale = token_type == 0
        weight = torch.where(is_rationale, s, 1.0 - s)
        transformed = self.intervener(weight.unsqueeze(-1) * tokens[source], token_type, token_set, num_sets)
        return _weighted_mean(transformed, s[is_rationale], token_set[is_rationale], num_sets)


@dataclass
class EncodedBatch:
    """One mini-batch through encoder and augmenter: tokens (nodes, or virtual nodes for
    IGT-VN) with their rationale scores, node scores for explanation, and ``y_rat``."""

    tokens: Tensor
    token_scores: Tensor
    token_ptr: Tensor
    node_scores: Tensor
    pred: Tensor
    extras: dict[str, Tensor]


class _GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``-scale``."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.scale * grad, None


def _reverse_gradient(x: Tensor, scale: float) -> Tensor:
    return _GradientReversal.apply(x, scale)


def _weighted_mean(x: Tensor, weight: Tensor, group: Tensor, num_groups: int) -> Tensor:
    """``sum_i w_i x_i / sum_i w_i`` per group (§3, §4)."""
    total = scatter(weight.unsqueeze(-1) * x, group, dim=0, dim_size=num_groups, reduce="sum")
    norm = scatter(weight, group, dim=0, dim_size=num_groups, reduce="sum")
    return total / (norm.unsqueeze(-1) + _EPS)
