"""Standardisation of molecules (RDKit ``MolStandardize``) and the applicability check of new ones.

**Standardisation** (``data.standardize_inputs``, on by default for new molecules at ``igt
predict``/``igt explain``; ``data.standardize_training`` for training data, off by default so
training graphs stay identical to OGB's ``smiles2graph``): keep the largest organic fragment
(RDKit ``LargestFragmentChooser(preferOrganic=True)``: counter-ions, salts and solvent go), then
neutralise charges where adding or removing hydrogens can (``Uncharger``; a nitro group or a
quaternary ammonium keeps its charges). A molecule the steps leave unchanged keeps its own SMILES
text, so its atoms, and the per-atom rationale scores, keep the input's order.

**Applicability** of a model to a new molecule: the training split's elements, atom types and
largest molecule are stored with the model (:class:`~igt.data.task.TaskSpec`'s ``train_*``
fields, saved in the checkpoint); a new molecule with an element or an atom type the model never
saw, or more atoms than any training molecule, is flagged with a short reason. The model still
predicts it; the flag says not to trust the number as much.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
from rdkit import Chem
from torch import Tensor

from igt.data.featurize import ATOM_VOCAB, shorten
from igt.data.task import TaskSpec
from igt.molgraph import quiet_rdkit

#: OGB atom columns that make an atom *type*: element, formal charge, total degree, hydrogens,
#: radicals, hybridisation, aromaticity (chirality and ring membership left out: they say where
#: the atom sits, not what it is).
ATOM_TYPE_COLUMNS: tuple[int, ...] = (0, 3, 2, 4, 5, 6, 7)
_CHARGE_OFFSET = 5  # OGB's formal-charge column holds charge + 5
_CARBON = 5  # OGB's element column holds atomic number - 1


def standardize_smiles(smiles: str) -> tuple[str, str]:
    """Largest organic fragment, neutralised.

    Returns:
        ``(smiles, note)``: the standardised SMILES (the input text itself when nothing changed,
        or when RDKit cannot read it: featurisation then reports why) and ``""`` or what changed,
        e.g. ``"removed [Na+]; neutralised"``.
    """
    from rdkit.Chem.MolStandardize import rdMolStandardize

    with quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) and smiles.strip() else None
        if mol is None or mol.GetNumAtoms() == 0:
            return smiles, ""
        fragments = Chem.GetMolFrags(mol, asMols=True)
        parent = rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)
        parent_smiles = Chem.MolToSmiles(parent)
        neutral = rdMolStandardize.Uncharger().uncharge(parent)
        out = Chem.MolToSmiles(neutral)
        notes = []
        if len(fragments) > 1:
            removed = sorted({Chem.MolToSmiles(f) for f in fragments} - {parent_smiles})
            if removed:
                notes.append(f"removed {'.'.join(removed)}" if len(".".join(removed)) <= 40 else
                             f"removed {len(fragments) - 1} fragments")
        if out != parent_smiles:
            notes.append("neutralised")
        if out == Chem.MolToSmiles(mol):
            return smiles, "; ".join(notes)
        return out, "; ".join(notes)


def standardize_all(smiles: Sequence[str], max_smiles_length: int | None = None) -> tuple[list[str], list[str]]:
    """:func:`standardize_smiles` of each string (too-long ones are left for featurisation to
    reject unparsed)."""
    texts, notes = [], []
    for text in smiles:
        if not isinstance(text, str) or (max_smiles_length is not None and len(text) > max_smiles_length):
            texts.append(text)
            notes.append("")
            continue
        new, note = standardize_smiles(text)
        texts.append(new)
        notes.append(note)
    return texts, notes


def atom_type_codes(x: Tensor) -> Tensor:
    """One integer per atom for its type (the :data:`ATOM_TYPE_COLUMNS` of OGB's features)."""
    code = torch.zeros(x.shape[0], dtype=torch.long)
    for column in ATOM_TYPE_COLUMNS:
        code = code * ATOM_VOCAB[column] + x[:, column].long()
    return code


def with_training_domain(task: TaskSpec, x: Tensor, node_ptr: Tensor, graphs: Tensor) -> TaskSpec:
    """``task`` carrying the elements, atom types and largest size of ``graphs`` (the training
    split) of a molecule dataset with OGB features ``x`` and offsets ``node_ptr``."""
    graphs = torch.as_tensor(graphs, dtype=torch.long)
    if graphs.numel() == 0:
        return task
    starts, ends = node_ptr[graphs], node_ptr[graphs + 1]
    sizes = ends - starts
    from igt.data.dataset import concat_ranges

    nodes = x[concat_ranges(starts, sizes)]
    return replace(
        task,
        train_elements=tuple(int(z) for z in torch.unique(nodes[:, 0]).tolist()),
        train_atom_types=tuple(int(c) for c in torch.unique(atom_type_codes(nodes)).tolist()),
        train_max_atoms=int(sizes.max()),
    )


def describe_atom_type(code: int) -> str:
    """``N+ deg 4 H 3 aromatic`` for a code of :func:`atom_type_codes`."""
    values = {}
    for column in reversed(ATOM_TYPE_COLUMNS):
        values[column] = code % ATOM_VOCAB[column]
        code //= ATOM_VOCAB[column]
    charge = values[3] - _CHARGE_OFFSET
    text = f"{_element(values[0])}{'+' * charge if charge > 0 else '-' * -charge} deg {values[2]} H {values[4]}"
    return text + (" aromatic" if values[7] else "")


def _element(index: int) -> str:
    return Chem.GetPeriodicTable().GetElementSymbol(index + 1) if index < 118 else "*"


def applicability(task: TaskSpec, x: Tensor) -> str:
    """Why a molecule (OGB features ``x``) lies outside the model's training data, ``""`` if it
    does not; ``task`` must carry training statistics (:attr:`TaskSpec.has_training_domain`)."""
    reasons = []
    if not (x[:, 0] == _CARBON).any():
        reasons.append("no carbon atom (inorganic)")
    unseen = sorted(set(np.unique(x[:, 0].numpy()).tolist()) - set(task.train_elements))
    if unseen:
        reasons.append(f"element{'s' if len(unseen) > 1 else ''} not in training data: {', '.join(_element(z) for z in unseen)}")
    if x.shape[0] > task.train_max_atoms:
        reasons.append(f"{x.shape[0]} atoms, training max {task.train_max_atoms}")
    seen_elements = set(task.train_elements)
    types = [c for c in sorted(set(atom_type_codes(x).tolist()) - set(task.train_atom_types))
             if _element_of(c) in seen_elements]  # types of unseen elements are already named
    if types:
        shown = ", ".join(describe_atom_type(c) for c in types[:3]) + (f" and {len(types) - 3} more" if len(types) > 3 else "")
        reasons.append(f"atom type{'s' if len(types) > 1 else ''} not in training data: {shown}")
    return "; ".join(reasons)


def _element_of(code: int) -> int:
    for column in reversed(ATOM_TYPE_COLUMNS[1:]):
        code //= ATOM_VOCAB[column]
    return code


__all__ = ["standardize_smiles", "standardize_all", "with_training_domain", "applicability", "atom_type_codes",
           "describe_atom_type", "shorten"]
