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


def _with_machine(run: Path, machine: str) -> Path:
    provenance = json.loads((run / "provenance.json").read_text())
    (run / "provenance.json").write_text(json.dumps({**provenance, "machine": machine}))
    return run


def test_the_draw_keeps_to_runs_of_this_cpu_model(tmp_path):
    """An Intel Xeon run re-trained on an AMD EPYC differed (bbbp/gin/seed0: 0.7304 -> 0.6921, the
    same commit and pinned kernels), so runs of another CPU model are counted, not drawn."""
    from igt.verify import split_by_machine, trained_on

    here = _with_machine(_fake_run(tmp_path / "a", "abc1234"), "CPU AMD EPYC, 2 cores, 1 torch thread")
    there = _with_machine(_fake_run(tmp_path / "b", "abc1234"), "CPU Intel(R) Xeon(R) Processor, 2 cores, 1 torch thread")
    unrecorded = _fake_run(tmp_path / "c", "abc1234")
    assert trained_on(there) == "CPU Intel(R) Xeon(R) Processor" and trained_on(unrecorded) is None
    same, elsewhere = split_by_machine([here, there, unrecorded], here="CPU AMD EPYC")
    assert same == [here, unrecorded] and elsewhere == {"CPU Intel(R) Xeon(R) Processor": 1}


def test_verify_says_when_no_run_is_of_this_machine(tmp_path):
    _with_machine(_fake_run(tmp_path, "abc1234"), "GPU Some Accelerator Nobody Has")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-m", "igt.cli", "reproduce", "--verify", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2  # igt's status for an error it names (1: runs that differ)
    assert "not drawn: 1 runs trained on another machine (GPU Some Accelerator Nobody Has: 1)" in done.stdout
    assert "no finished run" in done.stderr + done.stdout and "--any-machine" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_the_kernel_fingerprint_names_the_cpu_and_the_packages():
    from igt.runtime import NUMERIC_PACKAGES, kernel_fingerprint

    fingerprint = kernel_fingerprint()
    assert fingerprint["cpu"] and set(fingerprint["packages"]) == set(NUMERIC_PACKAGES)
    assert fingerprint["packages"]["torch"] and fingerprint["packages"]["rdkit"]
