"""Predictions of a trained run on new molecules (``igt predict``).

New SMILES go through exactly what the run's own data went through: the OGB featuriser of
:mod:`igt.data.featurize` and the structural encodings its config asks for
(``data.rwse_steps`` / ``data.lap_k``). Rows RDKit cannot parse, or above ``data.max_atoms`` /
``data.max_smiles_length``, are reported, not dropped: :class:`MoleculePredictions` keeps one
entry per input row, with the reason in ``errors``.

Before featurisation, new molecules are standardised when the run's ``data.standardize_inputs``
is on (the default; :mod:`igt.data.standardize`): salts lose their counter-ions and charges are
neutralised, and the ``standardized`` column says so. Every predicted row is checked against the
training split's statistics saved with the model (elements, atom types, largest molecule); the
``applicability`` column names what the model never saw, or is empty. Checkpoints written
before these statistics existed still load: their rows say the check was skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import logging

import numpy as np
import torch

from igt.config import RunConfig
from igt.data.dataset import GraphDataset, collate_graphs, graph_loader
from igt.data.encodings import add_random_node_features, add_structural_encodings
from igt.data.featurize import ATOM_VOCAB, BOND_VOCAB, featurize_smiles
from igt.data.standardize import applicability, standardize_all
from igt.data.task import FeatureSpec, TaskSpec
from igt.errors import IgtError
from igt.methods.base import Method
from igt.train.checkpoint import load_model
from igt.train.trainer import Predictions, configure_threads, predict, resolve_device

logger = logging.getLogger("igt.predict")
#: The ``applicability`` of every row of a model saved without training statistics.
NO_DOMAIN_NOTE = "not checked: the checkpoint has no training statistics (trained before igt saved them)"


@dataclass
class TrainedModel:
    """A run's method rebuilt from its checkpoint, with what is needed to feed it new data.

    Attributes:
        method: The method, in eval mode on ``device``.
        run: The run's config (featurisation and encodings are read from ``run.data``).
        task: The prediction task (output columns are named from ``task.task_names``).
        features: The feature vocabularies the model was trained on.
        path: Where it was loaded from.
        device: The device it runs on.
    """

    method: Method
    run: RunConfig
    task: TaskSpec
    features: FeatureSpec
    path: Path
    device: torch.device

    @property
    def is_molecular(self) -> bool:
        """Whether the model reads OGB molecule features (so SMILES can be fed to it)."""
        return self.features == FeatureSpec(ATOM_VOCAB, BOND_VOCAB)

    def signature(self) -> tuple:
        """What the runs of an ensemble must share: dataset, task type, output columns, features."""
        return (self.run.data.dataset, self.task.type, tuple(output_columns(self.task)), self.features)


def resolve_runs(paths: Sequence[Path], model_label: str | None = None, dataset: str | None = None) -> list[Path]:
    """The run folders of ``igt predict RUN [RUN ...]`` / ``igt explain``.

    Without ``model_label``, ``paths`` are the runs themselves. With it, ``paths`` is one
    ``igt reproduce`` results folder and the runs are its ``runs/<dataset>/<label>/seed*/``
    folders (names as ``igt reproduce`` writes them, :func:`igt.fileio.safe_name`), in seed order.

    Raises:
        IgtError: ``--model`` without ``--dataset`` or with several folders, or nothing matches.
    """
    from igt.fileio import dataset_folder, safe_name

    paths = [Path(p) for p in paths]
    if model_label is None:
        if dataset is not None:
            raise IgtError("--dataset picks runs of a results folder; give it with --model LABEL")
        return paths
    if dataset is None or len(paths) != 1:
        raise IgtError("--model LABEL needs one results folder (as written by `igt reproduce`) and --dataset NAME")
    folder = paths[0] / "runs" / dataset_folder(dataset) / safe_name(model_label)
    seeds = [p for p in folder.glob("seed*") if p.is_dir() and p.name[4:].isdigit()]
    if not seeds:
        raise IgtError(f"{folder}: no seed*/ run folders for model {model_label!r} on {dataset!r}")
    return sorted(seeds, key=lambda p: int(p.name[4:]))


def check_ensemble(models: Sequence["TrainedModel"]) -> None:
    """Refuse runs that do not predict the same thing (one line naming the first that differs)."""
    first = models[0]
    for model in models[1:]:
        if model.signature() != first.signature():
            raise IgtError(
                f"{model.path}: predicts {model.run.data.dataset!r} {model.task.type} "
                f"{output_columns(model.task)}, but {first.path} predicts {first.run.data.dataset!r} "
                f"{first.task.type} {output_columns(first.task)}; an ensemble's runs must agree"
            )


def load_ensemble(paths: Sequence[Path], device: str | None = None, threads: int | None = None) -> list["TrainedModel"]:
    """Load several runs (e.g. the seeds of one model) and check they agree (:func:`check_ensemble`)."""
    if not paths:
        raise IgtError("no run folder given")
    models = [load_trained(p, device=device, threads=threads) for p in paths]
    check_ensemble(models)
    return models


def mean_std(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation across runs (sample std, ``ddof=1``; 0 for a single run)."""
    stacked = np.stack([np.asarray(a, dtype=float) for a in arrays])
    std = stacked.std(axis=0, ddof=1) if len(arrays) > 1 else np.zeros_like(stacked[0])
    return stacked.mean(axis=0), std


def load_trained(path: Path, device: str | None = None, threads: int | None = None) -> TrainedModel:
    """Load a run folder (or checkpoint file) for inference.

    Args:
        path: A run folder written by ``igt train``, or its ``checkpoint.pt``.
        device: ``cpu``/``cuda``/``auto``; default: the run's ``train.device``.
        threads: Torch CPU threads; default: the run's ``train.threads``.

    Raises:
        IgtError: Missing, foreign, truncated or incompatible checkpoint (one line naming it).
    """
    method, run, task, features = load_model(Path(path))
    configure_threads(run.train.threads if threads is None else threads)
    target = resolve_device(device or run.train.device)
    method.to(target)
    return TrainedModel(method, run, task, features, Path(path), target)


def output_columns(task: TaskSpec) -> list[str]:
    """Names of the prediction columns: one per task (binary, regression), named by
    ``task.task_names``, or one probability per class (multiclass: ``<name>_<class>``)."""
    names = list(task.task_names) or [f"task_{t}" for t in range(task.num_tasks)]
    if task.type == "multiclass":
        base = names[0] if names else "class"
        return [f"{base}_{k}" for k in range(task.num_classes)]
    if len(names) != task.num_tasks:
        names = [f"task_{t}" for t in range(task.num_tasks)]
    return names


def empty_labels(task: TaskSpec, count: int) -> torch.Tensor:
    """Labels of unlabelled graphs, shaped as the task's loss expects (NaN = missing)."""
    if task.type == "multiclass":
        return torch.zeros(count, dtype=torch.long)
    return torch.full((count, task.num_tasks), float("nan"))


@dataclass
class PreparedMolecules:
    """New molecules featurised as a model's training data were.

    Attributes:
        dataset: The valid molecules (with the run's structural encodings).
        kept: Their positions in the input.
        failures: ``(position, smiles, reason)`` of the others.
        standardized: Per input row, ``""`` or the standardised SMILES and what changed.
        applicability: Per input row, ``""`` or why the model's training data do not cover it.
    """

    dataset: GraphDataset
    kept: list[int]
    failures: list[tuple[int, str, str]]
    standardized: list[str]
    applicability: list[str]


def prepare_smiles(model: TrainedModel, smiles: Sequence[str]) -> PreparedMolecules:
    """Standardise (``data.standardize_inputs``), size-check, featurise and applicability-check
    ``smiles`` for ``model``."""
    if not model.is_molecular:
        raise IgtError(
            f"{model.path}: this model was trained on {model.run.data.dataset!r}, whose graphs are not "
            "molecules; it cannot read SMILES (use `igt explain --split` instead)"
        )
    data = model.run.data
    texts = list(smiles)
    standardized = [""] * len(texts)
    if data.standardize_inputs:
        texts, notes = standardize_all(texts, data.max_smiles_length)
        standardized = [f"{new} ({note})" if note else "" for new, note in zip(texts, notes)]
    graphs, kept, failures = featurize_smiles(texts, data.max_atoms, data.max_smiles_length)
    dataset = collate_graphs("input", model.task, model.features, graphs, empty_labels(model.task, len(graphs)),
                             smiles=[texts[i] for i in kept])
    if graphs and (data.rwse_steps or data.lap_k):
        dataset = add_structural_encodings(dataset, data.rwse_steps, data.lap_k)
    # A model trained with noise node features needs them here too: fresh noise, seeded.
    dataset = add_random_node_features(dataset, data.random_node_features)
    flags = [""] * len(texts)
    if kept and not model.task.has_training_domain:
        logger.warning("%s: %s", model.path, NO_DOMAIN_NOTE)
    ptr = dataset.node_ptr
    for position, row in enumerate(kept):
        flags[row] = (applicability(model.task, dataset.x[ptr[position]:ptr[position + 1]])
                      if model.task.has_training_domain else NO_DOMAIN_NOTE)
    return PreparedMolecules(dataset, kept, failures, standardized, flags)


def smiles_dataset(model: TrainedModel, smiles: Sequence[str]) -> tuple[GraphDataset, list[int], list[tuple[int, str, str]]]:
    """Featurise ``smiles`` as ``model``'s training data was (see :func:`prepare_smiles`).

    Returns:
        ``(dataset, kept, failures)``: the valid molecules (with their structural encodings),
        their positions in ``smiles``, and ``(position, smiles, reason)`` for the others.
    """
    prepared = prepare_smiles(model, smiles)
    return prepared.dataset, prepared.kept, prepared.failures


def predict_dataset(model: TrainedModel, dataset: GraphDataset, progress: bool = True,
                    batch_size: int | None = None) -> Predictions:
    """Run ``model`` over ``dataset`` in batches (a tqdm bar when ``progress``)."""
    loader = graph_loader(dataset, batch_size=batch_size or model.run.train.eval_batch_size)
    return predict(model.method, loader, model.device, progress=progress)


@dataclass
class MoleculePredictions:
    """One entry per input SMILES, in input order.

    Attributes:
        smiles: The input strings.
        columns: Names of the prediction columns (see :func:`output_columns`).
        values: ``[M, len(columns)]`` probabilities or values; NaN on failed rows.
        errors: ``""`` or why the row could not be predicted.
        node_scores: Per row, the per-atom rationale scores (``None`` for failed rows and
            methods without rationales).
        edge_scores: Per row, the per-directed-edge scores (RDKit bond ``k`` is edges
            ``2k`` and ``2k + 1``), or ``None``.
        standardized: ``""`` or the standardised SMILES the model read, and what changed (the
            atom and edge scores are of that molecule).
        applicability: ``""`` or why the training data do not cover the row.
        values_std: Ensembles only (:func:`predict_ensemble`): ``[M, len(columns)]`` standard
            deviation across the runs; ``values`` and the scores are then the runs' means.
        node_scores_std: Ensembles only: per row, the per-atom standard deviation.
        runs: The run folders (ensembles).
    """

    smiles: list[str]
    columns: list[str]
    values: np.ndarray
    errors: list[str]
    node_scores: list[np.ndarray | None]
    edge_scores: list[np.ndarray | None]
    standardized: list[str] = field(default_factory=list)
    applicability: list[str] = field(default_factory=list)
    values_std: np.ndarray | None = None
    node_scores_std: list[np.ndarray | None] | None = None
    runs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for e in self.errors if e)


def predict_smiles(model: TrainedModel, smiles: Sequence[str], progress: bool = True,
                   batch_size: int | None = None) -> MoleculePredictions:
    """Predict every SMILES; rows RDKit rejects get an error message and NaN predictions.

    Args:
        model: From :func:`load_trained`.
        smiles: The molecules.
        progress: Show a tqdm progress bar.
        batch_size: Graphs per batch (default: the run's ``train.eval_batch_size``).
    """
    smiles = [str(s) for s in smiles]
    columns = output_columns(model.task)
    values = np.full((len(smiles), len(columns)), np.nan)
    errors = [""] * len(smiles)
    node_scores: list[np.ndarray | None] = [None] * len(smiles)
    edge_scores: list[np.ndarray | None] = [None] * len(smiles)
    prepared = prepare_smiles(model, smiles)
    dataset, kept = prepared.dataset, prepared.kept
    for row, _, reason in prepared.failures:
        errors[row] = reason
    if kept:
        preds = predict_dataset(model, dataset, progress=progress, batch_size=batch_size)
        values[kept] = preds.y_out.reshape(len(kept), -1)
        edge_ptr = dataset.edge_ptr.numpy()
        for position, row in enumerate(kept):
            if preds.node_scores is not None:
                node_scores[row] = preds.node_scores[preds.node_ptr[position]:preds.node_ptr[position + 1]]
            if preds.edge_scores is not None:
                edge_scores[row] = preds.edge_scores[edge_ptr[position]:edge_ptr[position + 1]]
    return MoleculePredictions(smiles, columns, values, errors, node_scores, edge_scores,
                               prepared.standardized, prepared.applicability)


def predict_ensemble(models: Sequence[TrainedModel], smiles: Sequence[str], progress: bool = True,
                     batch_size: int | None = None) -> MoleculePredictions:
    """Predict with each run and combine: ``values`` and atom scores are the runs' means,
    ``values_std`` / ``node_scores_std`` their standard deviations (:func:`mean_std`). A row
    fails when any run cannot read it (the first such run's reason). One run: as
    :func:`predict_smiles`, with zero spread."""
    check_ensemble(models)
    each = [predict_smiles(m, smiles, progress=progress, batch_size=batch_size) for m in models]
    first = each[0]
    rows = len(first.smiles)
    errors = [next((p.errors[r] for p in each if p.errors[r]), "") for r in range(rows)]
    values, values_std = mean_std([p.values for p in each])
    node_scores: list[np.ndarray | None] = [None] * rows
    node_std: list[np.ndarray | None] = [None] * rows
    edge_scores: list[np.ndarray | None] = [None] * rows
    for r in range(rows):
        if errors[r]:
            values[r], values_std[r] = np.nan, np.nan
            continue
        if all(p.node_scores[r] is not None for p in each):
            node_scores[r], node_std[r] = mean_std([p.node_scores[r] for p in each])
        if all(p.edge_scores[r] is not None for p in each) and len({len(p.edge_scores[r]) for p in each}) == 1:
            edge_scores[r] = mean_std([p.edge_scores[r] for p in each])[0]
    return MoleculePredictions(first.smiles, first.columns, values, errors, node_scores, edge_scores,
                               first.standardized, first.applicability, values_std, node_std,
                               [str(m.path) for m in models])


def read_smiles_csv(path: Path, smiles_column: str | None, fallback: str | None = None):
    """Read a CSV as text (every value kept exactly as written) and find its SMILES column.

    Args:
        path: The table (``.csv``/``.tsv``, optionally ``.gz``; delimiter and encoding detected
            as for training data, :func:`igt.data.molecules.read_table`).
        smiles_column: The column to use; default: ``fallback`` (the run's ``data.smiles_column``)
            when the file has it, else a column named ``smiles`` (any case).

    Returns:
        ``(frame, column)``.
    """
    from igt.data.molecules import read_table

    frame, notes = read_table(Path(path), text=True)
    for note in notes:
        logger.warning(note)
    if smiles_column is not None:
        if smiles_column not in frame.columns:
            raise IgtError(f"{path}: no column {smiles_column!r}; columns are {list(frame.columns)}")
        return frame, smiles_column
    if fallback and fallback in frame.columns:
        return frame, fallback
    matches = [c for c in frame.columns if c.strip().lower() == "smiles"]
    if len(matches) == 1:
        return frame, matches[0]
    raise IgtError(f"{path}: which column holds the SMILES? pass --smiles-column (columns are {list(frame.columns)})")


def prediction_frame(frame, predictions: MoleculePredictions):
    """The input ``frame`` (rows and columns in order) plus one column per prediction and the
    ``standardized``, ``applicability`` and ``error`` columns. A column whose name the input
    already uses is suffixed ``_predicted`` (e.g. the label column of a labelled test file)."""
    out = frame.copy()
    rows = len(predictions.smiles)
    values = []
    for j, name in enumerate(predictions.columns):
        values.append((name, predictions.values[:, j]))
        if predictions.values_std is not None:
            values.append((f"{name}_std", predictions.values_std[:, j]))
    extra = [("standardized", predictions.standardized or [""] * rows),
             ("applicability", predictions.applicability or [""] * rows), ("error", predictions.errors)]
    for name, column_values in [*values, *extra]:
        column = name
        while column in out.columns:
            column = f"{column}_predicted"
        out[column] = column_values
    return out
