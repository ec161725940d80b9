"""SMILES -> OGB's categorical atom and bond features as numpy arrays (RDKit and numpy only).

This is the worker half of :mod:`igt.data.featurize`: it imports neither torch nor ``igt.data``
(whose package import loads torch), so a process featurising a chunk of a large dataset starts
in a fraction of a second. The values equal ``ogb.utils.smiles2graph``'s; the tests compare them
on every built-in molecule.

Where the time goes (5,000 HIV SMILES, one thread, profiled): RDKit's parse and sanitisation
(about half of ours), then one Python wrapper object per atom and per bond and a getter call per
feature on each. OGB's ``smiles2graph`` also pays for ``MolFromSmiles``' stereo perception, which
is quadratic in the atom count on branched molecules (a 10k-atom ``CC(=O)O...`` took 2 s, 100k
atoms 414 s) and changes nothing when the text has no stereo marks, and for per-atom Python
(``list.index``, ``str()`` of enums). Here:

* SMILES without ``@``, ``/``, ``\\`` or a CXSMILES ``|`` part are parsed without sanitising and
  then sanitised: exactly ``MolFromSmiles`` minus that stereo perception, which can only clear
  chiral tags and set double-bond stereo, neither of which such a text has. ``MolFromSmiles`` also
  removes explicit hydrogen atoms (``[H]``); a SMILES that has one is parsed the full way.
* Each feature is one C-level ``map`` of an unbound RDKit getter over a molecule's atoms or bonds,
  appended to a column shared by the chunk's molecules; the columns become numpy arrays and OGB
  vocabulary indices once per chunk (lookup tables, no numpy call per molecule).
* Getters whose answer the text fixes are skipped: chiral tags need ``@``, bond stereo ``/`` or
  ``\\``, radicals a bracket atom (RDKit assigns radicals only to atoms without implicit
  hydrogens) or a CXSMILES part. Bond types are read as floats (no enum object), except where a
  bond may be dative (metals, ``->``): a dative bond's float equals a single bond's.
* Total degree is the bond count from the edge list plus the hydrogens: no getter. Nor for
  aromatic atoms, unless the text writes a bond as aromatic (``:``, e.g. ``C:C``, which stays an
  aromatic bond between non-aromatic atoms): sanitisation marks a ring's atoms and bonds aromatic
  together, so an atom is aromatic exactly when one of its bonds is (equal on all 52,120
  built-in molecules).
* Large molecules are read in blocks of atoms, in linear time (see ``_Columns._add_large``).

What stays superlinear is inside RDKit and is the same for ``smiles2graph``: its SMILES parser on
texts with very many ring closures, kekulisation of one huge conjugated system, and the stereo
perception of large SMILES that do carry stereo marks. ``data.max_atoms`` and
``data.max_smiles_length`` bound them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import chain
from typing import Sequence

import numpy as np
from rdkit import Chem, RDLogger, rdBase
from rdkit.Chem import rdchem

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
    """Lookup table from an RDKit enum's integer value to OGB's category index; one extra last
    slot (misc) receives values added by a future RDKit once they are clipped to the table."""
    size = max(int(v) for v in enum.values) + 2
    table = np.full(size, misc, dtype=np.int64)
    for value, member in enum.values.items():
        if str(member) in names:
            table[int(value)] = names.index(str(member))
    return table


def _atom_tables() -> tuple[np.ndarray, ...]:
    """Per atom column, a lookup table from the raw RDKit value (plus the column's shift) to OGB's
    index. Values are looked up with ``take(mode="clip")``: every out-of-range value lands on an
    end slot, which holds OGB's misc index (or, below the range, its first misc slot)."""
    misc = [d - 1 for d in ATOM_VOCAB]
    tables = [
        [misc[0]] + list(range(118)) + [misc[0]],  # atomic number: 0 (dummy "*") and >118 are misc
        list(_enum_table(rdchem.ChiralType, _CHIRALITY_NAMES, misc[1])),
        list(range(11)) + [misc[2]],  # total degree 0..10
        [misc[3]] + list(range(11)) + [misc[3]],  # formal charge <-5, -5..5, >5 (shifted by 6)
        list(range(9)) + [misc[4]],  # hydrogens 0..8
        list(range(5)) + [misc[5]],  # radical electrons 0..4
        list(_enum_table(rdchem.HybridizationType, _HYBRIDIZATION_NAMES, misc[6])),
        [0, 1],
        [0, 1],
    ]
    return tuple(np.asarray(table, dtype=np.int64) for table in tables)


_ATOM_TABLES = _atom_tables()
_CHARGE_SHIFT = 6
_BOND_STEREO_TABLE = _enum_table(rdchem.BondStereo, _BOND_STEREO_NAMES, BOND_VOCAB[1] - 1)

# Bond types travel as floats (``GetBondTypeAsDouble``: no enum object per bond); twice the
# float indexes this table: 1.0 single, 1.5 aromatic, 2.0 double, 3.0 triple, anything else misc.
_MISC_BOND = BOND_VOCAB[0] - 1
_HALF_ORDER_TABLE = np.array([_MISC_BOND, _MISC_BOND, 0, 3, 1, _MISC_BOND, 2, _MISC_BOND], dtype=np.int64)
# Where a float is ambiguous (a dative bond's is 1.0, like a single bond's), the enum getter is
# used and mapped to the float that lands on OGB's category (0.0: misc).
_CANONICAL_ORDER = {
    int(value): dict(zip(_BOND_TYPE_NAMES, (1.0, 2.0, 3.0, 1.5))).get(str(member), 0.0)
    for value, member in rdchem.BondType.values.items()
}
# Bonds to metals may become dative during sanitisation; molecules made only of these elements
# cannot have one unless the SMILES writes it (``->``, ``<-``).
_NON_METALS = frozenset((1, 2, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 33, 34, 35, 36, 52, 53, 54, 85, 86))
# Molecules with more atoms or bonds than _LARGE are read _BLOCK atoms at a time (see
# _Columns._add_large); smaller ones fetch bonds by index, whose walk is then short. A block's
# wrapper objects are freed before the garbage collector's first generation fills (700 objects).
_LARGE = 512
_BLOCK = 128

_Atom, _Bond = rdchem.Atom, rdchem.Bond


@dataclass
class ChunkGraphs:
    """The featurised molecules of a run of SMILES, concatenated.

    Attributes:
        x: ``int64 [N, 9]`` atom features of all kept molecules, molecule after molecule.
        edge_index: ``int64 [2, E]``, each bond as ``(i, j)`` then ``(j, i)`` in RDKit's bond
            order, with atom indices counted within the molecule (as ``smiles2graph`` gives them).
        edge_attr: ``int64 [E, 3]``.
        atoms: Atoms of each kept molecule.
        edges: Directed edges (twice the bonds) of each kept molecule.
        kept: Row of each kept molecule in the whole input.
        failures: ``(row, smiles, reason)`` of each skipped row.
    """

    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray
    atoms: np.ndarray
    edges: np.ndarray
    kept: list[int] = field(default_factory=list)
    failures: list[tuple[int, str, str]] = field(default_factory=list)


def featurize_chunk(
    smiles: Sequence[str], first_row: int = 0, max_atoms: int | None = None, max_smiles_length: int | None = None,
) -> ChunkGraphs:
    """Featurise ``smiles`` (rows ``first_row``, ``first_row + 1``, ...) into one :class:`ChunkGraphs`.

    Rows RDKit cannot parse or sanitise, without atoms, or above the size limits are skipped and
    reported with their row and reason (see :func:`igt.data.featurize.featurize_smiles`).
    """
    cols = _Columns()
    kept: list[int] = []
    failures: list[tuple[int, str, str]] = []
    with quiet_rdkit():
        for row, text in enumerate(smiles, start=first_row):
            reason = size_problem(text, max_smiles_length)
            mol = None
            if not reason:
                mol, reason = parse(text)
            if mol is not None and max_atoms is not None and mol.GetNumHeavyAtoms() > max_atoms:
                mol, reason = None, f"{mol.GetNumHeavyAtoms()} heavy atoms, above data.max_atoms={max_atoms}"
            if mol is None:
                failures.append((row, str(text), reason))
                continue
            cols.add(mol, text)
            kept.append(row)
    return cols.finish(kept, failures)


class _Columns:
    """Raw RDKit values of every atom and bond of a chunk, one Python list per feature."""

    def __init__(self) -> None:
        self.atomic: list[int] = []
        self.chiral: list[int] = []
        self.charge: list[int] = []
        self.hydrogens: list[int] = []
        self.radicals: list[int] = []
        self.hybridization: list[int] = []
        self.aromatic: list[int] = []  # -1: from the bonds (see finish)
        self.ring: list[bool] = []
        self.begin: list[int] = []
        self.end: list[int] = []
        self.order: list[float] = []
        self.stereo: list[int] = []
        self.conjugated: list[bool] = []
        self.atoms: list[int] = []
        self.bonds: list[int] = []

    def add(self, mol: Chem.Mol, text: str) -> None:
        n, m = mol.GetNumAtoms(), mol.GetNumBonds()
        self.atoms.append(n)
        self.bonds.append(m)
        if n > _LARGE or m > _LARGE:
            self._add_large(mol, n, m, text)
            return
        self._add_atoms(list(map(mol.GetAtomWithIdx, range(n))), text)
        if m:
            self._add_bonds(list(map(mol.GetBondWithIdx, range(m))), text, self._dative_possible(n, text))

    def _add_atoms(self, atoms: list, text: str) -> None:
        n = len(atoms)
        self.atomic.extend(map(_Atom.GetAtomicNum, atoms))
        self.chiral.extend(map(_Atom.GetChiralTag, atoms) if "@" in text else [0] * n)
        self.charge.extend(map(_Atom.GetFormalCharge, atoms))
        self.hydrogens.extend(map(_Atom.GetTotalNumHs, atoms))
        # Radicals come from bracket atoms (or a CXSMILES part), never from organic-subset ones.
        self.radicals.extend(map(_Atom.GetNumRadicalElectrons, atoms) if "[" in text or "|" in text else [0] * n)
        self.hybridization.extend(map(_Atom.GetHybridization, atoms))
        self.aromatic.extend(map(_Atom.GetIsAromatic, atoms) if ":" in text else [-1] * n)
        self.ring.extend(map(_Atom.IsInRing, atoms))

    def _dative_possible(self, n: int, text: str) -> bool:
        """Whether a bond of the molecule whose ``n`` atoms were added last may be dative, so
        that its bond types must be read as enums. A metal is always a bracket atom in SMILES, so
        the element check is needed only when the text has one (or a dummy atom ``*``)."""
        if "->" in text or "<-" in text or "|" in text:
            return True
        return ("[" in text or "*" in text) and not _NON_METALS.issuperset(self.atomic[-n:])

    def _add_bonds(self, bonds: list, text: str, dative_possible: bool) -> None:
        self.begin.extend(map(_Bond.GetBeginAtomIdx, bonds))
        self.end.extend(map(_Bond.GetEndAtomIdx, bonds))
        if dative_possible:
            self.order.extend([_CANONICAL_ORDER.get(int(t), 0.0) for t in map(_Bond.GetBondType, bonds)])
        else:
            self.order.extend(map(_Bond.GetBondTypeAsDouble, bonds))
        if "/" in text or "\\" in text or "|" in text:
            self.stereo.extend(map(_Bond.GetStereo, bonds))
        else:
            self.stereo.extend([0] * len(bonds))
        self.conjugated.extend(map(_Bond.GetIsConjugated, bonds))

    def _add_large(self, mol: Chem.Mol, n: int, m: int, text: str) -> None:
        """A large molecule, block of atoms by block, in time linear in its size.

        Two things are not linear on large molecules. ``GetBondWithIdx(i)`` (and
        ``mol.GetBonds()``) walks RDKit's edge list from its start, so bonds are reached through
        their atoms (``Atom.GetBonds()``, linear in the degree; each bond is seen from both ends)
        and their values placed at the bond's index. And a wrapper object alive for every atom
        and bond at once made Python's cyclic garbage collector run full collections of the heap
        (a 40k-atom molecule took 3x as long as with the collector paused); blocks of atoms keep
        the number of live wrappers bounded.
        """
        for start in range(0, n, _BLOCK):
            self._add_atoms(list(map(mol.GetAtomWithIdx, range(start, min(n, start + _BLOCK)))), text)
        if not m:
            return
        dative_possible = self._dative_possible(n, text)
        placed = [np.zeros(m, np.int64), np.zeros(m, np.int64), np.zeros(m, np.float64), np.zeros(m, np.int64),
                  np.zeros(m, np.int64)]  # begin, end, order, stereo, conjugated, at each bond's index
        for start in range(0, n, _BLOCK):
            atoms = list(map(mol.GetAtomWithIdx, range(start, min(n, start + _BLOCK))))
            seen = list(chain.from_iterable(map(_Atom.GetBonds, atoms)))
            block = _Columns()
            block._add_bonds(seen, text, dative_possible)
            index = np.fromiter(map(_Bond.GetIdx, seen), dtype=np.int64, count=len(seen))
            for column, values in zip(placed, (block.begin, block.end, block.order, block.stereo, block.conjugated)):
                column[index] = np.asarray(values, dtype=column.dtype)
        for column, values in zip((self.begin, self.end, self.order, self.stereo, self.conjugated), placed):
            column.extend(values.tolist())

    def finish(self, kept: list[int], failures: list[tuple[int, str, str]]) -> ChunkGraphs:
        """Map the raw values to OGB's vocabulary indices, for the whole chunk at once."""
        atoms, bonds = _ints(self.atoms), _ints(self.bonds)
        total = int(atoms.sum())
        hydrogens, begin, end = _ints(self.hydrogens), _ints(self.begin), _ints(self.end)
        first_atom = np.repeat(np.cumsum(atoms) - atoms, bonds)
        begin_atom, end_atom = begin + first_atom, end + first_atom  # rows in the chunk's x
        # Total degree = neighbours in the graph + hydrogens, which is RDKit's GetTotalDegree.
        degree = np.bincount(begin_atom, minlength=total) + np.bincount(end_atom, minlength=total)
        half_order = np.rint(np.fromiter(self.order, dtype=np.float64, count=len(self.order)) * 2).astype(np.int64)
        has_aromatic_bond = np.zeros(total, dtype=np.int64)
        aromatic_bond = half_order == 3  # bond type 1.5
        has_aromatic_bond[begin_atom[aromatic_bond]] = has_aromatic_bond[end_atom[aromatic_bond]] = 1
        aromatic = _ints(self.aromatic)
        aromatic = np.where(aromatic < 0, has_aromatic_bond, aromatic)
        raw = (self.atomic, self.chiral, degree + hydrogens, _ints(self.charge) + _CHARGE_SHIFT, hydrogens,
               self.radicals, self.hybridization, aromatic, self.ring)
        x = np.empty((total, 9), dtype=np.int64)
        for column, (table, values) in enumerate(zip(_ATOM_TABLES, raw)):
            x[:, column] = table.take(values if isinstance(values, np.ndarray) else _ints(values), mode="clip")

        bond_attr = np.empty((begin.size, 3), dtype=np.int64)
        bond_attr[:, 0] = _HALF_ORDER_TABLE.take(half_order, mode="clip")
        bond_attr[:, 1] = _BOND_STEREO_TABLE.take(_ints(self.stereo), mode="clip")
        bond_attr[:, 2] = _ints(self.conjugated)
        # Both directions, (i, j) then (j, i) for each bond in RDKit's bond order, exactly like OGB.
        edge_index = np.empty((2, 2 * begin.size), dtype=np.int64)
        edge_index[0, 0::2] = edge_index[1, 1::2] = begin
        edge_index[1, 0::2] = edge_index[0, 1::2] = end
        edge_attr = np.repeat(bond_attr, 2, axis=0)
        return ChunkGraphs(x, edge_index, edge_attr, atoms, 2 * bonds, kept, failures)


def _ints(values: list) -> np.ndarray:
    """A list of ints, bools or RDKit enums as int64 (``fromiter``: faster than ``np.array``)."""
    return np.fromiter(values, dtype=np.int64, count=len(values))


# Marks that need RDKit's stereo perception (chirality, double-bond directions) or that may carry
# anything at all (a CXSMILES part after "|"): such SMILES take the full MolFromSmiles.
_STEREO_MARKS = ("@", "/", "\\", "|")
# A hydrogen *atom* in SMILES is a bracket atom whose element is H: "[H]", "[2H]", "[H+]" (not
# "[NH3+]", whose H is a count, nor "[Hg]").
_HYDROGEN_ATOM = re.compile(r"\[[0-9]*H(?![a-z])")


def parse(smiles: object) -> tuple[Chem.Mol | None, str]:
    """Parse and sanitise as ``Chem.MolFromSmiles`` does; return the molecule or ``None`` and why.

    Without stereo marks the stereo perception that ``MolFromSmiles`` runs after sanitising is
    skipped (it is quadratic on large branched molecules and a no-op on such text).
    """
    if not isinstance(smiles, str) or not smiles.strip():
        return None, "empty SMILES"
    if any(mark in smiles for mark in _STEREO_MARKS):
        return _parse_full(smiles)
    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        return None, "RDKit cannot parse it"
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:  # RDKit raises several exception types; the message is what matters
        return None, _sanitisation_failure(exc)
    if "H" in smiles and _HYDROGEN_ATOM.search(smiles):
        return _parse_full(smiles)  # MolFromSmiles removes (most) explicit hydrogen atoms
    return (mol, "") if mol.GetNumAtoms() > 0 else (None, "no atoms")


def _parse_full(smiles: str) -> tuple[Chem.Mol | None, str]:
    mol = Chem.MolFromSmiles(smiles)
    if mol is not None:
        return (mol, "") if mol.GetNumAtoms() > 0 else (None, "no atoms")
    # Find out why, for the report: parse without sanitising, then sanitise to get the message.
    unsanitised = Chem.MolFromSmiles(smiles, sanitize=False)
    if unsanitised is None:
        return None, "RDKit cannot parse it"
    try:
        Chem.SanitizeMol(unsanitised)
    except Exception as exc:
        return None, _sanitisation_failure(exc)
    return None, "RDKit cannot parse it"


def _sanitisation_failure(exc: Exception) -> str:
    return f"RDKit sanitisation failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def size_problem(smiles: object, max_smiles_length: int | None) -> str:
    """Why ``smiles`` is too long to parse (``""`` when it is not), from its text alone."""
    if isinstance(smiles, str) and max_smiles_length is not None and len(smiles) > max_smiles_length:
        return f"SMILES of {len(smiles)} characters, above data.max_smiles_length={max_smiles_length}"
    return ""


class quiet_rdkit:
    """Silence RDKit's C++ log: failures are reported once, by the caller, not per atom. On exit
    each level (debug, info, warning, error) gets back the state it had, so nesting is harmless
    and RDKit's default of hiding debug and info messages survives."""

    def __enter__(self) -> None:
        status = getattr(rdBase, "LogStatus", None)  # RDKit 2022.03+
        self._previous = status().splitlines() if status is not None else []
        RDLogger.DisableLog("rdApp.*")

    def __exit__(self, *exc: object) -> None:
        if not self._previous:
            RDLogger.EnableLog("rdApp.*")
        for line in self._previous:
            name, _, state = line.partition(":")
            (RDLogger.EnableLog if state.strip() == "enabled" else RDLogger.DisableLog)(name.strip())
