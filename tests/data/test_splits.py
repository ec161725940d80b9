"""Splits: scaffold (OGB protocol), random (seeded), column, auto."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from igt.config import DataConfig
from igt.data import load_dataset
from igt.data.splits import make_split, parse_split_values, random_split, scaffold_of, scaffold_split
from igt.errors import IgtError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGT_CACHE_DIR", str(tmp_path / "cache"))


def _check_partition(split: dict[str, torch.Tensor], total: int) -> None:
    assert set(split) == {"train", "valid", "test"}
    together = torch.cat(list(split.values()))
    assert together.dtype == torch.long and sorted(together.tolist()) == list(range(total))


def test_scaffold_split_groups_largest_first_with_reference_tie_break() -> None:
    benzene = ["c1ccccc1C", "c1ccccc1O", "c1ccccc1N", "c1ccccc1Cl"]  # scaffold c1ccccc1 (4)
    pyridine = ["c1ccncc1C", "c1ccncc1O"]  # 2
    cyclohexane = ["C1CCCCC1O", "C1CCCCC1N"]  # 2, first index later than pyridine's
    acyclic = ["CCO", "CCN"]  # empty scaffold, 2
    smiles = pyridine + benzene + acyclic + cyclohexane
    split = scaffold_split(smiles, (0.6, 0.2, 0.2))
    _check_partition(split, len(smiles))
    # Sorted: benzene (4) then the size-2 groups by first index descending: cyclohexane (8),
    # acyclic (6), pyridine (0). Train cutoff 6: benzene + cyclohexane; valid cutoff 8: acyclic.
    assert split["train"].tolist() == [2, 3, 4, 5, 8, 9]
    assert split["valid"].tolist() == [6, 7]
    assert split["test"].tolist() == [0, 1]
    assert scaffold_of("C[C@H](c1ccccc1)N") == scaffold_of("C[C@@H](c1ccccc1)N") == "c1ccccc1"


def test_scaffold_split_on_bbbp_is_deterministic_and_80_10_10() -> None:
    ds = load_dataset(DataConfig(dataset="bbbp", rwse_steps=0, lap_k=0))
    first = make_split(ds, DataConfig(dataset="bbbp"))  # auto -> scaffold (SMILES, no own split)
    second = make_split(ds, DataConfig(dataset="bbbp", split="scaffold"))
    _check_partition(first, len(ds))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert len(first["train"]) <= 0.8 * len(ds) + 1e-9 and len(first["train"]) > 0.75 * len(ds)
    scaffolds = {k: {scaffold_of(ds.smiles[i]) for i in v.tolist()} for k, v in first.items()}
    assert not (scaffolds["train"] & scaffolds["valid"]) and not (scaffolds["train"] & scaffolds["test"])


def test_random_split_is_seeded() -> None:
    a, b, c = random_split(100, (0.8, 0.1, 0.1), 1), random_split(100, (0.8, 0.1, 0.1), 1), random_split(100, (0.8, 0.1, 0.1), 2)
    _check_partition(a, 100)
    assert [len(a[k]) for k in ("train", "valid", "test")] == [80, 10, 10]
    assert torch.equal(a["train"], b["train"]) and not torch.equal(a["train"], c["train"])


def test_column_split_and_auto_use_the_column(tmp_path: Path) -> None:
    smiles = ["CCO", "CCN", "CCC", "CCCl", "c1ccccc1", "C1CCCCC1"]
    values = ["train", "Train", "val", "Validation", "TEST", "valid"]
    path = tmp_path / "s.csv"
    pd.DataFrame({"smiles": smiles, "y": [0, 1] * 3, "fold": values}).to_csv(path, index=False)
    cfg = DataConfig(dataset=str(path), split="column", split_column="fold", rwse_steps=0, lap_k=0)
    ds = load_dataset(cfg)
    split = make_split(ds, cfg)
    assert split["train"].tolist() == [0, 1] and split["valid"].tolist() == [2, 3, 5] and split["test"].tolist() == [4]
    auto = make_split(ds, DataConfig(dataset=str(path), split="auto"))
    assert all(torch.equal(auto[k], split[k]) for k in split)


def test_bad_split_values_and_options(tmp_path: Path) -> None:
    with pytest.raises(IgtError, match="row 2: split value 'holdout'"):
        parse_split_values(["train", "holdout"], "f.csv, column 'fold'")
    ds = load_dataset(DataConfig(dataset="bace", rwse_steps=0, lap_k=0, limit=50))
    with pytest.raises(IgtError, match="split_column"):
        make_split(ds, DataConfig(split="column"))
    with pytest.raises(IgtError, match="split_fractions"):
        make_split(ds, DataConfig(split="random", split_fractions=[0.5, 0.2]))
    with pytest.raises(IgtError, match="data.split='kfold'"):
        make_split(ds, DataConfig(split="kfold"))


def test_auto_is_random_without_smiles() -> None:
    ds = load_dataset(DataConfig(dataset="bace", rwse_steps=0, lap_k=0, limit=40))
    ds.smiles = None
    split = make_split(ds, DataConfig(split="auto"), seed=3)
    assert torch.equal(split["train"], random_split(40, (0.8, 0.1, 0.1), 3)["train"])


def _published_style(tmp_path: Path, values: list[str], name: str = "bench.csv") -> Path:
    """A benchmark-style file: SMILES, a label and a `split` column of the file's own split."""
    from rdkit import Chem

    bbbp = load_dataset(DataConfig(dataset="bbbp", rwse_steps=0, lap_k=0, limit=len(values)))
    path = tmp_path / name
    pd.DataFrame({"smiles": bbbp.smiles, "y": bbbp.y[:, 0].tolist(), "split": values}).to_csv(path, index=False)
    assert all(Chem.MolFromSmiles(s) for s in bbbp.smiles)
    return path


@pytest.mark.parametrize("strategy", ["auto", "column"])
def test_train_test_only_split_column_keeps_the_test_set_and_carves_validation(tmp_path, caplog, strategy) -> None:
    import logging

    values = ["train"] * 90 + ["test"] * 10
    path = _published_style(tmp_path, values)
    cfg = DataConfig(dataset=str(path), split=strategy, rwse_steps=0, lap_k=0)
    ds = load_dataset(cfg)
    with caplog.at_level(logging.WARNING, logger="igt.data"):
        split = make_split(ds, cfg)
    _check_partition(split, 100)
    assert split["test"].tolist() == list(range(90, 100))  # the file's own test rows
    assert len(split["valid"]) == 10 and len(split["train"]) == 80 and int(split["valid"].max()) < 90
    assert "train and test only" in caplog.text and "validation = 10 of its 90 training rows (1/9, by scaffold" in caplog.text
    assert torch.equal(make_split(ds, cfg)["valid"], split["valid"])  # deterministic
    assert make_split(ds, DataConfig(split="scaffold"))["test"].tolist() != split["test"].tolist()  # scaffold ignores it


def test_train_test_only_without_smiles_is_random_and_seeded(tmp_path) -> None:
    path = _published_style(tmp_path, ["train"] * 45 + ["test"] * 5)
    cfg = DataConfig(dataset=str(path), split="column", rwse_steps=0, lap_k=0)
    ds = load_dataset(cfg)
    ds.smiles = None
    a, b, c = make_split(ds, cfg, seed=1), make_split(ds, cfg, seed=1), make_split(ds, cfg, seed=2)
    _check_partition(a, 50)
    assert len(a["valid"]) == 5 and torch.equal(a["valid"], b["valid"]) and not torch.equal(a["valid"], c["valid"])


@pytest.mark.parametrize("values, message", [
    (["train"] * 20, "no test rows"),
    (["test"] * 10 + ["valid"] * 10, "no train rows"),
    (["train"] * 19 + ["holdout"], "row 20: split value 'holdout'"),
])
def test_bad_split_columns_are_one_line_errors(tmp_path, values, message) -> None:
    path = _published_style(tmp_path, values)
    cfg = DataConfig(dataset=str(path), split="auto", rwse_steps=0, lap_k=0)
    with pytest.raises(IgtError, match=message) as error:
        make_split(load_dataset(cfg), cfg)
    assert "\n" not in str(error.value)


def test_the_split_used_is_described_for_the_run_record(tmp_path) -> None:
    """`metrics.json` says which split a run used (`describe_split`)."""
    from igt.data.splits import describe_split

    path = _published_style(tmp_path, ["train"] * 90 + ["test"] * 10)
    cfg = DataConfig(dataset=str(path), rwse_steps=0, lap_k=0)
    assert describe_split(load_dataset(cfg), cfg) == (
        "the dataset's own train/test split; validation = 1/9 of its training rows (by scaffold)")
    bbbp = load_dataset(DataConfig(dataset="bbbp", rwse_steps=0, lap_k=0, limit=50))
    assert describe_split(bbbp, DataConfig()) == "scaffold 0.8/0.1/0.1"
    assert describe_split(bbbp, DataConfig(split="random"), seed=3) == "random 0.8/0.1/0.1, seed 3"
