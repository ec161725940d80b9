"""``igt reproduce --verify N``: re-train finished runs of a results folder and compare.

Each chosen run is trained again from its own ``config.yaml`` by a fresh ``igt train`` process,
with the code of the commit its ``provenance.json`` names (a temporary git worktree when that
commit is not the checkout's), and its numbers are compared with the recorded ones: the test
metric, and every other number of its ``metrics.json`` except timings (losses, best epoch,
explanation and post-hoc metrics). A run regenerates when all agree to ``tolerance``
(relative). A run whose commit is unknown or was dirty cannot be checked and counts as a
failure: its numbers cannot be traced to code.

A run regenerates only on the kind of machine that trained it: MKL rounds differently on
another vendor's CPU whatever ``MKL_CBWR`` says (an Intel Xeon run re-trained on an AMD EPYC
differs; docs/reproducibility.md). So the draw is made among the runs trained on this machine's
CPU model unless asked otherwise, and a run re-trained elsewhere says where it was trained.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from igt.errors import IgtError
from igt.reproduce import PROVENANCE_FILE, cpu_machine, recorded_commit


@dataclass
class Verification:
    run_dir: Path
    commit: str
    recorded: float | None
    regenerated: float | None
    status: str  # "ok", "differs", "failed" (training failed), "untraceable" (no clean commit)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        numbers = ""
        if self.recorded is not None:
            numbers = f" recorded {self.recorded:.10g}"
            if self.regenerated is not None:
                numbers += f", regenerated {self.regenerated:.10g}"
        return f"{self.status.upper():11s} {self.run_dir} (commit {self.commit}){numbers}{' ' + self.detail if self.detail else ''}"


def finished_runs(out: Path, datasets: list[str] | None = None) -> list[Path]:
    """Run folders under ``out/runs`` with ``metrics.json`` and ``config.yaml``, sorted."""
    root = Path(out) / "runs"
    if not root.is_dir():
        raise IgtError(f"{root}: no runs folder to verify")
    runs = sorted(p.parent for p in root.glob("*/*/seed*/metrics.json") if (p.parent / "config.yaml").is_file())
    if datasets:
        runs = [r for r in runs if r.relative_to(root).parts[0] in set(datasets)]
    return runs


def trained_on(run_dir: Path) -> str | None:
    """The machine a run's ``provenance.json`` names, without cores and threads (``CPU <model>``
    or ``GPU <name>``); ``None`` for runs recorded before machines were."""
    try:
        machine = json.loads((Path(run_dir) / PROVENANCE_FILE).read_text()).get("machine")
    except (OSError, ValueError):
        return None
    return machine.split(",")[0].strip() if isinstance(machine, str) and machine.strip() else None


def split_by_machine(runs: list[Path], here: str | None = None) -> tuple[list[Path], dict[str, int]]:
    """The runs trained on this machine's CPU model (or on an unrecorded machine), and a count
    of the others per machine that trained them."""
    here = here or cpu_machine()
    same, elsewhere = [], {}
    for run in runs:
        machine = trained_on(run)
        if machine is None or machine == here:
            same.append(run)
        else:
            elsewhere[machine] = elsewhere.get(machine, 0) + 1
    return same, elsewhere


def choose_runs(runs: list[Path], n: int, seed: int) -> list[Path]:
    if n < 1:
        raise IgtError(f"--verify {n}: expected at least 1 run")
    if not runs:
        raise IgtError("no finished runs to verify")
    return sorted(random.Random(seed).sample(runs, min(n, len(runs))))


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=120).stdout.strip()


def _repository() -> Path | None:
    """The git checkout igt itself is imported from, if any."""
    try:
        return Path(_git(Path(__file__).resolve().parent, "rev-parse", "--show-toplevel"))
    except (OSError, subprocess.SubprocessError):
        return None


class _Sources:
    """The ``src`` folder of each commit: the checkout's own for HEAD (when clean), else a
    temporary worktree, removed on close."""

    def __init__(self, repo: Path, scratch: Path) -> None:
        self.repo, self.scratch = repo, scratch
        self.head = _git(repo, "rev-parse", "HEAD")
        self.clean = not _git(repo, "status", "--porcelain", "--untracked-files=no")
        self.trees: dict[str, Path] = {}

    def src_for(self, commit: str) -> Path:
        full = _git(self.repo, "rev-parse", "--verify", f"{commit}^{{commit}}")
        if full == self.head and self.clean:
            return self.repo / "src"
        if full not in self.trees:
            tree = self.scratch / f"src-{full[:12]}"
            _git(self.repo, "worktree", "add", "--detach", str(tree), full)
            self.trees[full] = tree
        return self.trees[full] / "src"

    def close(self) -> None:
        for tree in self.trees.values():
            subprocess.run(["git", "-C", str(self.repo), "worktree", "remove", "--force", str(tree)],
                           capture_output=True, timeout=120)


def verify_runs(runs: list[Path], tolerance: float = 1e-6, log: Callable[[str], None] = print) -> list[Verification]:
    """Re-train each run (one ``igt train`` subprocess each) and compare its test metric."""
    repo = _repository()
    if repo is None:
        raise IgtError("--verify needs igt's git checkout (to train each run at its recorded commit)")
    results = []
    with tempfile.TemporaryDirectory(prefix="igt-verify-") as scratch:
        sources = _Sources(repo, Path(scratch))
        try:
            for i, run_dir in enumerate(runs):
                result = _verify_one(run_dir, sources, Path(scratch) / f"run{i}", tolerance)
                log(result.line())
                results.append(result)
        finally:
            sources.close()
    return results


def _verify_one(run_dir: Path, sources: _Sources, scratch_run: Path, tolerance: float) -> Verification:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    recorded = float(metrics["test"]) if metrics.get("test") is not None else None
    commit = recorded_commit(run_dir) or "unknown"
    if commit == "unknown" or commit.endswith("-dirty"):
        return Verification(run_dir, commit, recorded, None, "untraceable", "(no clean commit recorded)")
    try:
        src = sources.src_for(commit)
    except subprocess.SubprocessError:
        return Verification(run_dir, commit, recorded, None, "untraceable", "(commit not in this repository)")
    env = {**os.environ, "PYTHONPATH": str(src)}
    # Absolute paths: the process runs in the commit's worktree, where ``--out results`` would
    # name the worktree's (older) results folder, or none.
    command = [sys.executable, "-m", "igt.cli", "train", str(metrics["dataset"]),
               "--config", str((run_dir / "config.yaml").resolve()), "--out", str(scratch_run.resolve())]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=str(src.parent))
    new_metrics = scratch_run / "metrics.json"
    if done.returncode != 0 or not new_metrics.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return Verification(run_dir, commit, recorded, None, "failed", f"(igt train: {tail[0][:200]})")
    again = json.loads(new_metrics.read_text())
    regenerated = float(again["test"]) if again.get("test") is not None else None
    differing = [key for key in compared_keys(metrics) if not _same(metrics[key], again.get(key), tolerance)]
    machine, here = trained_on(run_dir), cpu_machine()
    where = f" (trained on {machine}, re-trained on {here})" if machine not in (None, here) else ""
    if "test" in differing or (recorded is None) != (regenerated is None):
        return Verification(run_dir, commit, recorded, regenerated, "differs", where.strip())
    if differing:
        return Verification(run_dir, commit, recorded, regenerated, "differs",
                            f"(other metrics differ: {', '.join(differing[:5])}{' ...' if len(differing) > 5 else ''}){where}")
    return Verification(run_dir, commit, recorded, regenerated, "ok")


def compared_keys(metrics: dict) -> list[str]:
    """The numbers of a ``metrics.json`` that must regenerate: every top-level number (task
    metrics, losses, epochs, explanation metrics, post-hoc columns), not the timings."""
    return [key for key, value in metrics.items() if _is_number(value) and not key.endswith("seconds")]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # JSON's true/false are not numbers


def _same(recorded: object, regenerated: object, tolerance: float) -> bool:
    if not _is_number(regenerated):
        return False
    recorded, regenerated = float(recorded), float(regenerated)
    return recorded == regenerated or abs(regenerated - recorded) <= tolerance * max(abs(recorded), 1e-12)


def iter_lines(results: list[Verification]) -> Iterator[str]:
    bad = [r for r in results if not r.ok]
    yield f"{len(results) - len(bad)} of {len(results)} runs regenerate"
    for r in bad:
        yield f"does not regenerate: {r.run_dir} ({r.status})"


__all__ = ["Verification", "choose_runs", "compared_keys", "finished_runs", "iter_lines", "split_by_machine",
           "trained_on", "verify_runs"]
