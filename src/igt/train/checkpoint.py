"""Checkpoints: written atomically, read with ``weights_only=True``, enough metadata to rebuild."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from igt.version import __version__
from igt.config import RunConfig
from igt.fileio import atomic_torch_save
from igt.data.task import FeatureSpec, TaskSpec
from igt.errors import IgtError

CHECKPOINT_FORMAT = "igt-checkpoint"
CHECKPOINT_VERSION = 1
_TASK_TUPLES = ("task_names", "target_mean", "target_std")  # stored as lists


def save_checkpoint(path: Path, method: torch.nn.Module, run: RunConfig, task: TaskSpec,
                    features: FeatureSpec, extra: dict[str, Any] | None = None) -> None:
    """Save weights plus the config, task and feature vocabularies needed to rebuild the model."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "igt_version": __version__,
        "config": run.to_dict(),
        "task": {**task.__dict__, **{k: list(getattr(task, k)) for k in _TASK_TUPLES}},
        "features": {"node_vocab": list(features.node_vocab), "edge_vocab": list(features.edge_vocab)},
        "state_dict": {k: v.detach().cpu() for k, v in method.state_dict().items()},
        "extra": extra or {},
    }
    atomic_torch_save(payload, path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load and validate a checkpoint file; every failure is a one-line :class:`IgtError`."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise IgtError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise IgtError(f"{path}: not a readable igt checkpoint (truncated or foreign file: {reason[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise IgtError(f"{path}: not an igt checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise IgtError(
            f"{path}: checkpoint format version {payload.get('version')} is not supported by igt "
            f"{__version__} (expects {CHECKPOINT_VERSION})"
        )
    return payload


def load_model(path: Path) -> tuple[torch.nn.Module, RunConfig, TaskSpec, FeatureSpec]:
    """Rebuild the method saved at ``path`` (a checkpoint file or a run folder), in eval mode."""
    from igt.methods import build_method

    payload = read_checkpoint(path)
    run = RunConfig.from_dict(payload["config"], where=str(path))
    task_raw = dict(payload["task"])
    task_raw.update({k: tuple(task_raw.get(k, ())) for k in _TASK_TUPLES})
    task = TaskSpec(**task_raw)
    features = FeatureSpec(tuple(payload["features"]["node_vocab"]), tuple(payload["features"]["edge_vocab"]))
    method = build_method(run, task, features)
    try:
        method.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise IgtError(f"{path}: weights do not match the saved config ({str(exc).splitlines()[0][:120]})") from None
    method.eval()
    return method, run, task, features
