"""Rationales as PyTorch Geometric :class:`~torch_geometric.explain.Explanation` objects.

So a method's rationale can be scored with PyG's tools (``groundtruth_metrics``,
``Explanation.get_explanation_subgraph``, ``visualize_graph``...) and compared with
GNNExplainer, PGExplainer and friends on the same footing.
"""

from __future__ import annotations

import torch
from torch_geometric.explain import Explanation

from igt.methods.base import Method, MethodOutput
from igt.nn.layers import evaluating


def to_explanation(output: MethodOutput, batch) -> Explanation:
    """Wrap one forward pass's rationale as an :class:`Explanation`.

    Args:
        output: A method's output on ``batch``.
        batch: The PyG batch it was computed on.

    Returns:
        An explanation with ``x``, ``edge_index``, ``batch``, ``prediction`` (the method's raw
        output), ``target`` (``batch.y``), ``node_mask`` ``[N, 1]`` (the node scores) and
        ``edge_mask`` ``[E]`` (the edge scores; ``s_i * s_j`` when a method scores only nodes).
        Methods without rationales (ERM) give an explanation with neither mask.
    """
    masks = {}
    if output.node_scores is not None:
        masks["node_mask"] = output.node_scores.detach().reshape(-1, 1).float()
    edge = output.edge_scores
    if edge is None and output.node_scores is not None:
        src, dst = batch.edge_index
        edge = output.node_scores[src] * output.node_scores[dst]
    if edge is not None:
        masks["edge_mask"] = edge.detach().reshape(-1).float()
    explanation = Explanation(
        x=batch.x, edge_index=batch.edge_index, batch=batch.batch,
        prediction=output.pred.detach(), target=batch.y, **masks,
    )
    explanation.validate_masks()
    return explanation


@torch.no_grad()
def explain_batch(method: Method, batch) -> Explanation:
    """Run ``method`` (in eval mode) on ``batch`` and return its rationale as an :class:`Explanation`."""
    with evaluating(method):
        return to_explanation(method(batch), batch)


__all__ = ["to_explanation", "explain_batch"]
