"""The ``igt`` command line: the top layer, imported by nothing else in ``igt``.

Every user error is one line on stderr and exit status 2. Heavy modules (torch, PyG, RDKit,
pandas, matplotlib) are imported inside the commands that need them, so ``igt --help``,
``--version`` and argument errors answer at once.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from igt.version import __version__
from igt.config import RunConfig
from igt.errors import IgtError
from igt.models import BACKBONE_MODELS, FINGERPRINT_MODELS, METHOD_MODELS
from igt.train.distributed import EchoedError, PeerLost

app = typer.Typer(
    help="Invariant graph rationalization with graph transformers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"igt {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print igt's version and exit."),
) -> None:
    """Invariant graph rationalization with graph transformers."""


def build_run_config(
    dataset: str, model: Optional[str], config: Optional[Path], epochs: Optional[int], seed: Optional[int],
    smiles_column: Optional[str], target_column: Optional[list[str]], task: Optional[str],
    split: Optional[str], overrides: Optional[list[str]], preset: Optional[str] = None, threads: Optional[int] = None,
) -> RunConfig:
    """Config file < command-line flags < model < ``--preset`` < ``--set`` overrides."""
    from igt.models import build_run_config as build

    flags = []
    if epochs is not None:
        flags.append(f"train.epochs={epochs}")
    if seed is not None:
        flags.append(f"train.seed={seed}")
    if threads is not None:
        flags.append(f"train.threads={threads}")
    if smiles_column:
        flags.append(f"data.smiles_column={smiles_column}")
    if target_column:
        flags.append(f"data.target_columns={json.dumps(list(target_column))}")
    if task:
        flags.append(f"data.task={task}")
    if split:
        flags.append(f"data.split={split}")
    base = RunConfig.load(config) if config else None
    return build(dataset, model, base, flags, preset, overrides)


def _require_checkpoint(run_dir: Path) -> None:
    """``checkpoint not found`` before torch is imported (seconds), as the loader would say it."""
    path = run_dir / "checkpoint.pt" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise IgtError(f"{path}: checkpoint not found")


_MODELS_HELP = (f"Backbone for ERM ({', '.join(BACKBONE_MODELS)}), a method on the configured backbone "
                f"({', '.join(METHOD_MODELS)}) or a fingerprint baseline ({', '.join(FINGERPRINT_MODELS)}); "
                "`igt models` describes them.")


class _KeepArgv(typer.core.TyperCommand):
    """Keeps the command's own arguments in ``ctx.meta["igt_argv"]``: ``--nproc`` hands them to
    each worker as they were given."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        ctx.meta["igt_argv"] = list(args)
        return super().parse_args(ctx, args)


@app.command(cls=_KeepArgv)
def train(
    ctx: typer.Context,
    dataset: Optional[str] = typer.Argument(None, help="Built-in dataset (see `igt datasets`), a CSV file or an OGB folder."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=_MODELS_HELP),
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A published recipe applied after --model, before --set (gsat-paper)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads (train.threads; default 1, 0 = torch's default: every core)."),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="Train data-parallel in N local processes (PyTorch DDP, started by torchrun; each takes train.batch_size graphs per step: docs/distributed.md)."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="RUN", help="Continue the interrupted run whose --out was RUN from its last finished epoch, to the weights an uninterrupted run ends with."),
) -> None:
    """Train a model; write config.yaml, history.csv, metrics.json and checkpoint.pt.
    The run is built in a hidden folder beside --out and appears only when it has finished;
    meanwhile a resume state beside it lets `igt train --resume RUN` continue an interrupted run."""
    from igt.train.distributed import worker_env

    env = worker_env()
    writes = env is None or env.is_main  # only rank 0 of a data-parallel run touches the run folder
    if nproc is not None and nproc < 1:
        raise IgtError(f"--nproc {nproc}: expected at least 1 process")
    if env is not None and nproc is not None and nproc != env.local_world_size:
        raise IgtError(f"--nproc {nproc}: this process is one of {env.local_world_size} started on this node by "
                       "torchrun; drop --nproc")
    if resume is not None:
        given = [name for name, value in (
            ("DATASET", dataset), ("--model", model), ("--epochs", epochs), ("--seed", seed), ("--out", out),
            ("--config", config), ("--set", overrides), ("--smiles-column", smiles_column),
            ("--target-column", target_column), ("--task", task), ("--split", split), ("--preset", preset),
            ("--threads", threads)) if value is not None and value != []]
        if given:
            raise IgtError(f"--resume {resume}: continues that run with its saved config; drop {', '.join(given)}")
        from igt.train.resume import read_resume_state

        state = read_resume_state(resume)
        run = RunConfig.from_dict(state["config"], where=f"{resume} (resume state)")
        label, out_dir, processes = state["label"], resume, state["world_size"]
        if nproc is not None and nproc != processes and env is None:
            raise IgtError(f"--nproc {nproc}: {resume} was trained by {processes} process(es); resume it with as many "
                           "(each process's share of the data depends on it)")
    else:
        if dataset is None:
            raise IgtError("igt train: give a DATASET (or --resume RUN to continue an interrupted run)")
        run = build_run_config(dataset, model, config, epochs, seed, smiles_column, target_column, task, split,
                               overrides, preset, threads)
        if out is None and env is not None and env.max_restarts > 0:
            raise IgtError("torchrun --max-restarts: give --out, so that a restarted job finds its run's resume state")
        if out is not None and writes:  # before torch is imported: seconds
            from igt.fileio import check_output_folder
            from igt.train.resume import has_resume_state, left_resume_state

            check_output_folder(out, overwrite, "run")
            if has_resume_state(out) and not overwrite and (env is None or env.restart_count == 0):
                raise left_resume_state(out)
        from igt.run import default_run_dir, model_label

        out_dir = out if out is not None else default_run_dir(Path("runs"), run)
        label = model_label(run) + (f"@{preset}" if preset else "")
        processes = nproc or 1
    if env is None and processes > 1:
        from igt.models import is_fingerprint_model
        from igt.train.distributed import WorkerFailed, launch

        if is_fingerprint_model(run.method.name):
            raise IgtError(f"--nproc {processes}: {run.method.name} is fitted by scikit-learn in one process; drop --nproc")
        try:
            launch(processes, ["train", *ctx.meta["igt_argv"]])
        except WorkerFailed as exc:
            if str(exc):
                err_console.print(f"[red]error:[/] {_escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        return
    from igt.api import fit

    # The resolved config as it stands: the same function as igt.fit() from Python.
    try:
        metrics = fit(run.data.dataset, model=None, out=out_dir, seed=None, config=run, overwrite=overwrite,
                      progress=not quiet, label=label, keep_resume_state=True, resume=resume is not None).metrics
    except KeyboardInterrupt:
        from igt.train.resume import has_resume_state

        if writes and has_resume_state(out_dir):
            err_console.print(f"interrupted; continue with: igt train --resume {out_dir}", highlight=False,
                              markup=False, soft_wrap=True)
            raise typer.Exit(130) from None
        raise
    if not writes:
        return
    console.print(
        f"[bold]{metrics['model']}[/] on [bold]{metrics['dataset']}[/] seed {metrics['seed']}: "
        f"best epoch {metrics['best_epoch']}, valid {metrics['metric']} {metrics['valid']:.4f}, "
        f"test {metrics['metric']} {metrics['test']:.4f} ({metrics['train_seconds']:.1f} s"
        + (f", {metrics['world_size']} processes)" if metrics["world_size"] > 1 else ")")
    )
    console.print(f"run folder: {out_dir}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by `igt train`."),
    split: str = typer.Option("test", "--split", help="train, valid or test."),
    explanation_metrics: bool = typer.Option(
        False, "--explanation-metrics",
        help="Instead: compute fidelity / characterization (and post-hoc explainers for ERM) on the test split "
             "and write them into the run's metrics.json (docs/fidelity.md).",
    ),
) -> None:
    """Reload a run's checkpoint and recompute its metric on a split."""
    _require_checkpoint(run_dir)
    from igt.runtime import route_rdkit_logs

    route_rdkit_logs()
    if explanation_metrics:
        from igt.run import update_run_metrics

        console.print(json.dumps(update_run_metrics(run_dir), indent=2))
        return
    from igt.run import evaluate_run

    result = evaluate_run(run_dir, split)
    console.print(json.dumps(result, indent=2))


@app.command()
def models() -> None:
    """Every backbone and method of --model: what it is, and its options with their defaults."""
    from igt.models import model_options

    lines = ["ERM backbones (igt train DATASET --model NAME); options: --set backbone.KEY=VALUE", ""]
    for name, description in BACKBONE_MODELS.items():
        lines.append(f"  {name:<12} {description}")
    lines.append("  options (every backbone): " + _options_text(model_options("gps")))
    lines += ["", "Methods (on the configured backbone, default gps: --set backbone.name=gin); "
              "options: --set method.KEY=VALUE", ""]
    for name, description in METHOD_MODELS.items():
        lines.append(f"  {name:<12} {description}")
        lines.append(f"  {'':<12} options: {_options_text(model_options(name))}")
    lines += ["", "Fingerprint baselines (molecules only: no graph, no rationale); options: --set method.KEY=VALUE", ""]
    for name, description in FINGERPRINT_MODELS.items():
        lines.append(f"  {name:<12} {description}")
        lines.append(f"  {'':<12} options: {_options_text(model_options(name))}")
    lines += ["", "Data and training options: `igt config --model NAME` prints the whole config."]
    print("\n".join(lines))


def _options_text(options: dict) -> str:
    import yaml

    def value(v):  # as --set writes it: true, null, [0.8, 0.1, 0.1]
        return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()

    return ", ".join(f"{key.split('.', 1)[1]}={value(v)}" for key, v in options.items())


@app.command("config")
def show_config(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=_MODELS_HELP),
    dataset: str = typer.Option("bbbp", "--dataset", help="data.dataset of the printed config."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A published recipe (gsat-paper)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Override: section.key=value (repeatable)."),
) -> None:
    """Print the full default config (YAML) of a model; `igt train --config FILE` takes it back."""
    import yaml

    from igt.models import build_run_config as build

    run = build(dataset, model, None, None, preset, overrides)
    sys.stdout.write(yaml.safe_dump(run.to_dict(), sort_keys=False))


@app.command("tune")
def tune_command(
    dataset: Optional[str] = typer.Argument(None, help="As for `igt train` (not needed with --show-space)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=_MODELS_HELP),
    trials: Optional[int] = typer.Option(None, "--trials", help="Complete + pruned trials the study should hold (a resumed study runs only the missing ones)."),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs of each trial (a budget for a few CPU cores)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna RDB URL (default: sqlite:///OUT/study.db), e.g. postgresql://user:pw@host/db."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default: <dataset>-<model>)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Start no new trial after this many seconds."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: runs/tune/<dataset>-<model>)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Fix an option for every trial (no longer searched): section.key=value (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler (trials train with train.seed)."),
    show_space: bool = typer.Option(False, "--show-space", help="Print the model's search space (after --set) and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Search a model's hyperparameters with Optuna on the validation split (the test split is
    never read); resumable. Writes best.yaml (for `igt train --config`), trials.csv, summary.json,
    history.png and importance.png (docs/tuning.md). Exit status 1 when no trial completed."""
    if model is None:
        raise IgtError("igt tune: give --model NAME (`igt models` lists them)")
    if show_space:
        from igt.tune import describe_spec, free_space, search_space

        space = free_space(search_space(model), list(overrides or []))
        print(f"search space of {model} (--set KEY=VALUE fixes a key):")
        width = max(len(key) for key in space)
        for key, spec in space.items():
            print(f"  {key:<{width}}  {describe_spec(spec)}")
        return
    if dataset is None:
        raise IgtError("igt tune: give a DATASET (only --show-space works without one)")
    if trials is None:
        raise IgtError("igt tune: give --trials N")
    from igt.runtime import route_rdkit_logs
    from igt.tune import tune

    route_rdkit_logs()
    result = tune(dataset, model, trials, epochs, storage=storage, study_name=study, timeout=timeout, out=out,
                  overrides=list(overrides or []), seed=seed, progress=not quiet)
    counts = ", ".join(f"{n} {state}" for state, n in result.states.items())
    if result.best_value is None:
        err_console.print(f"no trial of study {result.study_name} completed ({counts}): best.yaml not written -> "
                          f"{result.out}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"best valid {result.metric} {result.best_value:.4f} at trial {result.best_trial} of study "
                  f"{result.study_name} ({counts}; {result.trials_run} run now) -> {result.out}",
                  highlight=False, markup=False, soft_wrap=True)
    console.print(f"train it: igt train {result.best_config.data.dataset} --config {result.out / 'best.yaml'}",
                  highlight=False, markup=False, soft_wrap=True)


@app.command()
def datasets() -> None:
    """List the built-in datasets and whether they are available offline."""
    from igt.data import dataset_catalog

    table = Table(title="igt datasets")
    for column in ("name", "rows", "graphs", "task", "metric", "source", "available"):
        table.add_column(column)
    missing = []
    for row in dataset_catalog():
        available = "yes" if row["available"] else "no"
        table.add_row(row["name"], str(row["molecules"]), str(row["graphs"]), row["task"], row["metric"], row["source"], available)
        if not row["available"]:
            missing.append(f"{row['name']}: {row['how_to_get']}")
    # Piped or captured output has no terminal width; do not squeeze the table into 80 columns.
    out = console if console.is_terminal else Console(width=140)
    out.print(table)
    for line in missing:
        out.print(f"to get {line}")


@app.command()
def bench(
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results to this JSON file."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes: checks the plumbing, numbers are noisy."),
    ddp: bool = typer.Option(False, "--ddp", help="Also measure data-parallel training: graphs/s of 2 gloo processes over 1 (slow)."),
) -> None:
    """Speed and memory ratios against peer implementations, measured in this process."""
    if json_path is not None:
        from igt.fileio import check_writable_folder

        check_writable_folder(json_path.parent, "--json")
    from igt.bench import run_benchmarks
    from igt.runtime import route_rdkit_logs

    route_rdkit_logs()

    results = run_benchmarks(quick=quick, progress=True, ddp=ddp)
    console.print_json(json.dumps(results))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        from igt.fileio import atomic_write_text

        atomic_write_text(json_path, json.dumps(results, indent=2) + "\n")


def _multi_value_command(*options: str) -> type[typer.core.TyperCommand]:
    """A command class whose ``options`` take several values (``--models gin gps igt-n``);
    Click itself takes one value per occurrence."""

    class Command(typer.core.TyperCommand):
        def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
            from igt.reproduce import expand_list_options

            ctx.meta["igt_argv"] = list(args)
            return super().parse_args(ctx, expand_list_options(list(args), set(options)))

    return Command


@app.command(cls=_multi_value_command("--datasets", "--models"))
def reproduce(
    ctx: typer.Context,
    suite: str = typer.Option("quick", "--suite", help="quick, full, or a suite YAML file."),
    datasets: Optional[list[str]] = typer.Option(None, "--datasets", help="Only these datasets of the suite (several values, or comma-separated)."),
    models: Optional[list[str]] = typer.Option(None, "--models", help="Replace the suite's models, e.g. gin gps 'igt-n\\[adversarial=false]'."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds 0..N-1 instead of the suite's."),
    out: Path = typer.Option(Path("runs/reproduce"), "--out", help="Results folder: runs/, results.csv, RESULTS.md, plots/ (the committed tables: --out results)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Override of every run: section.key=value (repeatable)."),
    report_only: bool = typer.Option(False, "--report-only", help="Only rebuild results.csv, RESULTS.md and plots from finished runs."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the grid and what is already finished; train nothing."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads of every run, recorded in its config (1 is fastest on a busy shared machine)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    verify: Optional[int] = typer.Option(None, "--verify", help="Re-train N randomly chosen finished runs of --out at their recorded commits; exit 1 naming any whose test metric or other recorded number (not timings) differs (relative 1e-6)."),
    verify_seed: int = typer.Option(0, "--verify-seed", help="Seed of the --verify draw."),
    any_machine: bool = typer.Option(False, "--any-machine", help="--verify draws from runs trained on any machine, not only on this CPU model (other CPUs round differently: docs/reproducibility.md)."),
    redo_before: Optional[str] = typer.Option(None, "--redo-before", metavar="REV", help="Also re-train the finished runs trained at a commit before REV (neither REV nor a descendant; unknown commits count as before), e.g. after a fix, even where their config differs from the grid entry; each old run stays until its new one has finished."),
) -> None:
    """Train the grid dataset x model x seed of a suite (resumable), then write results.csv,
    RESULTS.md and plots. Exit status 1 when a run failed or a folder holds another run."""
    import shlex

    if verify is not None:
        from igt.reproduce import cpu_machine
        from igt.verify import choose_runs, finished_runs, iter_lines, split_by_machine, verify_runs

        runs = finished_runs(out, datasets)
        if not any_machine:
            runs, elsewhere = split_by_machine(runs)
            if elsewhere:
                others = ", ".join(f"{machine}: {count}" for machine, count in sorted(elsewhere.items()))
                console.print(f"not drawn: {sum(elsewhere.values())} runs trained on another machine ({others}); "
                              f"this is {cpu_machine()}, whose kernels round differently (docs/reproducibility.md); "
                              "--any-machine draws them too", highlight=False, markup=False, soft_wrap=True)
            if not runs:
                raise IgtError(f"no finished run in {out / 'runs'} was trained on this machine ({cpu_machine()}); "
                               "--any-machine re-trains runs of other machines")
        chosen = choose_runs(runs, verify, verify_seed)
        console.print(f"verifying {len(chosen)} runs of {out / 'runs'}", highlight=False, markup=False)
        results = verify_runs(chosen, log=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True))
        for line in iter_lines(results):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        if not all(r.ok for r in results):
            raise typer.Exit(1)
        return

    from collections import Counter

    from rich.markup import escape

    from igt.fileio import check_writable_folder
    from igt.reproduce import CommitCutoff, build_grid, code_commit, job_state, load_suite, run_grid
    from igt.results import build_report
    from igt.runtime import route_rdkit_logs

    if not dry_run:
        check_writable_folder(out, "results")
    route_rdkit_logs()

    command = shlex.join(["igt", "reproduce", *ctx.meta.get("igt_argv", [])])
    commit = code_commit()
    failed = 0
    cutoff = CommitCutoff.resolve(redo_before, current=commit) if redo_before is not None and not report_only else None
    if not report_only:
        jobs = build_grid(load_suite(suite), datasets, models, seeds, overrides)
        if dry_run:
            states = Counter()
            for job in jobs:
                state = job_state(job, out, cutoff).replace("pending", "to run")
                states[state] += 1
                console.print(f"{job.dataset}  {job.label}  seed {job.seed}: {state}", highlight=False, markup=False)
            console.print(f"{len(jobs)} runs: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())),
                          highlight=False, markup=False)
            return
        result = run_grid(jobs, out, command=command, commit=commit, progress=not quiet, threads=threads,
                          redo_before=cutoff)
        failed = len(result.failed) + len(result.conflicts)
        console.print(
            f"{len(result.trained)} trained, {result.skipped} already finished, {len(result.failed)} failed, "
            f"{len(result.conflicts)} conflicting (of {result.total})", highlight=False, soft_wrap=True,
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


_RUNS_HELP = ("Run folders written by `igt train` (or their checkpoint.pt); several runs (e.g. seeds) form an "
              "ensemble: mean and standard deviation of each prediction. With --model: one `igt reproduce` results folder.")
_LABEL_HELP = "With a results folder: the model label whose seeds form the ensemble (results/runs/<dataset>/<label>/seed*/)."
_DATASET_HELP = "With --model: the dataset of the results folder's runs."


def _resolve_runs(run_dirs: list[Path], model_label: Optional[str], dataset: Optional[str]) -> list[Path]:
    """The run folders, each with a checkpoint (one-line error naming the first without)."""
    from igt.predict import resolve_runs

    runs = resolve_runs(run_dirs, model_label, dataset)
    for run in runs:
        _require_checkpoint(run)
    return runs


def _input_molecules(model, smiles: Optional[list[str]], input_csv: Optional[Path], smiles_column: Optional[str]):
    """``(frame or None, smiles list)`` from exactly one of ``--smiles`` and ``--input``."""
    import pandas as pd

    from igt.predict import read_smiles_csv

    if bool(smiles) == (input_csv is not None):
        raise IgtError("give molecules with either --smiles S [S ...] or --input FILE.csv (exactly one)")
    if smiles:
        return pd.DataFrame({"smiles": list(smiles)}), "smiles"
    return read_smiles_csv(input_csv, smiles_column, fallback=model.run.data.smiles_column)


@app.command(cls=_multi_value_command("--smiles"))
def predict(
    run_dirs: list[Path] = typer.Argument(..., help=_RUNS_HELP),
    model_label: Optional[str] = typer.Option(None, "--model", "-m", help=_LABEL_HELP),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    smiles: Optional[list[str]] = typer.Option(None, "--smiles", help="Molecules to predict (several values)."),
    input_csv: Optional[Path] = typer.Option(None, "--input", help="CSV file with a SMILES column."),
    smiles_column: Optional[str] = typer.Option(None, "--smiles-column", help="SMILES column of --input (default: 'smiles')."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write a CSV: the input's rows and columns plus predictions and 'error'."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow replacing an existing --output file."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads (default: the run's train.threads)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Predict new molecules: probabilities (classification) or values (regression), one column
    per task (several runs: the mean, and <column>_std). Exit status 1 when some SMILES could not
    be read (their 'error' says why)."""
    if output is not None and output.exists() and not overwrite:
        raise IgtError(f"{output}: already exists; choose another --output or pass --overwrite")
    if output is not None:
        from igt.fileio import check_writable_folder

        if output.is_dir():
            raise IgtError(f"{output}: is a folder; --output names a CSV file")
        check_writable_folder(output.parent, "--output", name=output)
    runs = _resolve_runs(run_dirs, model_label, dataset)
    from rich.markup import escape

    from igt.predict import load_ensemble, predict_ensemble, predict_smiles, prediction_frame
    from igt.runtime import route_rdkit_logs

    route_rdkit_logs()
    models = load_ensemble(runs, threads=threads)
    model = models[0]
    frame, column = _input_molecules(model, smiles, input_csv, smiles_column)
    if len(models) > 1:
        result = predict_ensemble(models, frame[column].tolist(), progress=not quiet)
    else:
        result = predict_smiles(model, frame[column].tolist(), progress=not quiet)
    table = prediction_frame(frame, result)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        from igt.fileio import atomic_write

        atomic_write(output, lambda handle: table.to_csv(handle, index=False, float_format="%.6g"), newline="")
        console.print(f"{len(table) - result.failed} predicted, {result.failed} failed -> {output}",
                      highlight=False, markup=False, soft_wrap=True)
    else:
        name = str(runs[0]) + (f" (+{len(runs) - 1} runs: mean, std)" if len(runs) > 1 else "")
        shown = Table(title=f"igt predict: {escape(name)}")
        for name in table.columns:
            shown.add_column(escape(str(name)))
        for row in table.itertuples(index=False):
            shown.add_row(*(escape(f"{v:.4f}" if isinstance(v, float) else str(v)) for v in row))
        console.print(shown)
    if result.failed:
        err_console.print(f"{result.failed} of {len(table)} molecules could not be predicted (see the error column)",
                          highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command(cls=_multi_value_command("--smiles"))
def explain(
    run_dirs: list[Path] = typer.Argument(..., help=_RUNS_HELP),
    out: Path = typer.Option(..., "--out", help="Report folder: index.html, rationale.csv, rationale.json, fragments.csv, fragment_summary.csv, images/."),
    model_label: Optional[str] = typer.Option(None, "--model", "-m", help=_LABEL_HELP),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    smiles: Optional[list[str]] = typer.Option(None, "--smiles", help="Molecules to explain (several values)."),
    input_csv: Optional[Path] = typer.Option(None, "--input", help="CSV file with a SMILES column."),
    smiles_column: Optional[str] = typer.Option(None, "--smiles-column", help="SMILES column of --input (default: 'smiles')."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="Column of --input naming each molecule (default: row number)."),
    split: Optional[str] = typer.Option(None, "--split", help="Explain a split (train, valid, test) of the run's own data."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N molecules."),
    top_ratio: Optional[float] = typer.Option(None, "--top-ratio", help="Fragments of the top fraction of atoms by score (default: atoms scored above 0.5)."),
    images: bool = typer.Option(True, "--images/--no-images", help="Draw pictures (the slow part for thousands of molecules)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow replacing an existing report in --out."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads (default: the run's train.threads)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Explain predictions: per-atom rationale scores, rationale fragments (SMILES/SMARTS and a
    table of recurring fragments), pictures and an HTML report (index.html). Several runs: mean
    and spread. Exit status 1 when some SMILES could not be read."""
    if sum([bool(smiles), input_csv is not None, split is not None]) != 1:
        raise IgtError("give molecules with exactly one of --smiles, --input or --split")
    if limit is not None and limit < 1:
        raise IgtError(f"--limit {limit}: expected a positive number")
    if top_ratio is not None and not 0 < top_ratio <= 1:
        raise IgtError(f"--top-ratio {top_ratio}: expected a fraction in (0, 1]")
    from igt.fileio import check_writable_folder

    if out.exists() and not out.is_dir():
        raise IgtError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:  # before the slow part
        raise IgtError(f"{out}: already holds files; choose another --out or pass --overwrite")
    check_writable_folder(out, "report")
    runs = _resolve_runs(run_dirs, model_label, dataset)
    from igt.explain import explain_smiles, explain_split, write_report
    from igt.predict import load_ensemble
    from igt.runtime import route_rdkit_logs

    route_rdkit_logs()
    models = load_ensemble(runs, threads=threads)
    model = models[0]
    if split is not None:
        explanations = explain_split(models, split, limit, progress=not quiet)
    else:
        frame, column = _input_molecules(model, smiles, input_csv, smiles_column)
        if limit is not None:
            frame = frame.iloc[:limit]
        if id_column is not None and id_column not in frame.columns:
            raise IgtError(f"{input_csv}: no column {id_column!r}; columns are {list(frame.columns)}")
        ids = frame[id_column].tolist() if id_column else None
        labels = _known_labels(frame, model)
        explanations = explain_smiles(models, frame[column].tolist(), ids=ids, labels=labels, progress=not quiet)
    report = write_report(models, explanations, out, overwrite=overwrite, images=images, progress=not quiet,
                          top_ratio=top_ratio)
    console.print(f"{report.explained} explained, {report.failed} failed -> {report.index_html}",
                  highlight=False, markup=False, soft_wrap=True)
    if report.fragment_summary:
        top = ", ".join(f"{row['fragment']} ({row['molecules']})" for row in report.fragment_summary[:5])
        console.print(f"most frequent rationale fragments: {top} -> {report.fragment_summary_csv}",
                      highlight=False, markup=False, soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


def _known_labels(frame, model):
    """Labels from input columns named like the run's tasks (binary/regression), else None."""
    import numpy as np
    import pandas as pd

    names = list(model.task.task_names)
    if model.task.type == "multiclass" or not names or not all(n in frame.columns for n in names):
        return None
    return np.stack([pd.to_numeric(frame[n], errors="coerce").to_numpy(dtype=float) for n in names], axis=1)


#: OS errors that mean "this path cannot be written" (a user error), not a bug in igt.
_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENOSPC, errno.EDQUOT}


def _terminated(signum, frame) -> None:  # noqa: ARG001
    # `kill` (SIGTERM) unwinds like Ctrl-C, so a run being built cleans up its partial folder.
    raise KeyboardInterrupt


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminated)
    try:
        try:
            app()
        except IgtError as exc:
            if not _report_to_launcher(exc):
                err_console.print(f"[red]error:[/] {_escape(' '.join(str(exc).split()))}", highlight=False,
                                  soft_wrap=True)
            sys.exit(2)
        except OSError as exc:
            if exc.errno not in _PATH_ERRNOS or not exc.filename:
                raise
            err_console.print(f"[red]error:[/] {_escape(str(exc.filename))}: "
                              f"{_escape(exc.strerror or exc.__class__.__name__)}", highlight=False, soft_wrap=True)
            sys.exit(2)
        except PeerLost as exc:
            err_console.print(f"[red]error:[/] {_escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(1)
    except KeyboardInterrupt:  # also one that comes while an error above is reported
        # A torchrun worker is stopped by its launcher (which says why), not by a user.
        if "TORCHELASTIC_RUN_ID" not in os.environ:
            err_console.print("interrupted")
        sys.exit(130)
    finally:
        # A SIGTERM while the interpreter shuts down (torchrun stopping a worker that has failed
        # already) must not raise in atexit callbacks.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _report_to_launcher(exc: IgtError) -> bool:
    """In a torchrun worker other than rank 0, hand the error to the launcher (torchrun's error
    file, which ``igt train --nproc`` reads) instead of printing it: every worker meets the same bad
    input, and one line says it."""
    if isinstance(exc, EchoedError):
        return True  # rank 0's error, which rank 0 reports
    if os.environ.get("RANK", "0") == "0" or not os.environ.get("TORCHELASTIC_ERROR_FILE"):
        return False
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

    ErrorHandler().record_exception(exc)
    return True


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


if __name__ == "__main__":
    main()
