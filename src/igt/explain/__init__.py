"""Explanations a person can read: per-atom rationale scores, pictures and an HTML report.

``igt explain`` (and :func:`explain_smiles` / :func:`explain_split` + :func:`write_report`)
writes into one folder:

* ``rationale.csv``: one row per atom (``molecule_id, smiles, atom_index, element, score``,
  plus ``ground_truth`` when the data has ground-truth rationales);
* ``rationale.json``: per molecule its prediction, label, error, rationale size, atom scores and
  rationale fragment;
* ``fragments.csv``: per molecule the rationale as a substructure (fragment SMILES and SMARTS,
  largest connected piece; :mod:`igt.explain.fragments`);
* ``fragment_summary.csv``: the largest-piece fragments ranked by how many molecules have them,
  with counts among predicted positives and negatives and the mean prediction;
* ``images/mol-<k>.png`` and ``.svg``: the molecule with atoms and bonds shaded by score;
* ``index.html``: a self-contained report, one card per molecule (see :mod:`igt.explain.report`).

Definitions used throughout:

* **rationale size**: the fraction of a molecule's atoms whose score is above
  :data:`RATIONALE_THRESHOLD` (0.5), i.e. the atoms the model keeps as its reason;
* **error** (only where the label is known): binary tasks, the mean over observed labels of
  ``|p - y|``; regression, the mean ``|prediction - y|``; multiclass, ``1 - p(true class)``.

**Ensembles** (several runs, e.g. the seeds of one model; :func:`igt.predict.load_ensemble`):
every function here that takes a model also takes a list of them. Predictions, atom and edge
scores are then the runs' means (the mean drives the shading, the rationale size and the
fragments), and ``prediction_std`` / ``node_scores_std`` hold the sample standard deviations
(``rationale.csv`` gains ``score_std``; the report shows ``±`` and sorts by spread). With
``--split``, the molecules are the split of the first run's data.

Methods without node scores (ERM backbones) are explained without a rationale: the report says
so and the ``score`` column is empty. We deliberately do not substitute a gradient saliency map,
which would measure something else (sensitivity, not the model's own selection) and would be
read as if it were a rationale.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from igt.errors import IgtError
from igt.fileio import atomic_open, atomic_write_bytes, atomic_write_text
from igt.predict import TrainedModel, check_ensemble, mean_std, output_columns, predict_dataset, prepare_smiles

#: Atoms scored above this are counted in the rationale size.
RATIONALE_THRESHOLD = 0.5
REPORT_FILES = ("index.html", "rationale.csv", "rationale.json", "fragments.csv", "fragment_summary.csv")


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


def _models(model) -> list[TrainedModel]:
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
    models = _models(model)
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

    models = _models(model)
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


def prepare_report_dir(out: Path, overwrite: bool) -> Path:
    """Create ``out``; refuse a folder that already holds files unless ``overwrite`` (then the
    previous report's own files are removed, nothing else)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise IgtError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise IgtError(f"{out}: already holds files; choose another --out or pass --overwrite")
        for name in REPORT_FILES:
            (out / name).unlink(missing_ok=True)
        images = out / "images"
        if images.is_dir():
            for picture in list(images.glob("mol-*.png")) + list(images.glob("mol-*.svg")):
                picture.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def draw_pictures(explanations: Sequence[GraphExplanation], out: Path, progress: bool = True) -> None:
    """Write ``images/mol-<k>.png`` and ``.svg`` for each explained graph; set ``images``."""
    from tqdm.auto import tqdm

    from igt.explain.draw import draw_graph, draw_molecule

    folder = out / "images"
    folder.mkdir(exist_ok=True)
    from igt.train.trainer import interactive

    for k, item in enumerate(tqdm(explanations, desc="draw", leave=False, disable=not (progress and interactive()))):
        if item.failure:
            continue
        stem = folder / f"mol-{k}"
        if item.smiles is not None:
            png, svg = draw_molecule(item.smiles, item.node_scores, item.edge_scores)
            atomic_write_bytes(stem.with_suffix(".png"), png)
            atomic_write_text(stem.with_suffix(".svg"), svg)
        else:
            draw_graph(stem, item.edge_index, len(item.elements), item.node_scores, item.node_gt)
        item.images = {"png": f"images/mol-{k}.png", "svg": f"images/mol-{k}.svg"}


def write_rationale_csv(explanations: Sequence[GraphExplanation], path: Path) -> None:
    """One row per atom: ``molecule_id, smiles, atom_index, element, score`` (+ ``score_std`` for
    ensembles, + ``ground_truth``)."""
    with_gt = any(item.node_gt is not None for item in explanations)
    with_std = any(item.node_scores_std is not None for item in explanations)
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["molecule_id", "smiles", "atom_index", "element", "score"] + (["score_std"] if with_std else [])
                        + (["ground_truth"] if with_gt else []))
        for item in explanations:
            for i, element in enumerate(item.elements):
                score = "" if item.node_scores is None else f"{float(item.node_scores[i]):.6g}"
                row = [item.id, item.smiles or "", i, element, score]
                if with_std:
                    row.append("" if item.node_scores_std is None else f"{float(item.node_scores_std[i]):.6g}")
                if with_gt:
                    row.append("" if item.node_gt is None else f"{float(item.node_gt[i]):g}")
                writer.writerow(row)


def explanation_record(item: GraphExplanation) -> dict[str, Any]:
    """The JSON form of one explanation (NaN as ``null``)."""
    record: dict[str, Any] = {
        "id": item.id,
        "smiles": item.smiles,
        "failure": item.failure or None,
        "prediction": None if item.prediction is None else {c: _number(v) for c, v in zip(item.columns, item.prediction)},
        **({"prediction_std": {c: _number(v) for c, v in zip(item.columns, item.prediction_std)}}
           if item.prediction_std is not None else {}),
        "label": None if item.label is None else [_number(v) for v in item.label],
        "error": _number(item.error),
        "rationale_size": _number(item.rationale_size),
        "atoms": [
            {"index": i, "element": element,
             "score": None if item.node_scores is None else _number(item.node_scores[i]),
             **({"score_std": _number(item.node_scores_std[i])} if item.node_scores_std is not None else {}),
             **({"ground_truth": _number(item.node_gt[i])} if item.node_gt is not None else {})}
            for i, element in enumerate(item.elements)
        ],
        "images": item.images or None,
        "standardized": item.standardized or None,
        "applicability": item.applicability or None,
        "fragment": None if item.fragment is None else item.fragment.record(),
    }
    return record


@dataclass
class ExplainReport:
    """Where :func:`write_report` put things."""

    out: Path
    index_html: Path
    rationale_csv: Path
    rationale_json: Path
    explained: int
    failed: int
    fragments_csv: Path | None = None
    fragment_summary_csv: Path | None = None
    fragment_summary: list[dict[str, Any]] = field(default_factory=list)


def write_report(model: TrainedModel | Sequence[TrainedModel], explanations: Sequence[GraphExplanation], out: Path,
                 overwrite: bool = False, images: bool = True, title: str | None = None, progress: bool = True,
                 top_ratio: float | None = None) -> ExplainReport:
    """Write ``rationale.csv``, ``rationale.json``, ``fragments.csv``, ``fragment_summary.csv``,
    pictures and ``index.html`` into ``out``.

    Args:
        model: The model (or the ensemble's runs) that made the explanations (described in the report).
        explanations: From :func:`explain_smiles` or :func:`explain_split`.
        out: The report folder; must be new or empty unless ``overwrite``.
        overwrite: Replace a previous report there.
        images: Draw pictures (the slow part for thousands of molecules).
        title: Report title (default: names the run).
        progress: Show a progress bar while drawing.
        top_ratio: Fragments of the ``top_ratio`` best-scored atoms of each molecule instead of
            those above :data:`RATIONALE_THRESHOLD`.
    """
    from igt.explain.fragments import explanation_fragments, fragment_summary, write_fragments_csv, write_summary_csv
    from igt.explain.report import render_report

    models = _models(model)
    model = models[0]
    if top_ratio is not None and not 0 < top_ratio <= 1:
        raise IgtError(f"--top-ratio {top_ratio}: expected a fraction in (0, 1]")
    out = prepare_report_dir(out, overwrite)
    if images:
        draw_pictures(explanations, out, progress=progress)
    write_rationale_csv(explanations, out / "rationale.csv")
    has_rationale = any(e.node_scores is not None for e in explanations)
    fragments = explanation_fragments(explanations, RATIONALE_THRESHOLD, top_ratio)
    for item, fragment in zip(explanations, fragments):
        item.fragment = fragment
    molecular = any(f is not None for f in fragments)
    summary, rule = fragment_summary(explanations, fragments, model.task.type)
    if molecular:
        write_fragments_csv(explanations, fragments, out / "fragments.csv")
        write_summary_csv(summary, out / "fragment_summary.csv")
    meta = {
        "run": " ".join(str(m.path) for m in models),
        "runs": [str(m.path) for m in models],
        "dataset": model.run.data.dataset,
        "method": model.run.method.name,
        "backbone": model.run.backbone.name,
        "task": model.task.type,
        "columns": output_columns(model.task),
        "rationale_threshold": RATIONALE_THRESHOLD,
        "has_rationale": has_rationale,
        "fragment_rule": (f"top {top_ratio:g} of atoms by score" if top_ratio is not None
                          else f"atoms with score > {RATIONALE_THRESHOLD:g}"),
        "positive_rule": rule,
    }
    payload = {**meta, "molecules": [explanation_record(item) for item in explanations],
               "fragment_summary": summary if molecular else None}
    atomic_write_text(out / "rationale.json", json.dumps(payload, separators=(",", ":")) + "\n")
    default_title = f"igt explain: {model.path}" + (f" (+{len(models) - 1} runs)" if len(models) > 1 else "")
    html_text = render_report(explanations, meta, title=title or default_title, images_root=out,
                              summary=summary if molecular else None)
    atomic_write_text(out / "index.html", html_text)
    failed = sum(1 for e in explanations if e.failure)
    return ExplainReport(out, out / "index.html", out / "rationale.csv", out / "rationale.json",
                         len(explanations) - failed, failed,
                         out / "fragments.csv" if molecular else None,
                         out / "fragment_summary.csv" if molecular else None, summary)


__all__ = [
    "RATIONALE_THRESHOLD", "GraphExplanation", "ExplainReport", "explain_smiles", "explain_split", "explain_dataset",
    "combine_explanations", "write_report", "draw_pictures", "write_rationale_csv", "prepare_report_dir",
]
