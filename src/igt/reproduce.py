"""``igt reproduce``: train a grid dataset x model x seed from a suite file, resumably.

A *suite* (``igt/suites/quick.yaml``, ``igt/suites/full.yaml`` or any YAML file of the same shape)
lists dataset groups, each with the :class:`~igt.config.RunConfig` overrides, models and seeds
of its runs, plus ablation models added on some datasets::

    defaults: {train.device: cpu}           # overrides of every run
    groups:
      - datasets: [bace, bbbp]
        set: {train.epochs: 40, backbone.hidden: 64}
        models: [gin, gps, igt-n]
        seeds: 5                             # seeds 0..4 (or an explicit list)
    ablations:
      - datasets: [bbbp]                     # must belong to a group: inherits its set and seeds
        models: ["igt-n[adversarial=false]"]

A model is an ``igt train --model`` name, optionally with options in brackets:
``igt-n[adversarial=false,split=hard]``. A bare key is a method option (``method.key``),
``backbone`` names the backbone (``backbone.name``), ``preset`` applies a named published recipe
(``gin[preset=gsat-paper]``, ``igt/presets/``) before the other options, and a dotted key is
passed as it is (``igt-n[backbone.hidden=32]``). Rows are labelled by
:func:`igt.run.model_label` of the resolved run, which lists only options that differ from
the defaults (backbone options: from the suite's), in field order, then ``@preset``.

A group with ``tune: {trials: 12, epochs: 30}`` tunes each of its models first (:func:`igt.tune.tune`,
validation split only, the group's ``set`` as the starting point, model options and presets fixed)
into ``OUT/tuning/<dataset>/<model label>/`` (``best.yaml``, the study's summary, trials and plots;
resumable), then trains ``best.yaml`` with each seed, labelled ``<model label>@tuned``.

Each run trains into ``OUT/runs/<dataset>/<model label>/seed<k>/``. A folder with a
``metrics.json`` whose ``config.yaml`` resolves to the grid entry's config (execution-only
options aside: threads, device, test-curve logging) is finished and never touched again. A
finished folder holding a *different* run (another suite's budget, older data) is a conflict: it
is left alone and reported, never overwritten. Any other folder (a run killed halfway, or one
that failed) is cleared and trained again from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import traceback
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from igt.config import RunConfig
from igt.errors import IgtError
from igt.fileio import atomic_write_text, dataset_folder, pid_alive, process_name, safe_name
from igt.models import TUNED_SUFFIX, is_fingerprint_model
from igt.runtime import cpu_model

SUITES = ("quick", "full", "tuned")
PROVENANCE_FILE = "provenance.json"


# ----------------------------------------------------------------------------- model specs


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets, so ``a=[1,2],b=3`` gives two items."""
    items, depth, current = [], 0, []
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == sep and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def parse_model_spec(spec: str) -> tuple[str, list[str]]:
    """``igt-n[adversarial=false,split=hard]`` -> ``("igt-n", ["method.adversarial=false", "method.split=hard"])``.

    Bare keys are method options, ``backbone=NAME`` selects the backbone, dotted keys
    (``backbone.hidden=32``) are passed through unchanged.
    """
    spec = spec.strip()
    if "[" not in spec:
        if not spec or "]" in spec:
            raise IgtError(f"model {spec!r}: expected NAME or NAME[key=value,...]")
        return spec, []
    name, _, rest = spec.partition("[")
    if not rest.endswith("]") or not name.strip():
        raise IgtError(f"model {spec!r}: expected NAME or NAME[key=value,...]")
    overrides = []
    for item in _split_top_level(rest[:-1]):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise IgtError(f"model {spec!r}: option {item!r} is not key=value")
        if key == "backbone":
            key = "backbone.name"
        elif key == "preset":
            pass
        elif "." not in key:
            key = f"method.{key}"
        overrides.append(f"{key}={value}")
    return name.strip(), overrides


def resolve_model_spec(base: RunConfig, spec: str) -> RunConfig:
    """The run of model ``spec`` on top of ``base`` (method/backbone first, then its preset, then
    its options)."""
    return _resolve_spec(base, spec)[0]


def _resolve_spec(base: RunConfig, spec: str) -> tuple[RunConfig, str | None]:
    """``(run, preset name or None)``."""
    from igt.config import preset_overrides
    from igt.models import resolve_model

    name, overrides = parse_model_spec(spec)
    presets = [item.partition("=")[2] for item in overrides if item.startswith("preset=")]
    overrides = [item for item in overrides if not item.startswith("preset=")]
    if len(presets) > 1:
        raise IgtError(f"model {spec!r}: one preset at most")
    model = resolve_model(base, name)
    if not presets:
        return model.with_overrides(overrides), None
    return model.with_overrides(preset_overrides(presets[0]) + overrides), presets[0]


def expand_list_options(args: list[str], names: set[str]) -> list[str]:
    """Let list options take several values: ``--models gin gps`` -> ``--models gin --models gps``.

    Values may also be comma-separated (``--models gin,gps``); commas inside brackets
    (``igt-n[a=1,b=2]``) stay with their model. Other arguments pass through unchanged.
    """
    out: list[str] = []
    current: str | None = None
    given = 0

    def close() -> None:
        if current is not None and not given:
            raise IgtError(f"{current} needs at least one value")

    for arg in args:
        if arg == "--" or (arg.startswith("-") and len(arg) > 1):
            close()
            option, eq, value = arg.partition("=")
            if arg != "--" and option in names:
                current, given = option, 0
                if eq:
                    values = _split_top_level(value)
                    out += [item for v in values for item in (current, v)]
                    given = len(values)
            else:
                current = None
                out.append(arg)
            continue
        if current is None:
            out.append(arg)
            continue
        values = _split_top_level(arg)
        out += [item for v in values for item in (current, v)]
        given += len(values)
    close()
    return out


# ----------------------------------------------------------------------------- suites


@dataclass(frozen=True)
class TuneSpec:
    """How a tuned group's model is tuned before its seeds train (:func:`igt.tune.tune`)."""

    trials: int
    epochs: int
    model: str  # the --model name
    defaults: tuple[str, ...]  # the suite's defaults and the group's set: the starting point, searched
    fixed: tuple[str, ...]  # the spec's options, its preset, --set: applied to every trial, not searched
    study: str  # folder of the study under OUT/tuning/

    def folder(self, out: Path) -> Path:
        return Path(out) / "tuning" / self.study

    def best_config(self, out: Path) -> RunConfig | None:
        """The study's ``best.yaml`` once it holds ``trials`` counted trials, else ``None``."""
        folder = self.folder(out)
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        counted = sum(summary.get("trials", {}).get(state, 0) for state in ("complete", "pruned"))
        if counted < self.trials or not (folder / "best.yaml").is_file():
            return None
        return RunConfig.load(folder / "best.yaml")


@dataclass
class Job:
    """One run of the grid. A tuned job's ``run`` is its untuned starting point until its study
    has finished (:func:`resolve_tuned`)."""

    dataset: str
    model: str  # the spec as written in the suite / on the command line
    label: str  # model_label of the resolved run: the table's row and the folder name
    seed: int
    run: RunConfig
    tune: TuneSpec | None = None
    tuned: bool = False  # ``run`` comes from the finished study's best.yaml

    def run_dir(self, out: Path) -> Path:
        return Path(out) / "runs" / dataset_folder(self.dataset) / safe_name(self.label) / f"seed{self.seed}"


def resolve_tuned(job: Job, out: Path) -> Job:
    """``job`` with its study's best config and its own seed (and threads) once the study has
    finished; unchanged otherwise (and for untuned jobs)."""
    if job.tune is None or job.tuned:
        return job
    best = job.tune.best_config(out)
    if best is None:
        return job
    run = best.with_overrides([f"train.seed={job.seed}", f"train.threads={job.run.train.threads}"])
    return replace(job, run=run, tuned=True)


def job_state(job: Job, out: Path, redo_before: CommitCutoff | None = None) -> str:
    """:func:`run_state` of the job's folder; ``to tune`` while a tuned job's study is unfinished;
    ``to redo`` for a finished run trained before ``redo_before``, also one whose config differs
    from the entry's (written before an option the entry sets existed, say)."""
    job = resolve_tuned(job, out)
    if job.tune is not None and not job.tuned:
        return "to tune"
    state = run_state(job.run_dir(out), job.run)
    if (state in ("finished", "conflict") and redo_before is not None
            and redo_before.is_older(recorded_commit(job.run_dir(out)))):
        return "to redo"
    return state


def suite_path(suite: str | Path) -> Path:
    """``quick`` / ``full`` (package data) or a path to a suite YAML file."""
    if str(suite) in SUITES:
        return Path(str(resources.files("igt") / "suites" / f"{suite}.yaml"))
    path = Path(suite)
    if not path.is_file():
        raise IgtError(f"suite {str(suite)!r}: not one of {', '.join(SUITES)} and not a YAML file")
    return path


def load_suite(suite: str | Path) -> dict[str, Any]:
    path = suite_path(suite)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise IgtError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("groups"), list) or not raw["groups"]:
        raise IgtError(f"{path}: a suite needs a non-empty 'groups' list")
    unknown = set(raw) - {"name", "description", "defaults", "groups", "ablations"}
    if unknown:
        raise IgtError(f"{path}: unknown suite key(s) {sorted(unknown)}")
    raw["_path"] = str(path)
    return raw


def _override_list(raw: Any, where: str) -> list[str]:
    """``{train.epochs: 3}`` or ``["train.epochs=3"]`` -> ``["train.epochs=3"]`` (JSON is valid YAML)."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        return [f"{key}={json.dumps(value)}" for key, value in raw.items()]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise IgtError(f"{where}: overrides must be a mapping key: value or a list of key=value strings")


def _seed_list(raw: Any, where: str) -> list[int]:
    if isinstance(raw, bool):
        raise IgtError(f"{where}: seeds must be a count or a list of integers")
    if isinstance(raw, int):
        return list(range(raw))
    if isinstance(raw, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in raw):
        return list(raw)
    raise IgtError(f"{where}: seeds must be a count or a list of integers")


def _as_list(raw: Any, where: str) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw:
        return [str(item) for item in raw]
    raise IgtError(f"{where}: expected a non-empty list")


def build_grid(
    suite: dict[str, Any],
    datasets: list[str] | None = None,
    models: list[str] | None = None,
    seeds: int | None = None,
    extra_overrides: list[str] | None = None,
) -> list[Job]:
    """The suite's jobs, dataset-major in suite order.

    Args:
        suite: A loaded suite (:func:`load_suite`).
        datasets: Keep only these datasets (each must be in the suite).
        models: Replace every dataset's models (and drop the ablations) by these.
        seeds: Replace every dataset's seeds by ``0..seeds-1``.
        extra_overrides: ``section.key=value`` applied last to every run.
    """
    where = suite.get("_path", "suite")
    defaults = _override_list(suite.get("defaults"), f"{where}: defaults")
    plan: dict[str, dict[str, Any]] = {}
    for i, group in enumerate(suite["groups"]):
        gwhere = f"{where}: groups[{i}]"
        if not isinstance(group, dict):
            raise IgtError(f"{gwhere}: expected a mapping")
        unknown = set(group) - {"name", "datasets", "set", "models", "seeds", "tune"}
        if unknown:
            raise IgtError(f"{gwhere}: unknown key(s) {sorted(unknown)}")
        for dataset in _as_list(group.get("datasets"), f"{gwhere}.datasets"):
            if dataset in plan:
                raise IgtError(f"{gwhere}: dataset {dataset!r} is in two groups")
            plan[dataset] = {
                "set": _override_list(group.get("set"), f"{gwhere}.set"),
                "models": _as_list(group.get("models"), f"{gwhere}.models"),
                "seeds": _seed_list(group.get("seeds", 1), f"{gwhere}.seeds"),
                "tune": _tune_budget(group.get("tune"), f"{gwhere}.tune"),
            }
    for i, ablation in enumerate(suite.get("ablations") or []):
        awhere = f"{where}: ablations[{i}]"
        for dataset in _as_list(ablation.get("datasets"), f"{awhere}.datasets"):
            if dataset not in plan:
                raise IgtError(f"{awhere}: dataset {dataset!r} is in no group")
            plan[dataset]["models"] = plan[dataset]["models"] + _as_list(ablation.get("models"), f"{awhere}.models")

    if datasets:
        missing = [d for d in datasets if d not in plan]
        if missing:
            raise IgtError(f"dataset(s) {missing} not in suite {where}; it has: {', '.join(plan)}")
        plan = {d: plan[d] for d in datasets}
    if seeds is not None and seeds < 1:
        raise IgtError("--seeds must be at least 1")

    jobs: list[Job] = []
    for dataset, entry in plan.items():
        base = RunConfig().with_overrides([*defaults, f"data.dataset={json.dumps(dataset)}", *entry["set"]])
        labels: dict[str, str] = {}
        for spec in models or entry["models"]:
            run, preset = _resolve_spec(base, spec)
            run = run.with_overrides(list(extra_overrides or []))
            label = _label(run, base, preset)
            if label in labels:
                raise IgtError(f"{dataset}: models {labels[label]!r} and {spec!r} are the same run ({label})")
            labels[label] = spec
            tune = None
            if entry["tune"] is not None:
                tune = _tune_spec(entry["tune"], dataset, spec, label, [*defaults, *entry["set"]], extra_overrides)
                run = run.with_overrides([f"train.epochs={tune.epochs}"])
                label += TUNED_SUFFIX
            for seed in range(seeds) if seeds is not None else entry["seeds"]:
                jobs.append(Job(dataset, spec, label, seed, run.with_overrides([f"train.seed={seed}"]), tune))
    return jobs


def _tune_budget(raw: Any, where: str) -> dict[str, int] | None:
    """A group's ``tune: {trials: N, epochs: E}`` (every model of the group gets the same)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"trials", "epochs"} or not all(
            isinstance(raw[k], int) and not isinstance(raw[k], bool) and raw[k] >= 1 for k in raw):
        raise IgtError(f"{where}: expected {{trials: N, epochs: E}} with N, E >= 1")
    return dict(raw)


def _tune_spec(budget: dict[str, int], dataset: str, spec: str, label: str, defaults: list[str],
               extra_overrides: list[str] | None) -> TuneSpec:
    from igt.config import preset_overrides

    name, options = parse_model_spec(spec)
    fixed: list[str] = []
    for option in options:  # the spec's own options are what this row is: never searched
        fixed += preset_overrides(option.partition("=")[2]) if option.startswith("preset=") else [option]
    return TuneSpec(budget["trials"], budget["epochs"], name, tuple(defaults), (*fixed, *(extra_overrides or [])),
                    f"{dataset_folder(dataset)}/{safe_name(label)}")


def _label(run: RunConfig, base: RunConfig, preset: str | None = None) -> str:
    """The run's model label; backbone options count only where they differ from the suite's
    (with the preset applied), method options where they differ from the method's defaults
    (with the preset's), and a preset is named last: ``gin[backbone.layers=3]@gsat-paper``."""
    from igt.config import preset_overrides
    from igt.run import model_label

    if preset is None:
        return model_label(run, replace(base.backbone, name=run.backbone.name))
    recipe = preset_overrides(preset)
    base = base.with_overrides(recipe)
    method = RunConfig().with_overrides([f"method.name={run.method.name}", *(o for o in recipe if o.startswith("method."))]).method
    return model_label(run, replace(base.backbone, name=run.backbone.name), method) + f"@{preset}"


# ----------------------------------------------------------------------------- provenance


def code_commit(path: Path | None = None) -> str:
    """Short git commit of the code, ``-dirty`` when tracked files differ from it or the package
    source has untracked files; ``unknown`` outside git."""
    path = Path(path) if path is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=path, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no")) or bool(
            git("ls-files", "--others", "--exclude-standard", "--", ".")
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "") if commit else "unknown"


@dataclass(frozen=True)
class CommitCutoff:
    """``igt reproduce --redo-before REV``: finished runs trained before ``commit`` (at a commit
    that neither is it nor descends from it) are trained again, e.g. after a fix that changes
    results or adds metrics. A run whose commit git does not know (``unknown``, another
    repository's) counts as older: nothing says it has the fix."""

    commit: str  # full hash
    repo: Path
    _verdicts: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def resolve(cls, rev: str, repo: Path | None = None, current: str | None = None) -> "CommitCutoff":
        """``rev`` (a hash, tag or branch) of the git repository holding ``repo`` (default: igt's
        own code, whose commits runs record); a one-line error when it is not a commit there, or
        when ``current`` (the commit new runs will record) is older than it: those runs would
        count as older too, and be trained again on every call."""
        repo = Path(repo) if repo is not None else Path(__file__).resolve().parent
        try:
            found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo,
                                   capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            raise IgtError(f"--redo-before {rev}: needs git and igt's repository (runs record its commits)") from None
        if found.returncode != 0 or not found.stdout.strip():
            raise IgtError(f"--redo-before {rev}: not a commit of the git repository at {repo}")
        cutoff = cls(found.stdout.strip(), repo)
        if current is not None and cutoff.is_older(current):
            raise IgtError(f"--redo-before {rev}: this code (commit {current}) is not {rev} or a descendant of it, "
                           "so the runs it trains would count as older too")
        return cutoff

    def is_older(self, run_commit: str) -> bool:
        """Whether a run recorded at ``run_commit`` (short hash, maybe ``-dirty``) predates the cutoff."""
        base = run_commit.removesuffix("-dirty").strip()
        if base not in self._verdicts:
            if not base or base == "unknown":
                self._verdicts[base] = True
            else:
                try:  # exit 0: the cutoff is an ancestor of (or is) the run's commit
                    code = subprocess.run(["git", "merge-base", "--is-ancestor", self.commit, base], cwd=self.repo,
                                          capture_output=True, timeout=30).returncode
                except (OSError, subprocess.SubprocessError):
                    code = 1
                self._verdicts[base] = code != 0
        return self._verdicts[base]


def recorded_commit(run_dir: Path) -> str:
    """The code commit in a run folder's ``provenance.json`` (``""`` when it has none)."""
    try:
        return str(json.loads((Path(run_dir) / PROVENANCE_FILE).read_text()).get("commit", ""))
    except (OSError, ValueError, AttributeError):
        return ""


#: Where ``--redo-before`` trains a run again (beside ``runs/``, outside what reports read): the
#: finished run it replaces stays in place until the new one has finished.
REDO_FOLDER = ".redo"


def machine_description(device: str) -> str:
    """What trains a run on ``device`` (``train.device``): the GPU's name, or the CPU's model with
    its core count and torch's threads. Recorded per run, since a grid may span machines."""
    import torch

    from igt.train.trainer import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(resolved)}"
    threads = torch.get_num_threads()
    return f"{cpu_machine()}, {os.cpu_count()} cores, {threads} torch thread{'s' * (threads != 1)}"


def cpu_machine() -> str:
    """This machine's CPU as the first part of :func:`machine_description` names it (``CPU <model>``),
    which is what ``--verify`` compares runs by."""
    return f"CPU {cpu_model()}"


# ----------------------------------------------------------------------------- the grid


@dataclass
class GridResult:
    total: int
    skipped: int = 0  # finished before this call
    trained: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    conflicts: list[Job] = field(default_factory=list)  # folders holding a different finished run

    @property
    def ok(self) -> bool:
        return not self.failed and not self.conflicts


#: Options that decide how a run executes, not what it is: ignored when a finished folder is
#: matched to a grid entry (threads change float roundings, so ``--verify`` does use them).
EXECUTION_OPTIONS = {"train": ("threads", "device", "test_every_epoch")}


def comparable_config(run: RunConfig) -> dict[str, Any]:
    """The config as a dict without :data:`EXECUTION_OPTIONS`."""
    raw = run.to_dict()
    for section, names in EXECUTION_OPTIONS.items():
        for name in names:
            raw[section].pop(name, None)
    return raw


def run_state(run_dir: Path, run: RunConfig | None = None) -> str:
    """``finished`` (metrics.json and, when ``run`` is given, the same config), ``conflict``
    (finished, but a different run), or ``pending``."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file():
        return "pending"
    if run is None:
        return "finished"
    try:
        recorded = RunConfig.load(run_dir / "config.yaml")
    except IgtError:
        return "conflict"
    return "finished" if comparable_config(recorded) == comparable_config(run) else "conflict"


def is_finished(run_dir: Path, run: RunConfig | None = None) -> bool:
    return run_state(run_dir, run) == "finished"


# A lock held by another machine cannot be checked through its PID: its owner touches it every
# LOCK_HEARTBEAT_SECONDS, and one left untouched for LOCK_STALE_SECONDS (a killed process, a lost
# machine) is taken over. The margin absorbs clock differences between the machines.
LOCK_HEARTBEAT_SECONDS = 60
LOCK_STALE_SECONDS = 600


@contextmanager
def claim_run(run_dir: Path) -> Iterator[bool]:
    """Claim a run (or study) folder for this process, so that ``igt reproduce`` processes
    sharing a results folder, on one machine or several, never train (and clear) the same run:
    ``<run>.lock`` beside the folder holds ``host:pid`` of its owner, which touches it while it
    holds it. Yields ``False`` while another process holds it; a lock whose process is gone
    (this host) or that nobody touched for :data:`LOCK_STALE_SECONDS` (another host) is taken
    over."""
    lock = Path(run_dir).with_name(Path(run_dir).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _lock_holder_alive(lock):
                yield False
                return
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(process_name())
        try:
            with _touched(lock, LOCK_HEARTBEAT_SECONDS):
                yield True
        finally:
            lock.unlink(missing_ok=True)
        return
    yield False


@contextmanager
def _touched(path: Path, every: float) -> Iterator[None]:
    """Update ``path``'s modification time every ``every`` seconds while the block runs (a
    thread): other machines read the lock's age as its owner's heartbeat."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            with suppress(OSError):  # a file server that is briefly away: the next beat retries
                os.utime(path)

    thread = threading.Thread(target=beat, name=f"heartbeat of {path.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _lock_holder_alive(lock: Path) -> bool:
    try:
        owner = lock.read_text().strip()
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    host, _, pid = owner.rpartition(":")
    if owner.isdigit():  # written by an igt before host names: one machine only
        host, pid = socket.gethostname(), owner
    if host == socket.gethostname() and pid.isdigit():
        return pid_alive(int(pid))
    return age < LOCK_STALE_SECONDS  # another machine's (or just created, not yet written)


def run_grid(
    jobs: list[Job],
    out: Path,
    command: str = "",
    commit: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    threads: int | None = None,
    redo_before: CommitCutoff | None = None,
) -> GridResult:
    """Train every job whose folder has no ``metrics.json``; failures are logged and skipped.

    Args:
        jobs: From :func:`build_grid`.
        out: Results folder; runs go to ``out/runs/...``.
        command: The command line, recorded in each run's ``provenance.json``.
        commit: Code commit to record (default: :func:`code_commit`).
        progress: Show a progress bar (runs done / total, elapsed, time left).
        log: Where one-line messages go (default: printed above the progress bar).
        threads: Torch CPU threads of every run (``train.threads``, recorded in its
            ``config.yaml``); ``None`` keeps each job's own setting. ``1`` is much faster on a
            machine whose cores are busy with other work, where OpenMP threads of one process
            wait on each other, and thread counts change float roundings.
        redo_before: Also train again the finished runs trained before this commit, whatever
            their config; each new run replaces the old one only once it has finished (a killed
            or failed one leaves it).
    """
    import torch
    from tqdm.auto import tqdm

    from igt import run as run_module

    out = Path(out)
    commit = commit if commit is not None else code_commit()
    if threads is not None:
        jobs = [replace(job, run=job.run.with_overrides([f"train.threads={threads}"])) for job in jobs]
    jobs = [resolve_tuned(job, out) for job in jobs]
    states = [job_state(job, out, redo_before) for job in jobs]
    pending = [job for job, state in zip(jobs, states) if state in ("pending", "to tune", "to redo")]
    result = GridResult(total=len(jobs), skipped=states.count("finished"),
                        conflicts=[job for job, state in zip(jobs, states) if state == "conflict"])
    from igt.train.trainer import interactive

    # Piped output gets no bar (its redraws are garbage in a log): the per-run lines say it all.
    bar = tqdm(total=len(jobs), initial=result.skipped, desc="reproduce", unit="run",
               disable=not (progress and interactive()), dynamic_ncols=True)
    say = log or (lambda line: tqdm.write(line))
    previous_threads = torch.get_num_threads()  # each job sets its own (train.threads); restored below
    if result.skipped:
        say(f"{result.skipped} of {len(jobs)} runs already finished in {out / 'runs'}: skipped")
    for job in result.conflicts:
        say(f"CONFLICT {job.run_dir(out)}: holds a finished run with another config; left alone "
            "(move it away to train this entry)")
    bar.update(len(result.conflicts))
    try:
        for job in pending:
            if job.tune is not None and not job.tuned:
                job = _tuned_job(job, out, say, result)
                if job is None:
                    bar.update(1)
                    continue
            run_dir = job.run_dir(out)
            bar.set_postfix_str(f"{job.dataset} {job.label} seed {job.seed}")
            with claim_run(run_dir) as claimed:
                # Read again under the claim: another process may have trained (or redone) it.
                state = job_state(job, out, redo_before) if claimed else ""
                if state not in ("pending", "to redo"):
                    result.skipped += 1
                    reason = "another igt reproduce is training it" if not claimed else "finished meanwhile"
                    say(f"skipped {job.dataset} {job.label} seed {job.seed}: {reason}")
                elif state == "to redo":
                    _redo_job(job, run_dir, out, command, commit, result, say, run_module)
                else:
                    _train_job(job, run_dir, command, commit, result, say, run_module)
            bar.update(1)
    finally:
        bar.close()
        torch.set_num_threads(previous_threads)
    return result


def _tuned_job(job: Job, out: Path, say: Callable[[str], None], result: GridResult) -> Job | None:
    """Finish ``job``'s study (the first seed of a model runs it; the others find it done) and
    return the job with the best config; ``None`` (a failure, recorded) when the study fails or
    the job's folder holds another run."""
    from igt.tune import tune

    spec = job.tune
    if spec.best_config(out) is None:
        # One process per study: its SQLite file is not safe to share across machines (network
        # file systems lock it unreliably); the seeds of a study tuned elsewhere wait for a rerun.
        with claim_run(spec.folder(out)) as claimed:
            if not claimed:
                result.skipped += 1
                say(f"skipped {job.dataset} {job.label} seed {job.seed}: another igt reproduce is tuning "
                    f"{job.model}; run again once it has finished")
                return None
            epochs = "" if is_fingerprint_model(spec.model) else f" of {spec.epochs} epochs"  # fitted once
            say(f"tuning {job.dataset} {job.model}: {spec.trials} trials{epochs} -> {spec.folder(out)}")
            try:
                found = tune(job.dataset, spec.model, spec.trials, spec.epochs, out=spec.folder(out),
                             overrides=spec.fixed, defaults=spec.defaults, progress=False)
            except Exception as exc:  # one bad study must not stop the grid
                message = " ".join(f"{exc.__class__.__name__}: {exc}".split())
                result.failed.append((job, message))
                say(f"FAILED tuning {job.dataset} {job.model}: {message}")
                return None
        say(f"tuned {job.dataset} {job.model}: best valid {found.metric} {found.best_value:.4f} "
            f"(trial {found.best_trial})")
    job = resolve_tuned(job, out)
    if job_state(job, out) == "conflict":
        result.conflicts.append(job)
        say(f"CONFLICT {job.run_dir(out)}: holds a finished run with another config; left alone")
        return None
    return job


def _redo_job(job: Job, run_dir: Path, out: Path, command: str, commit: str, result: GridResult,
              say: Callable[[str], None], run_module) -> None:
    """Train ``job`` again beside ``runs/`` (``out/.redo/...``), then put the new run in place of
    the old one; while it trains, and if it fails, ``run_dir`` keeps the finished old run."""
    staging = out / REDO_FOLDER / run_dir.relative_to(out)
    staging.parent.mkdir(parents=True, exist_ok=True)
    if not _train_job(job, staging, command, commit, result, say, run_module):
        return
    replaced = staging.with_name(staging.name + ".replaced")
    if replaced.exists():  # left by a process killed between the two renames below
        shutil.rmtree(replaced)
    os.replace(run_dir, replaced)
    os.replace(staging, run_dir)
    shutil.rmtree(replaced)
    with suppress(OSError):  # the staging folders left empty, up to out/.redo
        os.removedirs(staging.parent)


def _train_job(job: Job, run_dir: Path, command: str, commit: str, result: GridResult,
               say: Callable[[str], None], run_module) -> bool:
    """Clear ``run_dir`` (a killed or failed earlier try) and train ``job`` into it; ``True`` when
    it finished."""
    if run_dir.exists():  # killed or failed earlier: start again cleanly
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    from igt.runtime import kernel_fingerprint
    from igt.train.trainer import configure_threads

    configure_threads(job.run.train.threads)
    provenance = {
        "commit": commit,
        "command": command,
        "model_spec": job.model,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(job.run.train.device),
        "kernels": kernel_fingerprint(),
    }
    atomic_write_text(run_dir / PROVENANCE_FILE, json.dumps(provenance, indent=2) + "\n")
    started = time.perf_counter()
    try:
        metrics = run_module.train_run(job.run, run_dir, overwrite=True, progress=False, label=job.label)
    except Exception as exc:  # one bad run must not stop the grid
        message = " ".join(f"{exc.__class__.__name__}: {exc}".split())
        atomic_write_text(run_dir / "error.txt", traceback.format_exc())
        result.failed.append((job, message))
        say(f"FAILED {job.dataset} {job.label} seed {job.seed}: {message} (see {run_dir / 'error.txt'})")
        return False
    result.trained.append(job)
    say(
        f"done {job.dataset} {job.label} seed {job.seed}: test {metrics['metric']} "
        f"{metrics['test']:.4f} ({time.perf_counter() - started:.0f} s)"
    )
    return True


__all__ = [
    "CommitCutoff", "GridResult", "Job", "TuneSpec", "build_grid", "code_commit", "comparable_config", "expand_list_options",
    "job_state", "load_suite", "parse_model_spec", "resolve_model_spec", "resolve_tuned", "run_grid", "run_state",
]
