"""Model names: what ``igt train --model NAME`` and a suite's ``models:`` accept, resolved onto a
:class:`~igt.config.RunConfig`.

This sits below both the command line (:mod:`igt.cli`) and the grid runner (:mod:`igt.reproduce`),
so neither reaches into the other. The names and one-line descriptions are plain data, so that
``igt train --help`` and ``igt models`` answer without importing torch; a test checks them against
the registries (``igt.nn.backbones.BACKBONES``, ``igt.methods.METHODS``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from igt.config import METHOD_CONFIGS, BackboneConfig, RunConfig
from igt.errors import IgtError

#: ERM backbones: ``--model gps`` trains the backbone alone on the task loss.
BACKBONE_MODELS = {
    "gin": "GIN with bond features (OGB-style GINE): message passing only",
    "gin-vn": "GIN (GINE) with a virtual node joined to every node",
    "gps": "GraphGPS: GINE message passing plus global attention in every layer (the default backbone)",
    "gt": "Dwivedi & Bresson's graph transformer: attention over neighbours, with edge features",
    "transformer": "plain transformer over each graph's nodes; structure only through RWSE / LapPE",
}

#: Rationalization methods: ``--model igt-n`` runs on the configured backbone (``backbone.name``).
METHOD_MODELS = {
    "igt-n": "Invariant Graph Transformer, node-level intervention through self-attention (min-max game)",
    "igt-vn": "Invariant Graph Transformer, virtual-node-level intervention (min-max game)",
    "grea": "GREA: rationale by a node gate, environment replacement augmentation",
    "gsat": "GSAT: stochastic attention on edges (or nodes) with an information bottleneck",
    "dir": "DIR: causal subgraph of the top-ratio edges, interventions on the non-causal part",
}


#: Fingerprint baselines (:mod:`igt.methods.fingerprint`): scikit-learn models on RDKit Morgan
#: fingerprints, fitted once; they read SMILES, so they need a molecule dataset.
FINGERPRINT_MODELS = {
    "rf": "random forest on Morgan fingerprints (radius 2, 2048 bits; scikit-learn)",
    "svm": "support-vector machine with a Tanimoto kernel on Morgan fingerprints (scikit-learn)",
}


#: Label suffix of a model trained from its study's best config (``igt reproduce --suite tuned``).
TUNED_SUFFIX = "@tuned"


def model_names() -> list[str]:
    """Every ``--model`` name: backbones first, then methods, then fingerprint baselines."""
    return list(BACKBONE_MODELS) + list(METHOD_MODELS) + list(FINGERPRINT_MODELS)


def is_fingerprint_model(name: str) -> bool:
    """Whether ``name`` (a model or ``method.name``) is a fingerprint baseline (no graph, no rationale)."""
    return name in FINGERPRINT_MODELS


def resolve_model(run: RunConfig, model: str) -> RunConfig:
    """``model`` names an ERM backbone (``gps``) or a method (``igt-n``, on the configured backbone)."""
    if model in BACKBONE_MODELS:
        return run.with_overrides(["method.name=erm", f"backbone.name={model}"])
    if model in METHOD_MODELS or model in FINGERPRINT_MODELS:
        return run.with_overrides([f"method.name={model}"])
    raise IgtError(f"unknown model {model!r}; known: {', '.join(model_names())}")


def model_options(model: str) -> dict[str, Any]:
    """``{"section.key": default}`` of the options a model adds to the shared data/train ones:
    a backbone's are ``backbone.*`` (and ERM's pooling), a method's its ``method.*`` options."""
    resolve_model(RunConfig(), model)  # unknown names fail here
    if model in BACKBONE_MODELS:
        options = {f"backbone.{f.name}": getattr(BackboneConfig(), f.name)
                   for f in dataclasses.fields(BackboneConfig) if f.name != "name"}
        options["method.pooling"] = METHOD_CONFIGS.get("erm")().pooling
        return options
    from igt.config import method_config_class

    config = method_config_class(model)()
    skip = ("name", "pooling") if model in FINGERPRINT_MODELS else ("name",)  # no graph readout
    return {f"method.{f.name}": getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in skip}


def build_run_config(
    dataset: str, model: str | None = None, base: RunConfig | None = None, flags: list[str] | None = None,
    preset: str | None = None, overrides: list[str] | None = None,
) -> RunConfig:
    """``base`` (a config file, or the defaults) < ``flags`` (``data.dataset`` and the command
    line's own options) < ``model`` < ``preset`` < ``overrides`` (``--set``)."""
    run = (base or RunConfig()).with_overrides([f"data.dataset={dataset}", *(flags or [])])
    if model:
        run = resolve_model(run, model)
    if preset:
        from igt.config import preset_overrides

        run = run.with_overrides(preset_overrides(preset))
    return run.with_overrides(list(overrides or []))


__all__ = ["BACKBONE_MODELS", "FINGERPRINT_MODELS", "METHOD_MODELS", "TUNED_SUFFIX", "build_run_config", "is_fingerprint_model",
           "model_names", "model_options", "resolve_model"]
