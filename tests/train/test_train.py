"""`igt train` end to end: run folder contents, exact re-evaluation, determinism, checkpoints."""

import json
import math

import pytest
import torch
from torch_geometric.loader import DataLoader
from typer.testing import CliRunner

from igt.cli import app
from igt.config import RunConfig
from igt.errors import IgtError
from igt.train.checkpoint import load_model, read_checkpoint
from igt.run import evaluate_run, load_split_data, train_run

TINY = [
    "data.dataset=bace", "data.limit=150", "data.split=random", "data.rwse_steps=4", "data.lap_k=2",
    "backbone.hidden=16", "backbone.heads=2", "backbone.layers=2", "backbone.use_lap_pe=true",
    "train.epochs=2", "train.batch_size=32",
]


def tiny_run(*extra: str) -> RunConfig:
    return RunConfig().with_overrides([*TINY, *extra])


def test_run_folder_holds_everything_and_evaluate_reproduces_the_metric(tmp_path):
    metrics = train_run(tiny_run("method.name=erm", "backbone.name=gps"), tmp_path / "run", progress=False)
    for name in ("config.yaml", "history.csv", "metrics.json", "checkpoint.pt"):
        assert (tmp_path / "run" / name).is_file()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("dataset", "model", "seed", "best_epoch", "metric", "valid", "test", "train_seconds", "num_parameters"):
        assert key in saved
    assert saved == metrics
    assert evaluate_run(tmp_path / "run", "test")["metric"] == metrics["test"]
    assert evaluate_run(tmp_path / "run", "valid")["metric"] == metrics["valid"]
    # weights_only loading works on what we wrote
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]["backbone"]["name"] == "gps"


def test_same_seed_same_numbers(tmp_path):
    first = train_run(tiny_run("method.name=igt-n"), tmp_path / "a", progress=False)
    second = train_run(tiny_run("method.name=igt-n"), tmp_path / "b", progress=False)
    assert (first["valid"], first["test"]) == (second["valid"], second["test"])
    history = lambda p: [line.split(",")[:4] for line in (p / "history.csv").read_text().splitlines()]  # noqa: E731
    assert history(tmp_path / "a") == history(tmp_path / "b")


@pytest.mark.parametrize("name", ["gsat", "igt-n"])
def test_skipping_test_evaluation_changes_no_reported_number(tmp_path, name):
    """``train.test_every_epoch=false`` evaluates test only at improving epochs: same training (the
    evaluation leaves the global RNG alone), same selected epoch, same numbers, fewer test rows."""
    every = train_run(tiny_run(f"method.name={name}", "train.epochs=8", "train.lr=0.01"), tmp_path / "a", progress=False)
    some = train_run(tiny_run(f"method.name={name}", "train.epochs=8", "train.lr=0.01", "train.test_every_epoch=false"),
                     tmp_path / "b", progress=False)
    for key in ("best_epoch", "valid", "test"):
        assert every[key] == some[key], key
    rows = lambda p: (p / "history.csv").read_text().splitlines()[1:]  # noqa: E731
    assert len(rows(tmp_path / "a")) == len(rows(tmp_path / "b")) == 8
    header = (tmp_path / "b" / "history.csv").read_text().splitlines()[0].split(",")
    valid_column, test_column = header.index("valid/metric"), header.index("test/metric")
    valid_curve = lambda p: [row.split(",")[valid_column] for row in rows(p)]  # noqa: E731
    assert valid_curve(tmp_path / "a") == valid_curve(tmp_path / "b")
    tested = [row.split(",")[test_column] != "" for row in rows(tmp_path / "b")]
    assert tested[0] and tested[every["best_epoch"] - 1]
    assert not all(tested[:-1]), "an epoch before the last must skip the test split, or this test shows nothing"


@pytest.mark.parametrize("name", ["igt-n", "igt-vn"])
def test_igt_checkpoint_reproduces_predictions_and_node_scores(tmp_path, name):
    run = tiny_run(f"method.name={name}")
    train_run(run, tmp_path / "run", progress=False)
    reloaded, saved_run, _, _ = load_model(tmp_path / "run")
    assert saved_run == run
    dataset, split, _ = load_split_data(run)
    batch = next(iter(DataLoader(dataset.subset(split["test"]), batch_size=64)))
    # the in-memory model right after training = the same weights, rebuilt a second time
    twin, _, _, _ = load_model(tmp_path / "run" / "checkpoint.pt")
    out_a, out_b = reloaded(batch), twin(batch)
    assert torch.equal(out_a.pred, out_b.pred) and torch.equal(out_a.node_scores, out_b.node_scores)
    assert evaluate_run(tmp_path / "run")["metric"] == json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]


def test_existing_run_folder_is_never_overwritten_without_asking(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(IgtError, match="--overwrite"):
        train_run(tiny_run(), out, progress=False)
    assert (out / "notes.txt").read_text() == "mine"


def test_final_training_batch_of_one_graph_is_dropped(tmp_path):
    """Regression guard: gin-vn's virtual-node BatchNorm cannot train on a batch of one graph."""
    run = tiny_run("backbone.name=gin-vn", "data.limit=133", "train.batch_size=15", "train.epochs=1")
    dataset, split, loaders = load_split_data(run)
    assert split["train"].numel() % 15 == 1
    assert all(batch.num_graphs > 1 for batch in loaders["train"])
    train_run(run, tmp_path / "run", progress=False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "no-such-dataset"], "no-such-dataset"),
        (["train", "bace", "--model", "nope"], "unknown model 'nope'"),
        (["train", "bace", "--set", "train.epochs=many"], "train.epochs: expected an integer"),
        (["evaluate", "/nonexistent/run"], "checkpoint not found"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path, monkeypatch):
    from igt.cli import main

    monkeypatch.chdir(tmp_path)  # the default run folder is runs/... under the working directory
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, IgtError) and message in str(result.exception)
    assert "\n" not in str(result.exception)
    assert callable(main)
    assert list(tmp_path.iterdir()) == []  # regression: a failed train left an empty runs/<name> folder


def test_selection_breaks_metric_ties_by_validation_loss():
    from igt.train.trainer import _better

    assert _better(0.9, 0.5, 0.8, 0.1, higher=True)  # better metric wins whatever the loss
    assert _better(1.0, 0.2, 1.0, 0.3, higher=True)  # saturated metric: lower loss wins
    assert not _better(1.0, 0.3, 1.0, 0.2, higher=True)
    assert _better(0.5, 9.0, 0.6, 0.1, higher=False)  # RMSE: lower is better


def test_atomic_writes_keep_ordinary_permissions_and_leave_no_temporary_files(tmp_path):
    """Regression: files written through mkstemp were private (0600) to their owner."""
    import os

    from igt.fileio import atomic_torch_save, atomic_write_text

    umask = os.umask(0)
    os.umask(umask)
    atomic_write_text(tmp_path / "a.txt", "hello")
    atomic_torch_save({"w": torch.ones(2)}, tmp_path / "b.pt")
    for name in ("a.txt", "b.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.pt"]
    assert torch.load(tmp_path / "b.pt", weights_only=True)["w"].sum() == 2


# ----------------------------------------------------------------------------- regression targets


def test_target_scaler_round_trips_and_ignores_missing_labels():
    from igt.data.task import TaskSpec

    y = torch.tensor([[1.0, 5.0], [3.0, float("nan")], [5.0, 5.0]])
    task = TaskSpec("regression", num_tasks=2, metric="rmse").with_target_scaler(y)
    assert task.target_mean == pytest.approx((3.0, 5.0))
    assert task.target_std == pytest.approx((2.0, 1.0))  # a constant column keeps std 1
    assert torch.allclose(task.destandardize(task.standardize(y)), y, equal_nan=True)
    assert torch.allclose(task.standardize(y)[:, 0], torch.tensor([-1.0, 0.0, 1.0]))


def test_regression_loss_is_on_standard_units_and_predictions_in_label_units():
    from igt.data.task import TaskSpec
    from igt.methods.losses import predict_transform, task_loss

    task = TaskSpec("regression", metric="rmse", target_mean=(10.0,), target_std=(2.0,))
    y = torch.tensor([[12.0], [8.0]])
    # predicting the standardised targets exactly costs nothing, and reads back as the labels
    standard = torch.tensor([[1.0], [-1.0]])
    assert task_loss(task, standard, y).item() == 0.0
    assert torch.equal(predict_transform(task, standard), y)
    assert task_loss(task, torch.zeros(2, 1), y).item() == pytest.approx(1.0)


def test_regression_run_keeps_its_scaler_and_reports_rmse_in_label_units(tmp_path):
    run = tiny_run("data.dataset=esol", "method.name=igt-n")
    metrics = train_run(run, tmp_path / "run", progress=False)
    model, _, task, _ = load_model(tmp_path / "run")
    dataset, split, loaders = load_split_data(run)
    train_y = dataset.y[split["train"]]
    assert task.target_mean == pytest.approx((train_y.mean().item(),), rel=1e-4)
    assert task.target_std == pytest.approx((train_y.std().item(),), rel=1e-4)
    # the metric is recomputed from the reloaded model's de-standardised predictions
    from igt.train.trainer import predict

    preds = predict(model, loaders["test"])
    rmse = float(((preds.y_out - preds.y_true) ** 2).mean() ** 0.5)
    assert rmse == pytest.approx(metrics["test"], rel=1e-5)
    assert abs(preds.y_out.mean() - train_y.mean().item()) < 3 * train_y.std().item()


def test_raw_regression_targets_stay_available(tmp_path):
    run = tiny_run("data.dataset=esol", "method.name=erm", "train.standardize_targets=false")
    train_run(run, tmp_path / "run", progress=False)
    _, _, task, _ = load_model(tmp_path / "run")
    assert not task.standardizes_targets


def test_checkpoints_from_before_the_target_scaler_still_load(tmp_path):
    run = tiny_run("data.dataset=esol", "method.name=erm", "train.epochs=1")
    train_run(run, tmp_path / "run", progress=False)
    path = tmp_path / "run" / "checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    for key in ("target_mean", "target_std"):
        payload["task"].pop(key)
    torch.save(payload, path)
    _, _, task, _ = load_model(tmp_path / "run")
    assert task.target_mean == () and not task.standardizes_targets


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_every_player_and_scores_in_fp32(tmp_path, precision):
    """train.precision: autocast in training (fp16 with a loss scaler per player), fp32 evaluation."""
    reference = train_run(tiny_run("method.name=igt-n", "train.epochs=2"), tmp_path / "fp32", progress=False)
    mixed = train_run(tiny_run("method.name=igt-n", "train.epochs=2", f"train.precision={precision}"),
                      tmp_path / precision, progress=False)
    assert RunConfig.load(tmp_path / precision / "config.yaml").train.precision == precision
    assert 0.0 <= mixed["test"] <= 1.0 and math.isfinite(mixed["valid_loss"])
    history = (tmp_path / precision / "history.csv").read_text()
    assert "adversary/" in history  # the adversary played too
    assert mixed["valid_loss"] != reference["valid_loss"]  # it did run in lower precision


def test_an_unknown_precision_fails_where_the_config_is_made():
    with pytest.raises(IgtError, match="train.precision='fp8'"):
        RunConfig().with_overrides(["train.precision=fp8"])
