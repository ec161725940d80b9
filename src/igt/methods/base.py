"""The contract between rationalization methods and the trainer.

A method is an ``nn.Module`` whose ``forward(batch)`` returns one :class:`MethodOutput`.
Training is a game between named *players* (``"model"`` for plain ERM; IGT adds an
``"adversary"``); each player has its own parameters, optimizer and loss. The trainer only
walks :meth:`Method.schedule`, calls :meth:`Method.prepare_batch` once per mini-batch and
:meth:`Method.player_loss` per step: it knows nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from torch import Tensor, nn

from igt.config import MethodConfig, TrainConfig
from igt.data.task import TaskSpec


@dataclass
class MethodOutput:
    """What every method returns.

    Attributes:
        pred: ``[B, out_dim]`` logits (classification) or values (regression); at inference
            this is the prediction that is scored.
        node_scores: ``[N]`` rationale score of each node in ``[0, 1]``, or ``None`` for methods
            without rationales (ERM).
        edge_scores: ``[E]`` rationale score of each edge, or ``None``.
        losses: Named loss terms of this forward pass (unweighted), for logging and for
            :meth:`Method.player_loss`. Empty when labels were not needed.
        extras: Method-specific tensors worth saving (e.g. virtual-node assignments).
    """

    pred: Tensor
    node_scores: Tensor | None = None
    edge_scores: Tensor | None = None
    losses: dict[str, Tensor] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)


class Method(nn.Module):
    """Base class of every method.

    Args:
        config: The method's options.
        task: The prediction task (decides the loss and the head width).
    """

    #: Whether the method reads the graph (nodes and edges): rationales, fidelity and PyG's
    #: post-hoc explainers apply. The fingerprint baselines read SMILES instead.
    reads_graph: ClassVar[bool] = True

    def __init__(self, config: MethodConfig, task: TaskSpec) -> None:
        super().__init__()
        self.config = config
        self.task = task

    def reset_parameters(self) -> None:
        """Re-initialise every sub-module (backbones, heads, augmenters...)."""
        from igt.nn.layers import reset_module

        reset_module(self)

    def extra_repr(self) -> str:
        options = dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}
        return ", ".join([*(f"{key}={value!r}" for key, value in options.items()), f"out_dim={self.task.out_dim}"])

    def forward(self, batch) -> MethodOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def schedule(self) -> list[tuple[str, int]]:
        """Players in update order with their steps per mini-batch."""
        return [("model", 1)]

    def player_parameters(self, player: str) -> Iterator[nn.Parameter]:
        """Parameters updated by ``player`` (default: all of them, for the single player)."""
        if player != "model":
            raise KeyError(player)
        return self.parameters()

    def player_param_groups(self, player: str, train: TrainConfig) -> list[dict]:
        """Adam parameter groups of ``player`` (default: its parameters at ``train.lr``)."""
        return [{"params": list(self.player_parameters(player)), "lr": train.lr}]

    def prepare_batch(self, batch) -> Any:
        """Work shared by every player's step on one mini-batch (``None``: nothing shared).

        The trainer calls it once per mini-batch and hands the result to each
        :meth:`player_loss` of that batch; a method may return, e.g., encoder outputs that
        stay valid because earlier players do not update the encoder.
        """
        return None

    def player_loss(self, batch, player: str, shared: Any = None) -> tuple[Tensor, dict[str, float]]:
        """Run a training forward pass and return (loss to minimise for ``player``, logged terms)."""
        out = self(batch)
        loss = out.losses["task"]
        return loss, {name: float(value.detach()) for name, value in out.losses.items()}

    def set_progress(self, epoch: int, epochs: int) -> None:
        """Called at each epoch start, for methods with schedules (e.g. GSAT's decaying r)."""
