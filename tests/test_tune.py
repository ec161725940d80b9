"""`igt tune`: search spaces beside the configs, a study on tiny data that never reads the test
split, resuming, stale trials, pruning, storage errors, and the command line."""

import json
import sqlite3
import sys
import time

import optuna
import pytest
from typer.testing import CliRunner

from igt.cli import app, main
from igt.config import METHOD_CONFIGS, RunConfig
from igt.data.dataset import GraphDataset
from igt.errors import IgtError
from igt.fileio import process_name
from igt.models import BACKBONE_MODELS, METHOD_MODELS, is_fingerprint_model, resolve_model
from igt.run import train_run
from igt.tune import (STUDY_FILE, apply_params, default_pruner, free_space, masked_url,
                      open_storage, search_space, tune)

runner = CliRunner()

#: Fixed for every trial: tiny data and model (about half a second a trial).
TINY = ["data.limit=150", "data.split=random", "data.rwse_steps=4", "data.lap_k=2", "backbone.hidden=8",
        "backbone.heads=2", "backbone.layers=1", "train.batch_size=32"]
GRAPH_MODELS = [*BACKBONE_MODELS, *METHOD_MODELS]


def tiny_tune(out, trials, model="igt-n", **kwargs):
    return tune("bace", model, trials, 2, out=out, overrides=TINY, progress=False, **kwargs)


# ----------------------------------------------------------------------------- spaces


def test_each_model_searches_its_own_options():
    shared = {"train.lr", "train.batch_size", "backbone.hidden", "backbone.layers", "backbone.dropout"}
    own = {
        "igt-n": {"method.gamma", "method.alpha", "method.mu", "method.adversary_lr", "method.split"},
        "igt-vn": {"method.gamma", "method.alpha", "method.mu", "method.adversary_lr", "method.split",
                   "method.num_virtual_nodes"},
        "grea": {"method.gamma"},
        "gsat": {"method.final_r", "method.decay_r", "method.decay_interval"},
        "dir": {"method.causal_ratio", "method.alpha"},
    }
    for model in BACKBONE_MODELS:  # an ERM model names its backbone
        assert set(search_space(model)) == shared, model
    for model in METHOD_MODELS:
        assert set(search_space(model)) == shared | {"backbone.name"} | own[model], model
    assert search_space("igt-n")["backbone.name"] == {"choices": ["gin", "gin-vn", "gps"]}


@pytest.mark.parametrize("model", GRAPH_MODELS)
def test_every_bound_and_choice_is_a_valid_config_and_the_defaults_lie_inside(model):
    base = resolve_model(RunConfig(), model)
    for key, spec in search_space(model).items():
        values = spec["choices"] if "choices" in spec else [spec["low"], spec["high"]]
        for value in values:
            apply_params(base, {key: value})  # raises IgtError when out of the config's range
        section, name = key.split(".")
        default = getattr(getattr(base, section), name)
        assert default in spec["choices"] if "choices" in spec else spec["low"] <= default <= spec["high"], key


def test_search_spaces_are_plain_data_beside_each_config():
    for name in METHOD_CONFIGS.names():
        space = METHOD_CONFIGS.get(name).SEARCH_SPACE
        assert isinstance(space, dict) and all(isinstance(spec, dict) for spec in space.values())
    assert not any(is_fingerprint_model(resolve_model(RunConfig(), model).method.name) for model in GRAPH_MODELS)


def test_set_fixes_keys_and_an_empty_space_is_one_line():
    space = search_space("gin")
    assert "train.lr" not in free_space(space, ["train.lr=0.01", "data.limit=5"])
    with pytest.raises(IgtError, match="^empty search space"):
        free_space(space, [f"{key}=1" for key in space])
    with pytest.raises(IgtError, match="^empty search space"):
        tune("bace", "gin", 1, 1, out=None, overrides=["train.lr=0.01", "train.batch_size=32", "backbone.hidden=8",
                                                        "backbone.layers=1", "backbone.dropout=0.0"])
    with pytest.raises(IgtError, match="unknown model 'nope'"):
        search_space("nope")


# ----------------------------------------------------------------------------- a study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two trials, then the same call asking for three; the test split is watched all along."""
    out = tmp_path_factory.mktemp("tune") / "bace-igt-n"
    touched: list = []
    test_indices: set = set()  # of the latest split
    import igt.data
    from igt.data import splits

    real_load, real_split, real_subset = igt.data.load_dataset, splits.make_split, GraphDataset.subset

    def load_dataset(*args, **kwargs):
        test_indices.clear()  # loading may subset (data.limit): not yet a split
        return real_load(*args, **kwargs)

    def make_split(*args, **kwargs):
        split = real_split(*args, **kwargs)
        test_indices.update(split["test"].tolist())
        return split

    def subset(self, indices):
        if test_indices:  # after the split: every subset is for training or validation
            touched.extend(set(map(int, indices)) & test_indices)
        return real_subset(self, indices)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(igt.data, "load_dataset", load_dataset)
        patch.setattr(splits, "make_split", make_split)
        patch.setattr(GraphDataset, "subset", subset)
        first = tiny_tune(out, 2)
        second = tiny_tune(out, 3)
    return {"out": out, "first": first, "second": second, "touched": touched, "test_indices": set(test_indices)}


def test_a_resumed_study_runs_only_the_missing_trials(study):
    assert study["first"].trials_run == 2 and study["first"].states == {"complete": 2}
    assert study["second"].trials_run == 1 and study["second"].states == {"complete": 3}
    rows = (study["out"] / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("number,state,value,valid_loss,train.lr,") and rows[0].endswith(",worker,duration_seconds")
    assert all(float(row.split(",")[3]) > 0 for row in rows[1:])  # each trial's selected-epoch validation loss
    assert [row.split(",")[:2] for row in rows[1:]] == [["0", "complete"], ["1", "complete"], ["2", "complete"]]
    assert all(row.split(",")[-2] == process_name() for row in rows[1:])  # host:pid that ran each trial


def test_a_resumed_study_draws_what_an_uninterrupted_one_would(study, tmp_path):
    """Trial k draws with seed + k, whichever call or worker runs it."""
    tiny_tune(tmp_path / "straight", 3)
    without_durations = lambda path: [row.rsplit(",", 1)[0] for row in path.read_text().splitlines()]  # noqa: E731
    assert without_durations(tmp_path / "straight" / "trials.csv") == without_durations(study["out"] / "trials.csv")


def test_the_test_split_is_never_read(study):
    assert study["test_indices"] and study["touched"] == []


def test_best_yaml_is_a_complete_config_that_trains_to_the_best_trials_number(study, tmp_path):
    result = study["second"]
    best = RunConfig.load(study["out"] / "best.yaml")
    assert best == result.best_config
    assert (best.data.dataset, best.train.epochs, best.train.seed, best.method.name) == ("bace", 2, 0, "igt-n")
    assert best.data.limit == 150 and best.backbone.hidden == 8  # --set applies to every trial
    for key, value in result.best_params.items():
        section, name = key.split(".")
        assert getattr(getattr(best, section), name) == value
    metrics = train_run(best, tmp_path / "run", progress=False)
    assert metrics["valid"] == pytest.approx(result.best_value, rel=1e-6)  # trials train as igt train does


def test_summary_and_plots(study):
    out = study["out"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["study"] == "bace-igt-n" and summary["model"] == "igt-n" and summary["dataset"] == "bace"
    assert (summary["direction"], summary["metric"], summary["split"]) == ("maximize", "rocauc", "valid")
    assert summary["best_value"] == study["second"].best_value and summary["best_params"] == study["second"].best_params
    assert summary["best_valid_loss"] > 0
    assert summary["trials"] == {"complete": 3} and summary["epochs_per_trial"] == 2 and summary["seed"] == 0
    assert summary["storage"] == f"sqlite:///{out.resolve() / STUDY_FILE}" and summary["total_seconds"] > 0
    assert "backbone.hidden" not in summary["search_space"] and "train.lr" in summary["search_space"]
    for name in ("history.png", "importance.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    # The first trial is the model's defaults, so the best is never worse than an untuned run.
    first = optuna.load_study(study_name="bace-igt-n", storage=summary["storage"]).trials[0]
    assert first.params["method.gamma"] == 0.4 and first.params["train.lr"] == 0.001


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_equal_validation_metrics_go_to_the_lower_validation_loss(direction):
    """Spurious-Motif's validation accuracy is 1.0 in half a study's trials: best.yaml must then be
    the trial with the lowest validation loss (as epochs are selected), not Optuna's first."""
    from igt.tune import VALID_LOSS_ATTR, _best

    study = optuna.create_study(direction=direction)
    worse = 0.5 if direction == "maximize" else 2.0
    for number, (value, loss) in enumerate([(1.0, 0.30), (worse, 0.01), (1.0, 0.05), (1.0, 0.05), (1.0, None)]):
        attrs = {} if loss is None else {VALID_LOSS_ATTR: loss}
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=value, user_attrs=attrs))
    assert _best(study).number == 2  # lowest loss among the best metric; the earlier of equal ones


def test_same_seed_same_study(study, tmp_path):
    again = tiny_tune(tmp_path / "again", 2)
    assert (again.best_value, again.best_params) == (study["first"].best_value, study["first"].best_params)
    without_durations = lambda path: [row.rsplit(",", 1)[0] for row in path.read_text().splitlines()[1:3]]  # noqa: E731
    assert without_durations(tmp_path / "again" / "trials.csv") == without_durations(study["out"] / "trials.csv")


def test_a_study_resumed_with_other_settings_or_a_foreign_folder_is_refused(study, tmp_path):
    with pytest.raises(IgtError, match="was run with other settings .*train.epochs=2 there, 3 here"):
        tune("bace", "igt-n", 4, 3, out=study["out"], overrides=TINY, progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(IgtError, match="already holds files that igt tune did not write"):
        tiny_tune(tmp_path / "mine", 1)
    with pytest.raises(IgtError, match="holds the results of study 'bace-igt-n'"):
        tiny_tune(study["out"], 1, study_name="other")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_left_running_by_a_killed_process_is_failed_and_retried(tmp_path):
    out = tmp_path / "study"
    tiny_tune(out, 1, model="gin")
    url = f"sqlite:///{out.resolve() / STUDY_FILE}"
    storage = open_storage(url)
    killed = optuna.load_study(study_name="bace-gin", storage=storage).ask()  # RUNNING, as a killed process leaves it
    storage.record_heartbeat(killed._trial_id)
    with sqlite3.connect(out / STUDY_FILE) as db:  # its last heartbeat long past the grace period
        db.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00.000000'")
    result = tiny_tune(out, 2, model="gin")
    trials = optuna.load_study(study_name="bace-gin", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert result.trials_run == 1 and result.states == {"complete": 2, "fail": 1}
    assert trials[2].system_attrs.get("failed_trial") == killed.number  # Optuna's retry of that trial


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_each_epochs_validation_metric_feeds_the_pruner(tmp_path):
    result = tiny_tune(tmp_path / "pruned", 2, model="gin", pruner=AlwaysPrune())
    assert result.states == {"pruned": 2} and result.best_value is None and result.best_config is None
    url = f"sqlite:///{(tmp_path / 'pruned').resolve() / STUDY_FILE}"
    trials = optuna.load_study(study_name="bace-gin", storage=url).trials
    assert all(list(t.intermediate_values) == [1] for t in trials)  # stopped after its first epoch
    assert not (tmp_path / "pruned" / "best.yaml").exists()
    assert json.loads((tmp_path / "pruned" / "summary.json").read_text())["trials"] == {"pruned": 2}
    assert isinstance(default_pruner(20), optuna.pruners.MedianPruner)


def test_a_study_without_a_complete_trial_exits_1_without_best_yaml(tmp_path, monkeypatch):
    import igt.tune

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(igt.tune, "default_pruner", lambda epochs: AlwaysPrune())
    sets = [arg for item in TINY for arg in ("--set", item)]
    done = runner.invoke(app, ["tune", "bace", "--model", "gin", "--trials", "1", "--epochs", "2", "-q", *sets])
    assert done.exit_code == 1 and "no trial of study bace-gin completed (1 pruned)" in done.output
    assert not (tmp_path / "runs" / "tune" / "bace-gin" / "best.yaml").exists()


# ----------------------------------------------------------------------------- storage


def test_an_unreachable_storage_is_one_line_naming_it_without_its_password(tmp_path, monkeypatch, capsys):
    started = time.perf_counter()
    with pytest.raises(IgtError) as info:
        tiny_tune(tmp_path / "out", 1, storage="postgresql://u:secret@127.0.0.1:1/x")
    message = str(info.value)
    assert message.startswith("storage postgresql://u:***@127.0.0.1:1/x: cannot open it") and "secret" not in message
    assert "\n" not in message and time.perf_counter() - started < 15
    assert not (tmp_path / "out").exists()  # nothing left behind
    with pytest.raises(IgtError, match="not a database URL"):
        tiny_tune(tmp_path / "out", 1, storage="no-such-scheme")
    assert masked_url("mysql+pymysql://me:pw@host:3306/db") == "mysql+pymysql://me:***@host:3306/db"

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["igt", "tune", "bace", "--model", "gin", "--trials", "1",
                                      "--storage", "postgresql://u:secret@127.0.0.1:1/x"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "u:***@127.0.0.1:1/x" in err and "secret" not in err


# ----------------------------------------------------------------------------- command line


def test_show_space_needs_no_dataset():
    shown = runner.invoke(app, ["tune", "--show-space", "--model", "igt-vn"])
    assert shown.exit_code == 0, shown.output
    assert "method.num_virtual_nodes" in shown.output and "one of gin, gin-vn, gps" in shown.output
    assert "train.lr" in shown.output and "log scale" in shown.output
    fixed = runner.invoke(app, ["tune", "--show-space", "--model", "igt-vn", "--set", "backbone.name=gin"])
    assert fixed.exit_code == 0 and "backbone.name" not in fixed.output
    assert "backbone.name" not in runner.invoke(app, ["tune", "--show-space", "--model", "gin"]).output


@pytest.mark.parametrize("args, message", [
    (["--model", "igt-n", "--trials", "2"], "give a DATASET (only --show-space works without one)"),
    (["bace", "--trials", "2"], "give --model NAME"),
    (["bace", "--model", "igt-n"], "give --trials N"),
    (["bace", "--model", "nope", "--trials", "2"], "unknown model 'nope'"),
    (["bace", "--model", "gin", "--trials", "0"], "--trials 0: expected at least 1"),
])
def test_bad_tune_arguments_are_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["igt", "tune", *args])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_tune_then_train_the_best_config_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sets = [arg for item in TINY for arg in ("--set", item)]
    tuned = runner.invoke(app, ["tune", "bace", "--model", "gin", "--trials", "1", "--epochs", "1", "-q", *sets])
    assert tuned.exit_code == 0, tuned.output
    out = tmp_path / "runs" / "tune" / "bace-gin"
    assert "best valid rocauc" in tuned.output and f"--config {out.relative_to(tmp_path)}/best.yaml" in tuned.output
    trained = runner.invoke(app, ["train", "bace", "--config", str(out / "best.yaml"), "--out", "run", "-q"])
    assert trained.exit_code == 0, trained.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"] == 1


@pytest.mark.parametrize("model", ["rf", "svm"])
def test_fingerprint_baselines_tune_their_own_few_options(tmp_path, model):
    assert all(key.startswith("method.") for key in search_space(model))  # no graph: no lr, width, ...
    base = resolve_model(RunConfig(), model)
    for key, spec in search_space(model).items():
        for value in spec["choices"] if "choices" in spec else [spec["low"], spec["high"]]:
            apply_params(base, {key: value})
    overrides = ["data.limit=150", "data.split=random", "data.rwse_steps=0", "data.lap_k=0"]
    if model == "rf":
        overrides.append("method.n_estimators=20")  # fixed: keeps the test fast
    result = tune("bace", model, 3, 2, out=tmp_path / "study", overrides=overrides, progress=False)
    assert result.states.get("complete") == 3 and 0.0 <= result.best_value <= 1.0
    best = RunConfig.load(tmp_path / "study" / "best.yaml")
    metrics = train_run(best, tmp_path / "run", progress=False)
    assert metrics["valid"] == pytest.approx(result.best_value, rel=1e-6)
