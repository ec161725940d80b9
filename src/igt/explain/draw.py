"""Pictures of rationales: molecules drawn by RDKit, other graphs by networkx + matplotlib.

Atoms and bonds are shaded by their rationale score with one colormap (:data:`CMAP_NAME`,
white at 0 to dark red at 1) so pictures and the report's legend agree. A bond's score is the
mean of its two directed edges' scores; methods that score only nodes get ``s_i * s_j``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from igt.fileio import save_figure

#: Matplotlib colormap of rationale scores; scores map to its ``[0, CMAP_TOP]`` range so the
#: strongest shade stays light enough to read atom labels through.
CMAP_NAME = "Reds"
CMAP_TOP = 0.75


def score_color(score: float) -> tuple[float, float, float]:
    """RGB (floats in [0, 1]) of a rationale score in [0, 1]."""
    import matplotlib

    cmap = matplotlib.colormaps[CMAP_NAME]
    r, g, b, _ = cmap(float(np.clip(score, 0.0, 1.0)) * CMAP_TOP)
    return (float(r), float(g), float(b))


def legend_stops(count: int = 6) -> list[str]:
    """CSS colours from score 0 to 1, for the report's gradient legend."""
    return ["#%02x%02x%02x" % tuple(int(round(255 * c)) for c in score_color(s)) for s in np.linspace(0, 1, count)]


def bond_scores(num_bonds: int, edge_scores: np.ndarray | None, node_scores: np.ndarray | None,
                begin: Sequence[int], end: Sequence[int]) -> np.ndarray | None:
    """Score per RDKit bond: featurised bond ``k`` is directed edges ``2k`` and ``2k + 1``."""
    if edge_scores is not None and len(edge_scores) == 2 * num_bonds:
        return np.asarray(edge_scores, dtype=float).reshape(num_bonds, 2).mean(1)
    if node_scores is not None:
        scores = np.asarray(node_scores, dtype=float)
        return scores[np.asarray(begin, dtype=int)] * scores[np.asarray(end, dtype=int)]
    return None


def draw_molecule(smiles: str, node_scores: np.ndarray | None, edge_scores: np.ndarray | None = None,
                  size: tuple[int, int] = (380, 300)) -> tuple[bytes, str]:
    """Draw ``smiles`` with atoms and bonds shaded by rationale score.

    Args:
        smiles: The molecule (atom order = the featuriser's = RDKit's parse order).
        node_scores: ``[n_atoms]`` scores in [0, 1], or ``None`` (plain drawing).
        edge_scores: ``[2 * n_bonds]`` directed-edge scores, or ``None``.
        size: Width and height in pixels.

    Returns:
        ``(png_bytes, svg_text)``.
    """
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse {smiles!r}")
    highlight: dict = {}
    if node_scores is not None:
        scores = np.asarray(node_scores, dtype=float)
        if scores.shape[0] != mol.GetNumAtoms():
            raise ValueError(f"{len(scores)} scores for {mol.GetNumAtoms()} atoms of {smiles!r}")
        bonds = list(mol.GetBonds())
        per_bond = bond_scores(len(bonds), edge_scores, scores,
                               [b.GetBeginAtomIdx() for b in bonds], [b.GetEndAtomIdx() for b in bonds])
        highlight = {
            "highlightAtoms": list(range(mol.GetNumAtoms())),
            "highlightAtomColors": {i: score_color(s) for i, s in enumerate(scores)},
            "highlightBonds": list(range(len(bonds))),
            "highlightBondColors": {k: score_color(s) for k, s in enumerate(per_bond)},
        }
    drawings = []
    for drawer in (rdMolDraw2D.MolDraw2DCairo(*size), rdMolDraw2D.MolDraw2DSVG(*size)):
        options = drawer.drawOptions()
        options.useBWAtomPalette()  # element colours would fight the red shading
        options.clearBackground = True
        rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol, **highlight)
        drawer.FinishDrawing()
        drawings.append(drawer.GetDrawingText())
    return drawings[0], drawings[1]


def draw_graph(path_stem: Path, edge_index: np.ndarray, num_nodes: int, node_scores: np.ndarray | None,
               node_gt: np.ndarray | None = None, seed: int = 0) -> tuple[Path, Path]:
    """Draw a graph without chemistry (e.g. Spurious-Motif): the rationale on the left and,
    when ``node_gt`` is given, the ground-truth motif on the right, in the same layout.

    Writes ``<path_stem>.png`` and ``<path_stem>.svg`` and returns both paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(num_nodes))
    graph.add_edges_from((int(a), int(b)) for a, b in np.asarray(edge_index).T if a != b)
    layout = nx.kamada_kawai_layout(graph) if num_nodes > 1 else {0: (0.0, 0.0)}
    panels = [("rationale", node_scores)]
    if node_gt is not None:
        panels.append(("ground-truth motif", node_gt))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels):
        colors = [score_color(v) for v in values] if values is not None else ["#dddddd"] * num_nodes
        nx.draw_networkx_edges(graph, layout, ax=ax, edge_color="#888888", width=1.0)
        nx.draw_networkx_nodes(graph, layout, ax=ax, node_color=colors, node_size=90, edgecolors="#333333",
                               linewidths=0.6)
        ax.set_title(title if values is not None else "no rationale", fontsize=10)
        ax.set_axis_off()
    fig.tight_layout()
    png, svg = Path(f"{path_stem}.png"), Path(f"{path_stem}.svg")
    save_figure(fig, png, dpi=90)
    save_figure(fig, svg)
    plt.close(fig)
    return png, svg
