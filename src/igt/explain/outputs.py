"""What ``igt explain`` writes: the report folder, pictures, ``rationale.csv`` / ``.json``,
fragment tables and ``index.html`` (the file list is in :mod:`igt.explain`)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from igt.errors import IgtError
from igt.fileio import atomic_open, atomic_write_bytes, atomic_write_text
from igt.predict import TrainedModel, output_columns
from igt.explain.rationale import RATIONALE_THRESHOLD, GraphExplanation, as_models

REPORT_FILES = ("index.html", "rationale.csv", "rationale.json", "fragments.csv", "fragment_summary.csv")


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

    models = as_models(model)
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


__all__ = ["REPORT_FILES", "ExplainReport", "draw_pictures", "explanation_record", "prepare_report_dir", "write_rationale_csv",
           "write_report"]
