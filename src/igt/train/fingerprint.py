"""Fitting the fingerprint baselines (:mod:`igt.methods.fingerprint`): scikit-learn fits them once
on the training split, and they are scored on the other splits like a trained method, so a run
folder, ``igt tune`` and ``igt reproduce`` treat them as any model."""

from __future__ import annotations

import time

from torch import Tensor

from igt.errors import IgtError
from igt.methods.fingerprint import FingerprintModel
from igt.train.trainer import FitResult, evaluate


def check_has_smiles(dataset, name: str) -> None:
    if dataset.smiles is None:
        raise IgtError(f"{name} reads Morgan fingerprints of SMILES; {dataset.name!r} has no SMILES (molecule datasets only)")


def fit_fingerprint_model(method: FingerprintModel, dataset, split: dict[str, Tensor], loaders: dict, seed: int):
    """Fit on the training split and score every other split in ``loaders``: the
    :class:`~igt.train.trainer.FitResult` of a one-"epoch" run (no test split is read when
    ``loaders`` has none, as in tuning)."""
    check_has_smiles(dataset, method.config.name)
    started = time.perf_counter()
    train = split["train"]
    method.fit([dataset.smiles[i] for i in train.tolist()], method.task.standardize(dataset.y[train].double()), seed)
    seconds = time.perf_counter() - started
    scores = {name: evaluate(method, loader) for name, loader in loaders.items() if name != "train"}
    row: dict[str, float] = {"epoch": 1, "train_seconds": seconds}
    for name, values in scores.items():
        row.update({f"{name}/{key}": value for key, value in values.items()})
    return FitResult(1, scores.get("valid", {}), scores.get("test", {}), [row], seconds)


__all__ = ["check_has_smiles", "fit_fingerprint_model"]
