"""SMILES -> graph with exactly OGB's atom (9) and bond (3) categorical feature vocabulary.

The values are identical to ``ogb.utils.smiles2graph`` (tests compare them on real molecules),
but the conversion is faster: OGB calls ``list.index`` on a Python list for every feature of
every atom (and ``str()`` on RDKit enums); here each molecule does one list comprehension of
raw RDKit integers and then maps all atoms at once with numpy lookup tables.

Vocabulary (index of each category; the last index of a column is OGB's ``misc`` bucket):

* atoms: atomic number 1..118 | chirality (unspecified, CW, CCW, other) | total degree 0..10 |
  formal charge -5..5 | total H count 0..8 | radical electrons 0..4 |
  hybridisation (SP, SP2, SP3, SP3D, SP3D2) | is aromatic | is in ring.
* bonds: type (single, double, triple, aromatic) | stereo (none, Z, E, cis, trans, any) |
  is conjugated.

Molecules RDKit cannot parse or sanitise (e.g. the 7 Al/B/Ge complexes of HIV, whose valences
RDKit rejects) are *not* featurised from an unsanitised molecule: they are skipped and
reported by :func:`featurize_smiles` so the caller can tell the user (never silently).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import rdchem
from torch import Tensor

#: Bump whenever the produced features change: it is part of every dataset cache key.
FEATURIZATION_VERSION: str = "ogb-1"

#: Cardinality of each atom feature column (== ``ogb.utils.features.get_atom_feature_dims()``).
ATOM_VOCAB: tuple[int, ...] = (119, 5, 12, 12, 10, 6, 6, 2, 2)
#: Cardinality of each bond feature column (== ``ogb.utils.features.get_bond_feature_dims()``).
BOND_VOCAB: tuple[int, ...] = (5, 6, 2)

# OGB's category lists for the enum-valued features, by RDKit enum *name* (names are stable
# across RDKit releases, integer values are not). Anything else maps to the misc bucket.
_CHIRALITY_NAMES = ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER")
_HYBRIDIZATION_NAMES = ("SP", "SP2", "SP3", "SP3D", "SP3D2")
_BOND_TYPE_NAMES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
# OGB has no misc bucket for stereo (it would raise on RDKit's newer atropisomer values);
# those rare values go to STEREOANY, the closest "some stereo, unspecified kind" category.
_BOND_STEREO_NAMES = ("STEREONONE", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS", "STEREOANY")


def _enum_table(enum: type, names: Sequence[str], misc: int) -> np.ndarray:
    """Lookup table from an RDKit enum's integer value to OGB's category index."""
    size = max(int(v) for v in enum.values) + 1
    table = np.full(size, misc, dtype=np.int64)
    for value, member in enum.values.items():
        if str(member) in names:
            table[int(value)] = names.index(str(member))
    return table


_CHIRALITY_TABLE = _enum_table(rdchem.ChiralType, _CHIRALITY_NAMES, misc=ATOM_VOCAB[1] - 1)
_HYBRIDIZATION_TABLE = _enum_table(rdchem.HybridizationType, _HYBRIDIZATION_NAMES, misc=ATOM_VOCAB[6] - 1)
_BOND_TYPE_TABLE = _enum_table(rdchem.BondType, _BOND_TYPE_NAMES, misc=BOND_VOCAB[0] - 1)
_BOND_STEREO_TABLE = _enum_table(rdchem.BondStereo, _BOND_STEREO_NAMES, misc=BOND_VOCAB[1] - 1)


def _lookup(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``table[values]`` with values beyond the table (a future RDKit enum member) sent to misc."""
    return table[np.minimum(values, table.size - 1)] if values.size and values.max() >= table.size else table[values]


def _atom_features(raw: np.ndarray) -> np.ndarray:
    """Map raw per-atom RDKit values ``[n, 9]`` to OGB category indices, all atoms at once."""
    atomic_num, chirality, degree, charge, num_h, radicals, hybridization, aromatic, ring = raw.T
    x = np.empty_like(raw)
    # Atomic numbers 1..118 -> 0..117; the dummy atom "*" (0) and anything else -> misc (118).
    x[:, 0] = np.where((atomic_num >= 1) & (atomic_num <= 118), atomic_num - 1, 118)
    x[:, 1] = _lookup(_CHIRALITY_TABLE, chirality)
    x[:, 2] = np.where(degree <= 10, degree, 11)
    x[:, 3] = np.where(np.abs(charge) <= 5, charge + 5, 11)
    x[:, 4] = np.where(num_h <= 8, num_h, 9)
    x[:, 5] = np.where(radicals <= 4, radicals, 5)
    x[:, 6] = _lookup(_HYBRIDIZATION_TABLE, hybridization)
    x[:, 7] = aromatic
    x[:, 8] = ring
    return x


def _mol_to_graph(mol: Chem.Mol) -> dict[str, Tensor]:
    raw_atoms = np.array(
        [
            (
                atom.GetAtomicNum(),
                atom.GetChiralTag(),
                atom.GetTotalDegree(),
                atom.GetFormalCharge(),
                atom.GetTotalNumHs(),
                atom.GetNumRadicalElectrons(),
                atom.GetHybridization(),
                atom.GetIsAromatic(),
                atom.IsInRing(),
            )
            for atom in mol.GetAtoms()
        ],
        dtype=np.int64,
    ).reshape(-1, 9)
    x = _atom_features(raw_atoms)

    raw_bonds = np.array(
        [
            (bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), bond.GetBondType(), bond.GetStereo(), bond.GetIsConjugated())
            for bond in mol.GetBonds()
        ],
        dtype=np.int64,
    ).reshape(-1, 5)
    bond_attr = np.stack(
        [_lookup(_BOND_TYPE_TABLE, raw_bonds[:, 2]), _lookup(_BOND_STEREO_TABLE, raw_bonds[:, 3]), raw_bonds[:, 4]],
        axis=1,
    )
    # Both directions, interleaved (i->j, j->i per bond) exactly like OGB's edge order.
    edge_index = np.empty((2, 2 * len(raw_bonds)), dtype=np.int64)
    edge_index[0, 0::2], edge_index[1, 0::2] = raw_bonds[:, 0], raw_bonds[:, 1]
    edge_index[0, 1::2], edge_index[1, 1::2] = raw_bonds[:, 1], raw_bonds[:, 0]
    edge_attr = np.repeat(bond_attr, 2, axis=0)
    return {
        "x": torch.from_numpy(x),
        "edge_index": torch.from_numpy(edge_index),
        "edge_attr": torch.from_numpy(np.ascontiguousarray(edge_attr)),
    }


def _parse(smiles: str) -> tuple[Chem.Mol | None, str]:
    """Parse and sanitise; return the molecule or ``None`` and why it failed."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None, "empty SMILES"
    mol = Chem.MolFromSmiles(smiles)
    if mol is not None:
        return (mol, "") if mol.GetNumAtoms() > 0 else (None, "no atoms")
    # Find out why, for the report: parse without sanitising, then sanitise to get the message.
    unsanitised = Chem.MolFromSmiles(smiles, sanitize=False)
    if unsanitised is None:
        return None, "RDKit cannot parse it"
    try:
        Chem.SanitizeMol(unsanitised)
    except Exception as exc:  # RDKit raises several exception types; the message is what matters
        return None, f"RDKit sanitisation failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None, "RDKit cannot parse it"


def smiles_to_graph(smiles: str) -> dict[str, Tensor] | None:
    """Featurise one molecule with OGB's vocabulary.

    Args:
        smiles: A SMILES string.

    Returns:
        ``{"x": long [n, 9], "edge_index": long [2, 2m], "edge_attr": long [2m, 3]}`` with every
        bond in both directions, or ``None`` when RDKit cannot parse or sanitise the SMILES
        (or it has no atoms).
    """
    with _quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) else None
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return _mol_to_graph(mol)


def featurize_smiles(smiles: Sequence[str]) -> tuple[list[dict[str, Tensor]], list[int], list[tuple[int, str, str]]]:
    """Featurise many molecules, skipping (and reporting) the ones RDKit rejects.

    Args:
        smiles: SMILES strings, one per dataset row.

    Returns:
        ``(graphs, kept, failures)``: the graphs of the valid molecules, their row indices in
        ``smiles`` (so labels can be aligned), and ``(row, smiles, reason)`` for each skipped row.
    """
    graphs: list[dict[str, Tensor]] = []
    kept: list[int] = []
    failures: list[tuple[int, str, str]] = []
    with _quiet_rdkit():
        for row, text in enumerate(smiles):
            mol, reason = _parse(text)
            if mol is None:
                failures.append((row, str(text), reason))
                continue
            graphs.append(_mol_to_graph(mol))
            kept.append(row)
    return graphs, kept, failures


class _quiet_rdkit:
    """Silence RDKit's C++ error log: failures are reported once, by the caller, not per atom."""

    def __enter__(self) -> None:
        RDLogger.DisableLog("rdApp.*")

    def __exit__(self, *exc: object) -> None:
        RDLogger.EnableLog("rdApp.*")
