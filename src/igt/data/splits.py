"""Train/validation/test splits: the dataset's own, scaffold (OGB protocol), random, or a column.

Scaffold split, as in OGB/MoleculeNet (the ``scaffold_split`` of snap-stanford's pretrain-gnns,
which produced OGB's split files):

1. Group molecules by Bemis-Murcko scaffold SMILES (RDKit ``MurckoScaffoldSmiles``,
   ``includeChirality=False``). Molecules whose scaffold cannot be computed form one group keyed
   by an empty scaffold, like acyclic molecules.
2. Sort groups by size, largest first; ties go to the group whose *first* (smallest) index is
   larger, i.e. sort by ``(len(group), group[0])`` descending, the reference tie-break.
3. Walk the groups: a group goes to train unless that would exceed ``frac_train * N``; then to
   validation unless train + validation would exceed ``(frac_train + frac_valid) * N``; else test.

A file's own split (a ``split`` column, found by name or named by ``data.split_column``) often
holds only ``train`` and ``test``, as published benchmark files do. Its test rows are then the
test split, and the validation split is carved from its training rows: 1/9 of them (so a file
split 90/10 becomes 80/10/10), by the scaffold split above applied to the training rows (largest
scaffold groups stay in training; deterministic, so the seed does not change it) when there are
SMILES, else seeded at random (``train.seed``). One ``igt.data`` warning says how the split was
made, with its sizes. A split column with no training or no test rows is an error.

The reference computed scaffolds with chirality; we follow the requested ``includeChirality=False``
(DeepChem's choice), so a few stereo-only scaffold distinctions merge. Either way a recomputed
split is close to, not identical with, OGB's official files, which are used when present.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from typing import Sequence

import numpy as np
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem.Scaffolds import MurckoScaffold
from torch import Tensor

from igt.config import DataConfig
from igt.data.dataset import GraphDataset
from igt.errors import IgtError

logger = logging.getLogger("igt.data")

SPLIT_NAMES = ("train", "valid", "test")
#: Share of a file's training rows that becomes validation when the file has no validation rows.
CARVED_VALID_FRACTION = 1 / 9
#: Accepted spellings in a split column (case-insensitive) -> 0 train, 1 valid, 2 test.
SPLIT_ALIASES = {"train": 0, "training": 0, "valid": 1, "val": 1, "validation": 1, "test": 2, "testing": 2}
SPLIT_STRATEGIES = ("auto", "scaffold", "random", "column")


def make_split(ds: GraphDataset, cfg: DataConfig, seed: int = 0) -> dict[str, Tensor]:
    """Split ``ds`` into train/valid/test index tensors.

    Args:
        ds: The dataset.
        cfg: ``cfg.split`` picks the strategy: ``auto`` (the dataset's own split in
            ``ds.graph_data["split"]`` if present, else scaffold when the dataset has SMILES, else
            random), ``scaffold``, ``random`` or ``column`` (the values of ``cfg.split_column``,
            stored by the loader in ``graph_data["split"]``). ``cfg.split_fractions`` are the
            train/valid/test fractions of ``scaffold`` and ``random``.
        seed: Seed of the ``random`` split.

    Returns:
        ``{"train", "valid", "test"}`` -> sorted ``long`` indices into ``ds``.
    """
    return _make_split(ds, cfg, seed)


def _strategy(ds: GraphDataset, cfg: DataConfig) -> str:
    """``cfg.split`` with ``auto`` resolved for this dataset."""
    strategy = cfg.split
    if strategy not in SPLIT_STRATEGIES:
        raise IgtError(f"data.split={strategy!r}: expected one of {', '.join(SPLIT_STRATEGIES)}")
    if strategy == "auto":
        if "split" in ds.graph_data:
            return "column"
        return "scaffold" if ds.smiles is not None else "random"
    return strategy


def describe_split(ds: GraphDataset, cfg: DataConfig, seed: int = 0) -> str:
    """One line saying which split :func:`make_split` uses (recorded in each run's metrics)."""
    strategy = _strategy(ds, cfg)
    fractions = "/".join(f"{f:g}" for f in cfg.split_fractions)
    if strategy == "column":
        if "split" in ds.graph_data and bool((ds.graph_data["split"] == 1).any()):
            return "the dataset's own split"
        how = "by scaffold" if ds.smiles is not None else f"at random, seed {seed}"
        return f"the dataset's own train/test split; validation = 1/9 of its training rows ({how})"
    return f"scaffold {fractions}" if strategy == "scaffold" else f"random {fractions}, seed {seed}"


def _make_split(ds: GraphDataset, cfg: DataConfig, seed: int) -> dict[str, Tensor]:
    strategy = _strategy(ds, cfg)
    if strategy == "column":
        if "split" not in ds.graph_data:
            raise IgtError(
                f"{ds.name}: data.split=column needs a split column (data.split_column, or a column named 'split', of train/valid/test values)"
            )
        return column_split(ds, seed)
    fractions = _check_fractions(cfg.split_fractions)
    if strategy == "scaffold":
        if ds.smiles is None:
            raise IgtError(f"{ds.name}: data.split=scaffold needs SMILES; this dataset has none (use random)")
        return _cached_scaffold_split(ds.smiles, fractions)
    return random_split(len(ds), fractions, seed)


def column_split(ds: GraphDataset, seed: int = 0) -> dict[str, Tensor]:
    """The dataset's own split (``graph_data["split"]``); without validation rows, validation is
    carved from the training rows (module docstring)."""
    split = split_from_labels(ds.graph_data["split"])
    sizes = {name: int(part.numel()) for name, part in split.items()}
    for name in ("train", "test"):
        if sizes[name] == 0:
            raise IgtError(f"{ds.name}: the split column has no {name} rows ({sizes['train']} train, "
                           f"{sizes['valid']} valid, {sizes['test']} test); use data.split=scaffold or random instead")
    if sizes["valid"]:
        logger.warning("%s: using the file's own split: %d train, %d valid, %d test",
                       ds.name, sizes["train"], sizes["valid"], sizes["test"])
        return split
    train = split["train"]
    fractions = (1 - CARVED_VALID_FRACTION, CARVED_VALID_FRACTION, 0.0)
    if ds.smiles is not None:
        inner = _cached_scaffold_split([ds.smiles[i] for i in train.tolist()], fractions)
        how = "by scaffold (largest scaffold groups stay in training)"
    else:
        inner = random_split(len(train), fractions, seed)
        inner = {"train": inner["train"], "valid": torch.cat([inner["valid"], inner["test"]]).sort().values}
        how = f"at random (seed {seed})"
    if inner["valid"].numel() == 0 or inner["train"].numel() == 0:
        raise IgtError(f"{ds.name}: the split column has no validation rows and its {sizes['train']} training rows are "
                       f"too few to carve validation from; add 'valid' rows or use data.split=scaffold")
    result = {"train": train[inner["train"]], "valid": train[inner["valid"]], "test": split["test"]}
    logger.warning(
        "%s: the file's split has train and test only: test = its %d test rows; validation = %d of its %d training "
        "rows (1/9, %s), training = the other %d", ds.name, sizes["test"], int(result["valid"].numel()), sizes["train"],
        how, int(result["train"].numel()))
    return result


def split_from_labels(labels: Tensor) -> dict[str, Tensor]:
    """Index tensors from a per-graph ``long`` tensor of 0 (train), 1 (valid), 2 (test)."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    return {name: torch.nonzero(labels == code).flatten() for code, name in enumerate(SPLIT_NAMES)}


def parse_split_values(values: Sequence[object], where: str) -> Tensor:
    """Map split-column strings (train/valid/val/validation/test, any case) to 0/1/2.

    Args:
        values: One value per graph.
        where: Culprit description for errors, e.g. ``"data.csv, column 'split'"``.

    Raises:
        IgtError: On the first value that is not a known split name (row and value named).
    """
    codes = np.empty(len(values), dtype=np.int64)
    for row, value in enumerate(values):
        code = SPLIT_ALIASES.get(str(value).strip().lower())
        if code is None:
            raise IgtError(f"{where}, row {row + 1}: split value {value!r} is not train, valid/val/validation or test")
        codes[row] = code
    return torch.from_numpy(codes)


def _cached_scaffold_split(smiles: Sequence[str], fractions: tuple[float, float, float]) -> dict[str, Tensor]:
    """Scaffold split cached by the SMILES list itself (computing scaffolds takes ~10 s on HIV)."""
    from igt.data import cache  # local: keeps this module importable without the cache machinery

    digest = hashlib.sha256("\n".join(smiles).encode()).hexdigest()
    key = {"name": "scaffold-split", "smiles_sha256": digest, "fractions": list(fractions), "version": 1}
    return cache.cached_tensors(key, lambda: scaffold_split(smiles, fractions), kind="splits")


def scaffold_of(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES without chirality (``""`` when there is none or RDKit fails)."""
    try:
        return MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=False)
    except Exception:  # unparseable input: grouped with the acyclic molecules
        return ""


def scaffold_split(smiles: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, Tensor]:
    """Deterministic scaffold split (OGB protocol; see the module docstring)."""
    groups: dict[str, list[int]] = defaultdict(list)
    RDLogger.DisableLog("rdApp.*")  # failures are handled, RDKit's per-molecule log is noise
    try:
        for index, text in enumerate(smiles):
            groups[scaffold_of(text)].append(index)
    finally:
        RDLogger.EnableLog("rdApp.*")
    # Indices are appended in increasing order, so group[0] is each group's smallest index.
    ordered = sorted(groups.values(), key=lambda group: (len(group), group[0]), reverse=True)
    total = len(smiles)
    train_cutoff = fractions[0] * total
    valid_cutoff = (fractions[0] + fractions[1]) * total
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in ordered:
        if len(train) + len(group) <= train_cutoff:
            train.extend(group)
        elif len(train) + len(valid) + len(group) <= valid_cutoff:
            valid.extend(group)
        else:
            test.extend(group)
    return {name: torch.tensor(sorted(part), dtype=torch.long) for name, part in zip(SPLIT_NAMES, (train, valid, test))}


def random_split(num_graphs: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, Tensor]:
    """Seeded random split; sizes are ``floor(frac * N)`` for train/valid and the rest for test."""
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(num_graphs, generator=generator)
    n_train = int(fractions[0] * num_graphs)
    n_valid = int(fractions[1] * num_graphs)
    parts = (order[:n_train], order[n_train : n_train + n_valid], order[n_train + n_valid :])
    return {name: part.sort().values for name, part in zip(SPLIT_NAMES, parts)}


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise IgtError(f"data.split_fractions={list(fractions)}: expected three non-negative numbers summing to 1")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])
