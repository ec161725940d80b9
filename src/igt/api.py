"""igt from Python: load data, train a model, reload a run, predict and explain molecules.

The stable public surface, re-exported from the package (``igt.load_dataset``, ``igt.fit``,
``igt.load_run``, ``igt.Run``); everything else in ``igt`` may change between versions::

    import igt

    run = igt.fit("bbbp", model="igt-n", epochs=3, data={"limit": 300}, out="runs/quick")
    print(run.metrics["test"])
    run.predict(["CCO", "c1ccccc1O"])          # a pandas DataFrame, one row per molecule
    run.explain_frame(["CCO"])                 # per-atom rationale scores
    run.draw("CC(=O)Oc1ccccc1C(=O)O")          # a PIL image of the rationale

``igt.train`` is the same function as ``igt train`` on the command line (which calls it); a run
folder written by either loads with [`load_run`][igt.api.load_run]. Every user error raises
`igt.errors.IgtError` with a one-line message. Hyper-parameter search is ``igt tune``
(``igt.tune.tune`` from Python; ``docs/tuning.md``).

Importing this module is light (no torch); torch, PyG and RDKit load when a function needs them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import yaml

from igt.config import RunConfig
from igt.errors import IgtError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from PIL.Image import Image
    from rdkit.Chem import Mol
    from torch_geometric.explain import Explanation

    from igt.data.dataset import GraphDataset
    from igt.explain import GraphExplanation
    from igt.predict import TrainedModel

__all__ = ["Run", "fit", "load_dataset", "load_run"]

_SECTIONS = ("data", "backbone", "method", "train", "explain")


def _override_strings(overrides: Mapping[str, Any]) -> list[str]:
    """``section.key=value`` strings (as ``--set`` takes them) from keyword overrides: either a
    section given as a mapping (``data={"limit": 200}``) or one key as ``section__key=value``."""
    items: list[tuple[str, Any]] = []
    for name, value in overrides.items():
        if name in _SECTIONS:
            if not isinstance(value, Mapping):
                raise IgtError(f"{name}={value!r}: expected a mapping of {name} options, e.g. {name}={{...}}")
            items += [(f"{name}.{key}", v) for key, v in value.items()]
        elif "__" in name and name.split("__", 1)[0] in _SECTIONS:
            section, key = name.split("__", 1)
            items.append((f"{section}.{key}", value))
        else:
            raise IgtError(f"unknown option {name!r}: pass a section ({', '.join(_SECTIONS)}) as a mapping, "
                           "e.g. method={'gamma': 0.3}, or one key as section__key, e.g. method__gamma=0.3")
    return [f"{key}={_yaml_value(value)}" for key, value in items]


def _yaml_value(value: Any) -> str:
    if isinstance(value, (Path, tuple)):
        value = str(value) if isinstance(value, Path) else list(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _as_config(config: RunConfig | str | Path | None) -> RunConfig | None:
    if config is None or isinstance(config, RunConfig):
        return config
    return RunConfig.load(Path(config))


def load_dataset(name_or_path: str | Path, **data_options: Any) -> GraphDataset:
    """Load a dataset exactly as a run with these data options sees it (cached on disk).

    Args:
        name_or_path: A built-in name (``bbbp``, ``esol``, ``spmotif-0.9``, ...; ``igt datasets``
            lists them), a CSV/TSV file or an OGB dataset folder.
        **data_options: Fields of [`DataConfig`][igt.config.DataConfig], e.g. ``limit=200``,
            ``target_columns=["y"]``, ``task="regression"``.

    Returns:
        The dataset: one graph per readable molecule (``dataset.smiles``, ``dataset.y``,
        ``dataset.task``). Its split is made by the run, not here.

    Raises:
        IgtError: Unknown dataset or option, unreadable file (one line naming the culprit).
    """
    from igt.data import load_dataset as load

    options = {"dataset": str(name_or_path), **data_options}
    run = RunConfig().with_overrides([f"data.{key}={_yaml_value(value)}" for key, value in options.items()])
    return load(run.data)


def fit(
    dataset: str | Path,
    model: str | None = "igt-n",
    out: str | Path | None = None,
    epochs: int | None = None,
    seed: int | None = 0,
    preset: str | None = None,
    *,
    config: RunConfig | str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    label: str | None = None,
    keep_resume_state: bool = False,
    resume: bool = False,
    **overrides: Any,
) -> Run:
    """Train a model and write its run folder; the same as ``igt train`` on the command line.

    Options apply in this order, later ones winning: ``config`` < ``epochs``/``seed`` <
    ``model`` < ``preset`` < ``overrides``.

    Args:
        dataset: A built-in dataset name, a CSV file or an OGB folder (as [`load_dataset`][igt.api.load_dataset]).
        model: An ERM backbone (``gin``, ``gin-vn``, ``gps``, ``gt``, ``transformer``) or a
            method (``igt-n``, ``igt-vn``, ``grea``, ``gsat``, ``dir``) on the configured
            backbone; ``None`` keeps the model of ``config``.
        out: The run folder; default ``runs/<dataset>-<model>-seed<k>`` (never an existing one).
        epochs: Training epochs (default: the config's, 100).
        seed: Random seed; ``None`` keeps the seed of ``config``.
        preset: A published recipe (``gsat-paper``), applied after ``model``.
        config: A [`RunConfig`][igt.config.RunConfig] or a ``config.yaml`` to start from.
        overwrite: Replace an existing run in ``out`` (only once the new one has finished).
        progress: Show a progress bar and per-epoch lines.
        label: The model label recorded in ``metrics.json`` (default: the model name and the
            options that differ from its defaults, e.g. ``igt-n[gamma=0.3]``).
        keep_resume_state: Keep a resume state beside ``out`` while training (rewritten after each
            epoch, left behind if the run fails), as ``igt train`` does (docs/distributed.md).
        resume: Continue the interrupted run of ``out`` from its resume state; ``config`` must be
            that run's (``igt train --resume OUT`` reads it from the state).
        **overrides: Config options, a section as a mapping (``data={"limit": 300}``,
            ``method={"gamma": 0.3}``, ``backbone={"name": "gin"}``) or one key as
            ``section__key`` (``train__lr=1e-3``).

    Returns:
        The finished [`Run`][igt.api.Run] (its folder holds ``config.yaml``, ``history.csv``,
        ``metrics.json``, ``checkpoint.pt`` and ``curves.png``). In a torchrun worker other than
        rank 0 (docs/distributed.md) its ``metrics`` are empty: rank 0 writes the run.

    Raises:
        IgtError: A bad option or value (before any data loads), unreadable data, or an ``out``
            folder that already holds files without ``overwrite``.
    """
    from igt.models import build_run_config

    flags = []
    if epochs is not None:
        flags.append(f"train.epochs={epochs}")
    if seed is not None:
        flags.append(f"train.seed={seed}")
    run = build_run_config(str(dataset), model, _as_config(config), flags, preset, _override_strings(overrides))
    if out is not None and _writes_files():  # before torch is imported
        from igt.fileio import check_output_folder

        check_output_folder(Path(out), overwrite, "run")
    from igt.runtime import route_rdkit_logs
    from igt.run import default_run_dir, model_label, train_run

    route_rdkit_logs()
    out_dir = Path(out) if out is not None else default_run_dir(Path("runs"), run)
    if label is None:
        label = model_label(run) + (f"@{preset}" if preset else "")
    metrics = train_run(run, out_dir, overwrite=overwrite, progress=progress, label=label,
                        keep_resume_state=keep_resume_state, resume=resume)
    return Run(out_dir, run, metrics)


def _writes_files() -> bool:
    """Whether this process writes the run: not a torchrun worker other than rank 0 (whose node
    may not even see ``out``)."""
    import os

    return os.environ.get("RANK", "0") == "0"


def load_run(path: str | Path) -> Run:
    """Open a run folder written by [`fit`][igt.api.fit] or ``igt train``.

    The checkpoint is loaded when first needed (predict, explain, draw).

    Args:
        path: The run folder.

    Raises:
        IgtError: No such folder, or no ``config.yaml`` in it.
    """
    path = Path(path)
    if not path.is_dir():
        raise IgtError(f"{path}: not a run folder")
    config = RunConfig.load(path / "config.yaml")
    metrics_path = path / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return Run(path, config, metrics)


@dataclass
class Run:
    """A trained run: its folder, config and metrics, and the model for new molecules.

    Attributes:
        path: The run folder.
        config: The full resolved config it was trained with.
        metrics: ``metrics.json``: ``valid`` and ``test`` (in ``metric`` units), ``best_epoch``,
            the split sizes, explanation metrics, ...
    """

    path: Path
    config: RunConfig
    metrics: dict[str, Any] = field(default_factory=dict)
    _model: TrainedModel | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def model(self) -> TrainedModel:
        """The trained method rebuilt from ``checkpoint.pt`` (loaded once, in eval mode)."""
        if self._model is None:
            from igt.predict import load_trained
            from igt.runtime import route_rdkit_logs

            route_rdkit_logs()
            self._model = load_trained(self.path)
        return self._model

    @property
    def history(self) -> pd.DataFrame:
        """``history.csv``: one row per epoch (losses, valid/test metric, seconds)."""
        import pandas as pd

        return pd.read_csv(self.path / "history.csv")

    def predict(self, smiles: str | Sequence[str]) -> pd.DataFrame:
        """Predict molecules: probabilities (classification) or values (regression).

        Args:
            smiles: One SMILES or several.

        Returns:
            One row per input, in order: ``smiles``, one column per task, ``standardized``
            (what standardisation changed, or empty), ``applicability`` (what the training data
            did not cover, or empty) and ``error`` (why a row could not be read, or empty; its
            predictions are NaN).
        """
        import pandas as pd

        from igt.predict import predict_smiles, prediction_frame

        texts = _smiles_list(smiles)
        result = predict_smiles(self.model, texts, progress=False)
        return prediction_frame(pd.DataFrame({"smiles": texts}), result)

    def explain(self, smiles: str | Sequence[str]) -> list[Explanation]:
        """The model's rationale of each molecule as a PyG `torch_geometric.explain.Explanation`.

        Args:
            smiles: One SMILES or several.

        Returns:
            One explanation per molecule, in order, with ``x``, ``edge_index``, ``prediction``
            (the method's raw output), ``node_mask`` ``[atoms, 1]`` (the per-atom rationale
            scores), ``edge_mask`` ``[directed bonds]`` and ``smiles`` (the molecule the model
            read, after standardisation). ERM models have no rationale: neither mask.

        Raises:
            IgtError: A SMILES that cannot be read (``predict`` reports these per row instead).
        """
        from igt.data.dataset import graph_loader
        from igt.explain.pyg import explain_batch
        from igt.predict import prepare_smiles

        texts = _smiles_list(smiles)
        model = self.model
        prepared = prepare_smiles(model, texts)
        _raise_failures(prepared.failures)
        out = []
        for position, batch in enumerate(graph_loader(prepared.dataset, batch_size=1)):
            explanation = explain_batch(model.method, batch.to(model.device))
            explanation.smiles = prepared.dataset.smiles[position]
            out.append(explanation)
        return out

    def explain_frame(self, smiles: str | Sequence[str]) -> pd.DataFrame:
        """Per-atom rationale scores as a table (as ``rationale.csv`` of ``igt explain``).

        Args:
            smiles: One SMILES or several.

        Returns:
            One row per atom: ``molecule`` (input position), ``smiles`` (as the model read it),
            ``atom_index`` (RDKit's atom order), ``element``, ``score`` (in [0, 1]; NaN for
            models without rationales).

        Raises:
            IgtError: A SMILES that cannot be read.
        """
        import numpy as np
        import pandas as pd

        rows = []
        for position, item in enumerate(self._explanations(smiles)):
            for atom, element in enumerate(item.elements):
                score = np.nan if item.node_scores is None else float(item.node_scores[atom])
                rows.append((position, item.smiles, atom, element, score))
        return pd.DataFrame(rows, columns=["molecule", "smiles", "atom_index", "element", "score"])

    def molecule(self, smiles_or_index: str | int) -> Mol:
        """An RDKit molecule carrying its rationale: each atom's score as the double property
        ``rationale_score`` and as an atom note (drawn beside the atom by RDKit).

        Args:
            smiles_or_index: A SMILES, or the position of a molecule in the run's dataset (its
                data options applied, e.g. ``data.limit``).
        """
        from rdkit import Chem

        item = self._explanations(self._smiles_of(smiles_or_index))[0]
        mol = Chem.MolFromSmiles(item.smiles)
        if item.node_scores is not None:
            for atom, score in zip(mol.GetAtoms(), item.node_scores):
                atom.SetDoubleProp("rationale_score", float(score))
                atom.SetProp("atomNote", f"{float(score):.2f}")
        return mol

    def draw(self, smiles_or_index: str | int, size: tuple[int, int] = (380, 300)) -> Image:
        """A picture of the rationale: atoms and bonds shaded from white (0) to dark red (1),
        as in ``igt explain``'s report.

        Args:
            smiles_or_index: A SMILES, or the position of a molecule in the run's dataset.
            size: Width and height in pixels.

        Returns:
            A PIL image (shown inline by Jupyter; ``.save("rationale.png")`` writes it).
        """
        import io

        from PIL import Image as PILImage

        from igt.explain.draw import draw_molecule

        item = self._explanations(self._smiles_of(smiles_or_index))[0]
        png, _ = draw_molecule(item.smiles, item.node_scores, item.edge_scores, size=size)
        return PILImage.open(io.BytesIO(png))

    def _explanations(self, smiles: str | Sequence[str]) -> list[GraphExplanation]:
        from igt.explain import explain_smiles

        items = explain_smiles(self.model, _smiles_list(smiles), progress=False)
        _raise_failures([(k, item.smiles, item.failure) for k, item in enumerate(items) if item.failure])
        return items

    def _smiles_of(self, smiles_or_index: str | int) -> str:
        if isinstance(smiles_or_index, str):
            return smiles_or_index
        from igt.data import load_dataset as load

        dataset = load(self.config.data)
        if dataset.smiles is None:
            raise IgtError(f"{self.config.data.dataset}: its graphs are not molecules")
        if not 0 <= int(smiles_or_index) < len(dataset):
            raise IgtError(f"molecule {smiles_or_index}: the dataset has {len(dataset)} graphs")
        return dataset.smiles[int(smiles_or_index)]

    def __repr__(self) -> str:
        shown = ""
        if "test" in self.metrics:
            shown = f", test {self.metrics.get('metric', 'metric')}={self.metrics['test']:.4f}"
        return f"Run({str(self.path)!r}, {self.metrics.get('model', self.config.method.name)} on {self.config.data.dataset}{shown})"


def _smiles_list(smiles: str | Sequence[str]) -> list[str]:
    return [smiles] if isinstance(smiles, str) else [str(s) for s in smiles]


def _raise_failures(failures: Sequence[tuple[int, str, str]]) -> None:
    if failures:
        shown = "; ".join(f"#{row} {text!r}: {reason}" for row, text, reason in failures[:3])
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        raise IgtError(f"cannot explain {len(failures)} molecule(s): {shown}{more}")
