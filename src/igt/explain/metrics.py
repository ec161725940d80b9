"""Fidelity and characterization of rationales, with PyG's own metrics and explainers.

Every number here comes from PyG 2.8's implementations, reached through our
:func:`~igt.explain.pyg.to_explanation` conversion:

* ``fidelity_plus`` / ``fidelity_minus``: ``torch_geometric.explain.metric.fidelity`` with
  ``explanation_type="model"``: the share of test outputs whose predicted class changes when the
  rationale is removed (fid+) / when only the rationale is kept (fid-);
* ``characterization``: ``characterization_score(fid+, fid-)`` with its default weights
  (0.5, 0.5), computed from the split-level fid+ and fid-;
* post-hoc rationales of ERM backbones: PyG's ``GNNExplainer`` and ``PGExplainer``.

**The rationale** of a graph is its top ``ceil(ratio * n)`` nodes by node score (at least one;
``explain.fidelity_ratio``, default 0.2) as a hard 0/1 node mask, and the edges whose two ends
are both in it (``to_explanation``'s ``s_i * s_j`` of the hard mask). Methods and explainers that
score only edges (PGExplainer) give a node the highest score of its edges, as GSAT and DIR do.

**The wrapper** (:class:`MaskableModel`). Our models read categorical node features (OGB atom
indices, or Spurious-Motif's constant), so PyG's ``node_mask * x`` would be meaningless on them.
The wrapper's model input ``x`` is instead a float *presence* ``p [N, 1]`` (1 = node present):
PyG multiplies its node masks into ``p``, and the wrapper

1. multiplies ``p`` into the node embeddings right after the input encoder (atom embedding plus
   RWSE / LapPE / random-feature projections), in every backbone of the method;
2. multiplies every local message ``j -> i`` by ``p_j * p_i`` (through the ``edge_weight``
   argument of each GINE and GT layer, on top of what the method passes there);

while PyG's edge masks reach the GINE layers, which are ``MessagePassing`` modules, through
``set_masks``. So "removing a node" makes it a featureless node that exchanges no message with
the rest of the graph. It is not deleted: it still counts in the graph readout (mean pooling
divides by all nodes; its embedding after a layer is the layer's bias path), the virtual node of
``gin-vn`` sums it, and the global attention of ``gps`` and ``transformer`` still attends to the
zero-embedded node. RWSE / LapPE of the kept nodes were computed on the whole graph. GT's
neighbour attention and the virtual node are not ``MessagePassing`` modules: PyG edge masks do
not reach them (node removal, items 1-2, does), and the ``transformer`` backbone has no messages.

PyG's fidelity is defined for classification only (it raises for regression): regression runs
get no fidelity keys. Binary multi-task outputs count once per (graph, task), as PyG's
``get_target`` flattens them.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch_geometric.explain import Explainer, Explanation
from torch_geometric.explain.algorithm import DummyExplainer, GNNExplainer, PGExplainer
from torch_geometric.explain.metric import characterization_score, fidelity
from torch_geometric.nn import MessagePassing

from igt.config import ExplainConfig, RunConfig
from igt.data.task import TaskSpec
from igt.explain.pyg import to_explanation
from igt.methods.base import Method, MethodOutput
from igt.methods.gsat import edge_to_node_scores
from igt.methods.igt import hard_top_ratio
from igt.nn.backbones import NodeInput
from igt.nn.layers import GINEConv, GTLayer, evaluating
from igt.train import metrics as task_metrics

#: Graphs per batch when PGExplainer trains (the size regulariser is rescaled per batch).
PGEXPLAINER_BATCH = 64
_MODES = {"binary": "binary_classification", "multiclass": "multiclass_classification"}


def model_config(task: TaskSpec) -> dict[str, str] | None:
    """PyG's ``ModelConfig`` of a graph-level task with raw outputs; ``None`` for regression
    (PyG's fidelity is not defined there)."""
    mode = _MODES.get(task.type)
    return None if mode is None else {"mode": mode, "task_level": "graph", "return_type": "raw"}


class MaskableModel(nn.Module):
    """``forward(x, edge_index) -> logits``: a method seen the way PyG's explain tools expect.

    ``x`` is the float node presence ``[N, 1]`` described in the module docstring; the graph
    itself (categorical features, encodings, ``batch``) is the batch held in :attr:`batch`, whose
    ``edge_index`` must be the one passed in. The wrapper starts in the method's mode: PyG's
    ``Explainer`` puts the model back into the mode it found after each prediction, and a wrapper
    left in training mode would switch the method's BatchNorm layers to updating their statistics.

    Args:
        method: A trained method (used in whatever mode the caller sets).
        batch: The PyG batch to run on (can be replaced between calls).
    """

    def __init__(self, method: Method, batch=None) -> None:
        super().__init__()
        self.method = method
        self.batch = batch
        self.train(method.training)

    def forward(self, x: Tensor, edge_index: Tensor, **kwargs: Any) -> Tensor:
        batch = self.batch
        if batch is None or x.shape[0] != batch.x.shape[0] or edge_index.shape != batch.edge_index.shape:
            raise ValueError("MaskableModel: x / edge_index do not belong to the batch it holds")
        presence = x.reshape(x.shape[0], -1)[:, :1]
        src, dst = batch.edge_index
        gate = (presence[src] * presence[dst]).reshape(-1)
        with _presence_hooks(self.method, presence, gate):
            return self.method(batch).pred


@contextmanager
def _presence_hooks(method: nn.Module, presence: Tensor, gate: Tensor) -> Iterator[None]:
    """Scale input node embeddings by ``presence`` and local messages by ``gate`` while inside."""

    def scale_embeddings(module, inputs, output):
        return output * presence.to(output.dtype)

    def gate_messages(module, args, kwargs):
        args = list(args)
        weight = args[3] if len(args) > 3 else kwargs.get("edge_weight")
        if args[2 if isinstance(module, GTLayer) else 1].shape[1] != gate.numel():
            raise ValueError("MaskableModel: a layer ran on other edges than the batch's")
        weight = gate if weight is None else weight * gate.to(weight.dtype)
        if len(args) > 3:
            args[3] = weight
        else:
            kwargs["edge_weight"] = weight
        return tuple(args), kwargs

    handles = []
    try:
        for module in method.modules():
            if isinstance(module, NodeInput):
                handles.append(module.register_forward_hook(scale_embeddings))
            elif isinstance(module, (GINEConv, GTLayer)):
                handles.append(module.register_forward_pre_hook(gate_messages, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def has_message_passing(module: nn.Module) -> bool:
    """Whether PyG edge masks reach ``module`` (it holds a ``MessagePassing`` layer)."""
    return any(isinstance(m, MessagePassing) for m in module.modules())


def presence(batch) -> Tensor:
    """``[N, 1]`` ones: every node present (the wrapper's model input)."""
    return torch.ones(batch.x.shape[0], 1, device=batch.x.device)


def scoring_explainer(model: MaskableModel, task: TaskSpec) -> Explainer:
    """The ``Explainer`` that PyG's ``fidelity`` scores with (``explanation_type="model"``; its
    algorithm is never run)."""
    return Explainer(model, DummyExplainer(), explanation_type="model", model_config=model_config(task),
                     node_mask_type="object", edge_mask_type="object")


@torch.no_grad()
def rationale_explanation(pred: Tensor, node_scores: Tensor, batch, ratio: float, explainer: Explainer) -> Explanation:
    """The hard top-``ratio`` rationale of each graph as a PyG ``Explanation`` ready for
    ``fidelity``: ``node_mask`` 0/1, ``edge_mask`` 1 on edges with both ends kept, ``x`` the
    presence input of :class:`MaskableModel`, ``target`` the model's own predicted classes."""
    hard = hard_top_ratio(node_scores.detach().float(), batch.ptr, ratio)
    explanation = to_explanation(MethodOutput(pred=pred, node_scores=hard), batch)
    explanation.x = presence(batch)
    explanation.target = explainer.get_target(pred)
    explanation._model_args = []
    return explanation


def node_scores_of(output: MethodOutput, batch) -> Tensor | None:
    """Node scores of a forward pass (edge-only scores: a node's highest edge score)."""
    if output.node_scores is not None:
        return output.node_scores
    if output.edge_scores is not None:
        return edge_to_node_scores(output.edge_scores, batch.edge_index, batch.x.shape[0])
    return None


class FidelityTally:
    """Split-level fid+ and fid-: PyG's per-batch values weighted by the batch's output count."""

    def __init__(self) -> None:
        self.plus = self.minus = 0.0
        self.count = 0

    def add(self, explainer: Explainer, explanation: Explanation) -> None:
        pos, neg = fidelity(explainer, explanation)
        n = int(explanation.target.numel())
        self.plus += pos * n
        self.minus += neg * n
        self.count += n

    def result(self, prefix: str = "") -> dict[str, float]:
        if self.count == 0:
            return {}
        plus, minus = self.plus / self.count, self.minus / self.count
        char = float(characterization_score(torch.tensor(plus, dtype=torch.float64),
                                            torch.tensor(minus, dtype=torch.float64)))
        return {f"{prefix}fidelity_plus": plus, f"{prefix}fidelity_minus": minus, f"{prefix}characterization": char}


@torch.no_grad()
def intrinsic_fidelity(method: Method, loader: Iterable, ratio: float, device: torch.device | None = None) -> dict[str, float]:
    """``fidelity_plus``, ``fidelity_minus``, ``characterization`` of a method's own rationale
    over every batch of ``loader`` (empty for regression or a method without scores)."""
    if model_config(method.task) is None:
        return {}
    device = device or torch.device("cpu")
    with evaluating(method):
        model = MaskableModel(method)
        explainer = scoring_explainer(model, method.task)
        tally = FidelityTally()
        for batch in loader:
            batch = batch.to(device)
            model.batch = batch
            output = method(batch)
            scores = node_scores_of(output, batch)
            if scores is None:
                return {}
            tally.add(explainer, rationale_explanation(output.pred, scores, batch, ratio, explainer))
        return tally.result()


def _seeded_subset(indices: Tensor, count: int, seed: int) -> Tensor:
    """``count`` of ``indices`` drawn with ``seed`` (kept in dataset order); all if fewer."""
    if indices.numel() <= count:
        return indices
    order = torch.randperm(indices.numel(), generator=torch.Generator().manual_seed(seed))[:count]
    return indices[order.sort().values]


def _ground_truth_auc(prefix: str, node_scores: Tensor, edge_scores: Tensor | None, batch) -> dict[str, float]:
    out = {}
    if "node_gt" in batch:
        value = task_metrics.explanation_auc(node_scores.cpu().numpy(), batch.node_gt.cpu().numpy())
        if value is not None:
            out[f"{prefix}node_auc"] = value
    if edge_scores is not None and "edge_gt" in batch:
        value = task_metrics.explanation_auc(edge_scores.cpu().numpy(), batch.edge_gt.cpu().numpy())
        if value is not None:
            out[f"{prefix}edge_auc"] = value
    return out


def _gnnexplainer(model: MaskableModel, batch, task: TaskSpec, epochs: int) -> tuple[Tensor, Tensor | None]:
    """GNNExplainer's node (and, when edges reach message passing, edge) masks of ``batch``.

    The graphs of the batch are explained together: masks are per node and per edge and the
    graphs do not interact in eval mode, so each mask gets the gradient of its own graph's
    prediction; the summed edge-size term is divided by the number of graphs so that it weighs
    against the (mean) prediction loss as in a one-graph run.
    """
    edges = has_message_passing(model)
    algorithm = GNNExplainer(epochs=epochs, edge_size=GNNExplainer.default_coeffs["edge_size"] / batch.num_graphs)
    explainer = Explainer(model, algorithm, explanation_type="model", model_config=model_config(task),
                          node_mask_type="object", edge_mask_type="object" if edges else None)
    explanation = explainer(presence(batch), batch.edge_index)
    edge_mask = explanation.get("edge_mask") if edges else None
    return explanation.node_mask.detach().reshape(-1), None if edge_mask is None else edge_mask.detach()


def _pgexplainer(model: MaskableModel, batch, train_batches: list, task: TaskSpec, epochs: int) -> Tensor:
    """PGExplainer's edge mask of ``batch`` after training on ``train_batches``.

    PyG's PGExplainer explains a phenomenon; given the model's own predicted classes as the
    target, that is the model's prediction. Its summed edge-size term is divided by each batch's
    graph count (as for GNNExplainer).
    """
    algorithm = PGExplainer(epochs=epochs)
    # PyG's PGExplainer updates its class-level ``coeffs`` dict in place; keep ours per instance.
    algorithm.coeffs = dict(PGExplainer.coeffs)
    size = algorithm.coeffs["edge_size"]
    explainer = Explainer(model, algorithm, explanation_type="phenomenon", model_config=model_config(task),
                          edge_mask_type="object")
    targets = []
    for train_batch in train_batches:
        model.batch = train_batch
        targets.append(explainer.get_target(explainer.get_prediction(presence(train_batch), train_batch.edge_index)))
    for epoch in range(epochs):
        for train_batch, target in zip(train_batches, targets):
            model.batch = train_batch
            algorithm.coeffs["edge_size"] = size / train_batch.num_graphs
            with warnings.catch_warnings():  # PyG's train() returns float(loss) of a grad tensor
                warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
                algorithm.train(epoch, model, presence(train_batch), train_batch.edge_index, target=target)
    model.batch = batch
    target = explainer.get_target(explainer.get_prediction(presence(batch), batch.edge_index))
    explanation = explainer(presence(batch), batch.edge_index, target=target)
    return explanation.edge_mask.detach()


def posthoc_metrics(method: Method, dataset, split: dict[str, Tensor], config: ExplainConfig, seed: int,
                    device: torch.device | None = None) -> dict[str, Any]:
    """Post-hoc explainers of ``config.posthoc`` on a seeded subset of the test graphs: per
    explainer ``<name>_fidelity_plus``, ``_fidelity_minus``, ``_characterization``, and, with
    ground truth, ``<name>_node_auc`` / ``<name>_edge_auc``; plus ``posthoc_graphs`` and
    ``<name>_seconds``. Empty for regression."""
    if model_config(method.task) is None or not config.posthoc:
        return {}
    device = device or torch.device("cpu")
    with evaluating(method):
        chosen = _seeded_subset(split["test"], config.posthoc_graphs, seed)
        batch = dataset.batch(chosen).to(device)
        model = MaskableModel(method, batch)
        scorer = scoring_explainer(model, method.task)
        with torch.no_grad():
            pred = method(batch).pred
        out: dict[str, Any] = {"posthoc_graphs": int(chosen.numel())}
        with _frozen(method):
            for name in config.posthoc:
                out.update(_run_posthoc(name, method, model, scorer, pred, batch, dataset, split, config, seed, device))
        return out


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """No gradients for ``module``'s parameters while inside (explainers train only their masks)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def _pyg_masks_removed(module: nn.Module) -> Iterator[None]:
    """Leave no trace of a PyG explainer's edge masks on ``module``'s ``MessagePassing`` layers.

    GNNExplainer sets its edge mask as a ``Parameter``, which registers ``_edge_mask`` as a
    parameter slot that PyG's ``clear_masks`` empties but keeps. PyG's ``set_masks`` then wraps any
    later mask in a new ``Parameter`` (a leaf): PGExplainer run after GNNExplainer on the same model
    trained its mask network on the regularisers alone, since no prediction gradient reached it
    (measured: edge explanation ROC-AUC 0.12 instead of 0.55 on Spurious-Motif b = 1/3). Removing
    the empty slot on exit makes each explainer start from the model as it was.
    """
    try:
        yield
    finally:
        for layer in module.modules():
            if isinstance(layer, MessagePassing) and layer._parameters.get("_edge_mask", False) is None:
                del layer._parameters["_edge_mask"]
                layer._edge_mask = None


def _run_posthoc(name: str, method: Method, model: MaskableModel, scorer: Explainer, pred: Tensor, batch, dataset,
                 split: dict[str, Tensor], config: ExplainConfig, seed: int, device) -> dict[str, Any]:
    """One post-hoc explainer's metrics on ``batch`` (empty when it cannot run on this model)."""
    out: dict[str, Any] = {}
    if name == "pgexplainer" and not has_message_passing(method):
        return out  # its masks and embeddings live on MessagePassing layers (none in gt / transformer)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]), _pyg_masks_removed(method):
        torch.manual_seed(seed)
        if name == "gnnexplainer":
            node_scores, edge_scores = _gnnexplainer(model, batch, method.task, config.gnnexplainer_epochs)
        else:
            train_idx = _seeded_subset(split["train"], config.pgexplainer_train_graphs, seed)
            train_batches = [dataset.batch(part).to(device) for part in train_idx.split(PGEXPLAINER_BATCH)]
            edge_scores = _pgexplainer(model, batch, train_batches, method.task, config.pgexplainer_epochs)
            node_scores = edge_to_node_scores(edge_scores, batch.edge_index, batch.x.shape[0])
    model.batch = batch
    model.eval()
    tally = FidelityTally()
    tally.add(scorer, rationale_explanation(pred, node_scores, batch, config.fidelity_ratio, scorer))
    out.update(tally.result(f"{name}_"))
    out.update(_ground_truth_auc(f"{name}_", node_scores, edge_scores, batch))
    out[f"{name}_seconds"] = time.perf_counter() - started
    return out


def explanation_metrics(method: Method, dataset, split: dict[str, Tensor], test_loader: Iterable, run: RunConfig,
                        device: torch.device | None = None) -> dict[str, Any]:
    """Every explanation metric of a trained method (what ``train_run`` adds to ``metrics.json``):
    the intrinsic rationale's fidelity on the whole test split for methods with scores, the
    post-hoc explainers for ERM. Empty when ``explain.fidelity`` is off or the task is regression."""
    config = run.explain
    if not config.fidelity or model_config(method.task) is None or not method.reads_graph:
        return {}  # regression, or a fingerprint baseline: no graph, so no rationale to score
    started = time.perf_counter()
    out: dict[str, Any] = {"fidelity_ratio": config.fidelity_ratio}
    if run.method.name == "erm":
        out.update(posthoc_metrics(method, dataset, split, config, run.train.seed, device))
    else:
        out.update(intrinsic_fidelity(method, test_loader, config.fidelity_ratio, device))
    out["explain_seconds"] = time.perf_counter() - started
    return out


def is_explanation_key(key: str) -> bool:
    """Keys written by :func:`explanation_metrics`."""
    return key in ("fidelity_plus", "fidelity_minus", "characterization", "fidelity_ratio", "explain_seconds",
                   "posthoc_graphs") or key.startswith(("gnnexplainer_", "pgexplainer_"))


__all__ = [
    "MaskableModel", "FidelityTally", "explanation_metrics", "intrinsic_fidelity", "model_config", "posthoc_metrics",
    "rationale_explanation", "scoring_explainer",
]
