"""`igt reproduce --verify`: a recorded run is re-trained at its commit and compared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from igt.verify import choose_runs, finished_runs, verify_runs

REPO = Path(__file__).resolve().parents[1]


def _fake_run(root: Path, commit: str, test: float = 0.5) -> Path:
    run = root / "runs" / "spmotif-0.5" / "gin" / "seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("data: {dataset: spmotif-0.5}\n")
    (run / "metrics.json").write_text(json.dumps({"dataset": "spmotif-0.5", "test": test}))
    (run / "provenance.json").write_text(json.dumps({"commit": commit}))
    return run


def test_a_run_without_a_clean_commit_is_untraceable(tmp_path):
    run = _fake_run(tmp_path, "abc1234-dirty")
    [result] = verify_runs(finished_runs(tmp_path), log=lambda line: None)
    assert result.status == "untraceable" and not result.ok and result.regenerated is None


def test_choose_runs_is_seeded_and_bounded(tmp_path):
    runs = [tmp_path / f"r{i}" for i in range(10)]
    assert choose_runs(runs, 3, seed=1) == choose_runs(runs, 3, seed=1)
    assert len(choose_runs(runs, 30, seed=0)) == 10


def _clean_checkout() -> bool:
    try:
        return not subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                  capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _clean_checkout(), reason="needs a clean git checkout (CI's clone is one)")
def test_a_run_trained_by_reproduce_regenerates_bit_for_bit(tmp_path):
    """End to end: a tiny grid run, then --verify re-trains it in a fresh process at HEAD."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "groups:\n  - datasets: [spmotif-0.5]\n"
        "    set: {data.limit: 60, train.epochs: 2, backbone.hidden: 8, backbone.layers: 1, data.rwse_steps: 0,"
        " data.lap_k: 0, backbone.use_rwse: false}\n"
        "    models: [gin]\n    seeds: 1\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}  # this checkout's code, whatever is installed
    command = [sys.executable, "-m", "igt.cli", "reproduce", "--suite", str(suite), "--out", str(out), "-q", "--threads", "1"]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path, env=env)
    # ``--out`` relative to the caller's folder, as the README writes it (``--out results``): the
    # re-training process runs elsewhere (the commit's source tree) and must still find the run.
    done = subprocess.run([sys.executable, "-m", "igt.cli", "reproduce", "--verify", "1", "--out", "out"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 of 1 runs regenerate" in done.stdout
    # A tampered metric is named and fails the check.
    metrics = next(out.glob("runs/*/*/seed0/metrics.json"))
    data = json.loads(metrics.read_text())
    data["test"] = data["test"] + 0.01
    metrics.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "igt.cli", "reproduce", "--verify", "1", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 1 and "DIFFERS" in done.stdout and "seed0" in done.stdout
    # So is any other recorded number (an explanation metric, the best epoch), not only the test metric.
    data["test"] = data["test"] - 0.01
    data["best_epoch"] = data["best_epoch"] + 1
    metrics.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "igt.cli", "reproduce", "--verify", "1", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 1 and "other metrics differ: best_epoch" in done.stdout, done.stdout


def test_every_recorded_number_but_timings_is_compared():
    from igt.verify import compared_keys

    metrics = {"test": 0.5, "valid_loss": 1.0, "best_epoch": 3, "pgexplainer_node_auc": 0.4, "train_seconds": 9.0,
               "gnnexplainer_seconds": 1.0, "dataset": "bace", "quick": False, "per_task": [0.1]}
    assert compared_keys(metrics) == ["test", "valid_loss", "best_epoch", "pgexplainer_node_auc"]
