"""What a dataset asks a model to predict, and what its node/edge features look like."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

TASK_TYPES = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class TaskSpec:
    """The prediction task of a dataset.

    Args:
        type: ``binary`` (one or more independent binary labels, NaN = missing),
            ``multiclass`` (one integer label per graph) or ``regression`` (NaN = missing).
        num_tasks: Label columns for ``binary``/``regression``.
        num_classes: Classes for ``multiclass``.
        metric: ``rocauc``, ``rmse`` or ``accuracy``.
        task_names: Label column names.
        target_mean: Per-task mean of the training labels (regression with standardised
            targets; empty = raw targets). Models then predict ``(y - mean) / std`` and
            :meth:`destandardize` maps their output back to the label's units.
        target_std: Per-task standard deviation of the training labels (same convention).
        train_elements: Molecules only: OGB atomic-number indices seen in the training split.
        train_atom_types: Atom-type codes seen there (:func:`igt.data.standardize.atom_type_codes`).
        train_max_atoms: Atoms of the largest training molecule (0: no statistics recorded,
            e.g. a checkpoint from before they were). Like the target scaler, these training
            statistics ride on the task so the checkpoint keeps them; ``igt predict`` flags new
            molecules outside them. They do not take part in comparisons.
    """

    type: str
    num_tasks: int = 1
    num_classes: int = 2
    metric: str = "rocauc"
    task_names: tuple[str, ...] = ()
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()
    train_elements: tuple[int, ...] = field(default=(), compare=False)
    train_atom_types: tuple[int, ...] = field(default=(), compare=False)
    train_max_atoms: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.type not in TASK_TYPES:
            raise ValueError(f"task type must be one of {TASK_TYPES}, got {self.type!r}")

    @property
    def has_training_domain(self) -> bool:
        """Whether training statistics for the applicability check were recorded."""
        return self.train_max_atoms > 0

    @property
    def standardizes_targets(self) -> bool:
        return bool(self.target_mean)

    def with_target_scaler(self, y_train: Tensor) -> "TaskSpec":
        """This task with targets standardised by the mean/std of ``y_train`` (``[G, T]``, NaN =
        missing). A task with fewer than two observed values, or constant ones, keeps std 1."""
        if self.type != "regression":
            raise ValueError("only regression targets are standardised")
        y = y_train.double().view(len(y_train), -1)
        means, stds = [], []
        for column in y.T:
            observed = column[~torch.isnan(column)]
            mean = float(observed.mean()) if len(observed) else 0.0
            std = float(observed.std()) if len(observed) > 1 else 1.0
            means.append(mean)
            stds.append(std if math.isfinite(std) and std > 1e-12 else 1.0)
        return replace(self, target_mean=tuple(means), target_std=tuple(stds))

    def standardize(self, y: Tensor) -> Tensor:
        """Labels (``[B, T]``) on the scale the model is trained on."""
        if not self.standardizes_targets:
            return y
        mean, std = self._scaler(y)
        return (y - mean) / std

    def destandardize(self, pred: Tensor) -> Tensor:
        """Model outputs (``[B, T]``) back in the label's units."""
        if not self.standardizes_targets:
            return pred
        mean, std = self._scaler(pred)
        return pred * std + mean

    def _scaler(self, like: Tensor) -> tuple[Tensor, Tensor]:
        mean = torch.tensor(self.target_mean, dtype=like.dtype, device=like.device)
        std = torch.tensor(self.target_std, dtype=like.dtype, device=like.device)
        return mean, std

    @property
    def out_dim(self) -> int:
        """Width of the prediction head's output."""
        return self.num_classes if self.type == "multiclass" else self.num_tasks

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "rmse"


@dataclass(frozen=True)
class FeatureSpec:
    """Cardinalities of the categorical node and edge feature columns.

    Every dataset stores features as integer categories (``x: long [N, len(node_vocab)]``,
    ``edge_attr: long [E, len(edge_vocab)]``) so one embedding-sum encoder serves all data.
    """

    node_vocab: tuple[int, ...] = field(default_factory=tuple)
    edge_vocab: tuple[int, ...] = field(default_factory=tuple)
