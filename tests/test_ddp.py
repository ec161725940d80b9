"""Data-parallel training (PyTorch DDP, gloo on the CPU) and resumable runs (docs/distributed.md).

The multi-process tests start real workers through ``igt train --nproc 2`` (torchrun's code) in a
subprocess; the in-process ones check the pieces: the shards of an epoch, the gathered
evaluation order, the resume state, the one-line errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

from igt.config import RunConfig
from igt.data.dataset import ShardedBatches, StridedBatches
from igt.errors import IgtError
from igt.train.distributed import interleave, worker_env
from igt.train.resume import capture_rng, has_resume_state, read_resume_state, restore_rng, resume_dir

SRC = Path(__file__).resolve().parents[1] / "src"

#: Tiny runs: 150 BACE molecules (random split: 120 train, 15 valid, 15 test), one small layer.
TINY = ["data.dataset=bace", "data.limit=150", "data.split=random", "data.rwse_steps=2", "data.lap_k=0",
        "backbone.hidden=8", "backbone.layers=1", "backbone.heads=2", "explain.fidelity=false"]
TIMING = {"seconds", "train_seconds"}  # history columns that measure time
METRIC_TIMING = {"train_seconds", "epoch_train_seconds", "explain_seconds"}


def _sets(options: list[str]) -> list[str]:
    return [arg for option in options for arg in ("--set", option)]


def _igt(args: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, "-m", "igt.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=environ, timeout=timeout)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["state_dict"]


def _history(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(run_dir / "history.csv") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


def _metrics(run_dir: Path) -> dict:
    return {k: v for k, v in json.loads((run_dir / "metrics.json").read_text()).items() if k not in METRIC_TIMING}


# ----------------------------------------------------------------------------- the shards of an epoch


@pytest.mark.parametrize("size, batch, world", [(120, 16, 2), (121, 16, 2), (100, 8, 3), (37, 4, 2), (7, 4, 2)])
def test_sharded_batches_are_the_global_batches_of_one_process_with_the_same_generator(size, batch, world):
    """Per-process batch B in W processes = one process with batch B*W over the same order: the
    generator is drawn exactly as one process draws it, and each global batch is the processes'
    slices joined in rank order (an incomplete last one is split evenly, or dropped when a process
    would get fewer than two graphs)."""
    single_gen, generators = torch.Generator().manual_seed(3), [torch.Generator().manual_seed(3) for _ in range(world)]
    single = list(BatchSampler(RandomSampler(range(size), generator=single_gen), batch * world, drop_last=False))
    shards = [ShardedBatches(RandomSampler(range(size), generator=g), batch, r, world) for r, g in enumerate(generators)]
    lists = [list(shard) for shard in shards]
    assert len({len(x) for x in lists}) == 1 and len(lists[0]) == len(shards[0])  # DDP needs equal step counts
    joined = [sum((lists[r][i] for r in range(world)), []) for i in range(len(lists[0]))]
    rest = size % (batch * world)
    kept = single if rest == 0 or rest >= 2 * world else single[:-1]
    assert joined == kept
    assert all(len(b) >= 2 for x in lists for b in x)
    assert all(torch.equal(g.get_state(), single_gen.get_state()) for g in generators)


def test_strided_evaluation_batches_gather_back_in_order():
    batches = BatchSampler(SequentialSampler(range(23)), 4, drop_last=False)
    for world in (1, 2, 3, 7):
        shares = [list(StridedBatches(batches, r, world)) for r in range(world)]
        assert [len(s) for s in shares] == [len(StridedBatches(batches, r, world)) for r in range(world)]
        assert interleave(shares) == list(batches)


def test_worker_env_is_read_from_torchrun_variables():
    assert worker_env({}) is None
    env = worker_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                      "TORCHELASTIC_RESTART_COUNT": "1", "TORCHELASTIC_MAX_RESTARTS": "2"})
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size, env.restart_count, env.max_restarts) == (
        3, 4, 1, 2, 1, 2) and not env.is_main
    with pytest.raises(IgtError, match="LOCAL_RANK"):
        worker_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(IgtError, match="below the world size"):
        worker_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def test_random_generators_continue_where_they_were_saved():
    import random

    import numpy as np

    generator = torch.Generator().manual_seed(5)
    saved = capture_rng(generator, torch.device("cpu"))

    def draws():
        return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random(), torch.rand(2, generator=generator).tolist())

    first = draws()
    restore_rng(saved, generator, torch.device("cpu"))
    assert draws() == first


# ----------------------------------------------------------------------------- resume


def test_an_interrupted_run_resumes_to_the_weights_and_numbers_of_an_uninterrupted_one(tmp_path):
    """IGT-N on GPS with dropout and Laplacian sign flips (every random generator in use): killed
    after epoch 2 of 4 (a callback raising KeyboardInterrupt), resumed, it ends bit for bit where
    the uninterrupted run ends: weights, history (but its timing columns) and metrics."""
    from igt.run import train_run

    run = RunConfig().with_overrides([*TINY, "method.name=igt-n", "backbone.name=gps", "data.lap_k=2",
                                      "backbone.use_lap_pe=true", "explain.fidelity=true", "train.epochs=4",
                                      "train.batch_size=32"])
    whole = train_run(run, tmp_path / "whole", progress=False)
    assert whole["world_size"] == 1

    def stop_after_two(epoch: int, valid: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    out = tmp_path / "runs" / "cut"
    with pytest.raises(KeyboardInterrupt):
        train_run(run, out, progress=False, keep_resume_state=True, on_epoch=stop_after_two)
    # No half folder at --out; the resume state beside it, at epoch 2.
    assert sorted(p.name for p in out.parent.iterdir()) == [".cut.resume"] and has_resume_state(out)
    assert read_resume_state(out)["epoch"] == 2

    resumed = train_run(run, out, progress=False, resume=True)
    assert not resume_dir(out).exists() and sorted(p.name for p in out.parent.iterdir()) == ["cut"]
    a, b = _weights(tmp_path / "whole"), _weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _history(tmp_path / "whole") == _history(out)
    assert _metrics(tmp_path / "whole") == _metrics(out)
    assert {k: v for k, v in whole.items() if k not in METRIC_TIMING} == {
        k: v for k, v in resumed.items() if k not in METRIC_TIMING}


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from igt.cli import main

    monkeypatch.setattr(sys, "argv", ["igt", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, capsys.readouterr().err


def test_resume_and_nproc_errors_are_one_line(tmp_path, monkeypatch, capsys):
    from igt.run import train_run

    monkeypatch.chdir(tmp_path)
    cases = [
        (["--nproc", "0"], "--nproc 0: expected at least 1 process"),
        (["--resume", "runs/none"], "runs/none: no resume state to continue"),
    ]
    for args, message in cases:
        code, err = _main(monkeypatch, capsys, "train", *(["bace"] if "--nproc" in args else []), *args)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []

    def stop(epoch: int, valid: dict) -> None:
        raise KeyboardInterrupt

    run = RunConfig().with_overrides([*TINY, "backbone.name=gin", "train.epochs=2"])
    with pytest.raises(KeyboardInterrupt):
        train_run(run, tmp_path / "cut", progress=False, keep_resume_state=True, on_epoch=stop)
    cases = [
        (["train", "--resume", "cut", "--epochs", "3"], "--resume cut: continues that run with its saved config; drop --epochs"),
        (["train", "--resume", "cut", "--nproc", "2"], "--nproc 2: cut was trained by 1 process(es)"),
        (["train", "bace", "--out", "cut"], "cut: an interrupted run of this folder left its resume state; continue it "
                                            "with `igt train --resume cut`, or pass --overwrite"),
    ]
    for args, message in cases:
        code, err = _main(monkeypatch, capsys, *args)
        assert code == 2 and message in err and err.count("\n") == 1, err
    with pytest.raises(IgtError, match="had another config"):
        train_run(run.with_overrides(["train.seed=1"]), tmp_path / "cut", progress=False, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cut.resume"]


# ----------------------------------------------------------------------------- two gloo processes


def test_two_processes_with_batch_b_equal_one_process_with_batch_2b(tmp_path):
    """DDP averages the gradients of two per-process batches of B: the same step as one batch of 2B
    over the same order (LayerNorm and no dropout, so nothing depends on the batch size but the
    mean). After one epoch of 8 steps the weights agree to float rounding."""
    from igt.run import train_run

    options = [*TINY, "backbone.name=gin", "backbone.layers=2", "backbone.norm=layer", "backbone.dropout=0",
               "train.epochs=1", "train.batch_size=8"]
    double = _igt(["train", "bace", "-q", "--out", "two", "--nproc", "2", *_sets(options)], tmp_path)
    assert double.returncode == 0, double.stderr
    run = RunConfig.load(tmp_path / "two" / "config.yaml").with_overrides(["train.batch_size=16"])
    train_run(run, tmp_path / "one", progress=False)
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst < 1e-6, worst  # measured: 6e-8 (float32 sums in another order)
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["world_size"] == 2
    losses = [(float(x["loss/task"]), float(y["loss/task"])) for x, y in zip(_history(tmp_path / "one"),
                                                                               _history(tmp_path / "two"))]
    assert losses and all(abs(x - y) < 1e-5 for x, y in losses)  # logged: the mean over both processes


def test_two_process_igt_run_writes_one_run_folder_whose_numbers_a_single_process_reproduces(tmp_path):
    """IGT-N (two players: each step uses only some parameters) through `igt train --nproc 2`: one
    run folder, world_size 2, and its metrics are exactly those a single process computes from
    the checkpoint (the evaluation, split among the workers, is gathered back in batch order:
    evaluation batches of 4 graphs, so both workers evaluate)."""
    from igt.train.checkpoint import load_model
    from igt.run import evaluate_run

    args = ["train", "bace", "--model", "igt-n", "-q", "--out", "runs/igt", "--nproc", "2",
            *_sets([*TINY, "train.epochs=2", "train.batch_size=16", "train.eval_batch_size=4"])]
    done = _igt(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 processes" in done.stdout and done.stderr.count("error") == 0, done.stderr
    run_dir = tmp_path / "runs" / "igt"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["igt"]  # no partial folder, no resume state
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["method"] == "igt-n" and len(_history(run_dir)) == 2
    assert "loss/adversary/int" in _history(run_dir)[0]
    for split in ("valid", "test"):
        again = evaluate_run(run_dir, split)
        assert again["metric"] == metrics[split] and again["loss"] == metrics[f"{split}_loss"], split
    method, _, _, _ = load_model(run_dir)  # an ordinary single-process checkpoint
    assert sum(p.numel() for p in method.parameters()) == metrics["num_parameters"]


#: Every graph method's game under DDP: players that use part of the parameters (IGT's adversary,
#: GREA's and DIR's alternating players), one differentiable game (IGT simultaneous), BatchNorm
#: over graphs (gin-vn's virtual node).
GAMES = [["method.name=erm", "backbone.name=gin-vn"], ["method.name=igt-n"], ["method.name=igt-vn"],
         ["method.name=igt-n", "method.updates=simultaneous"], ["method.name=grea", "backbone.name=gin"],
         ["method.name=dir", "backbone.name=gin"], ["method.name=gsat", "backbone.name=gin"]]


def _game_worker(rank: int, world: int, port: int, cache: str, out: str) -> None:
    """One of two spawned workers: train each of :data:`GAMES` for an epoch; write the validation
    metric and a digest of the weights each worker ends with."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "IGT_CACHE_DIR": cache})
    torch.set_num_threads(1)
    from igt.methods import build_method
    from igt.train.distributed import process_group
    from igt.run import load_split_data
    from igt.train.trainer import fit

    results = []
    with process_group(worker_env(), "cpu") as dist:
        for game in GAMES:
            run = RunConfig().with_overrides([*TINY, *game, "train.epochs=1", "train.batch_size=16",
                                              "train.eval_batch_size=4"])
            torch.manual_seed(0)
            dataset, _, loaders = load_split_data(run, dist)
            method = build_method(run, dataset.task, dataset.features)
            result = fit(method, loaders, run.train, progress=False, dist=dist)
            digest = float(sum(p.double().sum() for p in method.state_dict().values() if p.is_floating_point()))
            results.append({"valid": result.valid["metric"], "digest": digest})
    Path(out, f"rank{rank}.json").write_text(json.dumps(results))


def test_every_game_trains_under_ddp_and_keeps_the_workers_weights_equal(tmp_path):
    """Each method's players step through DDP without hanging or erroring, and after an epoch both
    workers hold the same weights (the averaged gradients, the same Adam steps) and the same metrics."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_game_worker, args=(2, port, os.environ["IGT_CACHE_DIR"], str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]) == len(GAMES) and ranks[0] == ranks[1]


def test_a_worker_that_dies_stops_the_others_with_a_one_line_reason(tmp_path):
    """Worker 1 exits after its first step (a test hook): the launcher stops worker 0, returns
    non-zero and says which worker failed and how; nothing is left at --out."""
    args = ["train", "bace", "--model", "igt-n", "-q", "--out", "dead", "--nproc", "2",
            *_sets([*TINY, "train.epochs=2", "train.batch_size=16"])]
    started = time.perf_counter()
    done = _igt(args, tmp_path, timeout=240, IGT_TEST_WORKER_EXIT="1:1")
    assert done.returncode == 1, done.stderr
    assert time.perf_counter() - started < 240
    last = done.stderr.strip().splitlines()[-1]
    assert "worker rank 1" in last and "exited with status 3" in last and "other workers were stopped" in last, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_bad_input_stops_every_worker_with_one_line(tmp_path):
    """Rank 0 loads the data first and hands its error to the others: one line, exit status 2."""
    done = _igt(["train", "bace", "-q", "--out", "small", "--nproc", "2", "--set", "data.limit=5"], tmp_path, timeout=240)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "too small to split" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_job_restarted_by_torchrun_resumes_to_the_uninterrupted_result(tmp_path):
    """`torchrun --max-restarts 1`: worker 1 dies in epoch 2 of the first attempt; the restarted job
    finds the resume state by its --out and ends bit for bit where an uninterrupted two-process
    run ends. Then the same with a SIGKILLed single-process run and `igt train --resume`."""
    options = _sets([*TINY, "train.epochs=3", "train.batch_size=16"])
    whole = _igt(["train", "bace", "--model", "igt-n", "-q", "--out", "whole", "--nproc", "2", *options], tmp_path)
    assert whole.returncode == 0, whole.stderr
    environ = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "TORCH_CPP_LOG_LEVEL": "ERROR",
               # 120 training graphs in global batches of 32: 4 steps per epoch; die in epoch 2
               "IGT_TEST_WORKER_EXIT": "1:5"}
    restarted = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=1",
         "-m", "igt.cli", "train", "bace", "--model", "igt-n", "-q", "--out", "restarted", *options],
        cwd=tmp_path, capture_output=True, text=True, env=environ, timeout=600)
    assert restarted.returncode == 0, restarted.stderr
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "restarted")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _history(tmp_path / "whole") == _history(tmp_path / "restarted")
    assert _metrics(tmp_path / "whole") == _metrics(tmp_path / "restarted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["restarted", "whole"]

    # One process, killed with SIGKILL once epoch 1 has been logged, then `igt train --resume`.
    single = ["train", "bace", "--model", "igt-n", "--out", "killed", *options]
    process = subprocess.Popen([sys.executable, "-m", "igt.cli", *single], cwd=tmp_path, text=True,
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"})
    for line in process.stderr:
        if line.startswith("epoch 1/3"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL and not (tmp_path / "killed").exists()
    assert read_resume_state(tmp_path / "killed")["epoch"] >= 1
    resumed = _igt(["train", "--resume", "killed", "-q"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    reference = _igt(["train", "bace", "--model", "igt-n", "-q", "--out", "reference", *options], tmp_path)
    assert reference.returncode == 0, reference.stderr
    a, b = _weights(tmp_path / "reference"), _weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _history(tmp_path / "reference") == _history(tmp_path / "killed")
    assert _metrics(tmp_path / "reference") == _metrics(tmp_path / "killed")
