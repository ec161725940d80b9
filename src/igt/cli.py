"""The ``igt`` command line. Every user error is one line on stderr and exit status 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from igt.config import METHOD_CONFIGS, RunConfig
from igt.errors import IgtError

app = typer.Typer(
    help="Invariant graph rationalization with graph transformers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def resolve_model(run: RunConfig, model: str) -> RunConfig:
    """``--model`` names an ERM backbone (``gps``) or a method (``igt-n``, on the configured backbone)."""
    from igt.nn.backbones import BACKBONES

    if model in BACKBONES:
        return run.with_overrides(["method.name=erm", f"backbone.name={model}"])
    if model in METHOD_CONFIGS:
        return run.with_overrides([f"method.name={model}"])
    known = ", ".join(BACKBONES.names() + [m for m in METHOD_CONFIGS.names() if m != "erm"])
    raise IgtError(f"unknown model {model!r}; known: {known}")


def build_run_config(
    dataset: str, model: Optional[str], config: Optional[Path], epochs: Optional[int], seed: Optional[int],
    smiles_column: Optional[str], target_column: Optional[list[str]], task: Optional[str],
    split: Optional[str], overrides: Optional[list[str]],
) -> RunConfig:
    """Config file < command-line flags < ``--set`` overrides."""
    run = RunConfig.load(config) if config else RunConfig()
    flags = [f"data.dataset={dataset}"]
    if epochs is not None:
        flags.append(f"train.epochs={epochs}")
    if seed is not None:
        flags.append(f"train.seed={seed}")
    if smiles_column:
        flags.append(f"data.smiles_column={smiles_column}")
    if target_column:
        flags.append(f"data.target_columns={json.dumps(list(target_column))}")
    if task:
        flags.append(f"data.task={task}")
    if split:
        flags.append(f"data.split={split}")
    run = run.with_overrides(flags)
    if model:
        run = resolve_model(run, model)
    return run.with_overrides(list(overrides or []))


@app.command()
def train(
    dataset: str = typer.Argument(..., help="Built-in dataset (see `igt datasets`), a CSV file or an OGB folder."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Backbone for ERM (gin, gin-vn, gps, gt, transformer) or a method."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: runs/<dataset>-<model>-seed<k>)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config file."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Override: section.key=value (repeatable)."),
    smiles_column: Optional[str] = typer.Option(None, "--smiles-column", help="SMILES column of a CSV."),
    target_column: Optional[list[str]] = typer.Option(None, "--target-column", help="Label column of a CSV (repeatable)."),
    task: Optional[str] = typer.Option(None, "--task", help="classification or regression (CSV files)."),
    split: Optional[str] = typer.Option(None, "--split", help="auto, scaffold, random or column."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow writing into an existing run folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train a model; write config.yaml, history.csv, metrics.json and checkpoint.pt."""
    from igt.train.run import default_run_dir, train_run

    run = build_run_config(dataset, model, config, epochs, seed, smiles_column, target_column, task, split, overrides)
    out_dir = out if out is not None else default_run_dir(Path("runs"), run)
    metrics = train_run(run, out_dir, overwrite=overwrite, progress=not quiet)
    console.print(
        f"[bold]{metrics['model']}[/] on [bold]{metrics['dataset']}[/] seed {metrics['seed']}: "
        f"best epoch {metrics['best_epoch']}, valid {metrics['metric']} {metrics['valid']:.4f}, "
        f"test {metrics['metric']} {metrics['test']:.4f} ({metrics['train_seconds']:.1f} s)"
    )
    console.print(f"run folder: {out_dir}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by `igt train`."),
    split: str = typer.Option("test", "--split", help="train, valid or test."),
) -> None:
    """Reload a run's checkpoint and recompute its metric on a split."""
    from igt.train.run import evaluate_run

    result = evaluate_run(run_dir, split)
    console.print(json.dumps(result, indent=2))


@app.command()
def datasets() -> None:
    """List the built-in datasets and whether they are available offline."""
    from igt.data import dataset_catalog

    table = Table(title="igt datasets")
    for column in ("name", "graphs", "task", "metric", "source", "available"):
        table.add_column(column)
    missing = []
    for row in dataset_catalog():
        available = "yes" if row["available"] else "no"
        table.add_row(row["name"], str(row["graphs"]), row["task"], row["metric"], row["source"], available)
        if not row["available"]:
            missing.append(f"{row['name']}: {row['how_to_get']}")
    console.print(table)
    for line in missing:
        console.print(f"to get {line}")


@app.command()
def bench(
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results to this JSON file."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes: checks the plumbing, numbers are noisy."),
) -> None:
    """Speed and memory ratios against peer implementations, measured in this process."""
    from igt.bench import run_benchmarks

    results = run_benchmarks(quick=quick, progress=True)
    console.print_json(json.dumps(results))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    try:
        app()
    except IgtError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
