"""`igt reproduce`: model specs, the resumable grid, aggregation, and the quick suite end to end."""

import csv
import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import igt.data
from igt.cli import app
from igt.config import RunConfig
from igt.errors import IgtError
from igt.fileio import safe_name
from igt.reproduce import build_grid, expand_list_options, load_suite, parse_model_spec, resolve_model_spec, run_grid
from igt.results import (GROUPS, RESULT_COLUMNS, TUNED_OVERVIEW_BEGIN, TUNED_OVERVIEW_END, aggregate, build_report,
                         mean_std, tuned_overview_lines)
from igt import run as run_module
from igt.run import model_label

runner = CliRunner()


# ----------------------------------------------------------------------------- model specs


def test_model_spec_with_options_parses_into_method_overrides():
    assert parse_model_spec("igt-n[adversarial=false]") == ("igt-n", ["method.adversarial=false"])
    assert parse_model_spec("gps") == ("gps", [])
    name, overrides = parse_model_spec("igt-vn[num_virtual_nodes=4, backbone=gin, backbone.hidden=32]")
    assert name == "igt-vn"
    assert overrides == ["method.num_virtual_nodes=4", "backbone.name=gin", "backbone.hidden=32"]


def test_model_spec_label_is_the_runs_model_label():
    run = resolve_model_spec(RunConfig(), "igt-n[adversarial=false]")
    assert run.method.name == "igt-n" and run.method.adversarial is False
    assert model_label(run) == "igt-n[adversarial=false]"
    assert model_label(resolve_model_spec(RunConfig(), "gin")) == "gin"
    assert model_label(resolve_model_spec(RunConfig(), "igt-vn[num_virtual_nodes=8]")) == "igt-vn"  # the default


def test_backbone_options_are_part_of_the_label():
    # Regression: labels once ignored backbone options, so `gsat[backbone=gin,backbone.use_rwse=false]`
    # shared the folder (and the finished runs) of `gsat[backbone=gin]`.
    no_rwse = resolve_model_spec(RunConfig(), "gsat[backbone=gin,attention=node,backbone.use_rwse=false]")
    assert model_label(no_rwse) == "gsat[backbone=gin,attention=node,backbone.use_rwse=false]"
    assert model_label(resolve_model_spec(RunConfig(), "gin[backbone.hidden=32]")) == "gin[backbone.hidden=32]"
    assert model_label(resolve_model_spec(RunConfig(), "gin[pooling=sum]")) == "gin[pooling=sum]"  # ERM options too
    assert model_label(no_rwse, backbone_baseline=no_rwse.backbone) == "gsat[backbone=gin,attention=node]"


def test_grid_labels_backbone_options_against_the_suites_defaults(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "defaults: {backbone.hidden: 16, backbone.layers: 2}\n"
        "groups:\n  - datasets: [bace]\n    models: [gin, 'gsat[backbone=gin]', 'gsat[backbone=gin,backbone.use_rwse=false]']\n"
        "    seeds: 1\n"
    )
    jobs = build_grid(load_suite(suite))
    assert [j.label for j in jobs] == ["gin", "gsat[backbone=gin]", "gsat[backbone=gin,backbone.use_rwse=false]"]
    assert len({j.run_dir(tmp_path) for j in jobs}) == 3


@pytest.mark.parametrize("spec", ["igt-n[adversarial]", "igt-n[adversarial=false", "[a=1]", "nope", "igt-n[nokey=1]"])
def test_bad_model_specs_are_one_line_errors(spec):
    with pytest.raises(IgtError) as info:
        resolve_model_spec(RunConfig(), spec)
    assert "\n" not in str(info.value)


def test_list_options_take_several_values():
    args = ["--datasets", "bace", "bbbp", "--models", "gin,igt-n[a=1,b=2]", "igt-vn", "--seeds", "2", "--models=gps"]
    assert expand_list_options(args, {"--datasets", "--models"}) == [
        "--datasets", "bace", "--datasets", "bbbp", "--models", "gin", "--models", "igt-n[a=1,b=2]",
        "--models", "igt-vn", "--seeds", "2", "--models", "gps",
    ]
    with pytest.raises(IgtError, match="--models needs at least one value"):
        expand_list_options(["--models", "--seeds", "1"], {"--models"})


def test_full_suite_grid_has_the_promised_runs():
    jobs = build_grid(load_suite("full"), datasets=["hiv", "bbbp"], models=None)
    hiv = [j for j in jobs if j.dataset == "hiv"]
    bbbp = [j for j in jobs if j.dataset == "bbbp"]
    assert {j.seed for j in hiv} == {0, 1, 2} and {j.seed for j in bbbp} == set(range(5))
    assert "igt-n[adversarial=false]" in {j.label for j in bbbp} and "igt-n[adversarial=false]" not in {j.label for j in hiv}
    assert {j.label for j in hiv} >= {"gin", "gin-vn", "gps", "igt-n", "igt-vn"}
    assert "gsat[backbone=gin,attention=node,backbone.use_rwse=false]" in {j.label for j in hiv}  # as GSAT's molecule configs
    assert not any(j.label.startswith("gsat[backbone=gin") for j in bbbp)
    assert {"igt-n[backbone=gin-vn]", "igt-vn[backbone=gin-vn,split=hard]"} <= {j.label for j in bbbp}  # IGT's encoder x split
    assert len(build_grid(load_suite("full"), datasets=None, models=None)) == 605


def test_presets_label_their_rows_and_apply_before_the_models_options():
    """Published-protocol rows: `gin[preset=gsat-paper]` is GSAT's GIN recipe, labelled
    `gin@gsat-paper`, and a model option written beside the preset wins over it."""
    jobs = build_grid(load_suite("full"), datasets=["spmotif-0.9"], models=None)
    labels = {j.label: j for j in jobs}
    gin = labels["gin@gsat-paper"].run
    assert (gin.backbone.layers, gin.backbone.use_rwse, gin.method.pooling, gin.train.epochs) == (2, False, "sum", 100)
    assert (gin.data.random_node_features, gin.data.spmotif_directed, gin.data.rwse_steps) == (4, True, 0)
    assert gin.data.spmotif_variant == "gsat"  # GSAT's numbers were measured on GSAT's generator
    assert labels["gsat[backbone=gin]@gsat-paper"].run.method.name == "gsat"
    [job] = build_grid(load_suite("full"), datasets=["spmotif-0.9"], models=["gin[preset=gsat-paper,backbone.layers=3]"], seeds=1)
    assert job.run.backbone.layers == 3 and job.label == "gin[backbone.layers=3]@gsat-paper"


# ----------------------------------------------------------------------------- resumable grid


def _tiny_suite(tmp_path, models="[gin, gps]"):
    path = tmp_path / "suite.yaml"
    path.write_text(
        "defaults: {train.epochs: 1}\n"
        f"groups:\n  - datasets: [bace, spmotif-0.9]\n    models: {models}\n    seeds: 2\n"
    )
    return path


@pytest.fixture
def fake_training(monkeypatch):
    """Replace training by writing a metrics.json; record which runs trained."""
    trained = []

    def fake_train_run(run, out, overwrite=False, progress=True, label=None):
        assert overwrite and not (out / "metrics.json").exists()
        if run.backbone.name == "gt":
            raise RuntimeError("boom\nsecond line")
        trained.append((run.data.dataset, label, run.train.seed))
        metrics = {
            "dataset": run.data.dataset, "model": label, "method": run.method.name,
            "backbone": run.backbone.name, "seed": run.train.seed, "best_epoch": 1, "epochs": run.train.epochs,
            "metric": "accuracy" if run.data.dataset.startswith("spmotif") else "rocauc",
            "valid": 0.5, "test": 0.6 + 0.01 * run.train.seed, "train_seconds": 0.1,
        }
        run.save(out / "config.yaml")
        (out / "metrics.json").write_text(json.dumps(metrics))
        return metrics

    monkeypatch.setattr(run_module, "train_run", fake_train_run)
    return trained


def test_a_finished_run_of_another_config_is_a_conflict_never_overwritten(tmp_path, fake_training):
    """Regression: any folder with metrics.json counted as finished, so a 2-epoch quick-suite run
    was reported as the full suite's result. Now it is reported and left alone."""
    jobs = build_grid(load_suite(_tiny_suite(tmp_path)))
    out = tmp_path / "out"
    run_grid(jobs, out, progress=False, log=lambda line: None)
    other = build_grid(load_suite(_tiny_suite(tmp_path)), extra_overrides=["train.epochs=7"])
    fake_training.clear()
    lines = []
    result = run_grid(other, out, progress=False, log=lines.append)
    assert fake_training == [] and len(result.conflicts) == len(jobs) and not result.ok
    assert all("CONFLICT" in line for line in lines if "CONFLICT" in line) and sum("CONFLICT" in l for l in lines) == len(jobs)
    assert RunConfig.load(jobs[0].run_dir(out) / "config.yaml").train.epochs == jobs[0].run.train.epochs
    # Execution-only options (threads, device) do not make a different run; the thread count used
    # is written into the run's config.
    result = run_grid(jobs, out, progress=False, log=lambda line: None, threads=1)
    assert result.skipped == len(jobs) and result.ok
    import shutil

    shutil.rmtree(jobs[0].run_dir(out))
    run_grid(jobs, out, progress=False, log=lambda line: None, threads=1)
    assert RunConfig.load(jobs[0].run_dir(out) / "config.yaml").train.threads == 1


def test_grid_resumes_only_unfinished_runs(tmp_path, fake_training):
    jobs = build_grid(load_suite(_tiny_suite(tmp_path)))
    assert len(jobs) == 8
    result = run_grid(jobs, tmp_path / "out", progress=False, log=lambda line: None)
    assert len(fake_training) == 8 and result.skipped == 0 and result.ok

    finished = {job.run_dir(tmp_path / "out") for job in jobs}
    mtimes = {d: (d / "metrics.json").stat().st_mtime_ns for d in finished}
    killed = jobs[3].run_dir(tmp_path / "out")
    (killed / "metrics.json").unlink()  # a run killed halfway has no metrics.json ...
    (killed / "checkpoint.pt").write_bytes(b"half-written")  # ... and maybe leftovers
    fake_training.clear()
    time.sleep(0.01)

    result = run_grid(jobs, tmp_path / "out", progress=False, log=lambda line: None)
    assert fake_training == [(jobs[3].dataset, jobs[3].label, jobs[3].seed)]
    assert result.skipped == 7 and len(result.trained) == 1
    assert not (killed / "checkpoint.pt").exists()  # cleared before training again
    for d in finished - {killed}:
        assert (d / "metrics.json").stat().st_mtime_ns == mtimes[d]
    assert json.loads((killed / "provenance.json").read_text())["commit"]


def _git_history(repo):
    """A repository with commits ``old`` -> ``fix`` -> ``new`` and ``side`` branching off ``old``;
    their full hashes by name."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()

    repo.mkdir()
    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    hashes = {}
    for name in ("old", "fix", "new"):
        git("commit", "-q", "--allow-empty", "-m", name)
        hashes[name] = git("rev-parse", "HEAD")
    git("checkout", "-q", "-b", "side", hashes["old"])
    git("commit", "-q", "--allow-empty", "-m", "side")
    hashes["side"] = git("rev-parse", "HEAD")
    return hashes


def test_redo_before_retrains_only_runs_older_than_the_commit_and_keeps_them_until_replaced(tmp_path, fake_training):
    from igt.reproduce import CommitCutoff

    commits = _git_history(tmp_path / "repo")
    cutoff = CommitCutoff.resolve(commits["fix"][:8], tmp_path / "repo")
    assert cutoff.commit == commits["fix"]
    assert [cutoff.is_older(commits[name][:7]) for name in ("old", "fix", "new", "side")] == [True, False, False, True]
    assert cutoff.is_older("unknown") and cutoff.is_older("") and not cutoff.is_older(commits["new"][:7] + "-dirty")
    assert cutoff.is_older("0123abc")  # not a commit of this repository: nothing says it has the fix
    with pytest.raises(IgtError, match="would count as older too"):  # redone again on every call
        CommitCutoff.resolve(commits["fix"], tmp_path / "repo", current=commits["side"][:7])

    jobs = build_grid(load_suite(_tiny_suite(tmp_path)))
    out = tmp_path / "out"
    old, new = jobs[:2], jobs[2:4]
    run_grid(old, out, commit=commits["old"][:7], progress=False, log=lambda line: None)
    run_grid(new, out, commit=commits["new"][:7] + "-dirty", progress=False, log=lambda line: None)
    run_grid(jobs[4:], out, commit=commits["side"][:7], progress=False, log=lambda line: None)
    # An old run whose config differs from its entry (an option added since, say) is redone too.
    other = old[1].run.with_overrides(["train.epochs=7"])
    other.save(old[1].run_dir(out) / "config.yaml")
    assert run_grid(old[1:2], out, progress=False, log=lambda line: None).conflicts
    fake_training.clear()

    # A redo that fails leaves the finished old run as it was.
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "train_run", broken)
        result = run_grid(jobs[:1], out, commit=commits["new"][:7], progress=False, log=lambda line: None,
                          redo_before=cutoff)
    kept = jobs[0].run_dir(out)
    assert len(result.failed) == 1 and (kept / "metrics.json").is_file()
    assert json.loads((kept / "provenance.json").read_text())["commit"] == commits["old"][:7]

    lines = []
    result = run_grid(jobs, out, commit=commits["new"][:7], progress=False, log=lines.append, redo_before=cutoff)
    redone = [job for job in jobs if job not in new]
    assert sorted(fake_training) == sorted((job.dataset, job.label, job.seed) for job in redone)
    assert result.skipped == len(new) and len(result.trained) == len(redone) and result.ok
    assert RunConfig.load(old[1].run_dir(out) / "config.yaml").train.epochs == old[1].run.train.epochs
    for job in jobs:
        provenance = json.loads((job.run_dir(out) / "provenance.json").read_text())
        assert provenance["commit"] == (commits["new"][:7] + "-dirty" if job in new else commits["new"][:7])
        assert (job.run_dir(out) / "metrics.json").is_file() and not (job.run_dir(out) / "error.txt").exists()
    assert not list((out / ".redo").rglob("*.replaced")) and not list((out / ".redo").rglob("metrics.json"))
    # Only runs/ is reported; a second pass finds nothing older.
    from igt.results import collect_runs

    assert len(collect_runs(out)) == len(jobs)
    fake_training.clear()
    assert run_grid(jobs, out, commit=commits["new"][:7], progress=False, log=lambda line: None,
                    redo_before=cutoff).skipped == len(jobs)
    assert fake_training == []


def test_redo_before_an_unknown_commit_is_a_one_line_error(tmp_path, fake_training, monkeypatch, capsys):
    import sys

    from igt.cli import main

    monkeypatch.setattr(sys, "argv", ["igt", "reproduce", "--suite", str(_tiny_suite(tmp_path)), "--out",
                                      str(tmp_path / "out"), "--redo-before", "no-such-commit-anywhere", "-q"])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and fake_training == [] and not (tmp_path / "out" / "runs").exists()
    assert "--redo-before no-such-commit-anywhere: not a commit" in err and err.count("\n") == 1, err


def test_dry_run_lists_each_runs_state_and_counts_them_without_training(tmp_path, fake_training):
    suite = _tiny_suite(tmp_path)
    out = tmp_path / "out"
    jobs = build_grid(load_suite(suite))
    run_grid(jobs[:3], out, progress=False, log=lambda line: None)
    (jobs[2].run_dir(out) / "metrics.json").unlink()  # killed halfway: runs again
    RunConfig.load(jobs[1].run_dir(out) / "config.yaml").with_overrides(["train.epochs=7"]).save(
        jobs[1].run_dir(out) / "config.yaml")  # another config in the folder
    fake_training.clear()
    result = runner.invoke(app, ["reproduce", "--suite", str(suite), "--out", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    first = jobs[0]
    assert f"{first.dataset}  {first.label}  seed {first.seed}: finished" in lines
    assert f"{jobs[1].dataset}  {jobs[1].label}  seed {jobs[1].seed}: conflict" in lines
    assert lines[-1] == f"{len(jobs)} runs: 1 conflict, 1 finished, {len(jobs) - 2} to run"
    assert fake_training == [] and not (out / "RESULTS.md").exists()


def test_columns_of_a_fixed_defect_are_withheld_for_runs_trained_before_the_fix(tmp_path):
    from igt.results import Defect, collect_runs, results_markdown, withhold_defective

    commits = _git_history(tmp_path / "repo")
    for seed, name in enumerate(("old", "fix", "new", "side")):
        folder = tmp_path / "runs" / "bace" / "gin" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({
            "dataset": "bace", "model": "gin", "seed": seed, "metric": "rocauc", "test": 0.8,
            "gnnexplainer_node_auc": 0.6, "pgexplainer_node_auc": 0.1, "pgexplainer_characterization": 0.2}))
        (folder / "provenance.json").write_text(json.dumps({"commit": commits[name][:7]}))
    rows = collect_runs(tmp_path)
    defect = Defect("pgexplainer_", commits["fix"][:7], "a bug")
    withheld = withhold_defective(rows, [defect], repo=tmp_path / "repo")
    assert withheld == {defect: 2}  # "old" and "side" (not a descendant of the fix)
    kept = {row["commit"]: row["pgexplainer_node_auc"] for row in rows}
    assert kept == {commits["old"][:7]: None, commits["fix"][:7]: 0.1, commits["new"][:7]: 0.1,
                    commits["side"][:7]: None}
    assert all(row["gnnexplainer_node_auc"] == 0.6 and row["test"] == 0.8 for row in rows)
    md = results_markdown(rows, "igt reproduce", "abc1234", withheld=withheld)
    assert f"Left out: the `pgexplainer_*` columns of 2 runs trained before `{commits['fix'][:7]}` (a bug)" in md
    # A fix this repository does not know withholds nothing.
    assert withhold_defective(collect_runs(tmp_path), [Defect("pgexplainer_", "0123abc", "?")], repo=tmp_path / "repo") == {}


def test_failed_run_is_reported_and_the_grid_goes_on(tmp_path, fake_training):
    suite = _tiny_suite(tmp_path, models="[gin, gt]")
    out = tmp_path / "out"
    result = runner.invoke(app, ["reproduce", "--suite", str(suite), "--out", str(out), "-q", "--datasets", "bace"])
    assert result.exit_code == 1, result.output
    assert len(fake_training) == 2  # gin, both seeds
    assert "2 trained, 0 already finished, 2 failed" in result.output
    assert "RuntimeError: boom second line" in result.output
    assert (out / "runs" / "bace" / "gt" / "seed0" / "error.txt").is_file()
    assert (out / "RESULTS.md").is_file()


# ----------------------------------------------------------------------------- aggregation


def _write_run(out, dataset, model, seed, metric, test, explanation=None, seconds=1.5, machine=None, edge=None):
    folder = out / "runs" / dataset / safe_name(model) / f"seed{seed}"
    folder.mkdir(parents=True)
    metrics = {"dataset": dataset, "model": model, "seed": seed, "metric": metric, "valid": test, "test": test,
               "epochs": 3, "train_seconds": seconds}
    if explanation is not None:
        metrics["test_explanation_auc"] = explanation
    if edge is not None:
        metrics["test_edge_explanation_auc"] = edge
    (folder / "metrics.json").write_text(json.dumps(metrics))
    provenance = {"commit": "abc1234"} if machine is None else {"commit": "abc1234", "machine": machine}
    (folder / "provenance.json").write_text(json.dumps(provenance))


def test_mean_std_uses_sample_deviation():
    cell = mean_std([0.7, 0.8, 0.9])
    assert cell.mean == pytest.approx(0.8) and cell.std == pytest.approx(0.1) and cell.n == 3
    assert mean_std([0.5]).std is None


def test_report_aggregates_synthetic_runs(tmp_path):
    for seed, value in enumerate([0.70, 0.80, 0.90]):
        _write_run(tmp_path, "hiv", "gin", seed, "rocauc", value)
        _write_run(tmp_path, "hiv", "igt-n", seed, "rocauc", value - 0.05)
        _write_run(tmp_path, "esol", "gin", seed, "rmse", 1.0 + seed)  # 2.0 ± 1.0
        _write_run(tmp_path, "esol", "igt-n", seed, "rmse", 0.5 + seed)  # 1.5 ± 1.0: lower is better
        _write_run(tmp_path, "spmotif-0.5", "igt-n", seed, "accuracy", 0.5, explanation=0.7 + 0.1 * seed)
        _write_run(tmp_path, "spmotif-0.9", "igt-n", seed, "accuracy", 0.4, explanation=0.6)
        _write_run(tmp_path, "spmotif-0.5", "gin", seed, "accuracy", 0.45)
    _write_run(tmp_path, "hiv", "igt-n[gamma=0.2]", 0, "rocauc", 0.95)
    report = build_report(tmp_path, "igt reproduce --report-only", "abc1234")
    assert report.runs == 22

    with open(report.results_csv) as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == RESULT_COLUMNS and len(rows) == 22
    gin_spmotif = [r for r in rows if r["dataset"] == "spmotif-0.5" and r["model"] == "gin"]
    assert gin_spmotif[0]["explanation_auc"] == "" and gin_spmotif[0]["commit"] == "abc1234"
    assert {r["seconds"] for r in rows} == {"1.5"}

    table = aggregate(rows, GROUPS[0])  # molecule classification, from csv strings
    assert table["gin"]["hiv"].mean == pytest.approx(0.8) and table["gin"]["hiv"].std == pytest.approx(0.1)
    explanation = aggregate(rows, GROUPS[4])
    assert set(explanation) == {"igt-n"} and explanation["igt-n"]["spmotif-0.5"].mean == pytest.approx(0.8)

    md = report.results_md.read_text()
    assert "`igt reproduce --report-only`" in md and "`abc1234`" in md
    assert "| gin | **0.8000 ± 0.1000** |" in md  # higher ROC-AUC wins; the variant has its own table
    main_table, variants = md.split("## Molecule regression")[0].split("Variants and ablations")
    assert "igt-n[gamma=0.2]" not in main_table
    assert "| igt-n | 0.7500 ± 0.1000 |\n| igt-n[gamma=0.2] | **0.9500 (n=1)** |" in variants
    assert "| igt-n | **1.500 ± 1.000** |" in md and "| gin | 2.000 ± 1.000 |" in md  # lower RMSE wins
    assert "| gin (published, OGB leaderboard) | 0.7558 ± 0.0140 |" in md
    assert "| igt-n | **50.00 ± 0.00** | **40.00 ± 0.00** |" in md  # accuracy in %, columns sorted by b
    assert "| dir@dir-paper (published, DIR paper, Table 1) | 45.50 ± 2.15 | 39.87 ± 0.56 |" in md
    assert "| igt-n | **80.00 ± 10.00** | **60.00 ± 0.00** |" in md  # explanation ROC-AUC
    # Against the papers: exact model labels only; z in published standard deviations.
    comparison = md.split("## Against the published numbers")[1].split("## Compute")[0]
    assert "| hiv | gin | ROC-AUC | 0.8000 ± 0.1000 (n=3) | 0.7558 ± 0.0140 | OGB leaderboard | +3.2 | **yes** |" in comparison
    assert "| spmotif-0.5 | gin | accuracy (%) |" not in comparison  # GSAT's GIN ran GSAT's recipe
    compared = {line.split(" | ")[1] for line in comparison.splitlines() if line.startswith("| spmotif")}
    # igt-n, plain gin and dir (RWSE on gps) have no published number of their recipe
    assert compared == set()
    for name in ("molecule-classification", "molecule-regression", "spmotif-accuracy", "spmotif-vs-bias"):
        assert report.plots[name].stat().st_size > 1000


def test_tuned_igt_is_compared_with_the_best_tuned_model_of_each_family(tmp_path):
    for seed, offset in enumerate([-0.01, 0.0, 0.01]):
        _write_run(tmp_path, "bace", "igt-n@tuned", seed, "rocauc", 0.80 + offset)
        _write_run(tmp_path, "bace", "gin@tuned", seed, "rocauc", 0.75 + offset)  # best ERM by 0.05: beyond 0.02
        _write_run(tmp_path, "bace", "gps@tuned", seed, "rocauc", 0.70 + offset)
        _write_run(tmp_path, "bace", "gsat@tuned", seed, "rocauc", 0.79 + 2 * offset)  # 0.01 < 0.01 + 0.02
        _write_run(tmp_path, "bace", "gin", seed, "rocauc", 0.95)  # fixed config: not in the comparison
        _write_run(tmp_path, "esol", "igt-vn@tuned", seed, "rmse", 1.0 + offset)
        _write_run(tmp_path, "esol", "rf@tuned", seed, "rmse", 0.8 + offset)  # lower RMSE: IGT is behind
    _write_run(tmp_path, "bace", "rf@tuned", 0, "rocauc", 0.90)
    report = build_report(tmp_path, "igt reproduce", "abc1234").results_md.read_text()
    section = report.split("## Tuned: IGT against the best of each family")[1].split("\n## ")[0]
    assert "| bace | igt-n | 0.8000 ± 0.0100 (n=3) | ERM backbone | gin | 0.7500 ± 0.0100 (n=3) | +0.0500 | **yes** |" in section
    assert "| bace | igt-n | 0.8000 ± 0.0100 (n=3) | rationalization baseline | gsat | 0.7900 ± 0.0200 (n=3) | +0.0100 | no |" in section
    assert "| bace | igt-n | 0.8000 ± 0.0100 (n=3) | fingerprint baseline | rf | 0.9000 (n=1) | -0.1000 | n/a |" in section
    assert "| esol | igt-vn | 1.000 ± 0.010 (n=3) | fingerprint baseline | rf | 0.800 ± 0.010 (n=3) | -0.200 | **yes** |" in section
    assert "| esol | igt-vn | 1.000 ± 0.010 (n=3) | ERM backbone |" not in section  # a family without runs there
    assert "0.9500" not in section


def test_tuned_overview_puts_each_tuned_model_beside_its_fixed_config_mean(tmp_path):
    for seed, offset in enumerate([-0.01, 0.0, 0.01]):
        _write_run(tmp_path, "bace", "igt-n@tuned", seed, "rocauc", 0.80 + offset)
        _write_run(tmp_path, "bace", "igt-n", seed, "rocauc", 0.70)
        _write_run(tmp_path, "bace", "gin@tuned", seed, "rocauc", 0.75 + offset)
        _write_run(tmp_path, "spmotif-0.9", "igt-n@tuned", seed, "accuracy", 0.6, explanation=0.9, edge=0.8)
        _write_run(tmp_path, "hiv", "gin", seed, "rocauc", 0.9)  # no tuned run on HIV: no column
    _write_run(tmp_path, "bace", "gsat@tuned", 0, "rocauc", 0.79)
    _write_run(tmp_path, "bace", "igt-vn[split=hard]", 0, "rocauc", 0.99)  # a variant: not in the overview
    md = build_report(tmp_path, "igt reproduce", "abc1234").results_md.read_text()
    overview = md.split("## Tuned overview")[1].split("\n## ")[0]
    assert overview.count(TUNED_OVERVIEW_BEGIN) == 1 and overview.count(TUNED_OVERVIEW_END) == 1
    assert "| model | bace ROC-AUC | spmotif-0.9 accuracy % |" in overview  # columns: datasets with tuned runs
    assert "| igt-n | **0.800 ± 0.010 (0.700)** | 60.0 ± 0.0 |" in overview  # bold: best tuned, (fixed mean)
    assert "| gin | 0.750 ± 0.010 |  |" in overview and "| gsat | 0.790 (n=1) |  |" in overview
    assert "| gsat[backbone=gin]@gsat-paper (published, GSAT paper) |  | 44.2 |" in overview
    assert "| igt-n | 90.0 ± 0.0 | 80.0 ± 0.0 |" in overview  # node, then edge explanation AUC
    assert "0.99" not in overview and "hiv" not in overview
    assert tuned_overview_lines([]) == []


def test_report_lists_each_tuning_study_with_its_chosen_config_and_hours(tmp_path):
    _write_run(tmp_path, "bace", "gin@tuned", 0, "rocauc", 0.8)
    studies = {("bace", "gin"): {"best_value": 0.75, "best_trial": 3, "epochs_per_trial": 30,
                                 "trials": {"complete": 8, "pruned": 4}, "total_seconds": 1800.0,
                                 "best_params": {"train.lr": 0.0012345, "backbone.name": "gin-vn"}},
               ("bace", "rf"): {"best_value": 0.7, "best_trial": 0, "epochs_per_trial": None,
                                "trials": {"complete": 12, "pruned": 0}, "total_seconds": 5400.0,
                                "best_params": {"method.n_estimators": 300}}}
    for (dataset, model), summary in studies.items():
        folder = tmp_path / "tuning" / dataset / model
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"dataset": dataset, "model": model, **summary}))
    (tmp_path / "tuning" / "bace" / "gps").mkdir()
    (tmp_path / "tuning" / "bace" / "gps" / "summary.json").write_text("{")  # being written: left out
    md = build_report(tmp_path, "igt reproduce", "abc1234").results_md.read_text()
    section = md.split("## Tuning studies")[1].split("\n## ")[0]
    assert ("| bace | gin | 8 / 4 | 30 | 0.75 | 3 | `train.lr=0.00123`, `backbone.name=gin-vn` | 0.50 |"
            in section)
    assert "| bace | rf | 12 / 0 | - | 0.7 | 0 | `method.n_estimators=300` | 1.50 |" in section
    assert "2 studies, 24 trials, **2.0 h** of tuning." in section and "| bace | gps |" not in section


def test_dir_on_rwse_is_not_scored_against_dirs_own_network(tmp_path):
    # Our ``dir`` reads RWSE on ``gps``; DIR's paper ran its own network on the raw features, so
    # z-scores against it (+18.5 and +69.8 once) measured the inputs, not the method.
    for seed in range(3):
        _write_run(tmp_path, "spmotif-0.5", "dir", seed, "accuracy", 0.85)
    md = build_report(tmp_path, "igt reproduce --report-only", "abc1234").results_md.read_text()
    assert "| spmotif-0.5 | dir | accuracy" not in md  # no z-score row (here: no comparison at all)
    assert "| dir@dir-paper (published, DIR paper, Table 1) |" in md and "| dir | **85.00 ± 0.00** |" in md


def test_gsat_published_explanation_auc_is_scored_against_edge_scores(tmp_path):
    # GSAT's paper scores edge attention; comparing it with our node scores mixed two metrics.
    model = "gsat[backbone=gin]@gsat-paper"
    for seed in range(3):
        _write_run(tmp_path, "spmotif-0.7", model, seed, "accuracy", 0.5, explanation=0.2, edge=0.7 + 0.01 * seed)
    md = build_report(tmp_path, "igt reproduce", "abc1234").results_md.read_text()
    edge_table = md.split("explanation ROC-AUC of edge scores")[1].split("##")[0]
    assert f"| {model} | **71.00 ± 1.00** |" in edge_table and "74.07" in edge_table
    comparison = md.split("## Against the published numbers")[1].split("## Compute")[0]
    assert f"| spmotif-0.7 | {model} | edge explanation ROC-AUC (%) | 71.00 ± 1.00 (n=3) | 74.07 |" in comparison
    assert "| explanation ROC-AUC (%)" not in comparison


def test_report_sums_training_time_per_dataset_and_model(tmp_path):
    for seed, seconds in enumerate([60, 120, 180]):
        _write_run(tmp_path, "hiv", "gin", seed, "rocauc", 0.8, seconds=seconds, machine="CPU x, 2 cores")
    _write_run(tmp_path, "hiv", "igt-n[gamma=0.2]", 0, "rocauc", 0.8, seconds=3600, machine="GPU y")
    _write_run(tmp_path, "esol", "gin", 0, "rmse", 1.0, seconds=600)  # provenance without a machine
    compute = build_report(tmp_path, "igt reproduce", "abc1234").results_md.read_text().split("## Compute")[1]
    assert "5 runs trained for **1.3 h** in all" in compute  # 4,560 s
    assert "Machines: CPU x, 2 cores (3 runs); GPU y (1 run); not recorded (1 run)." in compute
    assert "| hiv | 4 | 1.10 | 16.5 | 60.0 |" in compute and "| esol | 1 | 0.17 | 10.0 | 10.0 |" in compute
    assert "| model | esol | hiv |\n|---|---|---|\n| gin | 10.0 | 2.0 |" in compute  # the tables' dataset order
    assert "| igt-n[gamma=0.2] |" not in compute  # variants count in the totals only


# ----------------------------------------------------------------------------- quick suite end to end


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    if not hasattr(igt.data, "load_dataset"):
        pytest.skip("igt.data.load_dataset is not there yet (data layer)")
    out = tmp_path_factory.mktemp("quick")
    result = runner.invoke(app, ["reproduce", "--suite", "quick", "--out", str(out), "--threads", "1", "-q"])
    return out, result


def test_quick_suite_end_to_end(quick_results):
    out, result = quick_results
    assert result.exit_code == 0, result.output
    assert "8 trained, 0 already finished, 0 failed" in result.output
    assert len(list(out.glob("runs/*/*/seed0/metrics.json"))) == 8
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and set(RESULT_COLUMNS) <= set(rows[0])
    # each run records what trained it (here: the CPU, one thread as --threads asked)
    assert all(r["machine"].startswith("CPU ") and r["machine"].endswith(", 1 torch thread") for r in rows)
    assert {r["model"] for r in rows} == {"gin", "gps", "igt-n", "igt-vn"}
    spmotif = [r for r in rows if r["dataset"] == "spmotif-0.9"]
    assert all(r["explanation_auc"] != "" for r in spmotif if r["model"].startswith("igt"))
    assert all(r["explanation_auc"] == "" for r in rows if r["dataset"] == "bace")
    md = (out / "RESULTS.md").read_text()
    assert "igt reproduce --suite quick" in md and "**" in md and "(published, DIR paper, Table 1)" in md
    for png in ("molecule-classification", "spmotif-accuracy", "spmotif-vs-bias"):
        assert (out / "plots" / f"{png}.png").stat().st_size > 1000


def test_quick_suite_rerun_trains_only_the_killed_run(quick_results, monkeypatch):
    out, _ = quick_results
    killed = out / "runs" / "bace" / "gps" / "seed0"
    (killed / "metrics.json").unlink()
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/seed0/metrics.json")}
    calls = []
    real_train_run = run_module.train_run
    monkeypatch.setattr(run_module, "train_run", lambda *a, **k: calls.append(a[1]) or real_train_run(*a, **k))
    result = runner.invoke(app, ["reproduce", "--suite", "quick", "--out", str(out), "--threads", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert calls == [killed] and (killed / "metrics.json").is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    report_only = runner.invoke(app, ["reproduce", "--report-only", "--out", str(out)])
    assert report_only.exit_code == 0 and "8 finished runs" in report_only.output
    assert os.path.getsize(out / "results.csv") > 0


def test_a_run_claimed_by_another_live_process_is_left_alone(tmp_path, fake_training):
    """Regression: two `igt reproduce` on one results folder cleared each other's runs."""
    import os
    import subprocess
    import sys

    jobs = build_grid(load_suite(_tiny_suite(tmp_path)))
    busy, stale = jobs[0].run_dir(tmp_path / "out"), jobs[1].run_dir(tmp_path / "out")
    busy.mkdir(parents=True)
    (busy / "config.yaml").write_text("theirs")
    busy.with_name(busy.name + ".lock").write_text(str(os.getpid()))  # a live owner
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.with_name(stale.name + ".lock").write_text(dead.stdout.strip())  # its owner is gone

    result = run_grid(jobs, tmp_path / "out", progress=False, log=lambda line: None)
    trained = {(d, label, seed) for d, label, seed in fake_training}
    assert (jobs[0].dataset, jobs[0].label, jobs[0].seed) not in trained
    assert (jobs[1].dataset, jobs[1].label, jobs[1].seed) in trained
    assert (busy / "config.yaml").read_text() == "theirs" and result.skipped == 1
    assert not stale.with_name(stale.name + ".lock").exists()  # released after training


def _lock_of(run_dir):
    return run_dir.with_name(run_dir.name + ".lock")


def test_a_run_claimed_on_another_machine_is_left_alone_until_its_lock_goes_stale(tmp_path, fake_training):
    """Regression: a lock held only a PID, so on a results folder shared by several machines a
    run training elsewhere looked dead here (no such PID on this host) and was cleared."""
    import os
    import socket

    from igt.fileio import process_name
    from igt.reproduce import LOCK_STALE_SECONDS

    jobs = build_grid(load_suite(_tiny_suite(tmp_path)))
    out = tmp_path / "out"
    elsewhere, silent, ours_dead = (job.run_dir(out) for job in jobs[:3])
    for run_dir in (elsewhere, silent, ours_dead):
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    _lock_of(elsewhere).write_text("other-host:1")  # touched just now: its owner is alive
    _lock_of(silent).write_text("other-host:1")
    old = _lock_of(silent).stat().st_mtime - LOCK_STALE_SECONDS - 60
    os.utime(_lock_of(silent), (old, old))  # a lost machine: nobody touches it any more
    _lock_of(ours_dead).write_text(f"{socket.gethostname()}:999999999")  # this host, no such process
    seen = {}
    real_train_run = run_module.train_run

    def train_run(run, out_dir, **kwargs):
        seen[out_dir] = _lock_of(out_dir).read_text()
        return real_train_run(run, out_dir, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "train_run", train_run)
        result = run_grid(jobs, out, progress=False, log=lambda line: None)
    assert elsewhere not in seen and result.skipped == 1 and _lock_of(elsewhere).read_text() == "other-host:1"
    assert seen[silent] == seen[ours_dead] == process_name()  # taken over, and says who holds it now
    assert not _lock_of(silent).exists() and not _lock_of(ours_dead).exists()


def test_a_held_lock_is_touched_so_other_machines_see_its_owner_alive(tmp_path, monkeypatch):
    from igt import reproduce

    monkeypatch.setattr(reproduce, "LOCK_HEARTBEAT_SECONDS", 0.01)
    run_dir = tmp_path / "runs" / "seed0"
    with reproduce.claim_run(run_dir) as claimed:
        assert claimed
        os.utime(_lock_of(run_dir), (0, 0))  # as if nobody had touched it since 1970
        for _ in range(10_000):  # a few beats, however busy the machine is
            if _lock_of(run_dir).stat().st_mtime > 0:
                break
            time.sleep(0.01)
        assert _lock_of(run_dir).stat().st_mtime > 0
    assert not _lock_of(run_dir).exists()


def test_committed_results_csv_has_every_run_folder():
    # Every row of the committed table must point at a committed run folder: a results commit that
    # misses a new folder would otherwise go unnoticed until someone tries to reproduce the row.
    results = Path(__file__).resolve().parents[1] / "results"
    with open(results / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    missing = [r["run_dir"] for r in rows if not (results / r["run_dir"] / "metrics.json").is_file()]
    assert not missing, f"results.csv rows without a run folder: {missing[:5]}"


def test_train_takes_a_preset_after_the_model_and_before_set():
    from igt.cli import build_run_config

    run = build_run_config("spmotif-0.9", "gin", None, None, None, None, None, None, None,
                           ["backbone.layers=4"], "gsat-paper")
    assert run.method.name == "erm" and run.method.pooling == "sum" and run.backbone.layers == 4
    assert run.train.epochs == 100 and run.data.random_node_features == 4
    with pytest.raises(IgtError, match="unknown preset"):
        build_run_config("spmotif-0.9", "gin", None, None, None, None, None, None, None, [], "nope")


TUNED_SUITE = """
name: tiny-tuned
defaults: {train.device: cpu, backbone.hidden: 8, backbone.layers: 1, backbone.heads: 2, data.rwse_steps: 0,
           data.lap_k: 0, data.limit: 200, data.split: random}
groups:
  - datasets: [bbbp]
    models: [gin, "rf[n_estimators=10]"]
    seeds: 2
    tune: {trials: 2, epochs: 1}
"""


def test_a_tuned_suite_tunes_each_model_once_then_trains_its_best_config_per_seed(tmp_path):
    suite = tmp_path / "tuned.yaml"
    suite.write_text(TUNED_SUITE)
    jobs = build_grid(load_suite(suite))
    assert [(job.label, job.seed) for job in jobs] == [("gin@tuned", 0), ("gin@tuned", 1),
                                                        ("rf[n_estimators=10]@tuned", 0), ("rf[n_estimators=10]@tuned", 1)]
    from igt.reproduce import job_state

    out = tmp_path / "results"
    assert {job_state(job, out) for job in jobs} == {"to tune"}
    result = run_grid(jobs, out, progress=False, log=lambda line: None)
    assert result.ok and len(result.trained) == 4
    for model, label in (("gin", "gin"), ("rf", "rf_n_estimators=10_")):
        study = out / "tuning" / "bbbp" / label
        summary = json.loads((study / "summary.json").read_text())
        assert summary["trials"].get("complete", 0) + summary["trials"].get("pruned", 0) == 2
        assert "test" not in json.dumps(summary["best_params"])
        best = RunConfig.load(study / "best.yaml")
        runs = out / "runs" / "bbbp" / f"{label}_tuned"
        seed0 = json.loads((runs / "seed0" / "metrics.json").read_text())
        assert seed0["model"].endswith("@tuned") and seed0["valid"] == pytest.approx(summary["best_value"], rel=1e-6)
        recorded = RunConfig.load(runs / "seed1" / "config.yaml")
        assert recorded.train.seed == 1 and recorded.with_overrides(["train.seed=0"]) == best
    # The spec's own options are fixed, never searched.
    assert RunConfig.load(out / "tuning" / "bbbp" / "rf_n_estimators=10_" / "best.yaml").method.n_estimators == 10
    again = run_grid(build_grid(load_suite(suite)), out, progress=False, log=lambda line: None)
    assert again.skipped == 4 and not again.trained
    report = build_report(out, "igt reproduce --suite tiny-tuned", "abc1234")
    text = report.results_md.read_text()
    assert "Tuned (`@tuned`" in text and "| gin@tuned |" in text


def test_a_study_tuned_by_another_process_is_skipped_not_shared(tmp_path, fake_training):
    """A tuned suite's study (SQLite in the results folder) runs in one process: on a folder
    shared by several machines, the others skip its seeds until a rerun finds it finished."""
    suite = tmp_path / "tuned.yaml"
    suite.write_text(TUNED_SUITE.replace('models: [gin, "rf[n_estimators=10]"]', "models: [gin]"))
    jobs = build_grid(load_suite(suite))
    out = tmp_path / "results"
    study = jobs[0].tune.folder(out)
    study.parent.mkdir(parents=True)
    study.with_name(study.name + ".lock").write_text("other-host:1")
    lines = []
    result = run_grid(jobs, out, progress=False, log=lines.append)
    assert result.skipped == 2 and not result.trained and not result.failed and not study.exists()
    assert sum("another igt reproduce is tuning gin" in line for line in lines) == 2
