"""igt bench's statistics: ratios are medians over repeats in which ours and the peer alternate."""

from __future__ import annotations

import pytest

from igt.bench import (
    _interleaved, _ratio, bench_featurize_large_molecules, bench_featurize_processes, bench_featurize_vs_ogb,
)

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "not a molecule", "C[C@H](N)C(=O)O", "[Na+].[Cl-]"] * 4


def test_runs_alternate_part_by_part_and_the_first_one_alternates_too() -> None:
    order: list[tuple[str, int]] = []

    def run(name: str):
        return lambda part: order.append((name, part)) or 1.0

    seconds = _interleaved([run("ours"), run("peer")], parts=2, repeats=2)
    assert seconds == [[2.0, 2.0], [2.0, 2.0]]
    assert order == [("ours", 0), ("peer", 0), ("peer", 1), ("ours", 1),
                     ("peer", 0), ("ours", 0), ("ours", 1), ("peer", 1)]


def test_one_disturbed_repeat_does_not_move_the_median() -> None:
    """Load that slows both sides of a repeat leaves its ratio alone; a spike on one side of one
    repeat shows in the spread, not in the median."""
    calls = {"ours": 0, "peer": 0}

    def timed(name: str, base: float):
        def run(part: int) -> float:
            calls[name] += 1
            repeat = calls[name] - 1
            load = 3.0 if repeat == 1 else 1.0  # the machine got busy during repeat 1
            spike = 5.0 if name == "ours" and repeat == 3 else 1.0  # something hit ours alone
            return base * load * spike

        return run

    ours, peer = _interleaved([timed("ours", 1.0), timed("peer", 2.0)], parts=1, repeats=5)
    result = _ratio("speedup", [p / o for o, p in zip(ours, peer)])
    assert result["speedup"] == pytest.approx(2.0)
    assert result["speedup_spread"]["min"] == pytest.approx(0.4) and result["speedup_spread"]["max"] == pytest.approx(2.0)
    assert result["speedup_spread"]["repeats"] == 5


def test_featurization_benchmarks_report_medians_and_spreads() -> None:
    result = bench_featurize_vs_ogb(SMILES, repeats=3, blocks=2)
    assert result["featurize_molecules"] == len(SMILES)
    spread = result["featurize_vs_ogb_spread"]
    assert spread["min"] <= spread["q1"] <= result["featurize_vs_ogb"] <= spread["q3"] <= spread["max"]
    assert spread["repeats"] == 3 and result["featurize_ours_per_s"] > 0 and result["featurize_ogb_per_s"] > 0
    cpu = result["featurize_vs_ogb_cpu_spread"]  # the same repeats in CPU time
    assert cpu["repeats"] == 3 and cpu["min"] <= result["featurize_vs_ogb_cpu"] <= cpu["max"] and cpu["min"] > 0

    processes = bench_featurize_processes(SMILES, workers=2, repeats=1)
    assert processes["featurize_processes"] == 2 and processes["featurize_processes_vs_one"] > 0

    rows = bench_featurize_large_molecules((400, 800), repeats=1)["featurize_large_molecules"]
    assert [row["atoms"] for row in rows] == [400, 800] and all(row["us_per_atom"] > 0 for row in rows)
