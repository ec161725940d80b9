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


class _ListOptionsCommand(typer.core.TyperCommand):
    """Lets ``--datasets``/``--models`` take several values: ``--models gin gps igt-n``."""

    list_options = {"--datasets", "--models"}

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        from igt.reproduce import expand_list_options

        ctx.meta["igt_argv"] = list(args)
        return super().parse_args(ctx, expand_list_options(list(args), self.list_options))


@app.command(cls=_ListOptionsCommand)
def reproduce(
    ctx: typer.Context,
    suite: str = typer.Option("quick", "--suite", help="quick, full, or a suite YAML file."),
    datasets: Optional[list[str]] = typer.Option(None, "--datasets", help="Only these datasets of the suite (several values, or comma-separated)."),
    models: Optional[list[str]] = typer.Option(None, "--models", help="Replace the suite's models, e.g. gin gps 'igt-n\\[adversarial=false]'."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds 0..N-1 instead of the suite's."),
    out: Path = typer.Option(Path("results"), "--out", help="Results folder: runs/, results.csv, RESULTS.md, plots/."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Override of every run: section.key=value (repeatable)."),
    report_only: bool = typer.Option(False, "--report-only", help="Only rebuild results.csv, RESULTS.md and plots from finished runs."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the grid and what is already finished; train nothing."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads (1 is fastest on a busy shared machine)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train the grid dataset x model x seed of a suite (resumable), then write results.csv,
    RESULTS.md and plots. Exit status 1 when a run failed."""
    import shlex

    from rich.markup import escape

    from igt.reproduce import build_grid, code_commit, is_finished, load_suite, run_grid
    from igt.results import build_report

    command = shlex.join(["igt", "reproduce", *ctx.meta.get("igt_argv", [])])
    commit = code_commit()
    failed = 0
    if not report_only:
        jobs = build_grid(load_suite(suite), datasets, models, seeds, overrides)
        if dry_run:
            for job in jobs:
                state = "finished" if is_finished(job.run_dir(out)) else "to run"
                console.print(f"{job.dataset}  {job.label}  seed {job.seed}: {state}", highlight=False, markup=False)
            console.print(f"{len(jobs)} runs")
            return
        result = run_grid(jobs, out, command=command, commit=commit, progress=not quiet, threads=threads)
        failed = len(result.failed)
        console.print(
            f"{len(result.trained)} trained, {result.skipped} already finished, {failed} failed "
            f"(of {result.total})", highlight=False, soft_wrap=True,
        )
        for job, message in result.failed:
            console.print(
                f"[red]failed[/] {escape(f'{job.dataset} {job.label} seed {job.seed}: {message}')}",
                highlight=False, soft_wrap=True,
            )
    report = build_report(out, command, commit)
    console.print(
        f"{report.runs} finished runs -> {report.results_csv}, {report.results_md}, {len(report.plots)} plots",
        highlight=False, markup=False, soft_wrap=True,
    )
    if failed:
        raise typer.Exit(1)


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
