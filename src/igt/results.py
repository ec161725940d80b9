"""Aggregate run folders into ``results.csv``, ``RESULTS.md`` and plots.

Everything is rebuilt from ``OUT/runs/**/metrics.json`` (plus each run's ``provenance.json``),
so the report always matches the runs on disk. Aggregates are mean ± sample standard deviation
(``ddof=1``, the estimator papers report over seeds); a cell of one run has no deviation: it
shows the mean alone, and its error bar is zero.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from igt.errors import IgtError
from igt.fileio import atomic_open, atomic_write_text
from igt.models import BACKBONE_MODELS, FINGERPRINT_MODELS, METHOD_MODELS, TUNED_SUFFIX
from igt.published import PUBLISHED, Published, published_for

DDOF = 1

#: Post-hoc explainers whose metrics ERM runs carry (``igt.explain.metrics``).
POSTHOC = ("gnnexplainer", "pgexplainer")
FIDELITY_KEYS = ("fidelity_plus", "fidelity_minus", "characterization")
_POSTHOC_KEYS = (*FIDELITY_KEYS, "node_auc", "edge_auc")
POSTHOC_COLUMNS = tuple(f"{name}_{key}" for name in POSTHOC for key in _POSTHOC_KEYS)

RESULT_COLUMNS = (
    "dataset", "model", "seed", "metric", "valid", "test", "explanation_auc", "edge_explanation_auc",
    "precision_at_5", *FIDELITY_KEYS, *POSTHOC_COLUMNS, "method", "backbone", "best_epoch", "epochs", "seconds",
    "num_parameters", "commit", "machine", "igt_version", "run_dir",
)

# Metric direction and display: (higher is better, scale, decimals, name).
METRICS = {
    "rocauc": (True, 1.0, 4, "ROC-AUC"),
    "rmse": (False, 1.0, 3, "RMSE"),
    "accuracy": (True, 100.0, 2, "accuracy (%)"),
    "explanation_auc": (True, 100.0, 2, "explanation ROC-AUC (%)"),
    "edge_explanation_auc": (True, 100.0, 2, "edge explanation ROC-AUC (%)"),
    "fidelity_plus": (True, 1.0, 3, "fidelity+"),
    "fidelity_minus": (False, 1.0, 3, "fidelity-"),
    "characterization": (True, 1.0, 3, "characterization"),
}

# Row order of the tables: ERM backbones, then methods; variants after their base model.
_MODEL_ORDER = (*BACKBONE_MODELS, "erm", *METHOD_MODELS, *FINGERPRINT_MODELS)


@dataclass(frozen=True)
class Group:
    """A results table: runs of some datasets, scored by one value of the run."""

    key: str
    title: str
    value: str  # results.csv column holding the number (``test``, an explanation AUC, a fidelity)
    metric: str  # key of METRICS
    task_metric: str | None = None  # the runs' task metric when it is not ``metric`` (fidelity tables)
    spmotif: bool | None = None  # Spurious-Motif runs only (default: groups whose key says so)

    def datasets(self, rows: list[dict[str, Any]]) -> list[str]:
        names = sorted({r["dataset"] for r in rows if self.accepts(r)}, key=_dataset_order)
        return names

    def accepts(self, row: dict[str, Any]) -> bool:
        spmotif = is_spmotif(row["dataset"])
        if self.spmotif if self.spmotif is not None else self.key.startswith("spmotif"):
            return spmotif and row["metric"] == "accuracy" and _number(row.get(self.value)) is not None
        return not spmotif and row["metric"] == (self.task_metric or self.metric)


GROUPS = (
    Group("molecule-classification", "Molecule classification: test ROC-AUC (higher is better)", "test", "rocauc"),
    Group("molecule-regression", "Molecule regression: test RMSE (lower is better)", "test", "rmse"),
    Group("other-classification", "Other classification: test accuracy (%, higher is better)", "test", "accuracy"),
    Group("spmotif-accuracy", "Spurious-Motif: test accuracy (%, higher is better)", "test", "accuracy"),
    Group(
        "spmotif-explanation",
        "Spurious-Motif: explanation ROC-AUC of node scores on the test split (%, higher is better)",
        "explanation_auc", "explanation_auc",
    ),
    # GSAT scores explanations on edges; models without edge scores have no row here.
    Group(
        "spmotif-edge-explanation",
        "Spurious-Motif: explanation ROC-AUC of edge scores on the test split (%, higher is better)",
        "edge_explanation_auc", "edge_explanation_auc",
    ),
)


def is_spmotif(dataset: str) -> bool:
    return dataset.startswith("spmotif-")


def spmotif_bias(dataset: str) -> float:
    """``spmotif-0.33`` -> 0.33 (1/3 in the papers)."""
    return float(dataset.removeprefix("spmotif-"))


def _bias_text(bias: float) -> str:
    return "1/3" if abs(bias - 1 / 3) < 0.01 else f"{bias:g}"


def _dataset_order(dataset: str) -> tuple:
    return (1, spmotif_bias(dataset), "") if is_spmotif(dataset) else (0, 0.0, dataset)


def _model_order(label: str) -> tuple:
    # "gin (gnnexplainer)", "gin@gsat-paper" and "gin@tuned" sort after "gin"
    base = label.split("[", 1)[0].split(" ", 1)[0].split("@", 1)[0]
    rank = _MODEL_ORDER.index(base) if base in _MODEL_ORDER else len(_MODEL_ORDER)
    return (rank, base, "[" in label, label)


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


# ----------------------------------------------------------------------------- collecting runs


def collect_runs(out: Path) -> list[dict[str, Any]]:
    """One row per finished run under ``out/runs`` (a folder with ``metrics.json``)."""
    out = Path(out)
    rows = []
    for path in sorted((out / "runs").glob("**/metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a half-written file cannot exist (atomic write), but never crash a report
        provenance: dict[str, Any] = {}
        if (path.parent / "provenance.json").is_file():
            try:
                provenance = json.loads((path.parent / "provenance.json").read_text())
            except json.JSONDecodeError:
                provenance = {}
        rows.append(run_row(metrics, provenance, path.parent.relative_to(out).as_posix()))
    rows.sort(key=lambda r: (_dataset_order(r["dataset"]), _model_order(r["model"]), r["seed"]))
    return rows


@dataclass(frozen=True)
class Defect:
    """Columns that a since-fixed defect made wrong in the runs trained before ``fixed_in``."""

    prefix: str  # every results.csv column starting with it
    fixed_in: str  # the fixing commit
    why: str


#: Known defects: their columns are left blank for older runs (their ``metrics.json`` keep them).
DEFECTS = (
    Defect("pgexplainer_", "4d502ca", "PGExplainer's mask network trained without the prediction's gradient "
                                      "when GNNExplainer had run first; `docs/fidelity.md`"),
)


def withhold_defective(rows: list[dict[str, Any]], defects: Iterable[Defect] = DEFECTS,
                       repo: Path | None = None) -> dict[Defect, int]:
    """Blank, in place, the columns of each defect in the rows of runs trained before its fix;
    return how many rows each defect touched (rows with none of its values are not counted).
    Without git (an installed copy, a commit it does not know) nothing is withheld."""
    from igt.reproduce import CommitCutoff

    withheld: dict[Defect, int] = {}
    for defect in defects:
        try:
            cutoff = CommitCutoff.resolve(defect.fixed_in, repo)
        except IgtError:
            continue
        columns = [column for column in RESULT_COLUMNS if column.startswith(defect.prefix)]
        for row in rows:
            if all(_number(row.get(column)) is None for column in columns):
                continue
            if cutoff.is_older(str(row.get("commit") or "")):
                for column in columns:
                    row[column] = None
                withheld[defect] = withheld.get(defect, 0) + 1
    return withheld


def run_row(metrics: dict[str, Any], provenance: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """The results.csv row of one run's ``metrics.json``."""
    return {
        "dataset": metrics["dataset"],
        "model": metrics["model"],
        "seed": metrics["seed"],
        "metric": metrics["metric"],
        "valid": metrics.get("valid"),
        "test": metrics.get("test"),
        "explanation_auc": metrics.get("test_explanation_auc"),
        "edge_explanation_auc": metrics.get("test_edge_explanation_auc"),
        "precision_at_5": metrics.get("test_precision_at_5"),
        **{key: metrics.get(key) for key in (*FIDELITY_KEYS, *POSTHOC_COLUMNS)},
        "method": metrics.get("method"),
        "backbone": metrics.get("backbone"),
        "best_epoch": metrics.get("best_epoch"),
        "epochs": metrics.get("epochs"),
        "seconds": metrics.get("train_seconds"),
        "num_parameters": metrics.get("num_parameters"),
        "commit": provenance.get("commit", "unknown"),
        "machine": provenance.get("machine"),
        "igt_version": metrics.get("igt_version"),
        "run_dir": run_dir,
    }


def write_results_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_open(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in RESULT_COLUMNS})


# ----------------------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float | None  # None for a single run
    n: int


def mean_std(values: Iterable[float], ddof: int = DDOF) -> Cell:
    """Mean and sample standard deviation (``ddof=1``); ``std`` is ``None`` when ``n <= ddof``."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std of no values")
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - ddof)) if n > ddof else None
    return Cell(mean, std, n)


def aggregate(rows: list[dict[str, Any]], group: Group) -> dict[str, dict[str, Cell]]:
    """``{model: {dataset: Cell}}`` over the runs ``group`` accepts (values missing are skipped)."""
    values: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        value = _number(row.get(group.value))
        if group.accepts(row) and value is not None:
            values.setdefault(row["model"], {}).setdefault(row["dataset"], []).append(value)
    return {
        model: {dataset: mean_std(v) for dataset, v in per_dataset.items()}
        for model, per_dataset in sorted(values.items(), key=lambda kv: _model_order(kv[0]))
    }


def best_models(table: dict[str, dict[str, Cell]], dataset: str, higher: bool) -> set[str]:
    """Models whose mean is the best of the column (ties all count)."""
    means = {model: cells[dataset].mean for model, cells in table.items() if dataset in cells}
    if not means:
        return set()
    best = max(means.values()) if higher else min(means.values())
    return {model for model, mean in means.items() if mean == best}


def format_cell(cell: Cell, metric: str, full_n: int | None = None, decimals: int | None = None) -> str:
    _, scale, metric_decimals, _ = METRICS[metric]
    decimals = metric_decimals if decimals is None else decimals
    text = f"{cell.mean * scale:.{decimals}f}"
    if cell.std is not None:
        text += f" ± {cell.std * scale:.{decimals}f}"
    if full_n is not None and cell.n != full_n:
        text += f" (n={cell.n})"
    return text


def is_variant(model: str) -> bool:
    """``igt-n[adversarial=false]`` and the like: a model with non-default options."""
    return "[" in model


def is_tuned(model: str) -> bool:
    """``gin@tuned``: trained from its study's best config (``igt reproduce --suite tuned``)."""
    return model.endswith(TUNED_SUFFIX)


def _plain_models(table: dict[str, dict[str, Cell]]) -> dict[str, dict[str, Cell]]:
    """The rows of models run with their default options and the fixed budget (the main tables
    and the plots)."""
    return {model: cells for model, cells in table.items() if not is_variant(model) and not is_tuned(model)}


def _beside_base(table: dict[str, dict[str, Cell]], base_of) -> dict[str, dict[str, Cell]]:
    """Each model that ``base_of`` maps to a base label (``None``: not shown), after that base's
    row when the base has runs."""
    rows: dict[str, dict[str, Cell]] = {}
    for model, cells in table.items():
        base = base_of(model)
        if base is None:
            continue
        if base in table and base not in rows:
            rows[base] = table[base]
        rows[model] = cells
    return rows


def _tuned_rows(table: dict[str, dict[str, Cell]]) -> dict[str, dict[str, Cell]]:
    """Each tuned model after its fixed-config row (when that has runs)."""
    return _beside_base(table, lambda model: model.removesuffix(TUNED_SUFFIX) if is_tuned(model) else None)


def _variant_rows(table: dict[str, dict[str, Cell]]) -> dict[str, dict[str, Cell]]:
    """Each variant after its plain model (when that has runs), plain models without variants left out."""
    return _beside_base(table, lambda model: model.split("[", 1)[0] if is_variant(model) and not is_tuned(model)
                        else None)


def _published_lines(columns: list[tuple[str, str]], text: Callable[[Published, str], str]) -> list[str]:
    """One row per published (model, source) with a number for any of the ``(dataset, metric)``
    columns, its cells written by ``text(published, metric)``."""
    published: dict[tuple[str, str], dict[int, Published]] = {}
    for i, (dataset, metric) in enumerate(columns):
        for p in published_for(dataset, metric):
            published.setdefault((p.model, p.source), {})[i] = p
    return [f"| {model} (published, {source}) | "
            + " | ".join("" if (p := per_column.get(i)) is None else text(p, metric)
                         for i, (_, metric) in enumerate(columns)) + " |"
            for (model, source), per_column in published.items()]


def _table_lines(table: dict[str, dict[str, Cell]], datasets: list[str], metric: str) -> list[str]:
    """A markdown table ``model x dataset``; the best mean of each column in bold."""
    higher = METRICS[metric][0]
    lines = ["| model | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    full_n = {d: max((cells[d].n for cells in table.values() if d in cells), default=0) for d in datasets}
    best = {d: best_models(table, d, higher) for d in datasets}
    for model, cells in table.items():
        out = []
        for dataset in datasets:
            if dataset not in cells:
                out.append("")
                continue
            text = format_cell(cells[dataset], metric, full_n[dataset])
            out.append(f"**{text}**" if model in best[dataset] else text)
        lines.append(f"| {model} | " + " | ".join(out) + " |")
    return lines


# ----------------------------------------------------------------------------- fidelity


#: Fidelity tables: (title, test metric of the runs, Spurious-Motif or not).
FIDELITY_GROUPS = (
    ("molecule classification", "rocauc", False),
    ("other classification", "accuracy", False),
    ("Spurious-Motif", "accuracy", True),
)


def posthoc_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (ERM run, post-hoc explainer) with results, labelled ``gin (gnnexplainer)``: its
    fidelity columns and its ground-truth AUCs as ``explanation_auc`` / ``edge_explanation_auc``;
    no task numbers (they are the ERM run's)."""
    derived = []
    for row in rows:
        for name in POSTHOC:
            values = {key: row.get(f"{name}_{key}") for key in _POSTHOC_KEYS}
            if all(_number(v) is None for v in values.values()):
                continue
            derived.append({
                "dataset": row["dataset"], "model": f"{row['model']} ({name})", "seed": row["seed"],
                "metric": row["metric"], "test": None, "valid": None,
                **{key: values[key] for key in FIDELITY_KEYS},
                "explanation_auc": values["node_auc"], "edge_explanation_auc": values["edge_auc"],
            })
    return derived


def _fidelity_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One table per dataset group: characterization (bold: best of the column) with the mean
    fid+ / fid- beside it, intrinsic rationales and post-hoc explainers of ERM backbones."""
    everything = rows + posthoc_rows(rows)
    lines: list[str] = []
    for title, metric, spmotif in FIDELITY_GROUPS:
        tables = {}
        for key in FIDELITY_KEYS:
            group = Group(f"fidelity-{key}", title, key, key, task_metric=metric, spmotif=spmotif)
            table = aggregate(everything, group)  # variants too (GSAT on GIN is one), after plain models
            tables[key] = {**_plain_models(table), **{m: c for m, c in table.items() if is_variant(m)}}
        char = tables["characterization"]
        datasets = sorted({d for cells in char.values() for d in cells}, key=_dataset_order)
        if not datasets:
            continue
        best = {d: best_models(char, d, True) for d in datasets}
        first = not lines
        lines += [f"## Fidelity on {title}", ""]
        if first:
            lines += [
                "Fidelity of rationales on the test split (PyG's `fidelity`, `explanation_type=\"model\"`): "
                "fid+ is the share of outputs whose predicted class changes when the rationale is removed, "
                "fid- when only the rationale is kept; characterization is PyG's `characterization_score` "
                "(weights 0.5 / 0.5; higher is better). The rationale is each graph's top nodes by score "
                "(`explain.fidelity_ratio` of them, 20% by default; each run's `fidelity_ratio` is in its "
                "`metrics.json`) and the edges between them. Rows *model (explainer)* are "
                "PyG's post-hoc explainers on the trained ERM backbone, on a fixed seeded subset of the "
                "test graphs (`explain.posthoc_graphs`); what removing a node means: `docs/fidelity.md`. "
                "Cell: characterization (mean ± sd), then (+fid+ / −fid-) means.",
                "",
            ]
        lines += ["| model | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
        for model, cells in char.items():
            out = []
            for dataset in datasets:
                if dataset not in cells:
                    out.append("")
                    continue
                text = format_cell(cells[dataset], "characterization")
                plus, minus = (tables[k].get(model, {}).get(dataset) for k in ("fidelity_plus", "fidelity_minus"))
                if plus is not None and minus is not None:
                    text += f" (+{plus.mean:.3f} / −{minus.mean:.3f})"
                out.append(f"**{text}**" if model in best[dataset] else text)
            lines.append(f"| {model} | " + " | ".join(out) + " |")
        lines.append("")
    return lines


# ----------------------------------------------------------------------------- against the papers


@dataclass(frozen=True)
class Comparison:
    """Our cell beside a published number of the same dataset, model label and metric."""

    dataset: str
    model: str
    metric: str
    ours: Cell
    published_mean: float
    published_std: float | None
    source: str

    @property
    def z(self) -> float | None:
        """Our mean minus the published one, in published standard deviations."""
        if not self.published_std:
            return None
        return (self.ours.mean - self.published_mean) / self.published_std

    @property
    def off(self) -> bool | None:
        """More than two published standard deviations away (``None`` without a published std)."""
        return None if self.z is None else abs(self.z) > 2


def published_comparisons(rows: list[dict[str, Any]]) -> list[Comparison]:
    """Every published number that has runs of the same model label here (``gsat[backbone=gin]``
    is compared only with runs of ``gsat[backbone=gin]``, never with ``gsat`` on ``gps``)."""
    cells: dict[tuple[str, str, str], Cell] = {}
    for group in GROUPS:
        for model, per_dataset in aggregate(rows, group).items():
            for dataset, cell in per_dataset.items():
                cells[(group.metric, model, dataset)] = cell
    found = []
    for p in PUBLISHED:
        cell = cells.get((p.metric, p.model, p.dataset))
        if cell is not None:
            found.append(Comparison(p.dataset, p.model, p.metric, cell, p.mean, p.std, p.source))
    return found


def _comparison_lines(comparisons: list[Comparison]) -> list[str]:
    lines = [
        "## Against the published numbers",
        "",
        "Each published number beside our runs of the same model label (only exact matches: a paper's "
        "GIN-based GSAT is not compared with our `gsat` on `gps`). *z* is our mean minus the published "
        "mean, in published standard deviations; *off* marks |z| > 2. Splits and budgets differ (see "
        "above), so *off* says where to look, not who is right.",
        "",
        "| dataset | model | metric | ours | published | source | z | off |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        ours = format_cell(c.ours, c.metric) + f" (n={c.ours.n})"
        published = format_cell(Cell(c.published_mean, c.published_std, 0), c.metric)
        z = "" if c.z is None else f"{c.z:+.1f}"
        off = {True: "**yes**", False: "no", None: "no std published"}[c.off]
        lines.append(f"| {c.dataset} | {c.model} | {METRICS[c.metric][3]} | {ours} | {published} | {c.source} | {z} | {off} |")
    return lines + [""]


def _compute_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Training time of the runs on disk: per dataset, and per plain model and dataset."""
    timed = [r for r in rows if _number(r.get("seconds")) is not None]
    if not timed:
        return []
    per_dataset: dict[str, list[float]] = defaultdict(list)
    per_cell: dict[tuple[str, str], list[float]] = defaultdict(list)  # (plain model, dataset)
    for row in timed:
        per_dataset[row["dataset"]].append(float(row["seconds"]))
        if not is_variant(row["model"]):
            per_cell[(row["model"], row["dataset"])].append(float(row["seconds"]))
    total = sum(sum(times) for times in per_dataset.values())
    machines = Counter(str(row.get("machine") or "not recorded") for row in timed)
    datasets = sorted(per_dataset, key=_dataset_order)
    lines = [
        "## Compute",
        "",
        f"{len(timed)} runs trained for **{total / 3600:.1f} h** in all (each run's `seconds`: training "
        "and evaluation, data loading excluded; runs sharing a machine slow each other). Machines: "
        + "; ".join(f"{m} ({n} run{'s' * (n != 1)})" for m, n in sorted(machines.items())) + ".",
        "",
        "Minutes per run:",
        "",
        "| dataset | runs | hours | mean min/run | max min/run |",
        "|---|---|---|---|---|",
    ]
    for dataset in datasets:
        times = per_dataset[dataset]
        lines.append(
            f"| {dataset} | {len(times)} | {sum(times) / 3600:.2f} | {sum(times) / len(times) / 60:.1f} | {max(times) / 60:.1f} |"
        )
    lines += ["", "Mean minutes per run of each model (plain labels), per dataset:", ""]
    lines += ["| model | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    for model in sorted({model for model, _ in per_cell}, key=_model_order):
        cells = [per_cell.get((model, dataset)) for dataset in datasets]
        lines.append(f"| {model} | " + " | ".join(f"{sum(t) / len(t) / 60:.1f}" if t else "" for t in cells) + " |")
    return lines + [""]


# ----------------------------------------------------------------------------- IGT against each family


#: The question of the tuned suite (issue #14): IGT against the best tuned model of each family.
IGT_MODELS = ("igt-n", "igt-vn")
FAMILIES = (
    ("ERM backbone", tuple(BACKBONE_MODELS)),
    ("rationalization baseline", tuple(m for m in METHOD_MODELS if m not in IGT_MODELS)),
    ("fingerprint baseline", tuple(FINGERPRINT_MODELS)),
)


@dataclass(frozen=True)
class FamilyComparison:
    """A tuned IGT model against the best tuned model (by mean) of one family on one dataset.

    ``advantage`` is the IGT mean minus the best's, signed so that positive means IGT is better
    (for RMSE: the best's minus IGT's). ``beyond_spread`` says whether ``|advantage|`` exceeds the
    sum of the two seed standard deviations (their one-sd bands do not overlap); ``None`` when
    either cell has a single run.
    """

    group: Group
    dataset: str
    model: str
    ours: Cell
    family: str
    best: str
    theirs: Cell

    @property
    def advantage(self) -> float:
        difference = self.ours.mean - self.theirs.mean
        return difference if METRICS[self.group.metric][0] else -difference

    @property
    def beyond_spread(self) -> bool | None:
        if self.ours.std is None or self.theirs.std is None:
            return None
        return abs(self.advantage) > self.ours.std + self.theirs.std


def _tuned_base(label: str) -> str | None:
    """``gin`` for ``gin@tuned`` (and for a post-hoc row ``gin@tuned (gnnexplainer)``, whose
    explainer stays part of the label); ``None`` for fixed-config and variant rows."""
    model, _, explainer = label.partition(" ")
    if not is_tuned(model) or is_variant(model):
        return None
    return model.removesuffix(TUNED_SUFFIX) + (f" {explainer}" if explainer else "")


def family_comparisons(rows: list[dict[str, Any]]) -> list[FamilyComparison]:
    """For each table and dataset with tuned IGT runs: each IGT model against the best tuned
    model of every family that has runs there (post-hoc explainers on the ERM backbones count
    in the explanation tables)."""
    with_posthoc = rows + posthoc_rows(rows)
    found = []
    for group in GROUPS:
        tuned = {}
        for label, cells in aggregate(with_posthoc if group.key.endswith("explanation") else rows, group).items():
            base = _tuned_base(label)
            if base is not None:
                tuned[base] = cells
        higher = METRICS[group.metric][0]
        for dataset in group.datasets(rows):
            for model in IGT_MODELS:
                if dataset not in tuned.get(model, {}):
                    continue
                for family, members in FAMILIES:
                    scored = {label: cells[dataset] for label, cells in tuned.items()
                              if label.split(" ", 1)[0] in members and dataset in cells}
                    if not scored:
                        continue
                    pick = max if higher else min
                    best = pick(scored, key=lambda label: (scored[label].mean, label))
                    found.append(FamilyComparison(group, dataset, model, tuned[model][dataset], family, best,
                                                  scored[best]))
    return found


def _family_lines(comparisons: list[FamilyComparison]) -> list[str]:
    if not comparisons:
        return []
    lines = [
        "## Tuned: IGT against the best of each family",
        "",
        "Each tuned IGT model against the best tuned model of each family on the same dataset "
        "(`@tuned` runs only; the best by mean). *advantage* is IGT's mean minus the best's, signed so "
        "that a positive number means IGT is better (for RMSE, lower is better); *beyond spread* says "
        "whether |advantage| exceeds the two seed standard deviations added (n/a with a single run).",
        "",
    ]
    for group in GROUPS:
        mine = [c for c in comparisons if c.group is group]
        if not mine:
            continue
        _, scale, decimals, _ = METRICS[group.metric]
        lines += [f"### {group.title}", "",
                  "| dataset | IGT | IGT score | family | best of family | its score | advantage | beyond spread |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in mine:
            beyond = {True: "**yes**", False: "no", None: "n/a"}[c.beyond_spread]
            ours, theirs = (f"{format_cell(cell, group.metric)} (n={cell.n})" for cell in (c.ours, c.theirs))
            lines.append(f"| {c.dataset} | {c.model} | {ours} | {c.family} | {c.best} | {theirs} | "
                         f"{c.advantage * scale:+.{decimals}f} | {beyond} |")
        lines.append("")
    return lines


# ----------------------------------------------------------------------------- tuned overview


#: Decimals of the overview's cells (narrower than the full tables': the README shows it).
_OVERVIEW_DECIMALS = {"rocauc": 3, "rmse": 3, "accuracy": 1, "explanation_auc": 1, "edge_explanation_auc": 1,
                      "characterization": 2}
TUNED_OVERVIEW_BEGIN = "<!-- tuned overview: igt.results.tuned_overview_lines; tests/test_readme.py checks it -->"
TUNED_OVERVIEW_END = "<!-- /tuned overview -->"


def _overview_cell(cell: Cell, metric: str, fixed: Cell | None, full_n: int) -> str:
    scale, decimals = METRICS[metric][1], _OVERVIEW_DECIMALS[metric]
    text = format_cell(cell, metric, decimals=decimals)
    notes = [f"n={cell.n}"] if cell.n != full_n else []
    if fixed is not None:
        notes.append(f"{fixed.mean * scale:.{decimals}f}")
    return f"{text} ({'; '.join(notes)})" if notes else text


def _overview_table(columns: list[tuple[str, str, str, dict[str, dict[str, Cell]]]]) -> list[str]:
    """``columns``: (header, dataset, metric, aggregated table with tuned and fixed rows). Rows are
    the tuned labels (without ``@tuned``); published rows of the same metric and dataset follow."""
    labels = sorted({base for *_, table in columns for label in table if (base := _tuned_base(label))},
                    key=_model_order)
    lines = ["| model | " + " | ".join(c[0] for c in columns) + " |", "|---|" + "---|" * len(columns)]
    cells_of = []
    for _, dataset, metric, table in columns:
        tuned = {base: table[label][dataset] for label in table
                 if (base := _tuned_base(label)) and dataset in table[label]}
        best = best_models({m: {dataset: c} for m, c in tuned.items()}, dataset, METRICS[metric][0])
        cells_of.append((dataset, metric, table, tuned, best, max((c.n for c in tuned.values()), default=0)))
    for base in labels:
        out = []
        for dataset, metric, table, tuned, best, full_n in cells_of:
            if base not in tuned:
                out.append("")
                continue
            fixed = table.get(base, {}).get(dataset)
            text = _overview_cell(tuned[base], metric, fixed, full_n)
            out.append(f"**{text}**" if base in best and len(tuned) > 1 else text)
        lines.append(f"| {base} | " + " | ".join(out) + " |")
    return lines + _published_lines([(dataset, metric) for _, dataset, metric, _ in columns],
                                    lambda p, metric: _overview_cell(Cell(p.mean, p.std, 0), metric, None, 0))


def tuned_overview_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Every tuned model on one page (RESULTS.md and the README): the test metric of each dataset
    with tuned runs, then its rationales (explanation AUCs on Spurious-Motif, characterization);
    each cell is the tuned mean ± sd with the fixed-config mean in brackets, the best tuned mean
    in bold, the published numbers beneath."""
    with_posthoc = rows + posthoc_rows(rows)

    def columns_of(group: Group, source: list[dict[str, Any]], name: str) -> list[tuple]:
        table = aggregate(source, group)
        datasets = [d for d in group.datasets(source)
                    if any(_tuned_base(label) and d in cells for label, cells in table.items())]
        return [(f"{d} {name}", d, group.metric, table) for d in datasets]

    by_key = {group.key: group for group in GROUPS}
    predictions = [column for key, name in (("molecule-classification", "ROC-AUC"), ("molecule-regression", "RMSE"),
                                            ("spmotif-accuracy", "accuracy %"))
                   for column in columns_of(by_key[key], rows, name)]
    rationales = [column for key, name in (("spmotif-explanation", "node AUC %"),
                                           ("spmotif-edge-explanation", "edge AUC %"))
                  for column in columns_of(by_key[key], with_posthoc, name)]
    for _, task_metric, spmotif in FIDELITY_GROUPS:
        group = Group("fidelity-characterization", "", "characterization", "characterization",
                      task_metric=task_metric, spmotif=spmotif)
        rationales += columns_of(group, with_posthoc, "characterization")
    if not predictions:
        return []
    lines = [TUNED_OVERVIEW_BEGIN, "", "Test metric, tuned (fixed-config mean in brackets):", ""]
    lines += _overview_table(predictions)
    if rationales:
        lines += ["", "Rationales, tuned (fixed-config mean in brackets); ERM backbones through PyG's post-hoc "
                  "explainers:", ""]
        lines += _overview_table(rationales)
    return lines + ["", TUNED_OVERVIEW_END]


# ----------------------------------------------------------------------------- tuning studies


def collect_studies(out: Path) -> list[dict[str, Any]]:
    """The ``summary.json`` of every study under ``out/tuning/<dataset>/<model>/`` (unreadable
    ones are left out: a study still writing its outputs)."""
    studies = []
    for path in sorted(Path(out).glob("tuning/*/*/summary.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict) and summary.get("dataset") and summary.get("model"):
            studies.append(summary)
    return sorted(studies, key=lambda s: (_dataset_order(str(s["dataset"])), _model_order(str(s["model"]))))


def _setting(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _study_lines(studies: list[dict[str, Any]]) -> list[str]:
    """Each study's budget, best validation value and chosen config, and the compute spent."""
    if not studies:
        return []
    lines = [
        "## Tuning studies",
        "",
        "One Optuna study per (dataset, model) of the tuned suite (`results/tuning/<dataset>/<model>/`: "
        "`best.yaml`, `trials.csv`, plots); the validation split only. *chosen* is the best trial's "
        "searched settings (`igt tune --show-space --model NAME` lists each space); *hours* is the "
        "study's own wall time.",
        "",
        "| dataset | model | trials (complete / pruned) | epochs per trial | best valid | best trial | chosen | hours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total_seconds, total_trials = 0.0, 0
    for study in studies:
        trials = study.get("trials") or {}
        complete, pruned = int(trials.get("complete", 0)), int(trials.get("pruned", 0))
        seconds = _number(study.get("total_seconds")) or 0.0
        total_seconds += seconds
        total_trials += complete + pruned
        best = _number(study.get("best_value"))
        chosen = ", ".join(f"`{key}={_setting(value)}`" for key, value in (study.get("best_params") or {}).items())
        lines.append(
            f"| {study['dataset']} | {study['model']} | {complete} / {pruned} | {study.get('epochs_per_trial') or '-'} | "
            f"{'' if best is None else f'{best:.4g}'} | {study.get('best_trial', '')} | {chosen} | {seconds / 3600:.2f} |"
        )
    lines += ["", f"{len(studies)} studies, {total_trials} trials, **{total_seconds / 3600:.1f} h** of tuning.", ""]
    return lines


# ----------------------------------------------------------------------------- RESULTS.md


def results_markdown(rows: list[dict[str, Any]], command: str, commit: str, plots: dict[str, str] | None = None,
                     studies: list[dict[str, Any]] | None = None, withheld: dict[Defect, int] | None = None) -> str:
    """RESULTS.md: one table per dataset group, reproduced rows then published rows; then the
    tuned comparison, fidelity, the published numbers, the tuning ``studies`` and compute."""
    lines = [
        "# Reproduced results",
        "",
        f"Command: `{command}`  ",
        f"Code commit: `{commit}`",
        "",
    ]
    commits = Counter(str(row.get("commit") or "unknown") for row in rows)
    if commits:
        made_by = ", ".join(f"`{c}` ({n} run{'s' * (n != 1)})" for c, n in sorted(commits.items()))
        lines += [f"Runs were produced by commit(s): {made_by}.", ""]
    lines += [
        f"{len(rows)} finished runs. Cells are mean ± sample standard deviation over seeds (ddof=1; "
        "a single run shows its value alone, `(n=k)` marks a cell with fewer runs than its column). The best mean of "
        "this harness's runs in each column is **bold**; rows marked *(published)* are numbers from "
        "the papers (their own splits and budgets: context, not a contest). Every run's numbers are "
        "in `results.csv`.",
        "",
    ]
    for defect, count in (withheld or {}).items():
        lines += [f"Left out: the `{defect.prefix}*` columns of {count} run{'s' * (count != 1)} trained before "
                  f"`{defect.fixed_in}` ({defect.why}); their `metrics.json` keep them.", ""]
    if not rows:
        lines.append("No finished runs yet.")
    with_posthoc = rows + posthoc_rows(rows)
    for group in GROUPS:
        # Post-hoc explainers' ground-truth AUCs sit beside the methods' own.
        source = with_posthoc if group.key.endswith("explanation") else rows
        datasets = group.datasets(source)
        if not datasets:
            continue
        table = aggregate(source, group)
        lines += [f"## {group.title}", ""]
        lines += _table_lines(_plain_models(table), datasets, group.metric)
        lines += _published_lines([(dataset, group.metric) for dataset in datasets],
                                  lambda p, metric: format_cell(Cell(p.mean, p.std, 0), metric))
        lines.append("")
        if plots and group.key in plots:
            lines += [f"![{group.title}]({plots[group.key]})", ""]
        variants = _variant_rows(table)
        if variants:
            columns = [d for d in datasets if any(d in table[m] for m in variants if is_variant(m))]
            lines += ["Variants and ablations (same budget; each plain model's row repeated for reference):", ""]
            lines += _table_lines(variants, columns, group.metric)
            lines.append("")
        tuned = _tuned_rows(table)
        if tuned:
            columns = [d for d in datasets if any(d in table[m] for m in tuned if is_tuned(m))]
            lines += ["Tuned (`@tuned`: every model's study has the same trial budget on the validation split, "
                      "then its best config trains with every seed; `docs/tuning.md`), each beside its "
                      "fixed-config row:", ""]
            lines += _table_lines(tuned, columns, group.metric)
            lines.append("")
    if plots and "spmotif-vs-bias" in plots:
        lines += ["## Spurious-Motif versus bias b", "", f"![Spurious-Motif versus bias]({plots['spmotif-vs-bias']})", ""]
    overview = tuned_overview_lines(rows)
    if overview:
        lines += ["## Tuned overview", "", *overview, ""]
    lines += _family_lines(family_comparisons(rows))
    lines += _fidelity_lines(rows)
    comparisons = published_comparisons(rows)
    if comparisons:
        lines += _comparison_lines(comparisons)
    lines += _study_lines(studies or [])
    lines += _compute_lines(rows)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots


def write_plots(rows: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    """PNG bar charts per dataset group (std error bars) and Spurious-Motif metrics versus b
    (drawn by :mod:`igt.plots`; this picks the numbers)."""
    from igt.plots import bar_chart, versus_chart

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for group in GROUPS:
        if group.key.endswith("explanation"):
            continue  # node scores are drawn against b below; edge scores only in the table
        datasets = group.datasets(rows)
        table = _plain_models(aggregate(rows, group))
        if not datasets or not table:
            continue
        _, scale, _, metric_name = METRICS[group.metric]
        series = {model: {d: (c.mean * scale, (c.std or 0.0) * scale) for d, c in cells.items()}
                  for model, cells in table.items()}
        written[group.key] = bar_chart(folder / f"{group.key}.png", group.title, f"test {metric_name}", datasets, series)

    accuracy = _plain_models(aggregate(rows, GROUPS[3]))
    explanation = _plain_models(aggregate(rows, GROUPS[4]))
    if accuracy:
        panels = {
            name: {model: sorted((spmotif_bias(d), c.mean * 100, (c.std or 0.0) * 100) for d, c in cells.items())
                   for model, cells in table.items()}
            for table, name in ((accuracy, "test accuracy (%)"), (explanation, "explanation ROC-AUC (%)"))
        }
        biases = sorted({spmotif_bias(d) for cells in accuracy.values() for d in cells})
        written["spmotif-vs-bias"] = versus_chart(
            folder / "spmotif-vs-bias.png", panels, {b: _bias_text(b) for b in biases}, "bias b",
            "Spurious-Motif: {name} vs b", empty="no model with node scores")
    return written


# ----------------------------------------------------------------------------- the report


@dataclass
class Report:
    runs: int
    results_csv: Path
    results_md: Path
    plots: dict[str, Path]


def build_report(out: Path, command: str, commit: str) -> Report:
    """Rebuild ``results.csv``, ``RESULTS.md`` and ``plots/*.png`` from ``out/runs``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = collect_runs(out)
    withheld = withhold_defective(rows)
    write_results_csv(rows, out / "results.csv")
    plots = write_plots(rows, out / "plots")
    relative = {key: path.relative_to(out).as_posix() for key, path in plots.items()}
    atomic_write_text(out / "RESULTS.md", results_markdown(rows, command, commit, relative, collect_studies(out),
                                                           withheld))
    return Report(len(rows), out / "results.csv", out / "RESULTS.md", plots)


__all__ = [
    "DDOF", "DEFECTS", "FAMILIES", "FIDELITY_GROUPS", "GROUPS", "POSTHOC", "RESULT_COLUMNS", "Cell", "Comparison",
    "Defect", "FamilyComparison", "Report", "aggregate", "build_report", "collect_runs", "collect_studies",
    "family_comparisons", "is_variant", "mean_std", "posthoc_rows", "published_comparisons", "results_markdown",
    "TUNED_OVERVIEW_BEGIN", "TUNED_OVERVIEW_END", "tuned_overview_lines", "withhold_defective", "write_plots",
    "write_results_csv",
]
