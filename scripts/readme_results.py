"""Rebuild the README's results tables and speed table from results/RESULTS.md and results/bench.json.

Run after ``igt reproduce --report-only --out results`` (and ``igt bench --json results/bench.json``):

    .venv/bin/python scripts/readme_results.py

The prose around the tables (between ``## Results`` and the first table) is kept as written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES_START = "<!-- results tables: scripts/readme_results.py -->"
TABLES_END = "<!-- end of results tables -->"
SPEED_START = "<!-- speed table: scripts/readme_results.py -->"
SPEED_END = "<!-- end of speed table -->"


def results_tables(results_md: str) -> str:
    """RESULTS.md from its first table section on, headings demoted one level, plot paths from
    the repository root."""
    body = results_md[results_md.index("\n## ") + 1:]
    body = re.sub(r"^## ", "### ", body, flags=re.M)
    return body.replace("](plots/", "](results/plots/").strip()


def speed_table(bench: dict) -> str:
    steps = bench["step_seconds"]
    erm_ms = 1000 * steps["erm"]
    lines = [
        f"`igt bench --json results/bench.json` (this machine: torch {bench['torch']}, "
        f"{bench['threads']} thread; ratios are measured in one process):",
        "",
        "| measurement | ours | peer | ratio (higher is better unless noted) |",
        "|---|---|---|---|",
        f"| SMILES featurization, {bench['featurize_molecules']} HIV molecules | "
        f"{bench['featurize_ours_per_s']:.0f} mol/s | OGB `smiles2graph` {bench['featurize_ogb_per_s']:.0f} mol/s | "
        f"**{bench['featurize_vs_ogb']:.2f}** |",
        f"| `gps` training, HIV batches of 128, width 64, 3 layers, 4 heads | {bench['gps_graphs_per_s']:.0f} graphs/s | "
        f"PyG `GPSConv` model {bench['pyg_gps_graphs_per_s']:.0f} graphs/s | **{bench['gps_train_vs_pyg']:.2f}** |",
    ]
    if "batching_vs_pyg" in bench:
        lines.append(
            f"| batching, one shuffled epoch of {bench['batching_graphs']} HIV graphs in batches of 128 | "
            f"{bench['batching_ours_per_s']:.0f} graphs/s | PyG `DataLoader` {bench['batching_pyg_per_s']:.0f} graphs/s | "
            f"**{bench['batching_vs_pyg']:.2f}** |")
    rows = [("igt-n", "IGT-N training step (alternating game)", "igt_n_step_vs_gps"),
            ("igt-n[updates=simultaneous]", "IGT-N training step (`updates=simultaneous`)", "igt_n_simultaneous_step_vs_gps"),
            ("igt-vn", "IGT-VN training step (alternating game)", "igt_vn_step_vs_gps"),
            ("igt-vn[updates=simultaneous]", "IGT-VN training step (`updates=simultaneous`)", "igt_vn_simultaneous_step_vs_gps")]
    for i, (label, text, key) in enumerate(rows):
        peer = f"`gps` ERM {erm_ms:.0f} ms" if i == 0 else "`gps` ERM"
        note = " the cost (lower is better)" if i == 0 else ""
        lines.append(f"| {text} | {1000 * steps[label]:.0f} ms | {peer} | {bench[key]:.2f}x{note} |")
    lines += [f"| peak memory, `gps` training on HIV (fresh process) | {bench['peak_train_memory_mb']:.0f} MB | | |", ""]
    scaling = bench["intervener_scaling"]
    sizes = sorted({row["nodes"] for row in scaling})
    lines += ["Intervener forward + backward for 32 graphs of n nodes (ms): IGT-VN's K = 8 virtual nodes keep it flat.",
              "", "| n | " + " | ".join(map(str, sizes)) + " |", "|---" * (len(sizes) + 1) + "|"]
    for variant in ("igt-n", "igt-vn"):
        ms = {row["nodes"]: 1000 * row["seconds"] for row in scaling if row["variant"] == variant}
        lines.append(f"| {variant} | " + " | ".join(f"{ms[n]:.1f}" for n in sizes) + " |")
    return "\n".join(lines)


def replace_between(text: str, start: str, end: str, content: str) -> str:
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{content}\n{end}{tail}"


def main() -> None:
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    readme = replace_between(readme, TABLES_START, TABLES_END,
                             results_tables((ROOT / "results" / "RESULTS.md").read_text()))
    readme = replace_between(readme, SPEED_START, SPEED_END,
                             speed_table(json.loads((ROOT / "results" / "bench.json").read_text())))
    readme_path.write_text(readme)


if __name__ == "__main__":
    main()
