"""``igt tune``: hyperparameter search with Optuna, on the validation split only.

The options searched are plain data beside each config: the ``SEARCH_SPACE`` ClassVar of
:class:`~igt.config.TrainConfig`, :class:`~igt.config.BackboneConfig` and each method's config
(``igt.methods.*``); :func:`search_space` assembles a model's space from them. Each trial trains
in this process exactly as ``igt train`` would (same seeding, same data, same selection of the best
epoch on validation) but without a run folder, and its value is the best validation metric. The
test split is never read: its indices are dropped before any loader is built.

A study lives in an Optuna RDB storage (default ``sqlite:///<out>/study.db``), so the same command
run again continues it: it runs only the trials still missing, and a trial left running by a
killed process is failed and retried through Optuna's heartbeat. Processes on several machines
may share one study through a database server (``postgresql://...``): each trial is run by one
of them, records which (``worker``: ``host:pid``), and draws its values from ``seed + number``.
``<out>`` receives ``best.yaml`` (a complete config for ``igt train --config``), ``trials.csv``,
``summary.json``, ``history.png`` and ``importance.png``. See ``docs/tuning.md``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
import warnings
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from igt.config import BackboneConfig, RunConfig, SearchSpace, TrainConfig
from igt.errors import IgtError
from igt.fileio import (atomic_write_text, check_writable_folder, dataset_name, make_folder,
                        process_name, remove_empty_folders, safe_name, save_figure)
from igt.models import build_run_config, is_fingerprint_model, resolve_model

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from igt.data.dataset import GraphDataset

#: Trials that count towards ``--trials``: a pruned trial was tried as much as it deserved.
COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
STUDY_FILE = "study.db"
OUTPUT_FILES = ("best.yaml", "trials.csv", "summary.json", "history.png", "importance.png")
# Workers sharing an --out folder take turns writing the outputs under this (empty) file's lock.
OUTPUTS_LOCK = ".outputs.lock"
#: The trial user attribute naming the process that ran it: ``host:pid``.
WORKER_ATTR = "worker"
VALID_LOSS_ATTR = "valid_loss"  # breaks ties of the validation metric when choosing best.yaml
# Optuna's heartbeat: a RUNNING trial whose process has not written for GRACE_SECONDS (killed,
# machine lost) is failed at the next trial start of any process and queued again, at most
# MAX_RETRIES times.
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
MAX_RETRIES = 2
# The median pruner compares a trial with earlier ones only after this many have finished, and
# never in its first quarter of epochs (the first epochs of all models look alike).
PRUNER_STARTUP_TRIALS = 3
# Connecting to a database server that does not answer fails after this long, not minutes.
CONNECT_TIMEOUT_SECONDS = 10
# Options whose value changes no trial's result: a study may be resumed with other values.
_RESULT_NEUTRAL = ("train.threads", "train.device", "train.eval_batch_size")


# ----------------------------------------------------------------------------- search spaces


def search_space(model: str) -> SearchSpace:
    """``{"section.key": spec}`` searched for ``model``: training and backbone options plus the
    method's own (the backbone's name only for methods: an ERM model names its backbone). A
    fingerprint model searches only its config's ``SEARCH_SPACE``."""
    run = resolve_model(RunConfig(), model)  # an unknown name fails here with the usual line
    method_space = _section_space("method", type(run.method).SEARCH_SPACE, model)
    if is_fingerprint_model(run.method.name):
        return method_space
    space = {**_section_space("train", TrainConfig.SEARCH_SPACE, model),
             **_section_space("backbone", BackboneConfig.SEARCH_SPACE, model)}
    if run.method.name == "erm":
        del space["backbone.name"]
    return {**space, **method_space}


def _section_space(section: str, specs: SearchSpace, model: str) -> SearchSpace:
    """A config class's specs keyed ``section.key``, without those limited to other models."""
    space = {}
    for key, spec in specs.items():
        if model in spec.get("models", [model]):
            space[f"{section}.{key}"] = {k: v for k, v in spec.items() if k != "models"}
    return space


def free_space(space: SearchSpace, overrides: Sequence[str]) -> SearchSpace:
    """``space`` without the keys ``--set`` fixes; an empty result is an error."""
    fixed = {item.partition("=")[0].strip() for item in overrides}
    if "method.name" in fixed:
        raise IgtError("--set method.name: igt tune's model is --model NAME")
    free = {key: spec for key, spec in space.items() if key not in fixed}
    for key, spec in free.items():
        _check_spec(key, spec)
    if not free:
        raise IgtError(f"empty search space: --set fixes every option of {sorted(space)}")
    return free


def describe_spec(spec: dict[str, Any]) -> str:
    """``one of 32, 64, 128`` or ``float in [0.0001, 0.01], log scale``."""
    if "choices" in spec:
        return "one of " + ", ".join(str(choice) for choice in spec["choices"])
    kind = "int" if _is_int_range(spec) else "float"
    return f"{kind} in [{spec['low']}, {spec['high']}]" + (", log scale" if spec.get("log") else "")


def _is_int_range(spec: dict[str, Any]) -> bool:
    return all(isinstance(spec[bound], int) and not isinstance(spec[bound], bool) for bound in ("low", "high"))


def _check_spec(key: str, spec: dict[str, Any]) -> None:
    """A malformed ``SEARCH_SPACE`` entry is named, not an Optuna traceback."""
    if "choices" in spec:
        if not isinstance(spec["choices"], (list, tuple)) or not spec["choices"]:
            raise IgtError(f"search space {key}: 'choices' must be a non-empty list")
        return
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low > high:
        raise IgtError(f"search space {key}: expected 'choices' or numbers 'low' <= 'high', got {spec}")
    if spec.get("log") and low <= 0:
        raise IgtError(f"search space {key}: a log scale needs 'low' > 0, got {low}")


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """One value per key of ``space``, drawn by the study's sampler."""
    params: dict[str, Any] = {}
    for key, spec in space.items():
        if "choices" in spec:
            params[key] = trial.suggest_categorical(key, list(spec["choices"]))
        elif _is_int_range(spec):
            params[key] = trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            params[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return params


def _in_space(spec: dict[str, Any], value: Any) -> bool:
    if "choices" in spec:
        return value in spec["choices"]
    return isinstance(value, (int, float)) and not isinstance(value, bool) and spec["low"] <= value <= spec["high"]


def apply_params(run: RunConfig, params: dict[str, Any]) -> RunConfig:
    """``run`` with ``{"section.key": value}`` set (and checked, as ``--set`` would be)."""
    raw = run.to_dict()
    for key, value in params.items():
        section, name = key.split(".")
        raw[section][name] = value
    return RunConfig.from_dict(raw, where="search space")


# ----------------------------------------------------------------------------- storage


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and summary.json)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _retry_callback() -> dict[str, Any]:
    """Optuna's retry of heartbeat-stale trials, by the names of the installed Optuna (renamed
    in 4.9 from ``RetryFailedTrialCallback`` / ``failed_trial_callback``)."""
    storages = optuna.storages
    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):
        return {"heartbeat_stale_trial_callback": storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)}
    return {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=MAX_RETRIES)}


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage with heartbeats; any failure to reach it is one line naming ``url``."""
    import sqlalchemy

    shown = masked_url(url)
    try:
        backend = sqlalchemy.engine.make_url(url).get_backend_name()
    except sqlalchemy.exc.ArgumentError:
        raise IgtError(f"--storage {shown}: not a database URL (e.g. sqlite:///study.db, "
                       "postgresql://user:password@host/db)") from None
    engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS}} if backend in (
        "postgresql", "mysql", "mariadb") else {}
    try:
        with _quiet_optuna():
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=GRACE_SECONDS, **_retry_callback())
    except (ImportError, sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        raise IgtError(f"storage {shown}: cannot open it ({_storage_reason(exc, url)})") from None


def _storage_reason(exc: BaseException, url: str) -> str:
    """The first line of what the driver said (without the password)."""
    if isinstance(exc, ImportError):
        missing = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None)
        return f"its database driver is not installed: pip install {missing}" if missing else str(exc)
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    reason = lines[0] if lines else type(cause).__name__
    password = re.search(r"://[^:/@]*:([^@/]*)@", url)
    return reason.replace(password.group(1), "***") if password and password.group(1) else reason


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """No Optuna log lines (igt prints its own progress; a failed trial's traceback would break
    the one-line errors) and no warnings about its experimental features; restored after."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


# ----------------------------------------------------------------------------- trials


@dataclass
class StudyData:
    """The graphs and the train/valid indices every trial shares (no test indices)."""

    dataset: GraphDataset
    split: dict[str, Tensor]


def load_study_data(run: RunConfig) -> StudyData:
    """The dataset and split a run of ``run`` sees, loaded once per study, minus the test split."""
    from igt.data import load_dataset
    from igt.data.splits import make_split
    from igt.run import check_split_sizes
    from igt.train.trainer import seed_everything

    seed_everything(run.train.seed)  # as igt train does before loading
    dataset = load_dataset(run.data)
    split = make_split(dataset, run.data, seed=run.train.seed)
    check_split_sizes(run, len(dataset), split)  # best.yaml must train: a test split is there
    # The test split is never read during a study: no loader, subset or metric is built from it.
    return StudyData(dataset, {name: indices for name, indices in split.items() if name != "test"})


def train_trial(run: RunConfig, data: StudyData,
                on_epoch: Callable[[int, dict], None] | None = None) -> dict[str, float | None]:
    """Train ``run`` as ``igt train`` does (same seeding, so ``best.yaml`` reproduces the trial's
    number) without writing anything; the selected epoch's validation scores (metric and loss)."""
    from igt.methods import build_method
    from igt.run import training_task
    from igt.train.trainer import fit, make_loaders, seed_everything

    seed_everything(run.train.seed)
    loaders = make_loaders(data.dataset, data.split, run.train)
    seed_everything(run.train.seed)  # model init does not depend on how much data loading drew
    method = build_method(run, training_task(data.dataset, data.split, run), data.dataset.features)
    if is_fingerprint_model(run.method.name):  # fitted once by scikit-learn: no epochs to prune
        from igt.train.fingerprint import fit_fingerprint_model

        result = fit_fingerprint_model(method, data.dataset, data.split, {"valid": loaders["valid"]}, run.train.seed)
        return result.valid
    return fit(method, loaders, run.train, progress=False, on_epoch=on_epoch).valid


def _objective(base: RunConfig, space: SearchSpace, data: StudyData) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, process_name())  # which worker of a shared study ran it
        run = apply_params(base, suggest(trial, space))
        def report(epoch: int, valid: dict) -> None:
            trial.report(valid["metric"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        valid = train_trial(run, data, on_epoch=report)
        if valid.get("loss") is not None:
            trial.set_user_attr(VALID_LOSS_ATTR, float(valid["loss"]))
        return float(valid["metric"])

    return objective


def default_pruner(epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=max(1, epochs // 4))


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE whose random draws for trial ``k`` come from ``seed + k``. One sampler seeded once per
    process would give workers that start together the same draws (the same values run twice);
    trial numbers are unique in a study, so these draws are too. A resumed study also draws what
    an uninterrupted one would. With the constant liar, running trials of other workers count as
    bad, so concurrent trials spread out instead of crowding one promising region."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._number = -1
        self._tpe = optuna.samplers.TPESampler(seed=seed)

    def _for(self, trial: FrozenTrial) -> optuna.samplers.TPESampler:
        if trial.number != self._number:  # one TPE per trial: its options draw in sequence from one RNG
            self._number = trial.number
            self._tpe = optuna.samplers.TPESampler(seed=self._seed + trial.number, constant_liar=True)
        return self._tpe

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._for(trial).after_trial(study, trial, state, values)


# ----------------------------------------------------------------------------- the study


@dataclass
class TuneResult:
    """What :func:`tune` did; the same numbers are in ``out/summary.json``."""

    study_name: str
    storage: str  # password masked
    direction: str
    metric: str
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    best_config: RunConfig | None  # also out/best.yaml; None when no trial completed
    states: dict[str, int]  # trials of the study by state (complete, pruned, fail, ...)
    trials_run: int  # complete + pruned trials added while this call ran (other processes' too)
    out: Path
    files: list[Path] = field(default_factory=list)


def tune(
    dataset: str,
    model: str,
    trials: int,
    epochs: int,
    storage: str | None = None,
    study_name: str | None = None,
    timeout: float | None = None,
    out: Path | None = None,
    overrides: Sequence[str] = (),
    seed: int = 0,
    progress: bool = True,
    *,
    pruner: optuna.pruners.BasePruner | None = None,
    defaults: Sequence[str] = (),
) -> TuneResult:
    """Search ``model``'s hyperparameters on ``dataset`` until the study holds ``trials``
    complete or pruned trials (a study resumed from ``storage`` runs only the missing ones).

    Args:
        dataset: As ``igt train DATASET``.
        model: A ``--model`` name; :func:`search_space` gives what is searched.
        trials: Complete + pruned trials the study should hold, earlier calls included.
        epochs: Training epochs of each trial (``train.epochs`` of ``best.yaml``).
        storage: An Optuna RDB URL (default ``sqlite:///<out>/study.db``). Several processes
            may run the same call on one storage: they share the study, and each writes ``out``
            (which they may share too) from the study as it is when that process ends.
        study_name: Default ``<dataset>-<model>``.
        timeout: Start no new trial after this many seconds (a running one finishes).
        out: Output folder (default ``runs/tune/<dataset>-<model>``).
        overrides: ``section.key=value`` applied to every trial; those keys are not searched.
        seed: Trial ``k`` draws its values with seed ``seed + k`` (TPE), whichever process runs
            it. Trials train with ``train.seed``.
        progress: A bar (terminal) or one line per trial (logs) on stderr.
        pruner: Replaces the median pruner fed each epoch's validation metric.
        defaults: ``section.key=value`` applied before the model, like a config file: they move
            the starting point (the first trial) but their keys are still searched (``igt
            reproduce``'s tuned suites pass their budget here).

    Raises:
        IgtError: Bad input, unreachable storage, a study of the same name run with other
            settings, or an ``out`` that holds other files (one line).
    """
    if trials < 1:
        raise IgtError(f"--trials {trials}: expected at least 1")
    if timeout is not None and not timeout > 0:
        raise IgtError(f"--timeout {timeout}: expected a number of seconds above 0")
    overrides = list(overrides)
    base = build_run_config(dataset, model, flags=[*defaults, f"train.epochs={epochs}"], overrides=overrides)
    space = free_space(search_space(model), overrides)
    name = study_name or safe_name(f"{dataset_name(dataset)}-{model}")
    out = Path(out) if out is not None else Path("runs") / "tune" / safe_name(f"{dataset_name(dataset)}-{model}")
    url = storage or f"sqlite:///{out.resolve() / STUDY_FILE}"
    _check_out_folder(out, name, masked_url(url), default_storage=storage is None)
    created = make_folder(out, "tune")
    try:
        return _run_study(base, model, space, overrides, trials, name, url, timeout, out, seed, progress, pruner)
    except BaseException:
        remove_empty_folders(created)  # a failed start leaves no empty folder behind
        raise


def _run_study(base: RunConfig, model: str, space: SearchSpace, overrides: list[str], trials: int, name: str, url: str,
               timeout: float | None, out: Path, seed: int, progress: bool,
               pruner: optuna.pruners.BasePruner | None) -> TuneResult:
    import torch

    from igt.train.trainer import configure_threads

    rdb = open_storage(url)  # before the data: an unreachable server fails in seconds
    threads = torch.get_num_threads()
    configure_threads(base.train.threads)
    try:
        data = load_study_data(base)
        metric = data.dataset.task.metric
        direction = "maximize" if data.dataset.task.higher_is_better else "minimize"
        with _quiet_optuna():
            study, created = _create_or_load(rdb, name, direction)
            _claim_study(study, base, model, seed, masked_url(url))
            study.sampler = TrialSeededSampler(seed)
            study.pruner = pruner or default_pruner(base.train.epochs)
            # The model's defaults first (the best is never worse than an untuned run), queued by
            # the one process that created the study: workers starting together queue it once.
            if created:
                defaults = {key: _get(base, key) for key in space if _in_space(space[key], _get(base, key))}
                study.enqueue_trial(defaults)
            done = _count(study)
            missing = max(trials - done, 0)
            if missing:
                with _trial_progress(study, trials, done, metric, progress) as show:
                    study.optimize(
                        _objective(base, space, data), n_trials=missing, timeout=timeout, gc_after_trial=False,
                        # Other processes on a shared storage may fill the study first. Each checks
                        # after its own trials, so N processes may end with up to N - 1 extra trials.
                        callbacks=[optuna.study.MaxTrialsCallback(trials, states=COUNTED_STATES), show],
                    )
            trials_run = _count(study) - done
            with _outputs_lock(out):  # read the study under the lock: the last writer has seen every trial
                return _write_outputs(study, base, model, space, overrides, metric, direction, masked_url(url),
                                      out, seed, trials_run=trials_run)
    finally:
        configure_threads(threads)


def _create_or_load(rdb: optuna.storages.RDBStorage, name: str, direction: str) -> tuple[optuna.Study, bool]:
    """The study ``name`` and whether this call created it (the database decides which of
    several processes starting together did)."""
    try:
        return optuna.create_study(storage=rdb, study_name=name, direction=direction), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(storage=rdb, study_name=name), False


@contextmanager
def _outputs_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out/.outputs.lock`` (released when the file closes, also by
    a killed process). The file stays: removing it would let a waiting process lock a dead inode."""
    import fcntl

    with open(out / OUTPUTS_LOCK, "a") as handle:
        with suppress(OSError):  # a file system without locks: unlocked, as for one worker per folder
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _get(run: RunConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(run, section), name)


def _count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COUNTED_STATES))


def _check_out_folder(out: Path, name: str, shown_url: str, default_storage: bool) -> None:
    """``out`` may be new, this study's own folder (resumed), or empty: never another's. The
    default storage is the folder's own study.db, wherever the folder now is."""
    if out.exists() and not out.is_dir():
        raise IgtError(f"{out}: exists and is not a folder")
    check_writable_folder(out, "tune")
    if not out.is_dir():
        return
    summary = out / "summary.json"
    if summary.is_file():
        try:
            previous = json.loads(summary.read_text())
        except (ValueError, OSError):
            previous = {}
        storage = str(previous.get("storage"))
        same_storage = (storage.startswith("sqlite:") and storage.endswith(f"/{STUDY_FILE}") if default_storage
                        else storage == shown_url)
        if previous.get("study") != name or not same_storage:
            raise IgtError(f"{out}: holds the results of study {previous.get('study')!r} in "
                           f"{previous.get('storage')}; choose another --out")
        return
    # Ours: the outputs, study.db with SQLite's study.db-journal, leftovers .best.yaml.*.tmp of atomic
    # writes, the lock of workers sharing the folder (a worker may start while another writes).
    ours = (*OUTPUT_FILES, STUDY_FILE, OUTPUTS_LOCK.lstrip("."))
    if any(not entry.name.lstrip(".").startswith(ours) for entry in out.iterdir()):
        raise IgtError(f"{out}: already holds files that igt tune did not write; choose another --out")


def _claim_study(study: optuna.Study, base: RunConfig, model: str, seed: int, shown_url: str) -> None:
    """Record what the trials of ``study`` train (a new study), or check that this call trains
    the same (a resumed one): trials of different configs must not be compared."""
    settings = {"model": model, "config": json.loads(json.dumps(base.to_dict()))}
    recorded = study.user_attrs.get("igt")
    if recorded is None:
        if study.trials:
            raise IgtError(f"study {study.study_name!r} in {shown_url} was not made by igt tune; "
                           "choose another --study")
        study.set_user_attr("igt", {**settings, "seed": seed})
        return
    differences = [] if recorded.get("model") == model else [f"model {recorded.get('model')} there, {model} here"]
    for section, options in settings["config"].items():
        for key, value in options.items():
            before = recorded.get("config", {}).get(section, {}).get(key)
            if section != "explain" and f"{section}.{key}" not in _RESULT_NEUTRAL and before != value:
                differences.append(f"{section}.{key}={before} there, {value} here")
    if differences:
        raise IgtError(f"study {study.study_name!r} in {shown_url} was run with other settings "
                       f"({'; '.join(differences[:3])}): resume it with the same ones, "
                       "or choose another --study or --out")


@contextmanager
def _trial_progress(study: optuna.Study, total: int, done: int, metric: str, progress: bool
                    ) -> Iterator[Callable[[optuna.Study, FrozenTrial], None]]:
    """A study callback showing trials done/total and the best value so far: a tqdm bar in a
    terminal (its ETA is the time left), one line per trial in a log."""
    from tqdm.auto import tqdm

    from igt.train.trainer import interactive

    bars = progress and interactive()
    bar = tqdm(total=total, initial=done, desc=f"tune {metric}", unit="trial", disable=not bars)

    def show(study: optuna.Study, trial: FrozenTrial) -> None:
        best = _best(study)
        if trial.state in COUNTED_STATES:
            bar.update(1)
        if best is not None:
            bar.set_postfix(best=f"{best.value:.4f}")
        if progress and not bars:
            value = f"valid {metric} {trial.value:.4f}" if trial.value is not None else "no value"
            best_text = f"best {best.value:.4f} (trial {best.number})" if best is not None else "no best yet"
            print(f"trial {trial.number} {trial.state.name.lower()}: {value}, {best_text}, "
                  f"{_seconds(trial):.1f} s; {_count(study)}/{total} done", file=sys.stderr, flush=True)

    try:
        yield show
    finally:
        bar.close()


def _best(study: optuna.Study) -> FrozenTrial | None:
    """The complete trial with the best validation metric; among equal ones, the lowest validation
    loss, then the earliest. The rule ``igt train`` selects epochs by (GSAT's): Spurious-Motif's
    validation accuracy is 1.0 in most complete trials of an ERM study; Optuna alone takes the first."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return min(complete, key=lambda t: (sign * t.value, t.user_attrs.get(VALID_LOSS_ATTR, math.inf), t.number))


def _seconds(trial: FrozenTrial) -> float:
    return trial.duration.total_seconds() if trial.duration is not None else 0.0


# ----------------------------------------------------------------------------- outputs


def _write_outputs(study: optuna.Study, base: RunConfig, model: str, space: SearchSpace, overrides: list[str],
                   metric: str, direction: str, shown_url: str, out: Path, seed: int, trials_run: int) -> TuneResult:
    """best.yaml, trials.csv, history.png, importance.png, then summary.json (last: a folder
    with a summary holds a finished write)."""
    all_trials = study.get_trials(deepcopy=False)
    best = _best(study)
    files = []
    best_config = apply_params(base, best.params) if best is not None else None
    if best_config is not None:
        best_config.save(out / "best.yaml")
        files.append(out / "best.yaml")
    atomic_write_text(out / "trials.csv", _trials_csv(all_trials, list(space)))
    files.append(out / "trials.csv")
    files += _plots(study, space, out, seed)
    states: dict[str, int] = {}
    for trial in all_trials:
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    summary = {
        "study": study.study_name,
        "storage": shown_url,
        "dataset": base.data.dataset,
        "model": model,
        "direction": direction,
        "metric": metric,
        "split": "valid",  # the test split is never read during a study
        "best_value": best.value if best is not None else None,
        "best_trial": best.number if best is not None else None,
        "best_valid_loss": best.user_attrs.get(VALID_LOSS_ATTR) if best is not None else None,  # the tie-breaker
        "best_params": best.params if best is not None else {},
        "trials": states,
        "total_seconds": round(sum(_seconds(t) for t in all_trials), 3),  # summed over trials
        "epochs_per_trial": None if is_fingerprint_model(base.method.name) else base.train.epochs,
        "seed": seed,  # trial k draws with seed + k
        "train_seed": base.train.seed,
        "search_space": space,
        "set": overrides,  # fixed for every trial; best.yaml holds the whole config
        "optuna_version": optuna.__version__,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    files.append(out / "summary.json")
    return TuneResult(study.study_name, shown_url, direction, metric, summary["best_value"], summary["best_trial"],
                      summary["best_params"], best_config, states, trials_run, out, files)


def _trials_csv(trials: list[FrozenTrial], keys: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["number", "state", "value", VALID_LOSS_ATTR, *keys, WORKER_ATTR, "duration_seconds"])
    for trial in trials:
        value = "" if trial.value is None else repr(trial.value)
        loss = trial.user_attrs.get(VALID_LOSS_ATTR)
        writer.writerow([trial.number, trial.state.name.lower(), value, "" if loss is None else repr(loss),
                         *(trial.params.get(k, "") for k in keys),
                         trial.user_attrs.get(WORKER_ATTR, ""), f"{_seconds(trial):.3f}"])
    return buffer.getvalue()


def _plots(study: optuna.Study, space: SearchSpace, out: Path, seed: int) -> list[Path]:
    """history.png always; importance.png when it means something (>= 2 complete trials, >= 2
    searched options)."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as plots

    written = []
    with _quiet_optuna():
        warnings.filterwarnings("ignore", message="No artists with labels")  # a history of pruned trials only
        _save_axes(plots.plot_optimization_history(study), out / "history.png")
        written.append(out / "history.png")
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) >= 2 and len(space) >= 2:
            try:
                evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
                _save_axes(plots.plot_param_importances(study, evaluator=evaluator), out / "importance.png")
                written.append(out / "importance.png")
            except (ValueError, RuntimeError):  # e.g. every complete trial drew the same values
                pass
    return written


def _save_axes(axes: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure = axes.figure
    figure.set_size_inches(8, 4.5)
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    plt.close(figure)


__all__ = ["TrialSeededSampler", "TuneResult", "apply_params", "describe_spec", "free_space",
           "search_space", "tune"]
