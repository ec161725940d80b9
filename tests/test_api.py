"""igt from Python: the public API (igt.api), the examples that use it (run here, so they cannot
rot), the README's "From Python" snippet, and config files that load in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
EXAMPLES = ROOT / "examples"
START, END = "# --- README snippet ---", "# --- end of README snippet ---"


def _env() -> dict[str, str]:
    """This checkout's code (an absolute path: subprocesses and notebook kernels run elsewhere),
    one thread, and the session's temporary cache."""
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


# ----------------------------------------------------------------------------- the API itself


def test_import_igt_is_light_and_the_api_is_lazy():
    code = ("import sys, igt; heavy = [m for m in ('torch', 'torch_geometric', 'rdkit', 'pandas', 'numpy') "
            "if m in sys.modules]; assert callable(igt.fit) and igt.load_run and igt.Run and igt.load_dataset; "
            "import igt.run; assert callable(igt.fit) and igt.run.model_label; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_train_load_predict_explain_draw(tmp_path):
    import igt
    from igt.errors import IgtError

    dataset = igt.load_dataset("bbbp", limit=300)
    assert len(dataset) == 300 and dataset.smiles is not None
    run = igt.fit("bbbp", model="igt-n", epochs=1, out=tmp_path / "run", data={"limit": 300},
                    backbone={"name": "gin", "hidden": 16}, method__gamma=0.3)
    assert run.config.method.gamma == 0.3 and run.config.backbone.name == "gin" and run.config.train.seed == 0
    assert set(run.metrics) >= {"valid", "test", "best_epoch"} and (tmp_path / "run" / "checkpoint.pt").is_file()
    again = igt.load_run(tmp_path / "run")
    assert again.config == run.config and again.metrics == run.metrics and len(again.history) == 1

    table = again.predict(["CCO", "c1ccccc1O", "not a smiles"])
    assert list(table.columns) == ["smiles", "p_np", "standardized", "applicability", "error"]
    assert table["p_np"].iloc[:2].between(0, 1).all() and table["error"].iloc[2]

    explanations = again.explain(["CCO", "CC(=O)Oc1ccccc1C(=O)O"])
    assert [e.node_mask.shape[0] for e in explanations] == [3, 13] and explanations[1].smiles == "CC(=O)Oc1ccccc1C(=O)O"
    atoms = again.explain_frame(["CCO", "c1ccccc1O"])
    assert list(atoms.columns) == ["molecule", "smiles", "atom_index", "element", "score"]
    assert len(atoms) == 3 + 7 and atoms["score"].between(0, 1).all()
    assert atoms[atoms.molecule == 0]["score"].tolist() == pytest.approx(explanations[0].node_mask.view(-1).tolist(), abs=1e-6)

    mol = again.molecule("CCO")
    assert [a.GetDoubleProp("rationale_score") for a in mol.GetAtoms()] == pytest.approx(atoms["score"][:3].tolist(), abs=1e-6)
    # A dataset position names its SMILES, read like any new molecule (standardised first).
    assert again.molecule(5).GetNumAtoms() == again.molecule(dataset.smiles[5]).GetNumAtoms()
    assert again.draw("CCO", size=(200, 150)).size == (200, 150)
    with pytest.raises(IgtError, match="not a smiles"):
        again.explain(["CCO", "not a smiles"])


def test_bad_options_fail_before_anything_is_written(tmp_path):
    import igt
    from igt.errors import IgtError

    with pytest.raises(IgtError, match="train.epochs=0: expected at least 1"):
        igt.fit("bbbp", epochs=0, out=tmp_path / "run")
    with pytest.raises(IgtError, match="unknown option 'gamma'"):
        igt.fit("bbbp", gamma=0.3, out=tmp_path / "run")
    with pytest.raises(IgtError, match="unknown key"):
        igt.fit("bbbp", method={"no_such_option": 1}, out=tmp_path / "run")
    with pytest.raises(IgtError, match="not a run folder"):
        igt.load_run(tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- configs load anywhere


def test_every_committed_run_config_loads_in_a_fresh_interpreter():
    """In one fresh process, nothing imported first: a method's options (``igt-n``'s ``gamma``)
    must be known to the loader whatever was or was not imported before."""
    # Not the hidden .NAME.partial-PID folders of runs a grid is training right now.
    configs = sorted(str(p) for p in (ROOT / "results").glob("runs/**/config.yaml")
                     if not any(part.startswith(".") for part in p.relative_to(ROOT / "results").parts))
    assert configs, "no committed run configs"
    code = ("import sys\nfrom igt.config import RunConfig\nbad = []\n"
            "for path in sys.argv[1:]:\n"
            "    try:\n        RunConfig.load(path)\n"
            "    except Exception as exc:\n        bad.append(f'{path}: {exc}')\n"
            "print('\\n'.join(bad))\nsys.exit(1 if bad else 0)\n")
    done = subprocess.run([sys.executable, "-c", code, *configs], capture_output=True, text=True, env=_env())
    assert done.returncode == 0, f"configs that do not load:\n{done.stdout}{done.stderr}"


# ----------------------------------------------------------------------------- examples and README


def test_the_readme_snippet_is_the_quickstart_script():
    script = (EXAMPLES / "quickstart.py").read_text()
    snippet = script.split(START, 1)[1].split(END, 1)[0].strip()
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## From Python", 1)[1].split("```python", 1)[1].split("```", 1)[0].strip()
    assert block == snippet


def test_quickstart_script_runs(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py")], cwd=tmp_path, capture_output=True,
                          text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "p_np" in done.stdout and "node_mask" in done.stdout
    assert (tmp_path / "runs" / "quickstart" / "aspirin.png").stat().st_size > 1000


def test_quickstart_notebook_runs_and_shows_a_rationale(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[test]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[test]')")
    for key, value in _env().items():  # the kernel inherits this process's environment
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit it without outputs"
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs), "no picture of a rationale"
    assert (tmp_path / "runs" / "quickstart-notebook" / "checkpoint.pt").is_file()


# ----------------------------------------------------------------------------- the API reference site


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, env=_env(), cwd=ROOT)


def test_api_reference_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]'; `make test` does)")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] is not installed (pip install -e '.[docs]')")
    done = _mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "site" / "api" / "index.html").read_text()
    for anchor in ("igt.api.fit", "igt.api.load_run", "igt.api.load_dataset", "igt.api.Run.explain",
                   "igt.config.RunConfig", "igt.config.DataConfig", "igt.methods.base.Method", "igt.methods.base.MethodOutput"):
        assert f'id="{anchor}"' in page, anchor

    # --strict is what catches a broken reference: the same site with one fails.
    import yaml

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\nSee [`nothing`][igt.api.no_such_function].\n\n::: igt.api.load_run\n")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config.update(docs_dir=str(docs), nav=["index.md"])
    config["plugins"][1]["mkdocstrings"]["handlers"]["python"]["paths"] = [str(SRC)]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(config))
    broken = _mkdocs_build(tmp_path / "broken.yml", tmp_path / "broken-site")
    assert broken.returncode != 0 and "no_such_function" in broken.stderr
