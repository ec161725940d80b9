"""The GPU check of issue #15, one prepared script for a lent GPU machine (`device` tool):

    python scripts/gpu_check.py --device cuda --out gpu-check.json     # about 5 minutes on an H100

1. trains every method (ERM gps, IGT-N, IGT-VN, GREA, GSAT, DIR; IGT-N again in bf16) for one
   epoch on HIV on the device, timing it;
2. checks that a forward pass agrees between the CPU and the device (same weights, eval mode);
3. profiles a few IGT-N training steps in fp32, in bf16, and in bf16 with PyTorch's cuDNN
   attention backend excluded (``torch.profiler``: time per step and the ops that take it),
   because bf16 autocast made IGT-N 25x slower than fp32 on an H200. A lead for the third: cuDNN
   attention, which PyTorch may pick for bf16 on Hopper, builds a plan per new input shape, and
   padded attention groups take a new shape in nearly every batch (host time, which the step
   time shows and the device-op list does not);
4. measures training graphs/s of igt's ``gps`` against PyG's ``GPSConv`` on the device
   (:func:`igt.bench.bench_gps_vs_pyg`, interleaved repeats, CUDA-synchronised timing), and the
   same measurement on the machine's CPU (all its cores), for one device against the CPU.

``--device cpu --limit 300 --hidden 16`` runs the same code on a CPU in seconds (a test does),
so the script cannot rot between GPU loans. Results go to ``--out`` as JSON and to stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, ContextManager

import torch

from igt.bench import _hiv_batches, bench_gps_vs_pyg
from igt.config import DataConfig, RunConfig
from igt.data.featurize import ATOM_VOCAB, BOND_VOCAB
from igt.data.task import FeatureSpec
from igt.train.checkpoint import load_model
from igt.run import load_split_data, train_run

MODELS = {
    "gps": ["method.name=erm", "backbone.name=gps"],
    "igt-n": ["method.name=igt-n"],
    "igt-vn": ["method.name=igt-vn"],
    "grea": ["method.name=grea"],
    "gsat": ["method.name=gsat"],
    "dir": ["method.name=dir"],
    "igt-n bf16": ["method.name=igt-n", "train.precision=bf16"],
}
# Rows trained on at most --precision-limit molecules: on an H200 a bf16 epoch of all of HIV took
# about 5 minutes, more than a loan's call affords beside the other rows.
SUBSET_ROWS = ("igt-n bf16",)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def train_each_method(device: str, limit: int | None, hidden: int, epochs: int, folder: Path,
                      precision_limit: int | None = None) -> dict:
    base = ["data.dataset=hiv", f"train.device={device}", f"train.epochs={epochs}", f"backbone.hidden={hidden}",
            "train.batch_size=256", "explain.fidelity=false", "train.test_every_epoch=false"]
    out = {}
    for name, options in MODELS.items():
        row_limit = limit
        if name in SUBSET_ROWS and precision_limit is not None:
            row_limit = precision_limit if limit is None else min(limit, precision_limit)
        subset = [f"data.limit={row_limit}", "data.split=random"] if row_limit is not None else []
        started = time.perf_counter()
        try:
            metrics = train_run(RunConfig().with_overrides([*base, *subset, *options]), folder / name.replace(" ", "-"),
                                progress=False)
        except Exception as error:  # one broken method must not hide the others' results on a short loan
            out[name] = {"error": f"{type(error).__name__}: {error}", "where": traceback.format_exc(limit=-3)}
            print(f"{name:<11} FAILED: {out[name]['error']}\n{out[name]['where']}", flush=True)
            continue
        out[name] = {"seconds": time.perf_counter() - started, "train_seconds": metrics["train_seconds"],
                     "valid": metrics["valid"], "test": metrics["test"],
                     "molecules": "all" if row_limit is None else f"first {row_limit}, random split"}
        print(f"{name:<11} trained {epochs} epoch(s) in {out[name]['seconds']:.1f} s "
              f"(valid ROC-AUC {metrics['valid']:.4f})", flush=True)
    return out


def _sdpa_without_cudnn() -> ContextManager:
    """Scaled dot-product attention may use every backend but cuDNN's."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


#: Each profiled variant: its name in the report, ``train.precision``, and the attention
#: backends it may use (a context manager factory).
PRECISION_VARIANTS: tuple[tuple[str, str, Callable[[], ContextManager]], ...] = (
    ("fp32", "fp32", nullcontext), ("bf16", "bf16", nullcontext),
    ("bf16_without_cudnn_attention", "bf16", _sdpa_without_cudnn))


def profile_precisions(device: str, hidden: int, steps: int, batch_size: int = 256) -> dict:
    """Per variant of :data:`PRECISION_VARIANTS`, milliseconds per IGT-N training step (median of
    ``steps`` after a warm-up) and the 8 ops with the most self time on the device (the CPU when ``device`` is one), from
    ``torch.profiler``, on the first HIV batches: where bf16's time goes."""
    from torch.profiler import ProfilerActivity, profile

    from igt.methods import build_method
    from igt.train.trainer import make_optimizers, train_step

    run = RunConfig().with_overrides(["data.dataset=hiv", "method.name=igt-n", f"backbone.hidden={hidden}"])
    batches, dataset = _hiv_batches(steps + 1, batch_size, run.data)
    batches = [b.to(device) for b in batches]
    on_gpu = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    out = {}
    for name, precision, attention in PRECISION_VARIANTS:
        torch.manual_seed(0)
        method = build_method(run, dataset.task, dataset.features).to(device).train()
        optimizers = make_optimizers(method, run.train)
        step_ms = []
        with attention():
            train_step(method, batches[0], optimizers, 5.0, precision=precision)  # warm-up: kernels, allocator
            with profile(activities=activities) as prof:
                for batch in batches[1:]:
                    if on_gpu:
                        torch.cuda.synchronize()
                    started = time.perf_counter()
                    train_step(method, batch, optimizers, 5.0, precision=precision)
                    if on_gpu:
                        torch.cuda.synchronize()
                    step_ms.append(1000 * (time.perf_counter() - started))
        key = "self_device_time_total" if on_gpu else "self_cpu_time_total"
        events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)[:8]
        out[name] = {"step_ms": sorted(step_ms)[len(step_ms) // 2], "steps": len(step_ms),
                     "top_ops": [{"name": e.key, "self_ms": getattr(e, key, 0) / 1000 / len(step_ms),
                                  "calls": e.count // len(step_ms)} for e in events]}
        print(f"IGT-N step in {name}: {out[name]['step_ms']:.1f} ms; top ops: "
              + ", ".join(f"{op['name']} {op['self_ms']:.1f} ms" for op in out[name]["top_ops"][:4]), flush=True)
    for name, _, _ in PRECISION_VARIANTS[1:]:
        out[f"{name}_vs_fp32"] = out[name]["step_ms"] / out["fp32"]["step_ms"]
    return out


def cpu_device_agreement(run_dir: Path, device: str) -> dict:
    """Max |difference| of the predictions of the same weights on the CPU and on ``device``."""
    method, run, _, _ = load_model(run_dir)
    _, _, loaders = load_split_data(run.with_overrides(["train.device=cpu"]))
    batch = next(iter(loaders["valid"]))
    with torch.no_grad():
        on_cpu = method.cpu()(batch).pred
        on_device = method.to(device)(batch.to(device)).pred.cpu()
    return {"max_abs_difference": float((on_cpu - on_device).abs().max()), "graphs": int(batch.num_graphs)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--limit", type=int, default=None, help="first N HIV molecules (default: all)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--bench-batches", type=int, default=20)
    parser.add_argument("--precision-limit", type=int, default=8000,
                        help="first N HIV molecules for the bf16 training row (default 8000)")
    parser.add_argument("--profile-steps", type=int, default=5, help="profiled IGT-N steps per precision")
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"))
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: CUDA is not available here (torch {torch.__version__})")
    report: dict = {"device": args.device, "device_name": device_name(args.device), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        report["train_one_epoch"] = train_each_method(args.device, args.limit, args.hidden, args.epochs, Path(tmp),
                                                      args.precision_limit)
        trained = [name for name, result in report["train_one_epoch"].items() if "error" not in result]
        if not trained:
            sys.exit("no method trained on the device")
        model = "igt-n" if "igt-n" in trained else trained[0]
        report["cpu_vs_device"] = {**cpu_device_agreement(Path(tmp) / model.replace(" ", "-"), args.device),
                                   "model": model}
    print(f"CPU vs {args.device}: max |prediction difference| {report['cpu_vs_device']['max_abs_difference']:.2e}")
    if args.profile_steps > 0:
        report["precision_profile"] = profile_precisions(args.device, args.hidden, args.profile_steps)
    data = DataConfig(dataset="hiv", rwse_steps=16, lap_k=0)
    features = FeatureSpec(ATOM_VOCAB, BOND_VOCAB)
    batches, _ = _hiv_batches(args.bench_batches, 128, data)  # each bench moves them to its device
    report["gps_vs_pyg"] = bench_gps_vs_pyg(batches, features, data, hidden=args.hidden, repeats=3, device=args.device)
    print(f"gps vs PyG GPSConv on {report['device_name']}: {report['gps_vs_pyg']['gps_graphs_per_s']:.0f} vs "
          f"{report['gps_vs_pyg']['pyg_gps_graphs_per_s']:.0f} graphs/s (ratio {report['gps_vs_pyg']['gps_train_vs_pyg']:.2f})")
    if args.device != "cpu":
        cpu = bench_gps_vs_pyg(batches, features, data, hidden=args.hidden, repeats=3, device="cpu")
        report["gps_on_cpu"] = {**cpu, "cpu": device_name("cpu")}
        report["device_vs_cpu"] = report["gps_vs_pyg"]["gps_graphs_per_s"] / cpu["gps_graphs_per_s"]
        print(f"gps on the CPU ({cpu['threads']} threads): {cpu['gps_graphs_per_s']:.0f} graphs/s; "
              f"{args.device} is {report['device_vs_cpu']:.1f}x the CPU")
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if len(trained) < len(MODELS):
        sys.exit(f"failed on {args.device}: {', '.join(sorted(set(MODELS) - set(trained)))}")
    return report


if __name__ == "__main__":
    main()
