"""The training loop. It walks a method's player schedule and knows nothing else about it."""

from __future__ import annotations

import copy
import os
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from igt.config import TrainConfig
from igt.data.dataset import GraphDataset, graph_loader
from igt.errors import IgtError
from igt.methods.base import Method
from igt.train import metrics
from igt.methods.losses import predict_transform, task_loss
from igt.nn.layers import evaluating

if TYPE_CHECKING:  # pragma: no cover
    from igt.train.distributed import Distributed


def interactive(stream=None) -> bool:
    """Whether progress bars may redraw: ``stream`` (default stderr, where tqdm writes) is a
    terminal. Piped or logged output gets plain lines instead: a bar's carriage returns and
    escape codes are garbage in a log file."""
    stream = stream if stream is not None else sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def configure_threads(threads: int) -> None:
    """Set torch's CPU threads (0 leaves torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a torch device; ``cuda`` on a machine without one is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise IgtError(f"train.device={name}: CUDA is not available here (torch {torch.__version__}); "
                           "use --set train.device=cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise IgtError(f"train.device={name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def make_loaders(dataset: GraphDataset, split: dict[str, torch.Tensor], train: TrainConfig,
                 dist: "Distributed | None" = None) -> dict[str, DataLoader]:
    """Loaders per split; the training order is drawn from a generator seeded by ``train.seed``.

    With ``dist`` (a data-parallel worker), each loader yields this worker's share: of every
    training epoch's order, drawn as one process draws it, the worker's slice of each global batch
    of ``batch_size * world_size`` graphs (:class:`~igt.data.dataset.ShardedBatches`); of an
    evaluation split, every ``world_size``-th batch (gathered back by :func:`evaluate`).
    """
    generator = torch.Generator().manual_seed(train.seed)
    loaders = {}
    for name, indices in split.items():
        part = dataset.subset(indices)
        shuffle = name == "train"
        loaders[name] = graph_loader(
            part,
            batch_size=train.batch_size if shuffle else train.eval_batch_size,
            shuffle=shuffle,
            generator=generator if shuffle else None,
            # A last training batch of one graph is dropped: BatchNorm over graphs (the virtual
            # node's MLP) cannot normalise a single sample.
            drop_last=shuffle and len(part) % train.batch_size == 1,
            shard=dist.shard if dist is not None else None,
        )
    return loaders


@dataclass
class Predictions:
    """Everything a method says about a split, as numpy arrays on the CPU."""

    y_true: np.ndarray
    y_out: np.ndarray  # probabilities (classification) or values (regression)
    node_scores: np.ndarray | None
    node_gt: np.ndarray | None
    edge_scores: np.ndarray | None
    edge_gt: np.ndarray | None
    node_ptr: np.ndarray
    index: np.ndarray  # dataset position of each graph
    loss: float  # mean over graphs of the task loss


@torch.no_grad()
def predict_batches(method: Method, loader: DataLoader, device: torch.device | None = None,
                    progress: bool = False) -> list[dict[str, np.ndarray]]:
    """What ``method`` says about each batch of ``loader``: numpy arrays on the CPU, joined by
    :func:`join_predictions` (per batch, so data-parallel workers can gather them in order)."""
    with evaluating(method):
        device = device or torch.device("cpu")
        parts = []
        for batch in tqdm(loader, desc="predict", leave=False, disable=not (progress and interactive())):
            batch = batch.to(device)
            out = method(batch)
            part = {
                "y_true": batch.y.cpu().numpy(),
                "y_out": predict_transform(method.task, out.pred).cpu().numpy(),
                "index": batch.idx.cpu().numpy(),
                "loss": task_loss(method.task, out.pred, batch.y, reduction="none").cpu().numpy(),
                "sizes": np.diff(batch.ptr.cpu().numpy()),
            }
            if out.node_scores is not None:
                part["node_scores"] = out.node_scores.cpu().numpy()
            if out.edge_scores is not None:
                part["edge_scores"] = out.edge_scores.cpu().numpy()
            for key in ("node_gt", "edge_gt"):
                if key in batch:
                    part[key] = batch[key].cpu().numpy()
            parts.append(part)
        return parts


def join_predictions(parts: list[dict[str, np.ndarray]]) -> Predictions:
    """One :class:`Predictions` from per-batch parts, in their order."""

    def joined(key: str) -> np.ndarray | None:
        arrays = [part[key] for part in parts if key in part]
        return np.concatenate(arrays) if arrays else None

    sizes = [np.zeros(1, dtype=np.int64), *(part["sizes"] for part in parts)]
    loss = joined("loss")
    return Predictions(
        y_true=joined("y_true"), y_out=joined("y_out"),
        node_scores=joined("node_scores"), node_gt=joined("node_gt"),
        edge_scores=joined("edge_scores"), edge_gt=joined("edge_gt"),
        node_ptr=np.cumsum(np.concatenate(sizes)), index=joined("index"),
        loss=float(loss.mean()) if loss is not None else float("nan"),
    )


def predict(method: Method, loader: DataLoader, device: torch.device | None = None, progress: bool = False) -> Predictions:
    return join_predictions(predict_batches(method, loader, device, progress))


def evaluate(method: Method, loader: DataLoader, device: torch.device | None = None,
             dist: "Distributed | None" = None) -> dict[str, float | None]:
    """The task metric, plus explanation metrics when the data has ground-truth rationales.

    The global RNG is left as it was (a DataLoader draws its base seed from it), so how often a
    run evaluates cannot change its training. With ``dist``, ``loader`` is this worker's share
    of the batches (:func:`make_loaders`): every worker evaluates rank 0's weights and buffers on
    its share and all gather the per-batch results in batch order, so the numbers are those of
    one process evaluating the whole split.
    """
    if dist is not None:
        dist.sync_buffers(method)
    with torch.random.fork_rng(devices=[]):
        parts = predict_batches(method, loader, device)
    preds = join_predictions(dist.gather_batches(parts) if dist is not None else parts)
    result: dict[str, float | None] = {
        "metric": metrics.score(method.task, preds.y_true, preds.y_out),
        "loss": preds.loss,
    }
    if preds.node_scores is not None and preds.node_gt is not None:
        result["explanation_auc"] = metrics.explanation_auc(preds.node_scores, preds.node_gt)
        result["precision_at_5"] = metrics.precision_at_k(preds.node_scores, preds.node_gt, preds.node_ptr, k=5)
    if preds.edge_scores is not None and preds.edge_gt is not None:
        result["edge_explanation_auc"] = metrics.explanation_auc(preds.edge_scores, preds.edge_gt)
    return result


def make_optimizers(method: Method, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """One Adam per player, over that player's parameters only."""
    return {
        player: torch.optim.Adam(method.player_param_groups(player, train), lr=train.lr, weight_decay=train.weight_decay)
        for player, _ in method.schedule()
    }


class PlayerLoss(nn.Module):
    """``forward(batch, player, shared)`` is ``method.player_loss(batch, player, shared)``:
    ``DistributedDataParallel`` prepares its gradient averaging in ``forward``, so under DDP
    each player's step goes through one."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.method = method

    def forward(self, batch, player: str, shared: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
        return self.method.player_loss(batch, player, shared)


def data_parallel(method: Method) -> nn.Module:
    """``DistributedDataParallel`` over a method's player losses (:class:`PlayerLoss`).

    A player's step uses only some parameters (IGT's adversary: the intervener; GREA's and
    DIR's players alternate), so DDP looks for the unused ones (``find_unused_parameters``);
    a parameter no worker used keeps no gradient, as in one process. Buffers are not broadcast
    at each forward: in training BatchNorm normalises with each worker's own batch (no
    SyncBatchNorm, which has no CPU kernels), and the running statistics of rank 0 are given to
    every worker before an evaluation (:meth:`~igt.train.distributed.Distributed.sync_buffers`).
    """
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # torch 2.13 renamed broadcast_buffers (and warns about the old name); earlier ones know only it.
    newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers": False} if newer else {"broadcast_buffers": False}
    return DistributedDataParallel(PlayerLoss(method), find_unused_parameters=True, **no_sync)


#: ``train.precision``: the dtype of training's autocast regions (``None``: plain fp32).
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device):
    """PyTorch's automatic mixed precision for ``train.precision`` (a no-op for fp32): matrix
    products in bf16/fp16, reductions and losses kept in fp32 by autocast's own op lists."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def make_scalers(method: Method, precision: str, device: torch.device) -> dict[str, torch.amp.GradScaler] | None:
    """fp16 needs loss scaling (its exponent range underflows small gradients): one scaler per
    player, since each player steps its own optimizer. bf16 and fp32 need none."""
    if precision != "fp16":
        return None
    return {player: torch.amp.GradScaler(device.type) for player, _ in method.schedule()}


def train_step(method: Method, batch, optimizers: dict[str, torch.optim.Optimizer], grad_clip: float,
               game: nn.Module | None = None, precision: str = "fp32",
               scalers: dict[str, torch.amp.GradScaler] | None = None) -> dict[str, float]:
    """One mini-batch of the game: each player takes its steps in schedule order.

    Returns the logged loss terms, averaged over a player's steps; terms of players other
    than ``model`` are prefixed with the player's name. ``game`` (:func:`data_parallel`) computes
    the players' losses of a data-parallel worker, whose gradients DDP averages. ``precision``
    runs the forward passes under :func:`autocast`; ``scalers`` (fp16) scale each player's loss.
    """
    logs: dict[str, float] = defaultdict(float)
    device = batch.x.device
    with autocast(precision, device):
        shared = method.prepare_batch(batch)
    for player, steps in method.schedule():
        for _ in range(steps):
            method.zero_grad(set_to_none=True)
            with autocast(precision, device):
                loss, terms = method.player_loss(batch, player, shared) if game is None else game(batch, player, shared)
            scaler = scalers[player] if scalers else None
            (scaler.scale(loss) if scaler else loss).backward()
            if scaler:
                scaler.unscale_(optimizers[player])  # clip the true gradients
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(list(method.player_parameters(player)), grad_clip)
            if scaler:
                scaler.step(optimizers[player])  # skipped when the scaled gradients overflowed
                scaler.update()
            else:
                optimizers[player].step()
            for name, value in terms.items():
                logs[name if player == "model" else f"{player}/{name}"] += value / steps
    return logs


def _better(value: float, loss: float, best_value: float, best_loss: float, higher: bool) -> bool:
    """Model selection: a better validation metric, or the same one at a lower validation loss
    (GSAT's rule; it matters when the metric saturates, e.g. Spurious-Motif's validation accuracy)."""
    if value != best_value:
        return value > best_value if higher else value < best_value
    return loss < best_loss


@dataclass
class FitResult:
    best_epoch: int
    valid: dict[str, float | None]
    test: dict[str, float | None]
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0


#: ``on_epoch(epoch, valid_metrics)`` of :func:`fit`: called after each epoch with that epoch's
#: validation metrics; an exception it raises ends training (``igt tune`` prunes trials this way).
EpochCallback = Callable[[int, dict[str, float | None]], None]

#: ``save_state(state)`` of :func:`fit`: called on rank 0 after each epoch (before ``on_epoch``)
#: with everything :func:`fit` needs to continue from there (its ``state`` argument).
StateCallback = Callable[[dict[str, Any]], None]


def fit(method: Method, loaders: dict[str, DataLoader], train: TrainConfig, progress: bool = True,
        on_epoch: EpochCallback | None = None, *, dist: "Distributed | None" = None,
        state: dict[str, Any] | None = None, save_state: StateCallback | None = None) -> FitResult:
    """Train ``method``; keep the weights of the epoch best on validation (loaded back at the end).

    Each player of ``method.schedule()`` has its own Adam optimizer over its own parameters.
    For every mini-batch the players take their steps in schedule order. Without a ``"test"``
    loader (``igt tune``, which never reads the test split) the result's ``test`` is empty.

    ``dist``: this process is one worker of a data-parallel run (loaders from
    :func:`make_loaders` with the same ``dist``); gradients are averaged by DDP
    (:func:`data_parallel`). ``state``: a state saved by ``save_state``, from which training
    continues exactly as it would have without the interruption (same world size).
    """
    from igt.train.distributed import exit_step
    from igt.train.resume import capture_rng, restore_rng, to_cpu

    device = dist.device if dist is not None else resolve_device(train.device)
    method.to(device)
    optimizers = make_optimizers(method, train)
    scalers = make_scalers(method, train.precision, device)
    generator = loaders["train"].generator
    higher = method.task.higher_is_better
    best_value, best_epoch, best_state = None, 0, None
    best_valid: dict[str, float | None] = {}
    best_test: dict[str, float | None] = {}
    history: list[dict[str, float]] = []
    first_epoch, seconds_before = 1, 0.0
    if state is not None:
        method.load_state_dict(state["model"])
        for player, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][player])
        best = state["best"]
        best_value, best_epoch, best_state = best["value"], best["epoch"], best["state"]
        best_valid, best_test = best["valid"], best["test"]
        history = list(state["history"])
        first_epoch, seconds_before = state["epoch"] + 1, state["seconds"]
        restore_rng(state["rng"][dist.rank if dist is not None else 0], generator, device)
    game = data_parallel(method) if dist is not None else None
    stop_after = exit_step(dist)
    steps = 0
    started = time.perf_counter()
    bars = progress and interactive()
    epochs = tqdm(range(first_epoch, train.epochs + 1), desc=f"train {method.task.metric}", disable=not bars,
                  initial=first_epoch - 1, total=train.epochs)
    for epoch in epochs:
        epoch_start = time.perf_counter()
        method.set_progress(epoch, train.epochs)
        method.train()
        sums: dict[str, float] = defaultdict(float)
        batches = 0
        for batch in tqdm(loaders["train"], desc=f"epoch {epoch}", leave=False, disable=not bars):
            for name, value in train_step(method, batch.to(device), optimizers, train.grad_clip, game,
                                          train.precision, scalers).items():
                sums[name] += value
            batches += 1
            steps += 1
            if steps == stop_after:
                os._exit(3)  # the test hook of igt.train.distributed.EXIT_HOOK: a worker dies
        if dist is not None:  # the logged losses: every worker's batches (each has as many)
            shares = dist.all_gather(dict(sums))
            sums = defaultdict(float, {name: sum(share[name] for share in shares) / dist.world_size for name in sums})
        train_seconds = time.perf_counter() - epoch_start
        valid = evaluate(method, loaders["valid"], device, dist)
        value = valid["metric"]
        improved = best_value is None or _better(value, valid["loss"], best_value, best_valid["loss"], higher)
        # The reported test numbers are those of the selected epoch, so skipping the test split on
        # other epochs changes no result, only the test curve of history.csv.
        scored = "test" in loaders and (improved or train.test_every_epoch)
        test = evaluate(method, loaders["test"], device, dist) if scored else {}
        row = {"epoch": epoch, **{f"loss/{k}": v / max(batches, 1) for k, v in sums.items()}}
        row.update({f"valid/{k}": v for k, v in valid.items()})
        row.update({f"test/{k}": v for k, v in test.items()})
        row["seconds"] = time.perf_counter() - epoch_start
        row["train_seconds"] = train_seconds
        history.append(row)
        if improved:
            best_value, best_epoch = value, epoch
            best_state = copy.deepcopy(method.state_dict())
            best_valid, best_test = valid, test
        if save_state is not None:  # before the epoch's log line: once it shows, the epoch can be resumed
            rng = capture_rng(generator, device)
            rngs = dist.all_gather(rng) if dist is not None else [rng]
            if dist is None or dist.is_main:
                save_state(to_cpu({
                    "epoch": epoch, "model": method.state_dict(),
                    "optimizers": {player: optimizer.state_dict() for player, optimizer in optimizers.items()},
                    "rng": rngs, "history": history, "seconds": seconds_before + time.perf_counter() - started,
                    "best": {"value": best_value, "epoch": best_epoch, "state": best_state,
                             "valid": best_valid, "test": best_test},
                }))
        epochs.set_postfix(valid=f"{value:.4f}", best=f"{best_value:.4f}@{best_epoch}")
        if progress and not bars:  # one plain line per epoch for logs
            print(f"epoch {epoch}/{train.epochs}: valid {method.task.metric} {value:.4f} "
                  f"(best {best_value:.4f} at epoch {best_epoch}), {row['seconds']:.1f} s", file=sys.stderr, flush=True)
        if on_epoch is not None:
            on_epoch(epoch, valid)
    if best_state is not None:
        method.load_state_dict(best_state)
    method.eval()
    return FitResult(best_epoch, best_valid, best_test, history, seconds_before + time.perf_counter() - started)
