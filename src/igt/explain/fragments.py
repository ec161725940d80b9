"""Rationales as substructures a chemist can read: fragment SMILES/SMARTS and a recurrence table.

Per molecule, the **rationale atoms** are those scored above the threshold
(:data:`igt.explain.RATIONALE_THRESHOLD`, the same atoms the rationale size counts) or, with
``top_ratio``, the ``ceil(top_ratio * n_atoms)`` best-scored atoms (ties broken by atom index).
:func:`rationale_fragment` writes them, with the bonds among them, as

* ``fragment_smiles``: RDKit ``MolFragmentToSmiles`` (canonical; pieces joined by ``.``);
* ``fragment_smarts``: ``MolFragmentToSmarts`` of the same atoms and bonds (always written: a
  query that matches the parent molecule even where the SMILES form is not a valid molecule);
* ``largest_fragment``: the canonical SMILES of the largest connected piece (most atoms; ties:
  the lexicographically smallest string), the unit :func:`fragment_summary` counts.

Aromatic atoms whose ring is only partly kept (e.g. a ring carbon and its chlorine) give an
aromatic SMILES that RDKit cannot read back as a molecule (``cCl``: no ring to kekulize). We keep
that non-kekulized form anyway (canonical over the fragment's atoms, so the same piece from
different molecules gets the same string, and a chemist reads ``cCl`` as "chlorine on an
aromatic carbon"; it is also a valid SMARTS pattern) and ``note`` says so. A Kekulé form
(``CCl``) would parse but would claim an aliphatic carbon. Pieces that parse are re-canonicalised
by RDKit; as in any SMILES, open valences read as hydrogens (a carboxylic acid's carbon and two
oxygens are written ``O=CO``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from igt.fileio import atomic_open

#: Columns of ``fragments.csv``.
FRAGMENT_COLUMNS = ("molecule_id", "smiles", "atoms", "fragment_smiles", "fragment_smarts", "largest_fragment",
                    "largest_atoms", "note")
#: Columns of ``fragment_summary.csv``.
SUMMARY_COLUMNS = ("rank", "fragment", "molecules", "share", "predicted_positive", "predicted_negative",
                   "mean_prediction", "example_ids")

#: ``note`` of fragments with aromatic atoms outside a complete ring.
AROMATIC_NOTE = ("aromatic atoms outside a complete ring: non-kekulized SMILES, a pattern rather than a "
                 "molecule RDKit can read back")


@dataclass
class RationaleFragment:
    """One molecule's rationale as a substructure (empty strings when no atom is kept).

    Attributes:
        atoms: Indices of the kept atoms (the featuriser's = RDKit's parse order).
        fragment_smiles: Canonical SMILES of the kept atoms and the bonds among them.
        fragment_smarts: SMARTS of the same atoms and bonds.
        largest_fragment: Canonical SMILES of the largest connected piece.
        largest_atoms: Its atom indices.
        note: ``""`` or why a SMILES is not the plain aromatic form (see the module docstring).
    """

    atoms: list[int]
    fragment_smiles: str = ""
    fragment_smarts: str = ""
    largest_fragment: str = ""
    largest_atoms: list[int] | None = None
    note: str = ""

    def record(self) -> dict[str, Any]:
        """The JSON form (``rationale.json``)."""
        return {"atoms": self.atoms, "fragment_smiles": self.fragment_smiles or None,
                "fragment_smarts": self.fragment_smarts or None, "largest_fragment": self.largest_fragment or None,
                "largest_atoms": self.largest_atoms or [], "note": self.note or None}


def rationale_atoms(scores: Sequence[float], threshold: float = 0.5, top_ratio: float | None = None) -> list[int]:
    """Atoms above ``threshold``, or the ``ceil(top_ratio * n)`` best-scored (ties: lower index)."""
    scores = np.asarray(scores, dtype=float)
    if top_ratio is not None:
        count = min(len(scores), math.ceil(top_ratio * len(scores)))
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return sorted(order[:count])
    return [int(i) for i in np.flatnonzero(scores > threshold)]


def _mol(smiles: str):
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:  # as the featuriser does: the unsanitised molecule, same atom order
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is not None:
            mol.UpdatePropertyCache(strict=False)
    return mol


def _components(mol, atoms: list[int], bonds: list[int]) -> list[list[int]]:
    parent = {a: a for a in atoms}

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for b in bonds:
        bond = mol.GetBondWithIdx(b)
        parent[find(bond.GetBeginAtomIdx())] = find(bond.GetEndAtomIdx())
    groups: dict[int, list[int]] = {}
    for a in atoms:
        groups.setdefault(find(a), []).append(a)
    return list(groups.values())


def _piece_smiles(mol, atoms: list[int], bonds: list[int]) -> tuple[str, str]:
    """``(smiles, note)`` of one connected piece: RDKit-canonical when it parses as a molecule,
    else the fragment's own canonical (non-kekulized, aromatic) SMILES with a note."""
    from rdkit import Chem

    from rdkit.rdBase import BlockLogs

    text = Chem.MolFragmentToSmiles(mol, atomsToUse=atoms, bondsToUse=bonds or None, canonical=True)
    blocked = BlockLogs()  # "non-ring atom marked aromatic" is expected here, not news
    parsed = Chem.MolFromSmiles(text)
    del blocked
    if parsed is not None:
        return Chem.MolToSmiles(parsed), ""
    return text, AROMATIC_NOTE


def rationale_fragment(smiles: str, node_scores: Sequence[float] | None, threshold: float = 0.5,
                       top_ratio: float | None = None) -> RationaleFragment:
    """The rationale of one molecule as a substructure (see the module docstring).

    Args:
        smiles: The molecule the scores are of (atom order = RDKit's parse order).
        node_scores: ``[n_atoms]`` rationale scores, or ``None`` (method without a rationale).
        threshold: Keep atoms scored above this (ignored when ``top_ratio`` is given).
        top_ratio: Keep this fraction of atoms, best-scored first.
    """
    from rdkit import Chem

    if node_scores is None:
        return RationaleFragment([], note="no rationale (the model gives no node scores)")
    mol = _mol(smiles)
    if mol is None or mol.GetNumAtoms() != len(node_scores):
        return RationaleFragment([], note="RDKit's reading of the SMILES does not match the scored atoms")
    atoms = rationale_atoms(node_scores, threshold, top_ratio)
    if not atoms:
        return RationaleFragment([], note="no atom above the threshold")
    kept = set(atoms)
    bonds = [b.GetIdx() for b in mol.GetBonds() if b.GetBeginAtomIdx() in kept and b.GetEndAtomIdx() in kept]
    pieces = []
    notes = set()
    for component in _components(mol, atoms, bonds):
        inside = set(component)
        piece_bonds = [b for b in bonds if mol.GetBondWithIdx(b).GetBeginAtomIdx() in inside]
        text, note = _piece_smiles(mol, sorted(component), piece_bonds)
        pieces.append((text, sorted(component)))
        if note:
            notes.add(note)
    largest_text, largest_atoms = min(pieces, key=lambda p: (-len(p[1]), p[0]))
    smarts = Chem.MolFragmentToSmarts(mol, atomsToUse=atoms, bondsToUse=bonds or None) if bonds else ".".join(
        Chem.MolFragmentToSmarts(mol, atomsToUse=[a]) for a in atoms)
    return RationaleFragment(
        atoms=atoms, fragment_smiles=".".join(sorted(p[0] for p in pieces)), fragment_smarts=smarts,
        largest_fragment=largest_text, largest_atoms=largest_atoms, note="; ".join(sorted(notes)),
    )


def explanation_fragments(explanations: Sequence, threshold: float = 0.5,
                          top_ratio: float | None = None) -> list[RationaleFragment | None]:
    """One :class:`RationaleFragment` per explanation (``None`` for failed or non-molecular graphs)."""
    out: list[RationaleFragment | None] = []
    for item in explanations:
        if item.failure or item.smiles is None:
            out.append(None)
        else:
            out.append(rationale_fragment(item.smiles, item.node_scores, threshold, top_ratio))
    return out


def write_fragments_csv(explanations: Sequence, fragments: Sequence[RationaleFragment | None], path: Path) -> None:
    """``fragments.csv``: one row per explained molecule (:data:`FRAGMENT_COLUMNS`)."""
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FRAGMENT_COLUMNS)
        for item, fragment in zip(explanations, fragments):
            if fragment is None:
                continue
            writer.writerow([item.id, item.smiles, " ".join(map(str, fragment.atoms)), fragment.fragment_smiles,
                             fragment.fragment_smarts, fragment.largest_fragment,
                             " ".join(map(str, fragment.largest_atoms or [])), fragment.note])


def positive_calls(explanations: Sequence, task_type: str) -> tuple[list[bool | None], str]:
    """Which molecules count as predicted positive, and the rule in words.

    Binary tasks: the first column's probability ``p >= 0.5``. Regression: the first column's
    prediction above the median prediction of the explained molecules (so about half are
    "positive"; at or below the median is "negative"). Multiclass: any class but class 0
    has the top probability. ``None`` for molecules without a prediction.
    """
    headline = [None if item.prediction is None else float(item.prediction[0]) for item in explanations]
    if task_type == "regression":
        known = [v for v in headline if v is not None]
        median = float(np.median(known)) if known else 0.0
        return [None if v is None else v > median for v in headline], f"prediction above the median ({median:.4g})"
    if task_type == "multiclass":
        return ([None if item.prediction is None else int(np.argmax(item.prediction)) != 0 for item in explanations],
                "top class is not class 0")
    return [None if v is None else v >= 0.5 for v in headline], "p >= 0.5 (first column)"


def fragment_summary(explanations: Sequence, fragments: Sequence[RationaleFragment | None], task_type: str,
                     top: int | None = None) -> tuple[list[dict[str, Any]], str]:
    """Rank the largest-piece fragments by how many explained molecules have them.

    Each molecule counts once, by its ``largest_fragment``. Columns (:data:`SUMMARY_COLUMNS`):
    ``molecules`` (count), ``share`` (of molecules with a fragment), ``predicted_positive`` /
    ``predicted_negative`` (counts by :func:`positive_calls`: binary ``p >= 0.5``; regression
    above / at-or-below the median prediction), ``mean_prediction`` (first column) and up to five
    ``example_ids``. Ties are ordered by fragment string.

    Returns:
        ``(rows, rule)``: the rows, best first, and the positive/negative rule in words.
    """
    calls, rule = positive_calls(explanations, task_type)
    groups: dict[str, list[int]] = {}
    for k, fragment in enumerate(fragments):
        if fragment is not None and fragment.largest_fragment:
            groups.setdefault(fragment.largest_fragment, []).append(k)
    total = sum(len(v) for v in groups.values())
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    rows = []
    for rank, (text, members) in enumerate(ranked[:top] if top else ranked, start=1):
        values = [float(explanations[k].prediction[0]) for k in members if explanations[k].prediction is not None]
        rows.append({
            "rank": rank, "fragment": text, "molecules": len(members), "share": len(members) / total,
            "predicted_positive": sum(1 for k in members if calls[k] is True),
            "predicted_negative": sum(1 for k in members if calls[k] is False),
            "mean_prediction": float(np.mean(values)) if values else None,
            "example_ids": " ".join(explanations[k].id for k in members[:5]),
        })
    return rows, rule


def write_summary_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """``fragment_summary.csv`` (:data:`SUMMARY_COLUMNS`)."""
    with atomic_open(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(SUMMARY_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "share": f"{row['share']:.4g}",
                             "mean_prediction": "" if row["mean_prediction"] is None else f"{row['mean_prediction']:.4g}"})


__all__ = ["RationaleFragment", "rationale_atoms", "rationale_fragment", "explanation_fragments",
           "fragment_summary", "positive_calls", "write_fragments_csv", "write_summary_csv"]
