"""The command line a new user meets: one-line errors (exit 2) that leave nothing behind, run
folders that appear only when finished, discoverability (--version, -h, models, config), fast
start-up, thread defaults, plain progress in logs, and the layering under the CLI."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from igt.cli import app, main
from igt.config import RunConfig, TrainConfig

runner = CliRunner()
SRC = Path(__file__).resolve().parents[1] / "src"


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run ``igt ARGS`` through :func:`igt.cli.main` (exit status and printed error as a user sees them)."""
    monkeypatch.setattr(sys, "argv", ["igt", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return info.value.code, captured.err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "train.epochs=0: expected at least 1"),
        (["--epochs", "-1"], "train.epochs=-1: expected at least 1"),
        (["--set", "train.lr=-0.1"], "train.lr=-0.1: expected a number above 0"),
        (["--set", "train.batch_size=0"], "train.batch_size=0: expected at least 1"),
        (["--set", "backbone.dropout=1.5"], "backbone.dropout=1.5: expected a number in [0, 1)"),
        (["--model", "igt-n", "--set", "method.gamma=1.5"], "method.gamma=1.5: expected a number in (0, 1]"),
        (["--model", "gsat", "--set", "method.init_r=0"], "method.init_r=0.0: expected a number in (0, 1]"),
        (["--set", "train.device=gpu"], "train.device='gpu': expected cpu, cuda, cuda:N or auto"),
        (["--threads", "-2"], "train.threads=-2: expected at least 0"),
        (["--out", "afile/run"], "afile/run: cannot create the run folder"),
        (["--out", "/proc/igt-run"], "/proc/igt-run: cannot write the run there"),
    ],
)
def test_bad_train_values_are_one_line_exit_2_and_leave_nothing(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    code, err = _main(monkeypatch, capsys, "train", "no-such-dataset", *args)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_cuda_without_a_gpu_and_too_small_datasets_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if not torch.cuda.is_available():
        code, err = _main(monkeypatch, capsys, "train", "bace", "--set", "train.device=cuda")
        assert code == 2 and "train.device=cuda: CUDA is not available" in err and err.count("\n") == 1
    code, err = _main(monkeypatch, capsys, "train", "bace", "--set", "data.limit=5", "--epochs", "1", "-q")
    assert code == 2 and err.count("\n") == 1
    assert "bace (data.limit=5): too small to split: 5 graphs gave train 4, valid 0, test 1" in err
    assert list(tmp_path.iterdir()) == []  # no runs/ folder, no run folder


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", "RUN", "--smiles", "C", "--output", "afile/out.csv"], "afile/out.csv: cannot create the --output folder"),
        (["predict", "RUN", "--smiles", "C", "--output", "/proc/out.csv"], "/proc/out.csv: cannot write the --output there"),
        (["explain", "RUN", "--smiles", "C", "--out", "afile/report"], "afile/report: cannot create the report folder"),
        (["explain", "RUN", "--smiles", "C", "--out", "/proc/report"], "/proc/report: cannot write the report there"),
        (["reproduce", "--out", "afile/results"], "afile/results: cannot create the results folder"),
        (["evaluate", "no-such-run"], "no-such-run: checkpoint not found"),
    ],
)
def test_unwritable_outputs_are_one_line_naming_the_path(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    code, err = _main(monkeypatch, capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# ----------------------------------------------------------------------------- run folders


TINY = ["data.dataset=bace", "data.limit=150", "data.split=random", "data.rwse_steps=2", "data.lap_k=0",
        "backbone.name=gin", "backbone.hidden=8", "backbone.layers=1", "train.epochs=1", "train.batch_size=32",
        "explain.fidelity=false"]


def test_a_failed_run_leaves_nothing_and_overwrite_replaces_only_a_finished_run(tmp_path, monkeypatch):
    from igt import run as run_module

    run = RunConfig().with_overrides(TINY)
    out = tmp_path / "runs" / "a"
    run_module.train_run(run, out, progress=False)
    (out / "notes.txt").write_text("mine")
    old_checkpoint = (out / "checkpoint.pt").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_module.train_run(run.with_overrides(["train.seed=1"]), out, overwrite=True, progress=False)
    # the old run is whole: its config, its checkpoint, the user's file; no partial folder
    assert RunConfig.load(out / "config.yaml").train.seed == 0
    assert (out / "checkpoint.pt").read_bytes() == old_checkpoint
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["a"]
    with pytest.raises(KeyboardInterrupt):
        run_module.train_run(run, tmp_path / "new" / "deeper" / "b", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # created parents removed too
    monkeypatch.undo()

    run_module.train_run(run.with_overrides(["train.seed=1"]), out, overwrite=True, progress=False)
    assert RunConfig.load(out / "config.yaml").train.seed == 1
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite replaces the run's own files
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["a"]


def test_stale_partials_are_ignored_by_default_names_and_removed_by_the_next_run(tmp_path):
    from igt.run import default_run_dir, staged_run_dir

    run = RunConfig().with_overrides(TINY)
    first = default_run_dir(tmp_path, run)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".{first.name}.partial-{dead.stdout.strip()}"
    stale.mkdir()
    (stale / "config.yaml").write_text("half")
    assert default_run_dir(tmp_path, run) == first  # no -2 for a killed run
    with staged_run_dir(first) as stage:
        (stage / "config.yaml").write_text("new")
    assert not stale.exists() and (first / "config.yaml").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]


# ----------------------------------------------------------------------------- discoverable and quick


def test_version_help_models_and_config():
    import igt

    assert runner.invoke(app, ["--version"]).output.strip() == f"igt {igt.__version__}"
    for args in (["-h"], ["train", "-h"], ["reproduce", "-h"], ["models", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output, args
    assert "igt-vn" in runner.invoke(app, ["train", "--help"]).output
    listing = runner.invoke(app, ["models"]).output
    from igt.methods import METHODS
    from igt.nn.backbones import BACKBONES

    for name in BACKBONES.names() + [m for m in METHODS.names() if m != "erm"]:
        assert f"  {name} " in listing, name
    assert "gamma=0.4" in listing and "causal_ratio=0.8" in listing and "hidden=64" in listing


def test_model_names_match_the_registries():
    from igt.methods import METHODS
    from igt.models import BACKBONE_MODELS, FINGERPRINT_MODELS, METHOD_MODELS
    from igt.nn.backbones import BACKBONES

    assert sorted(BACKBONE_MODELS) == BACKBONES.names()
    assert sorted([*METHOD_MODELS, *FINGERPRINT_MODELS]) == [m for m in METHODS.names() if m != "erm"]


def test_printed_config_is_accepted_by_train_config(tmp_path):
    result = runner.invoke(app, ["config", "--model", "gsat", "--set", "method.final_r=0.5"])
    assert result.exit_code == 0
    (tmp_path / "c.yaml").write_text(result.output)
    loaded = RunConfig.load(tmp_path / "c.yaml")
    assert loaded.method.name == "gsat" and loaded.method.final_r == 0.5 and loaded.train == TrainConfig()


def test_cli_import_is_light_and_version_is_quick():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    code = ("import sys, igt.cli; heavy = [m for m in ('torch', 'torch_geometric', 'rdkit', 'pandas', 'matplotlib', "
            "'numpy') if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]"


def test_nothing_but_the_cli_imports_the_cli():
    offenders = []
    for path in (SRC / "igt").rglob("*.py"):
        if path.name in ("cli.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
                     if isinstance(node, ast.ImportFrom) else [])
            if any(n == "igt.cli" or n.startswith("igt.cli.") for n in names):
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


def test_reproduce_defaults_to_a_folder_under_runs():
    from igt.cli import reproduce

    import inspect

    assert inspect.signature(reproduce).parameters["out"].default.default == Path("runs/reproduce")


# ----------------------------------------------------------------------------- threads, logs


def test_one_thread_by_default_and_zero_still_means_torchs_default():
    from igt.train.trainer import configure_threads

    assert TrainConfig().threads == 1
    assert RunConfig.from_dict({"train": {"threads": 0}}).train.threads == 0  # old configs load as written
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        configure_threads(0)
        assert torch.get_num_threads() == 3  # 0 leaves torch alone
        configure_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    from igt.cli import build_run_config

    run = build_run_config("bace", None, None, None, None, None, None, None, None, [], None, 2)
    assert run.train.threads == 2


def test_progress_in_a_log_is_one_plain_line_per_epoch(tmp_path, capsys):
    from igt.run import train_run

    train_run(RunConfig().with_overrides([*TINY, "train.epochs=2"]), tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    assert [line.split(":")[0] for line in err.splitlines() if line.startswith("epoch")] == ["epoch 1/2", "epoch 2/2"]


def test_rdkit_messages_become_one_line_igt_warnings(capfd):
    from rdkit import Chem

    from igt.runtime import route_rdkit_logs

    route_rdkit_logs()
    route_rdkit_logs()  # idempotent: one handler
    assert Chem.MolFromSmiles("C1CC") is None
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(line.startswith("warning: rdkit: ") for line in lines), err
