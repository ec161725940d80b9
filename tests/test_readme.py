"""The README runs as written: its examples after `make demo` (which leaves runs/bbbp-igt-n-seed0), its
tuned tables from the committed runs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from igt.results import TUNED_OVERVIEW_BEGIN, TUNED_OVERVIEW_END, collect_runs, tuned_overview_lines, withhold_defective


README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- examples: tests/test_readme.py runs these after the demo -->"


def readme_examples() -> list[str]:
    text = README.read_text()
    block = text.split(MARKER, 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip().startswith("igt ")]


def test_the_readme_has_examples_after_the_demo():
    commands = readme_examples()
    assert len(commands) >= 4 and any("runs/bbbp-igt-n-seed0" in c for c in commands)


def _igt(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(README.parent / "src")}  # this checkout's code
    return subprocess.run([sys.executable, "-m", "igt.cli", *args], cwd=cwd, capture_output=True, text=True, env=env)


def test_readme_examples_run_as_written(tmp_path):
    # What `make demo` leaves behind, made small: the same folder, trained for one epoch.
    demo = _igt(["train", "bbbp", "--model", "igt-n", "--epochs", "1", "--out", "runs/bbbp-igt-n-seed0", "-q"], tmp_path)
    assert demo.returncode == 0, demo.stderr
    for command in readme_examples():
        done = _igt(shlex.split(command)[1:], tmp_path)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    assert re.search(r"\d", (tmp_path / "runs" / "predictions.csv").read_text())


def test_the_readme_tuned_overview_matches_the_committed_runs():
    # The README's tuned tables are the committed runs' own numbers, never hand-copied ones.
    root = README.parent
    rows = collect_runs(root / "results")
    withhold_defective(rows, repo=root)
    text = README.read_text()
    assert TUNED_OVERVIEW_BEGIN in text and TUNED_OVERVIEW_END in text
    shown = TUNED_OVERVIEW_BEGIN + text.split(TUNED_OVERVIEW_BEGIN, 1)[1].split(TUNED_OVERVIEW_END, 1)[0]
    assert shown + TUNED_OVERVIEW_END == "\n".join(tuned_overview_lines(rows)), (
        "the README's tuned overview is stale: after `igt reproduce --report-only --out results`, copy the "
        "'Tuned overview' section of results/RESULTS.md into it")
