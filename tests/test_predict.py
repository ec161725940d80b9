"""`igt predict` and :mod:`igt.predict`: new molecules through a saved run, and checkpoint safety."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from igt.config import RunConfig
from igt.data.task import TaskSpec
from igt.predict import load_trained, output_columns, predict_smiles

torch.set_num_threads(1)

MOLECULES = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1", "O=C(O)CCl"]
@pytest.fixture(scope="module")
def tiny_run(make_tiny_run, tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("run") / "bbbp-igt-n")


def test_predict_smiles_probabilities_and_failures(tiny_run):
    model = load_trained(tiny_run)
    smiles = MOLECULES[:2] + ["C1CC", ""] + MOLECULES[2:]
    result = predict_smiles(model, smiles, progress=False)
    assert result.columns == ["p_np"]
    assert result.values.shape == (7, 1)
    ok = [i for i, e in enumerate(result.errors) if not e]
    assert ok == [0, 1, 4, 5, 6] and result.failed == 2
    assert np.isnan(result.values[[2, 3]]).all()
    assert ((result.values[ok] > 0) & (result.values[ok] < 1)).all()
    assert "empty" in result.errors[3] and result.errors[2]
    # per-atom scores line up with the atoms of each molecule
    assert len(result.node_scores[0]) == 3 and result.node_scores[2] is None


def test_prediction_does_not_depend_on_batching_or_neighbours(tiny_run):
    model = load_trained(tiny_run)
    together = predict_smiles(model, MOLECULES, progress=False, batch_size=2)
    alone = [predict_smiles(model, [s], progress=False).values[0] for s in MOLECULES]
    np.testing.assert_allclose(together.values, np.stack(alone), rtol=1e-5, atol=1e-6)


def test_predict_matches_the_training_data_pipeline(tiny_run):
    """New SMILES get exactly the features and encodings the run's data had."""
    from torch_geometric.loader import DataLoader

    from igt.data import load_dataset
    from igt.train.trainer import predict

    model = load_trained(tiny_run)
    dataset = load_dataset(model.run.with_overrides(["data.limit=16"]).data)
    expected = predict(model.method, DataLoader(dataset, batch_size=8)).y_out
    got = predict_smiles(model, dataset.smiles, progress=False)
    assert not got.failed
    # New molecules are standardised (data.standardize_inputs), training data are not by default:
    # BBBP's salts (row 0: "[Cl].CC(C)NCC(O)...") are predicted as their parent; all else matches.
    same = [i for i, note in enumerate(got.standardized) if not note]
    assert 0 < len(same) < len(got.values) and got.standardized[0].startswith("CC(C)NCC(O)")
    np.testing.assert_allclose(got.values[same], expected[same], rtol=1e-5, atol=1e-6)
    model.run.data.standardize_inputs = False
    raw = predict_smiles(model, dataset.smiles, progress=False)
    np.testing.assert_allclose(raw.values, expected, rtol=1e-5, atol=1e-6)


def test_output_columns_follow_the_task():
    assert output_columns(TaskSpec("binary", num_tasks=2, task_names=("a", "b"))) == ["a", "b"]
    assert output_columns(TaskSpec("regression", task_names=("logS",), metric="rmse")) == ["logS"]
    assert output_columns(TaskSpec("multiclass", num_classes=3, task_names=("motif",))) == ["motif_0", "motif_1", "motif_2"]
    assert output_columns(TaskSpec("binary", num_tasks=2)) == ["task_0", "task_1"]


def test_regression_run_predicts_values(make_tiny_run, tmp_path):
    run = make_tiny_run(tmp_path / "esol", task=TaskSpec("regression", metric="rmse", task_names=("logS",)), dataset="esol")
    result = predict_smiles(load_trained(run), MOLECULES, progress=False)
    assert result.columns == ["logS"] and np.isfinite(result.values).all()


# ----------------------------------------------------------------------------- the command


def test_cli_smiles_several_values_prints_a_table(run_cli, tiny_run, capsys):
    code, out, _ = run_cli(["predict", tiny_run, "--smiles", "CCO", "c1ccccc1O", "-q"], capsys)
    assert code == 0
    assert "p_np" in out and "c1ccccc1O" in out


def test_cli_input_csv_keeps_rows_and_columns_and_reports_bad_rows(run_cli, tiny_run, tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text("name,SMILES,note\nethanol,CCO,x\nbroken,C1CC,\naspirin,CC(=O)Oc1ccccc1C(=O)O,007\n")
    target = tmp_path / "out.csv"
    code, out, err = run_cli(["predict", tiny_run, "--input", source, "--smiles-column", "SMILES", "--output", target, "-q"], capsys)
    assert code == 1, err
    assert "1 of 3 molecules could not be predicted" in err
    table = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert list(table.columns) == ["name", "SMILES", "note", "p_np", "standardized", "applicability", "error"]
    assert table["name"].tolist() == ["ethanol", "broken", "aspirin"]
    assert table["note"].tolist() == ["x", "", "007"]  # values come back exactly as written
    assert table["error"][0] == "" and table["error"][1] != "" and table["p_np"][1] == ""
    assert 0 < float(table["p_np"][2]) < 1

    # an existing --output is never replaced without --overwrite
    code, _, err = run_cli(["predict", tiny_run, "--input", source, "--output", target, "-q"], capsys)
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    code, _, _ = run_cli(["predict", tiny_run, "--smiles", "CCO", "--output", target, "--overwrite", "-q"], capsys)
    assert code == 0 and pd.read_csv(target).shape == (1, 5)


def test_cli_labelled_input_gets_a_suffixed_prediction_column(run_cli, tiny_run, tmp_path, capsys):
    source = tmp_path / "labelled.csv"
    source.write_text("smiles,p_np\nCCO,1\n")
    target = tmp_path / "out.csv"
    code, _, _ = run_cli(["predict", tiny_run, "--input", source, "--output", target, "-q"], capsys)
    assert code == 0
    assert list(pd.read_csv(target).columns) == ["smiles", "p_np", "p_np_predicted", "standardized", "applicability", "error"]


@pytest.mark.parametrize("args, message", [
    (["--input", "{csv}", "--smiles-column", "nope"], "no column 'nope'"),
    (["--input", "{missing}"], "file not found"),
    ([], "exactly one"),
    (["--smiles", "CCO", "--input", "{csv}"], "exactly one"),
])
def test_cli_user_errors_are_one_line_and_exit_2(run_cli, tiny_run, tmp_path, capsys, args, message):
    source = tmp_path / "in.csv"
    source.write_text("smiles\nCCO\n")
    args = [a.format(csv=source, missing=tmp_path / "missing.csv") for a in args]
    code, _, err = run_cli(["predict", tiny_run, *args, "-q"], capsys)
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- checkpoint safety


def _broken_checkpoints(tiny_run: Path, folder: Path) -> dict[str, Path]:
    payload = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    foreign = folder / "foreign.pt"
    torch.save({"state_dict": payload["state_dict"]}, foreign)
    newer = folder / "newer.pt"
    torch.save({**payload, "version": 99}, newer)
    truncated = folder / "truncated.pt"
    data = (tiny_run / "checkpoint.pt").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = folder / "notes.pt"
    text.write_text("not a checkpoint at all\n")
    return {"not an igt checkpoint": foreign, "version 99 is not supported": newer,
            "truncated or foreign": truncated, "not a readable igt checkpoint": text}


@pytest.mark.parametrize("command", ["predict", "explain"])
def test_bad_checkpoints_get_one_line_naming_the_file(run_cli, tiny_run, tmp_path, capsys, command):
    for expected, path in _broken_checkpoints(tiny_run, tmp_path).items():
        args = [command, path, "--smiles", "CCO", "-q"] + (["--out", tmp_path / "report"] if command == "explain" else [])
        code, out, err = run_cli(args, capsys)
        assert code == 2, (expected, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], lines
        assert "Traceback" not in err
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())


def test_truncated_checkpoint_through_the_installed_command(tiny_run, tmp_path):
    """The real console script: exit status 2, one line, no traceback."""
    truncated = _broken_checkpoints(tiny_run, tmp_path)["truncated or foreign"]
    igt = Path(sys.executable).with_name("igt")
    command = [str(igt)] if igt.exists() else [sys.executable, "-m", "igt.cli"]
    proc = subprocess.run([*command, "predict", str(truncated), "--smiles", "CCO"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and str(truncated) in proc.stderr


def test_model_with_random_node_features_predicts_new_molecules(make_tiny_run, tmp_path):
    run = make_tiny_run(tmp_path / "noise", method="gin", extra=("data.random_node_features=3",))
    first = predict_smiles(load_trained(run), MOLECULES, progress=False)
    second = predict_smiles(load_trained(run), MOLECULES, progress=False)
    assert np.isfinite(first.values).all()
    np.testing.assert_array_equal(first.values, second.values)  # the noise is seeded


# ----------------------------------------------------------------------------- standardisation, applicability


@pytest.fixture(scope="module")
def domain_run(make_tiny_run, tmp_path_factory) -> Path:
    """A tiny run whose task carries BBBP's training-split statistics, as `igt train` saves them."""
    from igt.data import load_dataset
    from igt.data.splits import make_split
    from igt.run import training_task

    run = RunConfig().with_overrides(["data.dataset=bbbp", "data.rwse_steps=4", "data.lap_k=2", "method.name=erm"])
    dataset = load_dataset(run.data)
    task = training_task(dataset, make_split(dataset, run.data), run)
    assert task.has_training_domain and task == TaskSpec("binary", task_names=("p_np",))
    assert not dataset.task.has_training_domain  # splitting leaves the dataset alone
    return make_tiny_run(tmp_path_factory.mktemp("run") / "bbbp-gps", method="gps", task=task)


def test_salts_metals_and_wildcards_are_standardised_or_flagged(domain_run):
    model = load_trained(domain_run)
    assert model.task.has_training_domain and 6 - 1 in model.task.train_elements  # kept by the checkpoint
    smiles = ["CCO", "[Gd+3]", "[Na+].[Cl-]", "CC(=O)[O-].[Na+]", "*C(=O)O", "C" * 150]
    result = predict_smiles(model, smiles, progress=False)
    flags = dict(zip(smiles, result.applicability))
    assert flags["CCO"] == "" and result.standardized[0] == ""
    assert "element not in training data: Gd" in flags["[Gd+3]"] and "no carbon" in flags["[Gd+3]"]
    assert "no carbon" in flags["[Na+].[Cl-]"]
    assert result.standardized[3] == "CC(=O)O (removed [Na+]; neutralised)" and flags["CC(=O)[O-].[Na+]"] == ""
    assert "element not in training data: *" in flags["*C(=O)O"]
    assert "150 atoms, training max" in flags["C" * 150]
    assert not result.failed  # flagged, still predicted


def test_unseen_atom_types_are_named():
    from igt.data.featurize import smiles_to_graph
    from igt.data.standardize import applicability, with_training_domain

    graph = smiles_to_graph("CCO")
    task = with_training_domain(TaskSpec("binary"), graph["x"], torch.tensor([0, 3]), torch.tensor([0]))
    assert applicability(task, smiles_to_graph("OCC")["x"]) == ""
    assert "atom type not in training data: O- deg 1 H 0" in applicability(task, smiles_to_graph("CC[O-]")["x"])


def test_old_checkpoint_without_statistics_skips_the_check_with_a_note(tiny_run, caplog):
    result = predict_smiles(load_trained(tiny_run), ["CCO", "[Gd+3]"], progress=False)
    assert all(flag.startswith("not checked") for flag in result.applicability)
    assert "no training statistics" in caplog.text


def test_standardisation_is_a_recorded_option(make_tiny_run, tmp_path):
    run = make_tiny_run(tmp_path / "raw", extra=("data.standardize_inputs=false",))
    model = load_trained(run)
    assert model.run.data.standardize_inputs is False and RunConfig().data.standardize_inputs is True
    result = predict_smiles(model, ["CC(=O)[O-].[Na+]"], progress=False)
    assert result.standardized == [""] and len(result.node_scores[0]) == 5  # the salt as given


def test_too_big_molecules_are_reported_per_row(run_cli, tiny_run, tmp_path, capsys):
    huge = "C" * 30_000
    result = predict_smiles(load_trained(tiny_run), ["CCO", huge, "C" * 1500], progress=False)
    assert result.errors[0] == "" and "30000 characters, above data.max_smiles_length=20000" in result.errors[1]
    assert "1500 heavy atoms, above data.max_atoms=1000" in result.errors[2]
    code, _, err = run_cli(["predict", tiny_run, "--smiles", "CCO", huge, "-q", "--output", tmp_path / "o.csv"], capsys)
    assert code == 1 and "1 of 2 molecules could not be predicted" in err


def test_predict_reads_tsv_and_semicolon_files(run_cli, tiny_run, tmp_path, capsys):
    for name, text in (("in.tsv", "name\tsmiles\nethanol\tCCO\n"), ("in.csv", "name;smiles\n2,4-x;CCO\n")):
        source, target = tmp_path / name, tmp_path / f"{name}.out.csv"
        source.write_text(text)
        code, _, err = run_cli(["predict", tiny_run, "--input", source, "--output", target, "-q"], capsys)
        assert code == 0, err
        assert pd.read_csv(target)["name"].tolist() == [text.splitlines()[1].split(text[4])[0]]
