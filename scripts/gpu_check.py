"""The GPU check of issue #15, one prepared script for a lent GPU machine (`device` tool):

    python scripts/gpu_check.py --device cuda --out gpu-check.json     # about 5 minutes on an H100

1. trains every method (ERM gps, IGT-N, IGT-VN, GREA, GSAT, DIR; IGT-N again in bf16) for one
   epoch on HIV on the device, timing it;
2. checks that a forward pass agrees between the CPU and the device (same weights, eval mode);
3. measures training graphs/s of igt's ``gps`` against PyG's ``GPSConv`` on the device
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
from pathlib import Path

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


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def train_each_method(device: str, limit: int | None, hidden: int, epochs: int, folder: Path) -> dict:
    base = ["data.dataset=hiv", f"train.device={device}", f"train.epochs={epochs}", f"backbone.hidden={hidden}",
            "train.batch_size=256", "explain.fidelity=false", "train.test_every_epoch=false"]
    if limit is not None:
        base += [f"data.limit={limit}", "data.split=random"]
    out = {}
    for name, options in MODELS.items():
        started = time.perf_counter()
        try:
            metrics = train_run(RunConfig().with_overrides([*base, *options]), folder / name.replace(" ", "-"),
                                progress=False)
        except Exception as error:  # one broken method must not hide the others' results on a short loan
            out[name] = {"error": f"{type(error).__name__}: {error}", "where": traceback.format_exc(limit=-3)}
            print(f"{name:<11} FAILED: {out[name]['error']}\n{out[name]['where']}", flush=True)
            continue
        out[name] = {"seconds": time.perf_counter() - started, "train_seconds": metrics["train_seconds"],
                     "valid": metrics["valid"], "test": metrics["test"]}
        print(f"{name:<11} trained {epochs} epoch(s) in {out[name]['seconds']:.1f} s "
              f"(valid ROC-AUC {metrics['valid']:.4f})", flush=True)
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
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"))
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: CUDA is not available here (torch {torch.__version__})")
    report: dict = {"device": args.device, "device_name": device_name(args.device), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        report["train_one_epoch"] = train_each_method(args.device, args.limit, args.hidden, args.epochs, Path(tmp))
        trained = [name for name, result in report["train_one_epoch"].items() if "error" not in result]
        if not trained:
            sys.exit("no method trained on the device")
        model = "igt-n" if "igt-n" in trained else trained[0]
        report["cpu_vs_device"] = {**cpu_device_agreement(Path(tmp) / model.replace(" ", "-"), args.device),
                                   "model": model}
    print(f"CPU vs {args.device}: max |prediction difference| {report['cpu_vs_device']['max_abs_difference']:.2e}")
    data = DataConfig(dataset="hiv", rwse_steps=16, lap_k=0)
    batches, _ = _hiv_batches(args.bench_batches, 128, data)
    report["gps_vs_pyg"] = bench_gps_vs_pyg(batches, FeatureSpec(ATOM_VOCAB, BOND_VOCAB), data, hidden=args.hidden,
                                            repeats=3, device=args.device)
    print(f"gps vs PyG GPSConv on {report['device_name']}: {report['gps_vs_pyg']['gps_graphs_per_s']:.0f} vs "
          f"{report['gps_vs_pyg']['pyg_gps_graphs_per_s']:.0f} graphs/s (ratio {report['gps_vs_pyg']['gps_train_vs_pyg']:.2f})")
    if args.device != "cpu":
        cpu = bench_gps_vs_pyg([b.cpu() for b in batches], FeatureSpec(ATOM_VOCAB, BOND_VOCAB), data,
                               hidden=args.hidden, repeats=3, device="cpu")
        report["gps_on_cpu"] = {**cpu, "cpu": platform.processor() or platform.machine()}
        report["device_vs_cpu"] = report["gps_vs_pyg"]["gps_graphs_per_s"] / cpu["gps_graphs_per_s"]
        print(f"gps on the CPU ({cpu['threads']} threads): {cpu['gps_graphs_per_s']:.0f} graphs/s; "
              f"{args.device} is {report['device_vs_cpu']:.1f}x the CPU")
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if len(trained) < len(MODELS):
        sys.exit(f"failed on {args.device}: {', '.join(sorted(set(MODELS) - set(trained)))}")
    return report


if __name__ == "__main__":
    main()
