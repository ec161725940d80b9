"""Explanations a person can read: per-atom rationale scores, pictures and an HTML report.

``igt explain`` (and :func:`explain_smiles` / :func:`explain_split` + :func:`write_report`)
writes into one folder:

* ``rationale.csv``: one row per atom (``molecule_id, smiles, atom_index, element, score``,
  plus ``ground_truth`` when the data has ground-truth rationales);
* ``rationale.json``: per molecule its prediction, label, error, rationale size and atom scores;
* ``images/mol-<k>.png`` and ``.svg``: the molecule with atoms and bonds shaded by score;
* ``index.html``: a self-contained report, one card per molecule (see :mod:`igt.explain.report`).

Definitions used throughout:

* **rationale size**: the fraction of a molecule's atoms whose score is above
  :data:`RATIONALE_THRESHOLD` (0.5), i.e. the atoms the model keeps as its reason;
* **error** (only where the label is known): binary tasks, the mean over observed labels of
  ``|p - y|``; regression, the mean ``|prediction - y|``; multiclass, ``1 - p(true class)``.

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
from igt.predict import TrainedModel, output_columns, predict_dataset, prepare_smiles

#: Atoms scored above this are counted in the rationale size.
RATIONALE_THRESHOLD = 0.5
REPORT_FILES = ("index.html", "rationale.csv", "rationale.json")


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


def explain_smiles(model: TrainedModel, smiles: Sequence[str], ids: Sequence[str] | None = None,
                   labels: np.ndarray | None = None, progress: bool = True) -> list[GraphExplanation]:
    """Explain new molecules (one :class:`GraphExplanation` per input, in order; unparsable
    SMILES get ``failure`` set).

    Args:
        model: From :func:`igt.predict.load_trained`.
        smiles: The molecules.
        ids: Identifier per molecule (default: its position, from 0).
        labels: ``[M, T]`` known labels (NaN = unknown), e.g. from an input CSV.
        progress: Show a tqdm progress bar.
    """
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


def explain_split(model: TrainedModel, split: str = "test", limit: int | None = None,
                  progress: bool = True) -> list[GraphExplanation]:
    """Explain the first ``limit`` graphs of one split of the run's own data (labels known;
    Spurious-Motif graphs carry their ground-truth motif)."""
    from igt.data import load_dataset
    from igt.data.splits import make_split

    dataset = load_dataset(model.run.data)
    splits = make_split(dataset, model.run.data, seed=model.run.train.seed)
    if split not in splits:
        raise IgtError(f"unknown split {split!r}; expected one of {sorted(splits)}")
    if limit is not None and limit < 1:
        raise IgtError(f"--limit {limit}: expected a positive number")
    indices = splits[split][:limit] if limit is not None else splits[split]
    return explain_dataset(model, dataset.subset(indices), ids=[str(int(i)) for i in indices], progress=progress)


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
            stem.with_suffix(".png").write_bytes(png)
            stem.with_suffix(".svg").write_text(svg)
        else:
            draw_graph(stem, item.edge_index, len(item.elements), item.node_scores, item.node_gt)
        item.images = {"png": f"images/mol-{k}.png", "svg": f"images/mol-{k}.svg"}


def write_rationale_csv(explanations: Sequence[GraphExplanation], path: Path) -> None:
    """One row per atom: ``molecule_id, smiles, atom_index, element, score`` (+ ``ground_truth``)."""
    with_gt = any(item.node_gt is not None for item in explanations)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["molecule_id", "smiles", "atom_index", "element", "score"] + (["ground_truth"] if with_gt else []))
        for item in explanations:
            for i, element in enumerate(item.elements):
                score = "" if item.node_scores is None else f"{float(item.node_scores[i]):.6g}"
                row = [item.id, item.smiles or "", i, element, score]
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
        "label": None if item.label is None else [_number(v) for v in item.label],
        "error": _number(item.error),
        "rationale_size": _number(item.rationale_size),
        "atoms": [
            {"index": i, "element": element,
             "score": None if item.node_scores is None else _number(item.node_scores[i]),
             **({"ground_truth": _number(item.node_gt[i])} if item.node_gt is not None else {})}
            for i, element in enumerate(item.elements)
        ],
        "images": item.images or None,
        "standardized": item.standardized or None,
        "applicability": item.applicability or None,
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


def write_report(model: TrainedModel, explanations: Sequence[GraphExplanation], out: Path, overwrite: bool = False,
                 images: bool = True, title: str | None = None, progress: bool = True) -> ExplainReport:
    """Write ``rationale.csv``, ``rationale.json``, pictures and ``index.html`` into ``out``.

    Args:
        model: The model that made the explanations (its run is described in the report).
        explanations: From :func:`explain_smiles` or :func:`explain_split`.
        out: The report folder; must be new or empty unless ``overwrite``.
        overwrite: Replace a previous report there.
        images: Draw pictures (the slow part for thousands of molecules).
        title: Report title (default: names the run).
        progress: Show a progress bar while drawing.
    """
    from igt.explain.report import render_report

    out = prepare_report_dir(out, overwrite)
    if images:
        draw_pictures(explanations, out, progress=progress)
    write_rationale_csv(explanations, out / "rationale.csv")
    has_rationale = any(e.node_scores is not None for e in explanations)
    meta = {
        "run": str(model.path),
        "dataset": model.run.data.dataset,
        "method": model.run.method.name,
        "backbone": model.run.backbone.name,
        "task": model.task.type,
        "columns": output_columns(model.task),
        "rationale_threshold": RATIONALE_THRESHOLD,
        "has_rationale": has_rationale,
    }
    payload = {**meta, "molecules": [explanation_record(item) for item in explanations]}
    (out / "rationale.json").write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    html_text = render_report(explanations, meta, title=title or f"igt explain: {model.path}", images_root=out)
    (out / "index.html").write_text(html_text, encoding="utf-8")
    failed = sum(1 for e in explanations if e.failure)
    return ExplainReport(out, out / "index.html", out / "rationale.csv", out / "rationale.json",
                         len(explanations) - failed, failed)


__all__ = [
    "RATIONALE_THRESHOLD", "GraphExplanation", "ExplainReport", "explain_smiles", "explain_split", "explain_dataset",
    "write_report", "draw_pictures", "write_rationale_csv", "prepare_report_dir",
]
