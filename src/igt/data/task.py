"""What a dataset asks a model to predict, and what its node/edge features look like."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """

    type: str
    num_tasks: int = 1
    num_classes: int = 2
    metric: str = "rocauc"
    task_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in TASK_TYPES:
            raise ValueError(f"task type must be one of {TASK_TYPES}, got {self.type!r}")

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
