"""The training loop. It walks a method's player schedule and knows nothing else about it."""

from __future__ import annotations

import copy
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from igt.config import TrainConfig
from igt.data.dataset import GraphDataset, graph_loader
from igt.errors import IgtError
from igt.methods.base import Method
from igt.train import metrics
from igt.train.losses import predict_transform, task_loss


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


def make_loaders(dataset: GraphDataset, split: dict[str, torch.Tensor], train: TrainConfig) -> dict[str, DataLoader]:
    """Loaders per split; the training order is drawn from a generator seeded by ``train.seed``."""
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
def predict(method: Method, loader: DataLoader, device: torch.device | None = None, progress: bool = False) -> Predictions:
    method.eval()
    device = device or torch.device("cpu")
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    sizes = [np.zeros(1, dtype=np.int64)]
    for batch in tqdm(loader, desc="predict", leave=False, disable=not (progress and interactive())):
        batch = batch.to(device)
        out = method(batch)
        parts["y_true"].append(batch.y.cpu().numpy())
        parts["y_out"].append(predict_transform(method.task, out.pred).cpu().numpy())
        parts["index"].append(batch.idx.cpu().numpy())
        parts["loss"].append(task_loss(method.task, out.pred, batch.y, reduction="none").cpu().numpy())
        sizes.append(np.diff(batch.ptr.cpu().numpy()))
        if out.node_scores is not None:
            parts["node_scores"].append(out.node_scores.cpu().numpy())
        if out.edge_scores is not None:
            parts["edge_scores"].append(out.edge_scores.cpu().numpy())
        for key in ("node_gt", "edge_gt"):
            if key in batch:
                parts[key].append(batch[key].cpu().numpy())

    def joined(key: str) -> np.ndarray | None:
        return np.concatenate(parts[key]) if parts.get(key) else None

    return Predictions(
        y_true=joined("y_true"), y_out=joined("y_out"),
        node_scores=joined("node_scores"), node_gt=joined("node_gt"),
        edge_scores=joined("edge_scores"), edge_gt=joined("edge_gt"),
        node_ptr=np.cumsum(np.concatenate(sizes)), index=joined("index"),
        loss=float(joined("loss").mean()) if parts.get("loss") else float("nan"),
    )


def evaluate(method: Method, loader: DataLoader, device: torch.device | None = None) -> dict[str, float | None]:
    """The task metric, plus explanation metrics when the data has ground-truth rationales.

    The global RNG is left as it was (a DataLoader draws its base seed from it), so how often a
    run evaluates cannot change its training.
    """
    with torch.random.fork_rng(devices=[]):
        preds = predict(method, loader, device)
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


def train_step(method: Method, batch, optimizers: dict[str, torch.optim.Optimizer], grad_clip: float) -> dict[str, float]:
    """One mini-batch of the game: each player takes its steps in schedule order.

    Returns the logged loss terms, averaged over a player's steps; terms of players other
    than ``model`` are prefixed with the player's name.
    """
    logs: dict[str, float] = defaultdict(float)
    shared = method.prepare_batch(batch)
    for player, steps in method.schedule():
        for _ in range(steps):
            method.zero_grad(set_to_none=True)
            loss, terms = method.player_loss(batch, player, shared)
            loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(list(method.player_parameters(player)), grad_clip)
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


def fit(method: Method, loaders: dict[str, DataLoader], train: TrainConfig, progress: bool = True,
        on_epoch: EpochCallback | None = None) -> FitResult:
    """Train ``method``; keep the weights of the epoch best on validation (loaded back at the end).

    Each player of ``method.schedule()`` has its own Adam optimizer over its own parameters.
    For every mini-batch the players take their steps in schedule order. Without a ``"test"``
    loader (``igt tune``, which never reads the test split) the result's ``test`` is empty.
    """
    device = resolve_device(train.device)
    method.to(device)
    optimizers = make_optimizers(method, train)
    higher = method.task.higher_is_better
    best_value, best_epoch, best_state = None, 0, None
    best_valid: dict[str, float | None] = {}
    best_test: dict[str, float | None] = {}
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    bars = progress and interactive()
    epochs = tqdm(range(1, train.epochs + 1), desc=f"train {method.task.metric}", disable=not bars)
    for epoch in epochs:
        epoch_start = time.perf_counter()
        method.set_progress(epoch, train.epochs)
        method.train()
        sums: dict[str, float] = defaultdict(float)
        batches = 0
        for batch in tqdm(loaders["train"], desc=f"epoch {epoch}", leave=False, disable=not bars):
            for name, value in train_step(method, batch.to(device), optimizers, train.grad_clip).items():
                sums[name] += value
            batches += 1
        train_seconds = time.perf_counter() - epoch_start
        valid = evaluate(method, loaders["valid"], device)
        value = valid["metric"]
        improved = best_value is None or _better(value, valid["loss"], best_value, best_valid["loss"], higher)
        # The reported test numbers are those of the selected epoch, so skipping the test split on
        # other epochs changes no result, only the test curve of history.csv.
        scored = "test" in loaders and (improved or train.test_every_epoch)
        test = evaluate(method, loaders["test"], device) if scored else {}
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
        epochs.set_postfix(valid=f"{value:.4f}", best=f"{best_value:.4f}@{best_epoch}")
        if progress and not bars:  # one plain line per epoch for logs
            print(f"epoch {epoch}/{train.epochs}: valid {method.task.metric} {value:.4f} "
                  f"(best {best_value:.4f} at epoch {best_epoch}), {row['seconds']:.1f} s", file=sys.stderr, flush=True)
        if on_epoch is not None:
            on_epoch(epoch, valid)
    if best_state is not None:
        method.load_state_dict(best_state)
    method.eval()
    return FitResult(best_epoch, best_valid, best_test, history, time.perf_counter() - started)
