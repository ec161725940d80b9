"""Figures: training curves (``curves.png`` of a run folder) from ``history.csv``, and the
results charts of ``igt reproduce`` (numbers chosen by :mod:`igt.results`)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from igt.fileio import save_figure


def _values(rows: list[dict[str, str]], column: str) -> list[float]:
    out = []
    for row in rows:
        try:
            out.append(float(row.get(column) or "nan"))
        except ValueError:
            out.append(math.nan)
    return out


def plot_curves(history_csv: Path, out_png: Path, metric: str | None = None) -> Path:
    """Plot the loss terms (``loss/*`` columns; of non-model players only ``<player>/total``) and the validation (and test) metric per epoch.

    Args:
        history_csv: A run's ``history.csv`` (one row per epoch).
        out_png: Where to write the figure.
        metric: Name of the metric for the axis label (e.g. ``rocauc``).

    Returns:
        ``out_png``.
    """
    plt = _pyplot()

    with open(history_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0]) if rows else []
    epochs = _values(rows, "epoch")
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    # The model player's terms; of other players (IGT's adversary) only their objective, since
    # their other terms repeat the model's on the same batches.
    for column in [c for c in columns if c.startswith("loss/")]:
        name = column.removeprefix("loss/")
        if "/" in name and not name.endswith("/total"):
            continue
        loss_ax.plot(epochs, _values(rows, column), "--" if "/" in name else "-", marker=".", label=name)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss (mean over batches)")
    loss_ax.set_title("loss terms")
    if loss_ax.has_data():
        loss_ax.legend(fontsize=8)
    for column, style in (("valid/metric", "-"), ("test/metric", "--")):
        if column in columns:
            metric_ax.plot(epochs, _values(rows, column), style, marker=".", label=column.split("/")[0])
    metric_ax.set_xlabel("epoch")
    metric_ax.set_ylabel(metric or "metric")
    metric_ax.set_title("validation metric")
    if metric_ax.has_data():
        metric_ax.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, metric_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    out_png = Path(out_png)
    save_figure(fig, out_png, dpi=100)
    plt.close(fig)
    return out_png


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(path: Path, title: str, ylabel: str, categories: list[str],
              series: dict[str, dict[str, tuple[float, float]]]) -> Path:
    """Grouped bars with error bars: per series (a model) ``{category: (mean, std)}``."""
    plt = _pyplot()
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(categories) * max(1, len(series)) * 0.35 + 3), 4.5))
    for i, (name, values) in enumerate(series.items()):
        xs, means, errs = [], [], []
        for j, category in enumerate(categories):
            if category in values:
                xs.append(j - 0.4 + width * (i + 0.5))
                means.append(values[category][0])
                errs.append(values[category][1])
        ax.bar(xs, means, width, yerr=errs, capsize=2, label=name)
    ax.set_xticks(range(len(categories)), categories)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def versus_chart(path: Path, panels: dict[str, dict[str, list[tuple[float, float, float]]]], ticks: dict[float, str],
                 xlabel: str, title: str, empty: str) -> Path:
    """Side-by-side panels (one per quantity ``name``), each a line per series through
    ``(x, mean, std)`` points; ``title`` is formatted with the panel's name."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels.items()):
        for series, points in lines.items():
            ax.errorbar([x for x, _, _ in points], [m for _, m, _ in points], yerr=[s for _, _, s in points],
                        marker="o", capsize=3, label=series)
        ax.set_xticks(list(ticks), list(ticks.values()))
        ax.set_xlim(min(ticks) - 0.05, max(ticks) + 0.05)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        ax.set_title(title.format(name=name), fontsize=10)
        if lines:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
