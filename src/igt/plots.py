"""Training curves (``curves.png`` of a run folder) from ``history.csv``."""

from __future__ import annotations

import csv
import math
from pathlib import Path


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
