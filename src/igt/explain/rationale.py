"""Rationales of a trained model: per-graph predictions with atom and bond scores
(:class:`GraphExplanation`), for new SMILES, a split of the run's data, or any dataset; ensembles
averaged. The definitions (rationale size, error) are in :mod:`igt.explain`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from igt.errors import IgtError
from igt.predict import TrainedModel, check_ensemble, mean_std, output_columns, predict_dataset, prepare_smiles

RATIONALE_THRESHOLD = 0.5


@dataclass
class GraphExplanation:
    """What the model says about one input graph.

    Attributes:
        id: Molecule identifier shown to users (input row, id column or dataset index).
        smiles: The SMILES, or ``None`` for graphs that are not molecules.
        columns: Prediction column names.
        prediction: ``[len(columns)]`` probabilities or values (``None`` if it failed).
        label: ``[T]`` labels (NaN = missing) or ``[1]`` class index; ``None`` if unknown.
        node_scores: Per-node rationale scores, ``None`` for methods without rationales.
        edge_scores: Per-directed-edge scores, or ``None``.
        elements: Element symbol per atom (``"node"`` for non-molecular graphs).
        edge_index: ``[2, E]`` local edges (used to draw non-molecular graphs).
        node_gt: Ground-truth rationale per node, when the data has one.
        failure: ``""`` or why the input could not be explained (e.g. unparsable SMILES).
        standardized: ``""`` or the standardised SMILES explained instead of the input, and why.
        applicability: ``""`` or why the model's training data do not cover the molecule.
        images: Report-relative paths of the pictures (``png``, ``svg``) once drawn.
        prediction_std: Ensembles: per column, the standard deviation across runs.
        node_scores_std: Ensembles: per node, the standard deviation of its score across runs.
        fragment: The rationale as a substructure, once :func:`write_report` computed it.
    """

    id: str
    smiles: str | None
    columns: list[str]
    prediction: np.ndarray | None = None
    label: np.ndarray | None = None
    node_scores: np.ndarray | None = None
    edge_scores: np.ndarray | None = None
    elements: list[str] = field(default_factory=list)
    edge_index: np.ndarray | None = None
    node_gt: np.ndarray | None = None
    failure: str = ""
    images: dict[str, str] = field(default_factory=dict)
    task_type: str = "binary"
    standardized: str = ""
    applicability: str = ""
    prediction_std: np.ndarray | None = None
    node_scores_std: np.ndarray | None = None
    fragment: Any = None

    @property
    def spread(self) -> float | None:
        """Ensembles: the standard deviation of :attr:`headline` across runs, else ``None``."""
        if self.prediction is None or self.prediction_std is None:
            return None
        column = int(np.argmax(self.prediction)) if self.task_type == "multiclass" else 0
        return float(self.prediction_std[column])

    @property
    def rationale_size(self) -> float | None:
        """Fraction of nodes scored above :data:`RATIONALE_THRESHOLD`."""
        if self.node_scores is None or len(self.node_scores) == 0:
            return None
        return float(np.mean(np.asarray(self.node_scores) > RATIONALE_THRESHOLD))

    @property
    def error(self) -> float | None:
        """Distance of the prediction from the label (see the module docstring), or ``None``."""
        if self.prediction is None or self.label is None:
            return None
        if self.task_type == "multiclass":
            return float(1.0 - self.prediction[int(self.label[0])])
        label = np.asarray(self.label, dtype=float)
        observed = ~np.isnan(label)
        if not observed.any():
            return None
        return float(np.mean(np.abs(self.prediction[observed] - label[observed])))

    @property
    def headline(self) -> float | None:
        """One number to sort by: the first column, or the top class probability (multiclass)."""
        if self.prediction is None:
            return None
        return float(self.prediction.max() if self.task_type == "multiclass" else self.prediction[0])


def _elements(x: np.ndarray, molecular: bool) -> list[str]:
    if not molecular:
        return ["node"] * len(x)
    from rdkit import Chem

    table = Chem.GetPeriodicTable()
    # OGB's first atom column is atomic number - 1 (118 is the misc bucket).
    return [table.GetElementSymbol(int(z) + 1) if int(z) < 118 else "*" for z in x[:, 0]]


def _explanations_from(model: TrainedModel, dataset, preds, ids: Sequence[str], smiles: Sequence[str | None],
                       labels: np.ndarray | None) -> list[GraphExplanation]:
    columns = output_columns(model.task)
    node_ptr, edge_ptr = dataset.node_ptr.numpy(), dataset.edge_ptr.numpy()
    x, edge_index = dataset.x.numpy(), dataset.edge_index.numpy()
    node_gt = dataset.node_data.get("node_gt")
    node_gt = node_gt.numpy() if node_gt is not None else None
    out = []
    for g in range(len(dataset)):
        n0, n1, e0, e1 = node_ptr[g], node_ptr[g + 1], edge_ptr[g], edge_ptr[g + 1]
        out.append(GraphExplanation(
            id=str(ids[g]), smiles=smiles[g], columns=columns,
            prediction=np.asarray(preds.y_out[g], dtype=float).reshape(-1),
            label=None if labels is None else np.asarray(labels[g], dtype=float).reshape(-1),
            node_scores=None if preds.node_scores is None else preds.node_scores[n0:n1],
            edge_scores=None if preds.edge_scores is None else preds.edge_scores[e0:e1],
            elements=_elements(x[n0:n1], model.is_molecular),
            edge_index=edge_index[:, e0:e1], node_gt=None if node_gt is None else node_gt[n0:n1],
            task_type=model.task.type,
        ))
    return out


def as_models(model) -> list[TrainedModel]:
    models = [model] if isinstance(model, TrainedModel) else list(model)
    if not models:
        raise IgtError("no run given")
    check_ensemble(models)
    return models


def combine_explanations(per_run: Sequence[Sequence[GraphExplanation]]) -> list[GraphExplanation]:
    """One explanation per graph from several runs' explanations of the same graphs (same order):
    mean prediction and scores, their standard deviations (:func:`igt.predict.mean_std`); a graph
    fails when any run failed on it."""
    first = per_run[0]
    if len(per_run) == 1:
        return list(first)
    out = []
    for k, item in enumerate(first):
        items = [run[k] for run in per_run]
        failed = next((i for i in items if i.failure), None)
        if failed is not None:
            out.append(failed)
            continue
        combined = GraphExplanation(**{name: getattr(item, name) for name in item.__dataclass_fields__})
        combined.prediction, combined.prediction_std = mean_std([i.prediction for i in items])
        if all(i.node_scores is not None for i in items):
            combined.node_scores, combined.node_scores_std = mean_std([i.node_scores for i in items])
        if all(i.edge_scores is not None for i in items) and len({len(i.edge_scores) for i in items}) == 1:
            combined.edge_scores = mean_std([i.edge_scores for i in items])[0]
        out.append(combined)
    return out


def explain_smiles(model: TrainedModel | Sequence[TrainedModel], smiles: Sequence[str], ids: Sequence[str] | None = None,
                   labels: np.ndarray | None = None, progress: bool = True) -> list[GraphExplanation]:
    """Explain new molecules (one :class:`GraphExplanation` per input, in order; unparsable
    SMILES get ``failure`` set).

    Args:
        model: From :func:`igt.predict.load_trained`, or several (an ensemble: see the module
            docstring).
        smiles: The molecules.
        ids: Identifier per molecule (default: its position, from 0).
        labels: ``[M, T]`` known labels (NaN = unknown), e.g. from an input CSV.
        progress: Show a tqdm progress bar.
    """
    models = as_models(model)
    if len(models) > 1:
        return combine_explanations([explain_smiles(m, smiles, ids, labels, progress) for m in models])
    model = models[0]
    smiles = [str(s) for s in smiles]
    ids = [str(i) for i in (ids if ids is not None else range(len(smiles)))]
    prepared = prepare_smiles(model, smiles)
    dataset, kept = prepared.dataset, prepared.kept
    columns = output_columns(model.task)
    result: list[GraphExplanation | None] = [None] * len(smiles)
    for row, text, reason in prepared.failures:
        result[row] = GraphExplanation(id=ids[row], smiles=smiles[row], columns=columns, failure=reason,
                                       task_type=model.task.type)
    if kept:
        preds = predict_dataset(model, dataset, progress=progress)
        # The pictures and atom scores are of the molecule the model read (standardised or not).
        explained = _explanations_from(model, dataset, preds, [ids[i] for i in kept], dataset.smiles,
                                       None if labels is None else np.asarray(labels)[kept])
        for row, item in zip(kept, explained):
            item.standardized, item.applicability = prepared.standardized[row], prepared.applicability[row]
            result[row] = item
    return [item for item in result if item is not None]


def explain_split(model: TrainedModel | Sequence[TrainedModel], split: str = "test", limit: int | None = None,
                  progress: bool = True) -> list[GraphExplanation]:
    """Explain the first ``limit`` graphs of one split of the run's own data (labels known;
    Spurious-Motif graphs carry their ground-truth motif). Ensembles: the split of the first
    run's data, explained by every run."""
    from igt.data import load_dataset
    from igt.data.splits import make_split

    models = as_models(model)
    model = models[0]
    dataset = load_dataset(model.run.data)
    splits = make_split(dataset, model.run.data, seed=model.run.train.seed)
    if split not in splits:
        raise IgtError(f"unknown split {split!r}; expected one of {sorted(splits)}")
    if limit is not None and limit < 1:
        raise IgtError(f"--limit {limit}: expected a positive number")
    indices = splits[split][:limit] if limit is not None else splits[split]
    ids = [str(int(i)) for i in indices]
    per_run = [explain_dataset(model, dataset.subset(indices), ids=ids, progress=progress)]
    for other in models[1:]:  # each run's own featurisation (structural encodings) of the same graphs
        data = dataset if other.run.data == model.run.data else load_dataset(other.run.data)
        per_run.append(explain_dataset(other, data.subset(indices), ids=ids, progress=progress))
    return combine_explanations(per_run)


def explain_dataset(model: TrainedModel, dataset, ids: Sequence[str] | None = None,
                    progress: bool = True) -> list[GraphExplanation]:
    """Explain every graph of a :class:`~igt.data.dataset.GraphDataset` featurised like the
    run's data (its labels, SMILES and ground-truth masks, when present, are kept)."""
    ids = [str(i) for i in (ids if ids is not None else range(len(dataset)))]
    preds = predict_dataset(model, dataset, progress=progress)
    smiles = dataset.smiles if dataset.smiles is not None else [None] * len(dataset)
    return _explanations_from(model, dataset, preds, ids, smiles, dataset.y.numpy())


# ----------------------------------------------------------------------------- writing


__all__ = ["RATIONALE_THRESHOLD", "GraphExplanation", "combine_explanations", "explain_dataset", "explain_smiles",
           "explain_split"]
