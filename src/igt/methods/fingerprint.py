"""Fingerprint baselines: what a chemist would pick instead of a graph network.

A random forest (``rf``) and a support-vector model with a Tanimoto kernel (``svm``) on RDKit
Morgan fingerprints, fitted with scikit-learn. They are :class:`~igt.methods.base.Method` s like
every other model (same splits, seeds, metrics, ``igt predict``, ensembles and tuning), with two
differences that :func:`igt.train.fingerprint.fit_fingerprint_model` handles: they are fitted once, in closed form,
instead of by the gradient trainer, and they read each graph's SMILES (``batch.smiles``), not its
nodes and edges, so they have no rationale and get no explanation metrics.

The fitted model lives in tensors (the forest's node arrays; the SVM's support fingerprints,
dual coefficients and Platt sigmoid), so checkpoints stay plain tensors that load with
``weights_only=True``; a test pins predictions against scikit-learn's own.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import Tensor

from igt.config import FingerprintConfig, RandomForestConfig, SVMConfig
from igt.data.task import TaskSpec
from igt.errors import IgtError
from igt.methods.base import Method, MethodOutput

# Classification outputs are log-odds so the shared transform (sigmoid / softmax) gives back the
# model's probabilities; probabilities of exactly 0 or 1 are clipped to keep them finite.
_PROBABILITY_CLIP = 1e-6


# ----------------------------------------------------------------------------- features


def morgan_fingerprints(smiles: Sequence[str], radius: int = 2, bits: int = 2048) -> np.ndarray:
    """``[M, bits]`` uint8 Morgan bit vectors (RDKit's generator). SMILES come from molecules igt
    has already read, so one RDKit rejects is a bug upstream, reported with its position."""
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    out = np.zeros((len(smiles), bits), dtype=np.uint8)
    for row, text in enumerate(smiles):
        mol = Chem.MolFromSmiles(text)
        if mol is None:
            raise IgtError(f"row {row}: RDKit cannot read SMILES {text[:80]!r} to fingerprint it")
        out[row] = generator.GetFingerprintAsNumPy(mol)
    return out


def tanimoto_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[len(a), len(b)]`` Tanimoto similarity of bit vectors: |a & b| / |a | b| (1 for two
    empty vectors). A positive-definite kernel, the standard one for fingerprints."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    shared = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - shared
    return np.divide(shared, union, out=np.ones_like(shared), where=union > 0)


# ----------------------------------------------------------------------------- the model


class FingerprintModel(Method):
    """A fitted scikit-learn model per task (``rf`` or ``svm``), predicting from ``batch.smiles``.

    Its state is tensors only: ``state_dict`` holds whatever :meth:`fit` produced, and
    :meth:`load_state_dict` takes any sizes (a forest's size is known only once it is grown).
    """

    reads_graph: ClassVar[bool] = False  # fingerprints of SMILES: no rationale, no explainer applies

    def __init__(self, config: FingerprintConfig, task: TaskSpec, backbone_factory: Any = None) -> None:
        super().__init__(config, task)
        self.fitted: dict[str, Tensor] = {}
        # An empty buffer that follows .to(device), so forward knows where its output belongs.
        self.register_buffer("_device_probe", torch.zeros(0))

    # -- state: plain tensors, any shape ------------------------------------------------------
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:  # type: ignore[override]
        return {key: value.detach().clone() for key, value in self.fitted.items()}

    def load_state_dict(self, state: dict[str, Tensor], strict: bool = True, assign: bool = False):  # type: ignore[override]
        if strict and not any(key.endswith(".kind") for key in state):
            raise RuntimeError("not a fitted fingerprint model (no per-task '.kind' entries)")
        self.fitted = {key: value.detach().clone() for key, value in state.items()}
        return torch.nn.modules.module._IncompatibleKeys([], [])

    def _apply(self, fn, recurse: bool = True):  # .to(device) / .cpu() move the fitted tensors too
        super()._apply(fn, recurse)
        self.fitted = {key: fn(value) for key, value in self.fitted.items()}
        return self

    def extra_repr(self) -> str:
        return super().extra_repr() + f", fitted={bool(self.fitted)}"

    # -- prediction ---------------------------------------------------------------------------
    def forward(self, batch) -> MethodOutput:
        if not self.fitted:
            raise IgtError(f"{self.config.name}: the model has not been fitted")
        smiles = getattr(batch, "smiles", None)
        if smiles is None:
            raise IgtError(f"{self.config.name} reads SMILES; these graphs carry none")
        x = morgan_fingerprints(list(smiles), self.config.radius, self.config.bits)
        device = self._device_probe.device
        columns = [self._predict_column(t, x) for t in range(self.task.out_dim if self.task.type != "multiclass" else 1)]
        pred = torch.as_tensor(np.concatenate(columns, axis=1), dtype=torch.float32, device=device)
        return MethodOutput(pred=pred)

    def _predict_column(self, t: int, x: np.ndarray) -> np.ndarray:
        """``[M, 1]`` log-odds or standardised value of task ``t`` (``[M, C]`` log-probabilities
        for a multiclass task)."""
        kind = int(self.fitted[f"task{t}.kind"])
        if kind == _CONSTANT:
            return np.repeat(self.fitted[f"task{t}.value"].cpu().numpy()[None, :], len(x), axis=0)
        if kind == _FOREST:
            mean = _forest_leaf_values(self.fitted, f"task{t}.", x).mean(1)  # value, or class probabilities
            if self.task.type == "regression":
                return mean
            if self.task.type == "binary":
                return _log_odds(mean[:, 1:2])
            return np.log(np.clip(mean, _PROBABILITY_CLIP, 1.0))
        support = self.fitted[f"task{t}.support"].cpu().numpy()
        decision = tanimoto_kernel(x, support) @ self.fitted[f"task{t}.dual"].cpu().numpy().T
        decision = decision + self.fitted[f"task{t}.intercept"].cpu().numpy()
        if self.task.type == "regression":
            return decision
        a, b = self.fitted[f"task{t}.platt"].cpu().numpy()
        return -(a * decision + b)  # Platt: P(class 1) = sigmoid(-(a f + b))

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, smiles: Sequence[str], y: Tensor, seed: int) -> None:
        """Fit one scikit-learn model per task on ``smiles`` with labels ``y`` (``[M, T]``, NaN
        = missing; regression labels already standardised by the task's scaler)."""
        x = morgan_fingerprints(smiles, self.config.radius, self.config.bits)
        y = y.detach().cpu().double().numpy().reshape(len(smiles), -1)
        fitted: dict[str, Tensor] = {}
        for t in range(y.shape[1]):
            observed = ~np.isnan(y[:, t])
            fitted.update(self._fit_task(f"task{t}.", x[observed], y[observed, t], seed))
        self.fitted = fitted

    def _fit_task(self, prefix: str, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Tensor]:
        classification = self.task.type != "regression"
        labels = np.unique(y) if classification else None
        if len(y) == 0 or (classification and len(labels) < 2):
            return _constant_model(prefix, self.task, y)
        if classification:
            y = y.astype(np.int64)
        if isinstance(self.config, RandomForestConfig):
            return _fit_forest(prefix, self.config, self.task, x, y, seed)
        return _fit_svm(prefix, self.config, self.task, x, y, seed)


_CONSTANT, _FOREST, _SVM = 0, 1, 2


def _log_odds(probability: np.ndarray) -> np.ndarray:
    p = np.clip(probability, _PROBABILITY_CLIP, 1 - _PROBABILITY_CLIP)
    return np.log(p) - np.log1p(-p)


def _constant_model(prefix: str, task: TaskSpec, y: np.ndarray) -> dict[str, Tensor]:
    """A task whose training labels are all one class (or absent): predict that class."""
    if task.type == "regression":
        value = np.array([float(np.mean(y)) if len(y) else 0.0])
    elif task.type == "binary":
        value = _log_odds(np.array([float(y[0]) if len(y) else 0.5]))
    else:
        value = np.log(np.clip(np.eye(task.num_classes)[int(y[0]) if len(y) else 0], _PROBABILITY_CLIP, 1.0))
    return {f"{prefix}kind": torch.tensor(_CONSTANT), f"{prefix}value": torch.as_tensor(value, dtype=torch.float64)}


def _fit_forest(prefix: str, config: RandomForestConfig, task: TaskSpec, x: np.ndarray, y: np.ndarray,
                seed: int) -> dict[str, Tensor]:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    options = dict(n_estimators=config.n_estimators, min_samples_leaf=config.min_samples_leaf,
                   max_depth=config.max_depth, max_features=None if config.max_features == "all" else config.max_features,
                   random_state=seed, n_jobs=1)
    if task.type == "regression":
        forest = RandomForestRegressor(**options).fit(x, y)
    else:
        forest = RandomForestClassifier(**options).fit(x, y)
    return _forest_tensors(prefix, forest, task)


def _forest_tensors(prefix: str, forest: Any, task: TaskSpec) -> dict[str, Tensor]:
    """The trees' node arrays, concatenated, children numbered globally (leaves: -1). Leaf values
    are class probabilities over all of the task's classes (a class absent from training: 0)."""
    lefts, rights, features, thresholds, values, roots = [], [], [], [], [], []
    offset = 0
    for estimator in forest.estimators_:
        tree = estimator.tree_
        left, right = tree.children_left.copy(), tree.children_right.copy()
        leaf = left < 0
        left[~leaf] += offset
        right[~leaf] += offset
        value = tree.value[:, 0, :]
        if task.type != "regression":  # fractions over forest.classes_ -> over every class
            full = np.zeros((len(value), task.num_classes))
            full[:, forest.classes_.astype(np.int64)] = value / value.sum(1, keepdims=True)
            value = full
        lefts.append(left), rights.append(right), features.append(tree.feature), thresholds.append(tree.threshold)
        values.append(value), roots.append(offset)
        offset += tree.node_count
    return {
        f"{prefix}kind": torch.tensor(_FOREST),
        f"{prefix}roots": torch.as_tensor(np.array(roots), dtype=torch.long),
        f"{prefix}left": torch.as_tensor(np.concatenate(lefts), dtype=torch.long),
        f"{prefix}right": torch.as_tensor(np.concatenate(rights), dtype=torch.long),
        f"{prefix}feature": torch.as_tensor(np.concatenate(features), dtype=torch.long),
        f"{prefix}threshold": torch.as_tensor(np.concatenate(thresholds), dtype=torch.float64),
        f"{prefix}value": torch.as_tensor(np.concatenate(values), dtype=torch.float64),
    }


def _forest_leaf_values(fitted: dict[str, Tensor], prefix: str, x: np.ndarray) -> np.ndarray:
    """``[M, trees, width]`` value of the leaf each molecule reaches in each tree: all trees
    walked together, one level per step (scikit-learn's rule: left when ``x <= threshold``)."""
    left, right = fitted[f"{prefix}left"].cpu().numpy(), fitted[f"{prefix}right"].cpu().numpy()
    feature, threshold = fitted[f"{prefix}feature"].cpu().numpy(), fitted[f"{prefix}threshold"].cpu().numpy()
    value, roots = fitted[f"{prefix}value"].cpu().numpy(), fitted[f"{prefix}roots"].cpu().numpy()
    x = x.astype(np.float32)  # scikit-learn compares float32 features with float64 thresholds
    node = np.repeat(roots[None, :], len(x), axis=0)
    rows = np.arange(len(x))[:, None]
    while True:
        inner = left[node] >= 0
        if not inner.any():
            return value[node]
        goes_left = x[rows, np.maximum(feature[node], 0)] <= threshold[node]
        node = np.where(inner, np.where(goes_left, left[node], right[node]), node)


def _fit_svm(prefix: str, config: SVMConfig, task: TaskSpec, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Tensor]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC, SVR

    if len(x) > config.max_train:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), config.max_train, replace=False))
        x, y = x[keep], y[keep]
    kernel = tanimoto_kernel(x, x)
    if task.type == "regression":
        model = SVR(kernel="precomputed", C=config.c, epsilon=config.epsilon).fit(kernel, y)
        platt = None
    elif task.type == "binary":
        folds = min(config.calibration_folds, int(np.bincount(y).min()))
        if folds < 2:  # too few of one class to calibrate: Platt's sigmoid on the raw margin
            model, platt = SVC(kernel="precomputed", C=config.c).fit(kernel, y), np.array([-1.0, 0.0])
        else:
            calibrated = CalibratedClassifierCV(SVC(kernel="precomputed", C=config.c), method="sigmoid",
                                                cv=folds, ensemble=False).fit(kernel, y)
            fold = calibrated.calibrated_classifiers_[0]
            model, platt = fold.estimator, np.array([fold.calibrators[0].a_, fold.calibrators[0].b_], dtype=np.float64)
    else:
        raise IgtError("svm supports binary and regression tasks; use rf for a multiclass task")
    return {
        f"{prefix}kind": torch.tensor(_SVM),
        f"{prefix}support": torch.as_tensor(x[model.support_], dtype=torch.uint8),
        f"{prefix}dual": torch.as_tensor(model.dual_coef_, dtype=torch.float64),
        f"{prefix}intercept": torch.as_tensor(model.intercept_, dtype=torch.float64),
        **({f"{prefix}platt": torch.as_tensor(platt)} if platt is not None else {}),
    }


__all__ = ["FingerprintModel", "RandomForestConfig", "SVMConfig", "morgan_fingerprints", "tanimoto_kernel"]
