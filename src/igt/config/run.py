"""The sections of a run (data, backbone, method, train, explain), :class:`RunConfig` that holds
them, its YAML round-trip and ``section.key=value`` overrides, and the named presets.

The ``method:`` section is parsed with the options class registered for its name (built-in ones
in :mod:`igt.config.methods`), so ``method.alpha=2`` is validated like every other key.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, get_type_hints

import yaml

from igt.config.base import (
    METHOD_CONFIGS, MethodConfig, SearchSpace, check_at_least, check_choice, check_fraction, check_non_negative,
    check_positive, reject,
)
import igt.config.methods  # noqa: F401  (registers the built-in methods' options)
from igt.errors import IgtError


#: The Spurious-Motif datasets, ``spmotif-<suffix>`` -> training bias b (the papers' b = 1/3, 0.5,
#: 0.7, 0.9): the one list that loading, the catalogue and the published rows read.
SPMOTIF_BIASES: dict[str, float] = {"0.33": 1 / 3, "0.5": 0.5, "0.7": 0.7, "0.9": 0.9}


@dataclass
class DataConfig:
    """Which graphs, how they are split, and which structural encodings they carry.

    Args:
        dataset: A built-in name (``igt datasets``), a CSV file, or an OGB dataset folder.
        smiles_column: SMILES column of a user CSV (guessed when there is one obvious column).
        target_columns: Label columns of a user CSV.
        task: ``classification`` or ``regression`` for a user CSV.
        split: ``auto`` (the dataset's own split if it carries one, else scaffold when there are
            SMILES, else random), ``scaffold`` (OGB protocol), ``random`` or ``column``.
        split_column: Column holding ``train``/``valid``/``test`` (default: a column named
            ``split``). With only ``train`` and ``test`` values, 1/9 of the training rows become
            validation (``igt.data.splits``).
        split_fractions: Train/validation/test fractions for ``scaffold`` and ``random``.
        rwse_steps: Random-walk structural encoding length (0 disables it).
        lap_k: Laplacian eigenvector count (0 disables it).
        limit: Keep only the first ``limit`` graphs (quick runs and tests).
        random_node_features: Give every node this many i.i.d. U(0, 1) features, drawn once per
            dataset (seed 0), projected and added to its embedding. DIR's Spurious-Motif files
            use 4 (``docs/spmotif.md``); 0 leaves the dataset's own features alone.
        spmotif_directed: Spurious-Motif only: store each edge once, oriented from the node built
            first (base before motif, parent before child), as DIR's files do; messages then
            flow one way. Default: both directions.
        spmotif_variant: Spurious-Motif only: which generator of the literature builds the graphs:
            ``dir`` (DIR's paper: crane motif, 5 % noise edges), ``dir-2022-09`` (DIR's later
            notebook edit: varcycle motif, no noise) or ``gsat`` (GSAT's port: height-3 trees in
            cycle-class training and all validation graphs). See ``docs/spmotif.md``.
        max_atoms: Molecules with more heavy atoms are skipped and reported like unreadable SMILES
            (training data and new molecules; ``null``: no limit). Featurisation is linear in
            atoms, but attention backbones are quadratic, so a 100k-atom "molecule" is a mistake.
        max_smiles_length: SMILES longer than this many characters are skipped before RDKit
            parses them (``null``: no limit), so a pasted multi-megabyte string fails at once.
        standardize_inputs: Standardise new molecules at ``igt predict``/``igt explain`` (RDKit
            MolStandardize: keep the largest organic fragment, neutralise charges) before
            featurising them; the output says what changed. Salts and counter-ions then no longer
            reach the model.
        standardize_training: Apply the same standardisation to the training data. Off by
            default, so training graphs stay identical to OGB's ``smiles2graph`` of the file's
            SMILES (published benchmarks and their numbers are on the raw SMILES).
    """

    dataset: str = "bbbp"
    smiles_column: str | None = None
    target_columns: list[str] = field(default_factory=list)
    task: str | None = None
    split: str = "auto"
    split_column: str | None = None
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    rwse_steps: int = 16
    lap_k: int = 8
    limit: int | None = None
    random_node_features: int = 0
    spmotif_directed: bool = False
    spmotif_variant: str = "dir"
    max_atoms: int | None = 1000
    max_smiles_length: int | None = 20000
    standardize_inputs: bool = True
    standardize_training: bool = False

    def __post_init__(self) -> None:
        # data.task and data.spmotif_variant are checked by the data layer, which names the file.
        check_choice("data.split", self.split, ("auto", "scaffold", "random", "column"))
        fractions = self.split_fractions
        if (len(fractions) != 3 or not all(isinstance(f, (int, float)) and f >= 0 for f in fractions)
                or abs(sum(fractions) - 1.0) > 1e-6):
            reject("data.split_fractions", fractions, "three numbers >= 0 (train, valid, test) that sum to 1")
        check_at_least("data.rwse_steps", self.rwse_steps, 0)
        check_at_least("data.lap_k", self.lap_k, 0)
        if self.limit is not None:
            check_at_least("data.limit", self.limit, 1)
        check_at_least("data.random_node_features", self.random_node_features, 0)


@dataclass
class BackboneConfig:
    """The graph encoder that produces node embeddings.

    Args:
        name: ``gin``, ``gin-vn``, ``gps``, ``gt`` or ``transformer``.
        hidden: Width of node embeddings.
        layers: Number of message-passing / transformer layers.
        heads: Attention heads (attention backbones).
        dropout: Dropout on node features.
        attn_dropout: Dropout on attention weights.
        norm: ``batch`` or ``layer`` normalisation.
        attention: Global attention of ``gps``: ``softmax`` (dense) or ``linear`` (Performer-style).
        use_rwse: Add random-walk structural encodings to the input.
        use_lap_pe: Add Laplacian eigenvector encodings (random sign flips in training).
    """

    name: str = "gps"
    hidden: int = 64
    layers: int = 3
    heads: int = 4
    dropout: float = 0.1
    attn_dropout: float = 0.1
    norm: str = "batch"
    attention: str = "softmax"
    use_rwse: bool = True
    use_lap_pe: bool = False

    # ``name`` is searched for methods only: an ERM model (``--model gin``) names its backbone.
    SEARCH_SPACE: ClassVar[SearchSpace] = {
        "name": {"choices": ["gin", "gin-vn", "gps"]},
        "hidden": {"choices": [32, 64, 128]},
        "layers": {"low": 2, "high": 4},
        "dropout": {"low": 0.0, "high": 0.5},
    }

    def __post_init__(self) -> None:
        check_at_least("backbone.hidden", self.hidden, 1)
        check_at_least("backbone.layers", self.layers, 1)
        check_at_least("backbone.heads", self.heads, 1)
        check_fraction("backbone.dropout", self.dropout, zero=True, one=False)
        check_fraction("backbone.attn_dropout", self.attn_dropout, zero=True, one=False)
        check_choice("backbone.norm", self.norm, ("batch", "layer"))
        check_choice("backbone.attention", self.attention, ("softmax", "linear"))


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping.

    Args:
        epochs: Training epochs; the reported epoch is the best on validation.
        batch_size: Graphs per mini-batch.
        lr: Adam learning rate of the model player.
        weight_decay: Adam weight decay.
        seed: Seed of every random generator (data order, init, dropout).
        device: ``cpu``, ``cuda`` or ``auto``.
        grad_clip: Max gradient norm (0 disables clipping).
        eval_batch_size: Graphs per batch at evaluation.
        threads: CPU threads of torch; 0 keeps torch's default (every core: what configs written
            before igt 0.1.1 record). The default is 1: small graph batches gain little from
            intra-op threads, and on a busy machine extra threads cost far more than they give
            (one BBBP epoch took 21.8 s with 2 threads on a busy 2-core machine, 1.2 s with 1), so
            one thread per process, several processes, is fastest. ``igt train --threads N``.
        standardize_targets: Regression only: train on targets standardised by the training
            split's mean and std (kept in the checkpoint; predictions and metrics are in the
            label's units). Keeps the MSE, and so IGT's adversarial term, on a scale of 1.
        precision: ``fp32`` (default), or automatic mixed precision for training's forward
            passes: ``bf16`` (CPU or a recent GPU; no loss scaling) or ``fp16`` (CUDA; with a
            loss scaler per player). Evaluation stays in fp32, so metrics are comparable.
        test_every_epoch: Evaluate the test split after every epoch (full test curves in
            ``history.csv``). ``false`` evaluates it only at epochs that improve validation: the
            reported numbers are the same, and large test sets (Spurious-Motif) cost far less.
    """

    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    grad_clip: float = 5.0
    eval_batch_size: int = 512
    threads: int = 1
    standardize_targets: bool = True
    test_every_epoch: bool = True
    precision: str = "fp32"

    SEARCH_SPACE: ClassVar[SearchSpace] = {
        "lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "batch_size": {"choices": [32, 64, 128]},
    }

    def __post_init__(self) -> None:
        check_at_least("train.epochs", self.epochs, 1)
        check_at_least("train.batch_size", self.batch_size, 1)
        check_at_least("train.eval_batch_size", self.eval_batch_size, 1)
        check_positive("train.lr", self.lr)
        check_non_negative("train.weight_decay", self.weight_decay)
        check_non_negative("train.grad_clip", self.grad_clip)
        check_at_least("train.threads", self.threads, 0)
        check_choice("train.precision", self.precision, ("fp32", "bf16", "fp16"))
        # Whether CUDA is there is checked when training starts (igt.train.trainer.resolve_device):
        # a config naming cuda must still load on a CPU machine (reproduce compares configs).
        if not (self.device in ("cpu", "cuda", "auto") or re.fullmatch(r"cuda:\d+", self.device)):
            reject("train.device", self.device, "cpu, cuda, cuda:N or auto")


#: Post-hoc explainers of :class:`ExplainConfig` (PyG algorithms run on ERM backbones).
POSTHOC_EXPLAINERS = ("gnnexplainer", "pgexplainer")


@dataclass
class ExplainConfig:
    """Explanation metrics written to ``metrics.json`` after training (``docs/fidelity.md``).

    Args:
        fidelity: Compute ``fidelity_plus``, ``fidelity_minus`` and ``characterization`` of the
            rationale on the test split (methods with node or edge scores), and run the
            post-hoc explainers on ERM backbones. Classification tasks only: PyG's fidelity is
            not defined for regression, so regression runs get none of these keys.
        fidelity_ratio: The rationale of a graph is its top ``ceil(fidelity_ratio * n)`` nodes by
            node score (at least one), and the edges with both ends among them.
        posthoc: PyG post-hoc explainers run on ERM backbones: ``gnnexplainer``,
            ``pgexplainer`` (the two GSAT's paper compares with); ``[]`` runs none.
        posthoc_graphs: Test graphs the post-hoc explainers explain: a fixed subset drawn with
            ``train.seed`` (all of them when the test split is smaller).
        gnnexplainer_epochs: Optimisation steps of GNNExplainer (PyG's default is 100).
        pgexplainer_epochs: Training epochs of PGExplainer's mask network.
        pgexplainer_train_graphs: Training graphs PGExplainer learns from (a seeded subset).
    """

    fidelity: bool = True
    fidelity_ratio: float = 0.2
    posthoc: list[str] = field(default_factory=lambda: list(POSTHOC_EXPLAINERS))
    posthoc_graphs: int = 64
    gnnexplainer_epochs: int = 100
    pgexplainer_epochs: int = 20
    pgexplainer_train_graphs: int = 256

    def __post_init__(self) -> None:
        if not 0.0 < self.fidelity_ratio <= 1.0:
            raise IgtError(f"explain.fidelity_ratio must be in (0, 1], got {self.fidelity_ratio}")
        unknown = [name for name in self.posthoc if name not in POSTHOC_EXPLAINERS]
        if unknown:
            raise IgtError(f"explain.posthoc: unknown explainer(s) {unknown}; expected some of {list(POSTHOC_EXPLAINERS)}")
        for name in ("posthoc_graphs", "gnnexplainer_epochs", "pgexplainer_epochs", "pgexplainer_train_graphs"):
            if getattr(self, name) < 1:
                raise IgtError(f"explain.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> "RunConfig":
        raw = dict(raw or {})
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise IgtError(
                f"{where}: unknown section(s) {sorted(unknown)}; expected data, backbone, method, train, explain"
            )
        data_raw = dict(raw.get("data") or {})
        if ("spmotif_directed" in data_raw and "spmotif_variant" not in data_raw
                and str(data_raw.get("dataset", "")).startswith("spmotif")):
            # A full config written before generators were named (igt <= 316d410): its
            # Spurious-Motif came from the 2022-09 notebook edit, which is not today's default.
            # (Other datasets ignore the option: their old configs load with the default.)
            data_raw["spmotif_variant"] = "dir-2022-09"
        method_raw = dict(raw.get("method") or {})
        method_cls = method_config_class(method_raw.get("name", "erm"))
        if method_cls is not None:
            _fill_options_added_later(method_raw, method_cls)
        return cls(
            data=_build(DataConfig, data_raw, f"{where}: data"),
            backbone=_build(BackboneConfig, raw.get("backbone"), f"{where}: backbone"),
            method=_build(method_cls, method_raw, f"{where}: method"),
            train=_build(TrainConfig, raw.get("train"), f"{where}: train"),
            # Configs written before the section existed load with its defaults.
            explain=_build(ExplainConfig, raw.get("explain"), f"{where}: explain"),
        )

    def with_overrides(self, overrides: list[str]) -> "RunConfig":
        """Apply ``section.key=value`` strings (values parsed as YAML) and re-validate."""
        raw = self.to_dict()
        for item in overrides:
            key, sep, value = item.partition("=")
            parts = key.strip().split(".")
            if not sep or len(parts) != 2:
                raise IgtError(f"--set {item!r}: expected section.key=value, e.g. train.lr=0.001")
            section, name = parts
            if section not in raw:
                raise IgtError(f"--set {item!r}: unknown section {section!r}")
            if section == "method" and name == "name" and raw["method"].get("name") != value:
                # Switching method drops the old method's options.
                raw["method"] = {}
            raw[section][name] = yaml.safe_load(value) if value.strip() else None
        return RunConfig.from_dict(raw, where="--set")

    def save(self, path: Path) -> None:
        from igt.fileio import atomic_write_text

        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise IgtError(f"{path}: config file not found")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise IgtError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
        if raw is not None and not isinstance(raw, dict):
            raise IgtError(f"{path}: expected a mapping of sections at the top level")
        try:
            return cls.from_dict(raw or {}, where=str(path))
        except IgtError as exc:  # range checks (__post_init__) name the key, not the file
            if str(exc).startswith(str(path)):
                raise
            raise IgtError(f"{path}: {exc}") from None


# Options added after runs were committed whose default changes what those runs' configs would
# train today: {method: {option: the value every config written before it meant}}. Only a full
# saved section (every other option present, as `igt train` writes it) gets the old value; a
# hand-written partial section gets today's default.
_OPTIONS_ADDED_LATER: dict[str, dict[str, Any]] = {
    "gsat": {"extractor_norm": "none"},  # GSAT's InstanceNorm (commit 8d5c3da)
}


def _fill_options_added_later(method_raw: dict[str, Any], method_cls: type) -> None:
    added = _OPTIONS_ADDED_LATER.get(str(method_raw.get("name")), {})
    older = {f.name for f in fields(method_cls)} - set(added)
    if added and older <= set(method_raw):
        for option, value in added.items():
            method_raw.setdefault(option, value)


def method_config_class(name: str) -> type[MethodConfig]:
    """The options dataclass of method ``name``: a built-in one (:mod:`igt.config.methods`) or
    one a plug-in registered with :func:`igt.methods.register_method`."""
    return METHOD_CONFIGS.get(name)


def preset_names() -> list[str]:
    """The named recipes shipped in ``igt/presets/*.yaml`` (e.g. ``gsat-paper``)."""
    from importlib import resources

    return sorted(p.name.removesuffix(".yaml") for p in resources.files("igt").joinpath("presets").iterdir()
                  if p.name.endswith(".yaml"))


def preset_overrides(name: str) -> list[str]:
    """A preset's ``section.key=value`` overrides. A preset is a published recipe (inputs, model
    size, optimiser, budget) applied on top of a model: it names neither backbone nor method."""
    from importlib import resources

    if name not in preset_names():
        raise IgtError(f"unknown preset {name!r}; known: {', '.join(preset_names()) or 'none'}")
    raw = yaml.safe_load(resources.files("igt").joinpath("presets", f"{name}.yaml").read_text()) or {}
    return [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
            for key, value in raw.items()]


def _build(cls: type, raw: dict[str, Any] | None, where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``raw``, rejecting unknown keys and wrong types."""
    raw = dict(raw or {})
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise IgtError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {sorted(known)}")
    for name, value in raw.items():
        raw[name] = _coerce(value, hints[name], f"{where}.{name}")
    return cls(**raw)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    text = str(hint)
    if value is None:
        if "None" in text:
            return None
        raise IgtError(f"{where}: a value is required")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise IgtError(f"{where}: expected true/false, got {value!r}")
    if hint is int or text == "int | None":
        if isinstance(value, bool) or not isinstance(value, int):
            raise IgtError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise IgtError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if text.startswith("list"):
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise IgtError(f"{where}: expected a list, got {value!r}")
        return list(value)
    if hint is str or text == "str | None":
        if not isinstance(value, str):
            return str(value)
        return value
    if is_dataclass(hint):
        return _build(hint, value, where)
    return value
