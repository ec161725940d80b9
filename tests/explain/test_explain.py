"""`igt explain`, the HTML report, pictures, PyG Explanations and training curves."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from igt.config import RunConfig
from igt.data.spmotif import generate_spmotif
from igt.data.task import TaskSpec
from igt.explain import GraphExplanation, explain_dataset, write_report
from igt.explain.draw import draw_molecule, score_color
from igt.explain.pyg import explain_batch
from igt.methods import build_method
from igt.predict import load_trained
from igt.train.metrics import explanation_auc

torch.set_num_threads(1)

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def tiny_run(make_tiny_run, tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("run") / "bbbp-igt-n")


@pytest.fixture(scope="module")
def spmotif_small():
    return generate_spmotif(0.5, seed=0, sizes=(6, 3, 3))


def test_explain_input_csv_writes_csv_json_pictures_and_escaped_html(run_cli, tiny_run, tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text(f'name,smiles,p_np\n{XSS},CCO,1\nphenol,c1ccccc1O,0\nbad,"{XSS}",1\n')
    out = tmp_path / "report"
    code, stdout, err = run_cli(["explain", tiny_run, "--input", source, "--id-column", "name", "--out", out, "-q"], capsys)
    assert code == 1, err  # one row could not be read
    assert "2 explained, 1 failed" in stdout

    page = (out / "index.html").read_text()
    assert page.count("<script>") == 1  # ours, at the end of the page; none from the data
    assert "alert(1)</script>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # id (twice: heading, alt) and the bad SMILES
    assert page.count('<article class="card') == 3

    with open(out / "rationale.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["molecule_id", "smiles", "atom_index", "element", "score"]
    assert [r["element"] for r in rows if r["molecule_id"] == XSS] == ["C", "C", "O"]
    assert len(rows) == 3 + 7  # ethanol and phenol; nothing for the unreadable row
    assert all(0 <= float(r["score"]) <= 1 for r in rows)

    report = json.loads((out / "rationale.json").read_text())
    first, _, bad = report["molecules"]
    assert first["id"] == XSS and first["label"] == [1.0]
    assert first["error"] == pytest.approx(1 - first["prediction"]["p_np"])
    scores = np.array([a["score"] for a in first["atoms"]])
    assert first["rationale_size"] == pytest.approx(float(np.mean(scores > 0.5)))
    assert bad["failure"] and bad["images"] is None
    for name in ("png", "svg"):
        assert (out / first["images"][name]).stat().st_size > 500
    assert (out / first["images"]["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_out_is_never_overwritten_without_flag(run_cli, tiny_run, tmp_path, capsys):
    out = tmp_path / "report"
    assert run_cli(["explain", tiny_run, "--smiles", "CCO", "CCN", "--out", out, "-q"], capsys)[0] == 0
    before = (out / "index.html").read_text()
    code, _, err = run_cli(["explain", tiny_run, "--smiles", "CCCl", "--out", out, "-q"], capsys)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "index.html").read_text() == before
    assert run_cli(["explain", tiny_run, "--smiles", "CCCl", "--out", out, "--overwrite", "-q"], capsys)[0] == 0
    assert not (out / "images" / "mol-1.png").exists()  # the old report's pictures are gone
    assert "CCCl" in (out / "index.html").read_text()


def test_explain_split_has_labels_and_errors(run_cli, tiny_run, tmp_path, capsys):
    out = tmp_path / "report"
    code, _, err = run_cli(["explain", tiny_run, "--split", "test", "--limit", "3", "--out", out, "--no-images", "-q"], capsys)
    assert code == 0, err
    molecules = json.loads((out / "rationale.json").read_text())["molecules"]
    assert len(molecules) == 3
    assert all(m["label"] is not None and m["error"] is not None and m["smiles"] for m in molecules)
    assert not (out / "images").exists()


def test_erm_is_explained_without_a_rationale(make_tiny_run, run_cli, tmp_path, capsys):
    run = make_tiny_run(tmp_path / "gps", method="erm")
    out = tmp_path / "report"
    assert run_cli(["explain", run, "--smiles", "CCO", "--out", out, "-q"], capsys)[0] == 0
    page = (out / "index.html").read_text()
    assert "gives no rationale" in page and "none (this model gives no node scores)" in page
    with open(out / "rationale.csv") as handle:
        assert {r["score"] for r in csv.DictReader(handle)} == {""}


def test_spmotif_pictures_show_rationale_beside_ground_truth(make_tiny_run, tmp_path, spmotif_small):
    task = TaskSpec("multiclass", num_classes=3, metric="accuracy", task_names=("motif",))
    run_dir = make_tiny_run(tmp_path / "spmotif", task=task, dataset="spmotif-0.5", features=spmotif_small.features,
                            extra=("data.rwse_steps=0", "data.lap_k=0", "backbone.use_rwse=false",
                                   "backbone.use_lap_pe=false"))
    model = load_trained(run_dir)
    part = spmotif_small.subset([0, 1])
    explanations = explain_dataset(model, part, progress=False)
    assert all(e.smiles is None and e.node_gt is not None for e in explanations)
    report = write_report(model, explanations, tmp_path / "report", progress=False)
    page = report.index_html.read_text()
    assert page.count('<article class="card') == 2 and "motif_" in page
    assert "2 graphs" in page and " nodes)" in page and "atoms" not in page  # not molecules: no atoms
    with open(report.rationale_csv) as handle:
        rows = list(csv.DictReader(handle))
    assert "ground_truth" in rows[0] and len(rows) == int(part.num_nodes().sum())
    assert (report.out / "images" / "mol-0.png").stat().st_size > 2000
    # SMILES cannot be fed to a model of non-molecular graphs: a clear error
    from igt.errors import IgtError
    from igt.predict import predict_smiles

    with pytest.raises(IgtError, match="not"):
        predict_smiles(model, ["CCO"], progress=False)


def test_rationale_size_and_error_definitions():
    item = GraphExplanation(id="m", smiles="CCO", columns=["p"], prediction=np.array([0.8]), label=np.array([0.0]),
                            node_scores=np.array([0.9, 0.2, 0.51]), elements=["C", "C", "O"])
    assert item.rationale_size == pytest.approx(2 / 3)
    assert item.error == pytest.approx(0.8)
    multi = GraphExplanation(id="g", smiles=None, columns=["a", "b", "c"], prediction=np.array([0.2, 0.7, 0.1]),
                             label=np.array([1.0]), task_type="multiclass")
    assert multi.error == pytest.approx(0.3) and multi.rationale_size is None


def test_molecule_drawing_shades_by_score():
    png, svg = draw_molecule("c1ccccc1CO", np.linspace(0, 1, 8))
    assert png[:4] == b"\x89PNG" and "<svg" in svg
    hexes = {"#%02X%02X%02X" % tuple(int(round(255 * c)) for c in score_color(s)) for s in (0.0, 1.0)}
    assert any(h in svg.upper() for h in hexes)
    with pytest.raises(ValueError):
        draw_molecule("CCO", np.zeros(5))


# ----------------------------------------------------------------------------- PyG Explanation


@pytest.mark.parametrize("method", ["igt-n", "igt-vn", "gsat", "grea", "dir", "erm"])
def test_pyg_explanation_agrees_with_our_explanation_auc(method, spmotif_small):
    from torch_geometric.explain.metric import groundtruth_metrics

    pytest.importorskip("torchmetrics", reason="PyG's groundtruth_metrics needs torchmetrics")
    torch.manual_seed(0)
    run = RunConfig().with_overrides(
        [f"method.name={method}", "backbone.name=gin", "backbone.hidden=16", "backbone.layers=2",
         "backbone.use_rwse=false", "data.rwse_steps=0", "data.lap_k=0"]
    )
    model = build_method(run, spmotif_small.task, spmotif_small.features)
    batch = next(iter(DataLoader(spmotif_small, batch_size=len(spmotif_small))))
    explanation = explain_batch(model, batch)
    if method == "erm":
        assert "node_mask" not in explanation and "edge_mask" not in explanation
        return
    assert explanation.node_mask.shape == (batch.num_nodes, 1)
    assert explanation.edge_mask.shape == (batch.num_edges,)
    ours = explanation_auc(explanation.node_mask.view(-1).numpy(), batch.node_gt.numpy())
    theirs = groundtruth_metrics(explanation.node_mask, batch.node_gt, metrics="auroc")
    assert theirs == pytest.approx(ours, abs=1e-5)
    ours_edge = explanation_auc(explanation.edge_mask.numpy(), batch.edge_gt.numpy())
    assert groundtruth_metrics(explanation.edge_mask, batch.edge_gt, metrics="auroc") == pytest.approx(ours_edge, abs=1e-5)


# ----------------------------------------------------------------------------- curves.png


def test_curves_png_from_history(tmp_path):
    from igt.plots import plot_curves

    history = tmp_path / "history.csv"
    history.write_text(
        "epoch,loss/rat,loss/int,adversary/int,valid/metric,test/metric\n"
        "1,0.7,0.69,0.68,0.61,0.60\n2,0.6,0.65,,0.70,0.66\n3,0.5,0.6,0.6,0.74,0.71\n"
    )
    png = plot_curves(history, tmp_path / "curves.png", metric="rocauc")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_html_has_no_unescaped_user_strings_in_attributes(run_cli, tiny_run, tmp_path, capsys):
    quote = 'x" onerror="alert(1)'
    out = tmp_path / "report"
    source = tmp_path / "in.csv"
    source.write_text(f'id,smiles\n"{quote.replace(chr(34), chr(34) * 2)}",CCO\n')
    assert run_cli(["explain", tiny_run, "--input", source, "--id-column", "id", "--out", out, "-q"], capsys)[0] == 0
    page = (out / "index.html").read_text()
    assert 'onerror="' not in page and "x&quot; onerror=&quot;alert(1)" in page
    assert re.search(r'alt="rationale of x&quot; onerror', page)


def test_report_is_self_contained_with_inline_pictures(run_cli, tiny_run, tmp_path, capsys):
    """Regression: the report was called self-contained but linked its pictures from images/."""
    import base64
    import re
    import shutil

    out = tmp_path / "report"
    code, _, err = run_cli(["explain", tiny_run, "--split", "test", "--limit", "2", "--out", out, "-q"], capsys)
    assert code == 0, err
    moved = tmp_path / "elsewhere.html"
    shutil.copy(out / "index.html", moved)
    shutil.rmtree(out)  # the page alone must still show every picture
    page = moved.read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert base64.b64decode(sources[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "images/ folder" not in page
