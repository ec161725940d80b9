"""Input encoders: categorical feature embeddings and positional/structural encodings.

:class:`CategoricalEncoder` is the dataset-agnostic equivalent of OGB's ``AtomEncoder`` /
``BondEncoder``: one embedding table per feature column, summed. All columns share a single
table with per-column offsets, so encoding is one gather instead of one per column.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from igt.errors import IgtError


class CategoricalEncoder(nn.Module):
    """Sum of per-column embeddings of integer categorical features.

    Args:
        vocab: Cardinality of each feature column (``FeatureSpec.node_vocab`` or ``edge_vocab``);
            empty means "no features": every row gets the same learned vector.
        dim: Embedding width.
    """

    def __init__(self, vocab: Sequence[int], dim: int) -> None:
        super().__init__()
        if any(int(v) < 1 for v in vocab):
            raise ValueError(f"every feature column needs a cardinality >= 1, got {tuple(vocab)}")
        self.vocab = tuple(int(v) for v in vocab)
        self.dim = dim
        # No feature columns (e.g. synthetic graphs without edge features): one learned vector.
        self.constant = len(self.vocab) == 0
        sizes = self.vocab or (1,)
        offsets = torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.embedding = nn.Embedding(sum(sizes), dim)
        self.reset_parameters()

    def extra_repr(self) -> str:
        return f"vocab={self.vocab}, dim={self.dim}"

    def reset_parameters(self) -> None:
        """Xavier-uniform initialisation per column table, as in OGB's encoders."""
        with torch.no_grad():
            for start, size in zip(self.offsets.tolist(), self.vocab or (1,)):
                nn.init.xavier_uniform_(self.embedding.weight[start : start + size])

    def forward(self, x: Tensor) -> Tensor:
        """Embed categorical features.

        Args:
            x: ``long [M, F]`` category indices, column ``c`` in ``[0, vocab[c])``.

        Returns:
            ``float [M, dim]`` summed embeddings.
        """
        if self.constant:
            return self.embedding.weight.expand(x.shape[0], self.dim)
        if x.dim() == 1:
            x = x.unsqueeze(-1)
        if x.shape[1] == 1:
            return self.embedding(x[:, 0] + self.offsets[0])
        return self.embedding(x + self.offsets).sum(dim=1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(vocab={self.vocab}, dim={self.dim})"


class RWSEEncoder(nn.Module):
    """Linear projection of random-walk structural encodings, added to node embeddings.

    Args:
        steps: RWSE length (``DataConfig.rwse_steps``).
        dim: Output width.
    """

    def __init__(self, steps: int, dim: int) -> None:
        super().__init__()
        self.steps = steps
        self.linear = nn.Linear(steps, dim)
        self.reset_parameters()

    def extra_repr(self) -> str:
        return f"steps={self.steps}"

    def reset_parameters(self) -> None:
        """Re-initialise the projection."""
        self.linear.reset_parameters()

    def forward(self, rwse: Tensor) -> Tensor:
        """Project RWSE.

        Args:
            rwse: ``float [N, steps]`` return probabilities of random walks.

        Returns:
            ``float [N, dim]``.
        """
        return self.linear(torch.nan_to_num(rwse.to(self.linear.weight.dtype)))


class LapPEEncoder(nn.Module):
    """Linear projection of Laplacian eigenvectors with random sign flips during training.

    Eigenvectors are defined up to sign, so in training mode each eigenvector of each graph is
    multiplied by an independent random sign (Dwivedi & Bresson); NaN/inf padding (graphs with
    fewer than ``k`` nodes) is replaced by zeros.

    Args:
        k: Number of eigenvectors (``DataConfig.lap_k``).
        dim: Output width.
    """

    def __init__(self, k: int, dim: int) -> None:
        super().__init__()
        self.k = k
        self.linear = nn.Linear(k, dim)
        self.reset_parameters()

    def extra_repr(self) -> str:
        return f"k={self.k}"

    def reset_parameters(self) -> None:
        """Re-initialise the projection."""
        self.linear.reset_parameters()

    def forward(self, lap_pe: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Project (sign-flipped) eigenvectors.

        Args:
            lap_pe: ``float [N, k]`` eigenvector entries per node.
            batch: ``long [N]`` graph of each node.
            num_graphs: Number of graphs in the batch.

        Returns:
            ``float [N, dim]``.
        """
        pe = torch.nan_to_num(lap_pe.to(self.linear.weight.dtype), nan=0.0, posinf=0.0, neginf=0.0)
        if self.training:
            signs = torch.randint(0, 2, (num_graphs, pe.shape[1]), device=pe.device).to(pe.dtype) * 2 - 1
            pe = pe * signs[batch]
        return self.linear(pe)


def require(batch: object, key: str, hint: str) -> Tensor:
    """Fetch ``batch[key]`` or fail with one line that says which setting produces it."""
    value = getattr(batch, key, None)
    if value is None:
        raise IgtError(f"batch has no '{key}'; {hint}")
    return value
