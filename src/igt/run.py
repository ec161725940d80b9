"""A run folder: train from a RunConfig and write config, history, metrics and checkpoint;
reload it to evaluate."""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import json
import os
import shutil
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from igt.version import __version__
from igt.config import METHOD_CONFIGS, BackboneConfig, MethodConfig, RunConfig
from igt.errors import IgtError
from igt.fileio import (atomic_write_text, check_output_folder, dataset_name, make_folder, pid_alive, remove_empty_folders,
                        safe_name)
from igt.models import is_fingerprint_model
from igt.runtime import kernel_fingerprint
from igt.train.checkpoint import load_model, save_checkpoint
from igt.train.resume import (has_resume_state, left_resume_state, read_resume_state, remove_resume_state,
                              write_resume_state)
from igt.train.trainer import (EpochCallback, configure_threads, evaluate, fit, make_loaders, resolve_device,
                               seed_everything)

if TYPE_CHECKING:  # pragma: no cover
    from igt.train.distributed import Distributed, WorkerEnv

RUN_FILES = ("config.yaml", "history.csv", "metrics.json", "checkpoint.pt")


def model_label(run: RunConfig, backbone_baseline: BackboneConfig | None = None,
                method_baseline: MethodConfig | None = None) -> str:
    """``gps`` for ERM backbones, ``igt-n`` for methods. In brackets: options that differ from the
    method's defaults (ERM's pooling too; a non-default backbone under a method as ``backbone=``),
    then backbone options that differ from ``backbone_baseline`` (default: :class:`BackboneConfig`'s
    defaults) as ``backbone.key=value``; ``method_baseline`` replaces the method's defaults. Data
    and training options are not part of the label."""
    changed = _changed_options(run.method, method_baseline or METHOD_CONFIGS.get(run.method.name)())
    if is_fingerprint_model(run.method.name):  # no graph encoder: the backbone section is unused
        return run.method.name + (f"[{','.join(changed)}]" if changed else "")
    if run.method.name != "erm" and run.backbone.name != "gps":
        changed.insert(0, f"backbone={run.backbone.name}")
    changed += _changed_options(run.backbone, backbone_baseline or BackboneConfig(), prefix="backbone.")
    name = run.backbone.name if run.method.name == "erm" else run.method.name
    return name + (f"[{','.join(changed)}]" if changed else "")


def _changed_options(config: Any, reference: Any, prefix: str = "") -> list[str]:
    """``key=value`` for each field of ``config`` (but ``name``) that differs from ``reference``."""
    return [
        f"{prefix}{f.name}={_label_value(getattr(config, f.name))}"
        for f in dataclasses.fields(config)
        if f.name != "name" and getattr(config, f.name) != getattr(reference, f.name)
    ]


def _label_value(value: Any) -> str:
    """Values as they are written in ``--set``: ``false`` rather than Python's ``False``."""
    return str(value).lower() if isinstance(value, bool) else str(value)


#: A run is built in ``.<name>.partial-<pid>`` beside its folder and renamed into place when it
#: has finished, so a failed or interrupted run leaves no folder behind (nothing that pushes later
#: default names to ``-2``, no new config.yaml beside an old checkpoint). Hidden, so default names
#: ignore it; one left by a killed process is removed by the next run of that name.
PARTIAL = ".partial-"
_REPLACED = ".replaced-"


@contextmanager
def staged_run_dir(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to write a run into; on success it becomes ``out``
    (with ``overwrite``, the old folder is replaced only now). On any exception, Ctrl-C included,
    the temporary folder and the parents this created are removed."""
    check_output_folder(Path(out), overwrite, "run")
    out = Path(os.path.abspath(out))
    created = make_folder(out.parent, "run")
    _remove_stale_partials(out)
    stage = out.parent / f".{out.name}{PARTIAL}{os.getpid()}"
    try:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        yield stage
        _install(stage, out, overwrite)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        remove_empty_folders(created)
        raise


def _remove_stale_partials(out: Path) -> None:
    for marker in (PARTIAL, _REPLACED):
        for stale in out.parent.glob(f".{glob.escape(out.name)}{marker}*"):
            pid = stale.name.rpartition("-")[2]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)


def _install(stage: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished ``stage`` to ``out`` (an empty folder there is replaced by the rename).
    With ``overwrite``, files of the old folder that the new run does not write (``igt
    reproduce``'s provenance.json, a user's notes) are copied over first: only the run's own
    files are replaced, as before, but all at once."""
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:  # written by someone else while this run trained
            raise IgtError(f"{out}: already holds files; choose another --out or pass --overwrite")
        for entry in out.iterdir():
            if not (stage / entry.name).exists():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, stage / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, stage / entry.name, follow_symlinks=False)
        old = out.parent / f".{out.name}{_REPLACED}{os.getpid()}"
        os.rename(out, old)
        try:
            os.rename(stage, out)
        except BaseException:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(stage, out)


def default_run_dir(root: Path, run: RunConfig) -> Path:
    """``runs/<dataset>-<model>-seed<k>``, with ``-2``, ``-3``... so earlier runs are never touched
    (nor the resume state of an interrupted one)."""
    dataset = dataset_name(run.data.dataset)
    stem = safe_name(f"{dataset}-{model_label(run)}-seed{run.train.seed}")
    candidate, n = root / stem, 1
    while candidate.exists() or has_resume_state(candidate):
        n += 1
        candidate = root / f"{stem}-{n}"
    return candidate


def _history_csv(history: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def load_split_data(run: RunConfig, dist: "Distributed | None" = None):
    """Dataset, split indices and loaders exactly as a run with this config sees them (with
    ``dist``: this data-parallel worker's share of each loader)."""
    from igt.data import load_dataset
    from igt.data.splits import make_split

    dataset = load_dataset(run.data)
    split = make_split(dataset, run.data, seed=run.train.seed)
    check_split_sizes(run, len(dataset), split)
    return dataset, split, make_loaders(dataset, split, run.train, dist)


def check_split_sizes(run: RunConfig, num_graphs: int, split: dict) -> None:
    """Every split needs a graph to score (and training two: a lone last graph is dropped)."""
    sizes = {name: int(idx.numel()) for name, idx in split.items()}
    if sizes.get("train", 0) >= 2 and all(n >= 1 for n in sizes.values()):
        return
    limit = f" (data.limit={run.data.limit})" if run.data.limit is not None else ""
    shown = ", ".join(f"{name} {n}" for name, n in sizes.items())
    raise IgtError(
        f"{run.data.dataset}{limit}: too small to split: {num_graphs} graphs gave {shown}; "
        "training needs at least 2 graphs and valid and test 1 each (use more graphs or other data.split_fractions)"
    )


def training_task(dataset, split: dict, run: RunConfig):
    """The task a checkpoint saves: the dataset's, with the training split's target scaler when
    regression targets are standardised (``train.standardize_targets``) and, for molecules, the
    training split's elements, atom types and largest size, so that ``igt predict`` can flag new
    molecules unlike any the model saw (:func:`igt.data.standardize.with_training_domain`)."""
    from igt.data.featurize import ATOM_VOCAB
    from igt.data.standardize import with_training_domain

    task = dataset.task
    if dataset.smiles is not None and dataset.x.dim() == 2 and dataset.x.shape[1] == len(ATOM_VOCAB):
        task = with_training_domain(task, dataset.x, dataset.node_ptr, split["train"])
    if task.type == "regression" and run.train.standardize_targets:
        task = task.with_target_scaler(dataset.y[split["train"]])
    return task


def train_run(
    run: RunConfig, out: Path, overwrite: bool = False, progress: bool = True, label: str | None = None, *,
    keep_resume_state: bool = False, resume: bool = False, on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train one model and write ``config.yaml``, ``history.csv``, ``metrics.json`` and
    ``checkpoint.pt`` into ``out``. Returns the metrics (with the explanation metrics of
    :func:`igt.explain.metrics.explanation_metrics` for classification tasks). ``label`` is the model label recorded in
    ``metrics.json`` (default :func:`model_label`; ``igt reproduce`` passes its grid label).

    In a worker of ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set, more than one
    process) this is data-parallel training (:mod:`igt.train.distributed`): only rank 0 writes,
    and the other ranks return ``{}``.

    ``keep_resume_state``: rewrite the resume state beside ``out`` after every epoch and leave it
    when the run fails (:mod:`igt.train.resume`). ``resume``: continue the interrupted run of
    ``out`` from that state (``run`` must be its config); a job restarted by ``torchrun
    --max-restarts`` does so by itself. ``on_epoch`` is :func:`~igt.train.trainer.fit`'s.
    """
    from igt.train.distributed import process_group, worker_env

    env = worker_env()
    if env is None or env.world_size == 1:
        resolve_device(run.train.device)  # cuda without CUDA fails before anything is loaded or written
        return _train_run(run, Path(out), overwrite, progress, label, keep_resume_state or resume, resume, on_epoch,
                          env, None)
    if is_fingerprint_model(run.method.name):
        raise IgtError(f"{run.method.name} is fitted by scikit-learn in one process: train it without torchrun or --nproc")
    with process_group(env, run.train.device) as dist:
        return _train_run(run, Path(out), overwrite, progress and dist.is_main, label, keep_resume_state or resume,
                          resume, on_epoch, env, dist)


def _train_run(run: RunConfig, out: Path, overwrite: bool, progress: bool, label: str | None, keep_state: bool,
               resume: bool, on_epoch: EpochCallback | None, env: "WorkerEnv | None",
               dist: "Distributed | None") -> dict[str, Any]:
    from igt.data.splits import describe_split
    from igt.methods import build_method

    main = dist is None or dist.is_main
    world_size = dist.world_size if dist is not None else 1
    label = label or model_label(run)
    state = _on_main(dist, lambda: _resume_plan(run, out, overwrite, resume, keep_state, env, world_size))
    with staged_run_dir(out, overwrite) if main else nullcontext(None) as stage:
        configure_threads(run.train.threads)
        seed_everything(run.train.seed)
        # Rank 0 loads first: it fills the data cache the others read, and its bad input stops them.
        loaded = _on_main(dist, lambda: load_split_data(run, dist), share=False)
        dataset, split, loaders = loaded if main else load_split_data(run, dist)
        seed_everything(run.train.seed)  # model init does not depend on how much data loading drew
        task = training_task(dataset, split, run)
        method = build_method(run, task, dataset.features)
        if dist is not None and not main:
            # Every worker starts from the same weights (DDP copies rank 0's); its dropout masks and
            # IGT's graph pairings are its own, drawn from a seed of its rank.
            import numpy as np

            seed_everything(int(np.random.SeedSequence([run.train.seed, dist.rank]).generate_state(1)[0]))
        if main:
            run.save(stage / "config.yaml")
        if is_fingerprint_model(run.method.name):  # fitted once by scikit-learn, not by gradients
            from igt.train.fingerprint import fit_fingerprint_model

            result = fit_fingerprint_model(method, dataset, split, loaders, run.train.seed)
        else:
            # fit calls it on rank 0 only (the others take part in gathering their random states)
            header = {"config": run.to_dict(), "label": label, "world_size": world_size}
            save_state = (lambda training: write_resume_state(out, {**header, **training})) if keep_state else None
            result = fit(method, loaders, run.train, progress=progress, on_epoch=on_epoch, dist=dist, state=state,
                         save_state=save_state)
        if not main:
            return {}
        epoch_seconds = [row["train_seconds"] for row in result.history]
        metrics = {
            "dataset": run.data.dataset,
            "model": label,
            "method": run.method.name,
            "backbone": None if is_fingerprint_model(run.method.name) else run.backbone.name,
            "seed": run.train.seed,
            "best_epoch": result.best_epoch,
            "epochs": run.train.epochs,
            "metric": dataset.task.metric,
            "valid": result.valid["metric"],
            "test": result.test["metric"],
            **{f"valid_{k}": v for k, v in result.valid.items() if k != "metric"},
            **{f"test_{k}": v for k, v in result.test.items() if k != "metric"},
            "train_seconds": result.train_seconds,
            "epoch_train_seconds": sum(epoch_seconds) / max(len(epoch_seconds), 1),
            "num_parameters": sum(p.numel() for p in method.parameters()),
            "num_graphs": {name: int(idx.numel()) for name, idx in split.items()},
            "split": describe_split(dataset, run.data, seed=run.train.seed),
            "world_size": world_size,
            "igt_version": __version__,
            "kernels": kernel_fingerprint(),
        }
        from igt.explain.metrics import explanation_metrics

        # Explanation metrics (docs/fidelity.md): test-split fidelity of the method's rationale, or
        # PyG post-hoc explainers on ERM backbones; none for regression. On the whole test split
        # (a data-parallel worker's loaders hold its share only).
        device = dist.device if dist is not None else resolve_device(run.train.device)
        test_loader = loaders["test"] if dist is None else make_loaders(dataset, {"test": split["test"]}, run.train)["test"]
        metrics.update(explanation_metrics(method, dataset, split, test_loader, run, device))
        method.cpu()
        save_checkpoint(stage / "checkpoint.pt", method, run, task, dataset.features, extra={"metrics": metrics})
        atomic_write_text(stage / "history.csv", _history_csv(result.history))
        from igt.plots import plot_curves

        plot_curves(stage / "history.csv", stage / "curves.png", metric=dataset.task.metric)
        atomic_write_text(stage / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if keep_state:
        remove_resume_state(out)  # the run is in place: nothing left to resume
    return metrics


def _on_main(dist: "Distributed | None", work: Callable[[], Any], share: bool = True) -> Any:
    """``work()`` on rank 0; the other workers wait for it and get its result (``share``; else
    ``None``) or raise its :class:`IgtError` again (as :class:`EchoedError`, which rank 0 reports):
    a bad input stops every worker at once rather than leaving them waiting for rank 0."""
    from igt.train.distributed import EchoedError

    if dist is None:
        return work()
    if not dist.is_main:
        failed, value = dist.broadcast(None)
        if failed:
            raise EchoedError(value)
        return value
    try:
        value = work()
    except IgtError as exc:
        dist.broadcast((True, str(exc)))
        raise
    dist.broadcast((False, value if share else None))
    return value


def _resume_plan(run: RunConfig, out: Path, overwrite: bool, resume: bool, keep_state: bool, env: "WorkerEnv | None",
                 world_size: int) -> dict[str, Any] | None:
    """The saved state training continues from (``None``: from the start), checked against this run."""
    check_output_folder(out, overwrite, "run")
    restarted = env is not None and env.restart_count > 0
    if not resume and keep_state and has_resume_state(out) and not restarted:
        if not overwrite:
            raise left_resume_state(out)
        remove_resume_state(out)
    if not (resume or (restarted and keep_state and has_resume_state(out))):
        return None
    state = read_resume_state(out)
    if state["config"] != run.to_dict():
        raise IgtError(f"{out}: the interrupted run had another config; resume it with `igt train --resume {out}` "
                       "and no other options")
    if state["world_size"] != world_size:
        raise IgtError(f"{out}: the interrupted run trained with {state['world_size']} process(es), this one with "
                       f"{world_size}; resume with --nproc {state['world_size']} (each process's share of the data "
                       "depends on it)")
    return state


def evaluate_run(run_dir: Path, split_name: str = "test") -> dict[str, Any]:
    """Reload a run's checkpoint and score it on one split of its own data."""
    method, run, _, _ = load_model(Path(run_dir))
    configure_threads(run.train.threads)
    _, split, loaders = load_split_data(run)
    if split_name not in loaders:
        raise IgtError(f"unknown split {split_name!r}; expected one of {sorted(loaders)}")
    device = resolve_device(run.train.device)
    method.to(device)
    return {"split": split_name, "metric_name": method.task.metric, **evaluate(method, loaders[split_name], device)}


def run_explanation_metrics(run_dir: Path) -> dict[str, Any]:
    """Compute :func:`igt.explain.metrics.explanation_metrics` of a finished run folder (its checkpoint, data and
    split, its ``explain`` options: defaults for runs saved before the section existed)."""
    from igt.explain.metrics import explanation_metrics

    method, run, _, _ = load_model(Path(run_dir))
    configure_threads(run.train.threads)
    dataset, split, loaders = load_split_data(run)
    device = resolve_device(run.train.device)
    method.to(device)
    return explanation_metrics(method, dataset, split, loaders["test"], run, device)


def update_run_metrics(run_dir: Path) -> dict[str, Any]:
    """Add :func:`run_explanation_metrics` to the run's ``metrics.json`` (atomic rewrite; other
    keys kept, explanation keys of an earlier scoring replaced). Returns the new keys."""
    from igt.explain.metrics import is_explanation_key

    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise IgtError(f"{path}: not found; is {run_dir} a finished run folder?")
    found = run_explanation_metrics(run_dir)
    metrics = json.loads(path.read_text())
    metrics = {k: v for k, v in metrics.items() if not is_explanation_key(k)}
    metrics.update(found)
    atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")
    return found
