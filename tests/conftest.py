"""Session-wide test settings: never touch the user's cache; one torch thread (tiny models run
fastest single-threaded, and results do not depend on the machine's core count); featurisation
in this process (the tests that check worker processes ask for them)."""

import os
import sys
from pathlib import Path

import pytest
import torch

from igt.config import RunConfig
from igt.data.featurize import ATOM_VOCAB, BOND_VOCAB
from igt.data.task import FeatureSpec, TaskSpec
from igt.methods import build_method
from igt.train.checkpoint import save_checkpoint

try:
    from hypothesis import settings
except ImportError:  # hypothesis is a test extra; the tests that use it import it themselves
    settings = None

if settings is not None:
    # CI runs the same examples every time (a red build is reproducible, never a fluke);
    # HYPOTHESIS_PROFILE=ci does the same locally. Same example counts: no slower.
    settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    settings.register_profile("dev")
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    previous = os.environ.get("IGT_CACHE_DIR")
    previous_workers = os.environ.get("IGT_FEATURIZE_WORKERS")
    os.environ["IGT_CACHE_DIR"] = str(tmp_path_factory.mktemp("igt-cache"))
    os.environ["IGT_FEATURIZE_WORKERS"] = "1"
    torch.set_num_threads(1)
    yield
    if previous_workers is None:
        os.environ.pop("IGT_FEATURIZE_WORKERS", None)
    else:
        os.environ["IGT_FEATURIZE_WORKERS"] = previous_workers
    if previous is None:
        os.environ.pop("IGT_CACHE_DIR", None)
    else:
        os.environ["IGT_CACHE_DIR"] = previous


# ----------------------------------------------------------------------------- shared builders
# Fixtures that hand out builder functions, so no test module imports another.

TINY = ["backbone.hidden=16", "backbone.layers=1", "backbone.heads=2", "data.rwse_steps=4", "data.lap_k=2",
        "backbone.use_rwse=true", "backbone.use_lap_pe=true", "train.threads=1"]


def _make_tiny_run(folder: Path, method: str = "igt-n", task: TaskSpec | None = None, dataset: str = "bbbp",
                  features: FeatureSpec | None = None, extra: tuple[str, ...] = (), seed: int = 0) -> Path:
    """An untrained but complete run folder (config.yaml + checkpoint.pt): enough for inference
    (``seed``: of the random weights, e.g. for ensembles)."""
    torch.manual_seed(seed)
    overrides = [f"data.dataset={dataset}", *TINY, *extra]
    if method in ("erm", "gps", "gin"):
        overrides.append("method.name=erm")
    else:
        overrides += [f"method.name={method}"] + (["method.intervener_heads=2"] if method.startswith("igt") else [])
    run = RunConfig().with_overrides(overrides)
    task = task or TaskSpec("binary", task_names=("p_np",))
    features = features or FeatureSpec(ATOM_VOCAB, BOND_VOCAB)
    model = build_method(run, task, features)
    folder.mkdir(parents=True, exist_ok=True)
    run.save(folder / "config.yaml")
    save_checkpoint(folder / "checkpoint.pt", model, run, task, features)
    return folder


def _run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``igt ARGS`` in this process through the real entry point; (exit code, stdout, stderr)."""
    from igt import cli

    old = sys.argv
    sys.argv = ["igt", *map(str, args)]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="session")
def make_tiny_run():
    """``make_tiny_run(folder, method="igt-n", ...)``: an untrained but complete run folder."""
    return _make_tiny_run


@pytest.fixture(scope="session")
def run_cli():
    """``run_cli(args, capsys)``: ``igt ARGS`` through the real entry point in this process."""
    return _run_cli
