"""The options of each built-in method, one dataclass per method, registered by name in
:data:`~igt.config.base.METHOD_CONFIGS` so that a ``method:`` section parses (and ``igt tune``
reads each ``SEARCH_SPACE``) without importing torch. The modules in :mod:`igt.methods` build
their models from these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from igt.config.base import (
    METHOD_CONFIGS, MethodConfig, SearchSpace, check_at_least, check_choice, check_fraction, check_non_negative,
    check_positive,
)


@dataclass
class IGTConfig(MethodConfig):
    """Options of IGT-N / IGT-VN (every design choice of the method document).

    Args:
        gamma: Target rationale ratio of the size regulariser (fraction of nodes).
        alpha: Weight of the intervention loss in the model player's objective.
        beta: Weight of the size regulariser.
        mu: L2 penalty on the adversary's parameters (keeps it an intervention, not an eraser).
        split: ``soft`` (``R = s * H``) or ``hard`` (top-ceil(gamma n) nodes, straight-through).
        adversarial: ``False`` trains the intervener cooperatively (it minimises ``L_int``).
        updates: ``alternating`` (default): per mini-batch the adversary takes
            ``adversary_steps`` steps, then the model player one, each on its own loss.
            ``simultaneous``: one forward and backward serve both players; a gradient-reversal
            layer at the intervener's inputs makes the intervener ascend ``L_int`` while the
            encoder and augmenter descend it (cheaper: the intervener runs once per batch).
        adversary_steps: Adversary updates per model update (``k_adv``).
        adversary_lr: Adam learning rate of the adversary.
        environments: Environments paired with each rationale per step (``m``).
        num_virtual_nodes: ``K`` virtual nodes of IGT-VN.
        intervener_heads: Attention heads of the intervener block.
        dropout: Dropout inside the intervener and the predictor head.
    """

    gamma: float = 0.4
    alpha: float = 1.0
    beta: float = 1.0
    mu: float = 1e-3
    split: str = "soft"
    adversarial: bool = True
    updates: str = "alternating"
    adversary_steps: int = 1
    adversary_lr: float = 1e-3
    environments: int = 1
    num_virtual_nodes: int = 8
    intervener_heads: int = 4
    dropout: float = 0.0

    SEARCH_SPACE: ClassVar[SearchSpace] = {
        "gamma": {"low": 0.1, "high": 0.8},
        "alpha": {"low": 0.1, "high": 10.0, "log": True},
        "mu": {"low": 1e-4, "high": 1e-1, "log": True},
        "adversary_lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "split": {"choices": ["soft", "hard"]},
        "num_virtual_nodes": {"choices": [4, 8, 16], "models": ["igt-vn"]},  # IGT-N has no virtual nodes
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction("method.gamma", self.gamma)
        for name in ("alpha", "beta", "mu"):
            check_non_negative(f"method.{name}", getattr(self, name))
        check_choice("method.split", self.split, ("soft", "hard"))
        check_choice("method.updates", self.updates, ("alternating", "simultaneous"))
        for name in ("adversary_steps", "environments", "num_virtual_nodes", "intervener_heads"):
            check_at_least(f"method.{name}", getattr(self, name), 1)
        check_positive("method.adversary_lr", self.adversary_lr)
        check_fraction("method.dropout", self.dropout, zero=True, one=False)


@dataclass
class GREAConfig(MethodConfig):
    """Options of GREA.

    Args:
        gamma: Target fraction of a graph's gate mass on the rationale (size regulariser).
        alternation: ``epoch`` (GREA: whole epochs per player) or ``batch`` (both players step
            on every mini-batch).
        separator_turns: Separator epochs per cycle (``epoch``) or steps per batch (``batch``).
        predictor_turns: Epochs per cycle (or steps per batch) of the ``model`` player, the
            encoder and predictor.
        separator_dropout: Dropout inside the gate MLP.
    """

    gamma: float = 0.4
    alternation: str = "epoch"
    separator_turns: int = 1
    predictor_turns: int = 3
    separator_dropout: float = 0.5

    SEARCH_SPACE: ClassVar[SearchSpace] = {"gamma": {"low": 0.1, "high": 0.8}}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction("method.gamma", self.gamma)
        check_choice("method.alternation", self.alternation, ("epoch", "batch"))
        check_at_least("method.separator_turns", self.separator_turns, 1)
        check_at_least("method.predictor_turns", self.predictor_turns, 1)
        check_fraction("method.separator_dropout", self.separator_dropout, zero=True, one=False)


@dataclass
class GSATConfig(MethodConfig):
    """Options of GSAT.

    Args:
        attention: ``edge`` (score node pairs, GSAT's ``learn_edge_att``) or ``node`` (score
            nodes; an edge's attention is the product of its endpoints').
        info_loss_coef: Weight of the KL (information) regulariser.
        init_r: Bernoulli prior ``r`` in the first epochs.
        decay_r: How much ``r`` drops every ``decay_interval`` epochs.
        decay_interval: Epochs between two drops of ``r``.
        final_r: Lowest ``r``; ``init_r == final_r`` keeps ``r`` fixed.
        temperature: Temperature of the concrete relaxation in training.
        shared_encoder: The extractor reads the classifier GNN's embeddings (as GSAT's code does);
            ``False`` gives the extractor its own backbone.
        extractor_dropout: Dropout inside the extractor MLP.
        extractor_norm: Norm of the extractor MLP's hidden layers: ``instance`` (GSAT's per-graph
            ``InstanceNorm``) or ``none`` (the runs committed before it existed).
    """

    attention: str = "edge"
    info_loss_coef: float = 1.0
    init_r: float = 0.9
    decay_r: float = 0.1
    decay_interval: int = 10
    final_r: float = 0.7
    temperature: float = 1.0
    shared_encoder: bool = True
    extractor_dropout: float = 0.5
    extractor_norm: str = "instance"

    # final_r is GSAT's r; its schedule only reaches it when trials train long enough, so the
    # decay's pace is searched with it (final_r stays below the default init_r = 0.9).
    SEARCH_SPACE: ClassVar[SearchSpace] = {
        "final_r": {"low": 0.3, "high": 0.8},
        "decay_r": {"low": 0.05, "high": 0.2},
        "decay_interval": {"low": 1, "high": 10},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("method.attention", self.attention, ("edge", "node"))
        check_choice("method.extractor_norm", self.extractor_norm, ("instance", "none"))
        check_non_negative("method.info_loss_coef", self.info_loss_coef)
        check_fraction("method.init_r", self.init_r)
        check_fraction("method.final_r", self.final_r)
        check_non_negative("method.decay_r", self.decay_r)
        check_at_least("method.decay_interval", self.decay_interval, 1)
        check_positive("method.temperature", self.temperature)
        check_fraction("method.extractor_dropout", self.extractor_dropout, zero=True, one=False)


@dataclass
class DIRConfig(MethodConfig):
    """Options of DIR.

    Args:
        causal_ratio: Fraction ``r`` of each graph's (directed) edges kept as the causal subgraph.
        alpha: Scale of the intervention weight ``lambda_t = alpha * (epoch - 1) ** 1.6``.
    """

    causal_ratio: float = 0.8
    alpha: float = 1e-4

    SEARCH_SPACE: ClassVar[SearchSpace] = {
        "causal_ratio": {"low": 0.2, "high": 0.9},
        "alpha": {"low": 1e-5, "high": 1e-2, "log": True},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction("method.causal_ratio", self.causal_ratio)
        check_non_negative("method.alpha", self.alpha)


@dataclass
class FingerprintConfig(MethodConfig):
    """Options shared by the fingerprint baselines.

    Args:
        radius: Morgan radius (2 is ECFP4).
        bits: Fingerprint length.
    """

    radius: int = 2
    bits: int = 2048

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least("method.radius", self.radius, 0)
        check_at_least("method.bits", self.bits, 1)


@dataclass
class RandomForestConfig(FingerprintConfig):
    """Random forest (``sklearn.ensemble.RandomForest{Classifier,Regressor}``), one per task.

    Args:
        n_estimators: Trees.
        max_features: Features tried per split: ``sqrt``, ``log2`` or ``all``.
        min_samples_leaf: Smallest leaf.
        max_depth: Deepest tree (``null``: grow until leaves are pure).
    """

    name: str = "rf"
    n_estimators: int = 500
    max_features: str = "sqrt"
    min_samples_leaf: int = 1
    max_depth: int | None = None

    SEARCH_SPACE: ClassVar[SearchSpace] = {
        "n_estimators": {"choices": [100, 300, 500]},
        "max_features": {"choices": ["sqrt", "log2", "all"]},
        "min_samples_leaf": {"choices": [1, 2, 4, 8]},
        "max_depth": {"choices": [None, 16, 32]},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least("method.n_estimators", self.n_estimators, 1)
        check_choice("method.max_features", self.max_features, ("sqrt", "log2", "all"))
        check_at_least("method.min_samples_leaf", self.min_samples_leaf, 1)
        if self.max_depth is not None:
            check_at_least("method.max_depth", self.max_depth, 1)


@dataclass
class SVMConfig(FingerprintConfig):
    """Support-vector classifier / regressor with a Tanimoto kernel, one per task.

    Args:
        c: Regularisation strength (scikit-learn's ``C``).
        epsilon: Regression only: width of SVR's insensitive tube, in standardised target units.
        max_train: Fit on at most this many training molecules (a seeded subsample): the kernel
            matrix is quadratic in memory (10,000 molecules: 0.8 GB), so HIV is subsampled.
        calibration_folds: Classification only: folds of the Platt scaling that turns decision
            values into probabilities (``CalibratedClassifierCV(ensemble=False)``).
    """

    name: str = "svm"
    c: float = 1.0
    epsilon: float = 0.1
    max_train: int = 10000
    calibration_folds: int = 3

    SEARCH_SPACE: ClassVar[SearchSpace] = {
        "c": {"low": 0.01, "high": 100.0, "log": True},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("method.c", self.c)
        check_positive("method.epsilon", self.epsilon)
        check_at_least("method.max_train", self.max_train, 2)
        check_at_least("method.calibration_folds", self.calibration_folds, 2)


#: Method name -> options class of the built-in methods (``erm`` has only the shared options).
METHOD_OPTIONS: dict[str, type[MethodConfig]] = {
    "erm": MethodConfig, "igt-n": IGTConfig, "igt-vn": IGTConfig, "grea": GREAConfig, "gsat": GSATConfig,
    "dir": DIRConfig, "rf": RandomForestConfig, "svm": SVMConfig,
}
for _name, _options in METHOD_OPTIONS.items():
    METHOD_CONFIGS.register(_name)(_options)
