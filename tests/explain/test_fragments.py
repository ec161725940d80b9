"""Rationales as substructures (fragments.csv, fragment_summary.csv) and ensembles of runs
(`igt predict RUN RUN`, `igt explain RUN RUN`, results folders with --model)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from igt.data.task import TaskSpec
from igt.explain import GraphExplanation
from igt.explain.fragments import AROMATIC_NOTE, fragment_summary, rationale_fragment
from igt.predict import load_trained, predict_smiles

torch.set_num_threads(1)

XSS = "<script>alert(1)</script>"
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


@pytest.fixture(scope="module")
def runs(make_tiny_run, tmp_path_factory):
    """Two tiny igt-n runs on bbbp with different weights (an ensemble of two seeds)."""
    base = tmp_path_factory.mktemp("ensemble")
    return [make_tiny_run(base / f"seed{k}", seed=k) for k in range(2)]


def test_rationale_fragment_smiles_smarts_and_largest_piece():
    # aspirin: the acetyl group (atoms 0-2) and the carboxylic acid (10-12)
    scores = [0.9, 0.9, 0.9] + [0.1] * 7 + [0.9, 0.9, 0.9]
    fragment = rationale_fragment(ASPIRIN, scores)
    assert fragment.atoms == [0, 1, 2, 10, 11, 12]
    assert fragment.fragment_smiles == "CC=O.O=CO" and fragment.note == ""
    assert fragment.largest_fragment == "CC=O" and fragment.largest_atoms == [0, 1, 2]  # tie: smaller string
    assert fragment.fragment_smarts.count(".") == 1 and "[#8]" in fragment.fragment_smarts
    # a whole aromatic ring parses; a ring carbon with its chlorine is an aromatic pattern, said so
    assert rationale_fragment("c1ccccc1Cl", [0.9] * 6 + [0.1]).largest_fragment == "c1ccccc1"
    partial = rationale_fragment("Clc1ccc(N)cc1", [0.9, 0.9] + [0.0] * 6)
    assert partial.largest_fragment == "cCl" and partial.note == AROMATIC_NOTE
    # the same piece from another molecule gets the same string
    assert rationale_fragment("c1ccccc1Cl", [0.0] * 5 + [0.9, 0.9]).largest_fragment == "cCl"
    # top-ratio instead of the threshold; nothing kept; no rationale
    assert rationale_fragment("CCO", [0.1, 0.2, 0.3], top_ratio=0.5).fragment_smiles == "CO"
    assert rationale_fragment("CCO", [0.1, 0.2, 0.3]).fragment_smiles == ""
    assert "no rationale" in rationale_fragment("CCO", None).note


def _explanation(k: int, smiles: str, p: float, task: str = "binary") -> GraphExplanation:
    return GraphExplanation(id=str(k), smiles=smiles, columns=["y"], prediction=np.array([p]), task_type=task)


def test_fragment_summary_ranks_and_splits_by_prediction():
    items = [_explanation(0, "CCO", 0.9), _explanation(1, "CCCO", 0.2), _explanation(2, "CCN", 0.7),
             _explanation(3, "c1ccccc1O", 0.5)]
    fragments = [rationale_fragment(i.smiles, s) for i, s in
                 zip(items, [[0, 0.9, 0.9], [0, 0, 0.9, 0.9], [0.9, 0.9, 0], [0.0] * 6 + [0.9]])]
    rows, rule = fragment_summary(items, fragments, "binary")
    assert "0.5" in rule
    assert [(r["fragment"], r["molecules"], r["predicted_positive"], r["predicted_negative"]) for r in rows] == [
        ("CO", 2, 1, 1), ("CC", 1, 1, 0), ("O", 1, 1, 0)]  # p = 0.5 counts as positive
    assert rows[0]["mean_prediction"] == pytest.approx(0.55) and rows[0]["example_ids"] == "0 1"
    # regression: above / at-or-below the median prediction
    items = [_explanation(k, "CCO", v, "regression") for k, v in enumerate([1.0, 2.0, 3.0])]
    rows, rule = fragment_summary(items, [rationale_fragment("CCO", [0, 0.9, 0.9])] * 3, "regression")
    assert "median" in rule and (rows[0]["predicted_positive"], rows[0]["predicted_negative"]) == (1, 2)


def test_explain_writes_fragments_summary_json_and_an_escaped_fragment_tab(run_cli, runs, tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text(f"name,smiles\n{XSS},{ASPIRIN}\nphenol,c1ccccc1O\nbad,C1CC\n")
    out = tmp_path / "report"
    code, stdout, err = run_cli(["explain", runs[0], "--input", source, "--id-column", "name", "--top-ratio", "0.5",
                                 "--out", out, "-q"], capsys)
    assert code == 1, err  # the bad row
    assert "most frequent rationale fragments" in stdout
    with open(out / "fragments.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["molecule_id"] for r in rows] == [XSS, "phenol"]
    assert len(rows[0]["atoms"].split()) == 7 and rows[0]["fragment_smiles"] and rows[0]["largest_fragment"]
    summary = pd.read_csv(out / "fragment_summary.csv")
    assert list(summary.columns[:6]) == ["rank", "fragment", "molecules", "share", "predicted_positive",
                                         "predicted_negative"]
    assert summary["molecules"].sum() == 2
    report = json.loads((out / "rationale.json").read_text())
    assert report["molecules"][0]["fragment"]["largest_fragment"] == rows[0]["largest_fragment"]
    assert report["molecules"][2]["fragment"] is None and len(report["fragment_summary"]) == len(summary)
    page = (out / "index.html").read_text()
    assert 'data-tab="fragments"' in page and '<section id="fragments" hidden>' in page
    assert page.count('<div class="fragment"') == 2 and page.count("<script>") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.split('<section id="fragments"')[1]  # example ids


def test_predict_ensemble_reports_mean_and_std(run_cli, runs, tmp_path, capsys):
    output = tmp_path / "p.csv"
    code, _, err = run_cli(["predict", *runs, "--smiles", "CCO", ASPIRIN, "--output", output, "-q"], capsys)
    assert code == 0, err
    table = pd.read_csv(output)
    assert list(table.columns[:3]) == ["smiles", "p_np", "p_np_std"]
    each = np.stack([predict_smiles(load_trained(r), ["CCO", ASPIRIN], progress=False).values[:, 0] for r in runs])
    assert np.allclose(table["p_np"], each.mean(0), atol=1e-5)
    assert np.allclose(table["p_np_std"], each.std(0, ddof=1), atol=1e-5) and (table["p_np_std"] > 0).all()
    code, stdout, _ = run_cli(["predict", *runs, "--smiles", "CCO", "-q"], capsys)
    assert code == 0 and "p_np_std" in stdout and "+1 runs" in stdout


def test_explain_ensemble_shades_by_mean_and_shows_the_spread(run_cli, runs, tmp_path, capsys):
    out = tmp_path / "report"
    code, _, err = run_cli(["explain", *runs, "--smiles", "CCO", ASPIRIN, "--out", out, "-q"], capsys)
    assert code == 0, err
    atoms = pd.read_csv(out / "rationale.csv")
    assert list(atoms.columns) == ["molecule_id", "smiles", "atom_index", "element", "score", "score_std"]
    assert (atoms["score_std"] > 0).any()
    molecule = json.loads((out / "rationale.json").read_text())["molecules"][1]
    assert molecule["prediction_std"]["p_np"] > 0 and "score_std" in molecule["atoms"][0]
    page = (out / "index.html").read_text()
    assert "±" in page and 'value="spread:desc"' in page and "Ensemble of 2 runs" in page
    assert 'data-spread="0.' in page


def test_ensemble_runs_must_agree_on_the_task(make_tiny_run, run_cli, runs, tmp_path, capsys):
    other = make_tiny_run(tmp_path / "esol", task=TaskSpec("regression", task_names=("logS",)), dataset="esol")
    code, _, err = run_cli(["predict", runs[0], other, "--smiles", "CCO", "-q"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(other) in err and "must agree" in err


def test_results_folder_with_model_label_is_an_ensemble_of_its_seeds(run_cli, runs, tmp_path, capsys):
    results = tmp_path / "results"
    for k, run in enumerate(runs):
        shutil.copytree(run, results / "runs" / "bbbp" / "igt-n_adversarial=false_" / f"seed{k}")
    code, stdout, err = run_cli(["predict", results, "--model", "igt-n[adversarial=false]", "--dataset", "bbbp",
                                 "--smiles", "CCO", "-q"], capsys)
    assert code == 0, err
    assert "p_np_std" in stdout and "+1 runs" in stdout
    code, _, err = run_cli(["predict", results, "--model", "gps", "--dataset", "bbbp", "--smiles", "CCO"], capsys)
    assert code == 2 and "no seed*/ run folders" in err and len(err.strip().splitlines()) == 1
    # committed results folders have no checkpoint.pt: one line naming the folder
    (results / "runs" / "bbbp" / "igt-n_adversarial=false_" / "seed1" / "checkpoint.pt").unlink()
    code, _, err = run_cli(["explain", results, "-m", "igt-n[adversarial=false]", "--dataset", "bbbp",
                            "--smiles", "CCO", "--out", tmp_path / "r"], capsys)
    assert code == 2 and "seed1" in err and "checkpoint not found" in err and len(err.strip().splitlines()) == 1
