"""Typed run configuration: dataclasses, YAML round-trip and ``key=value`` overrides.

A run is fully described by one :class:`RunConfig`; it is passed explicitly to whatever needs it
(no global state). Method-specific options live in their own dataclass, registered by method
name in :data:`METHOD_CONFIGS`, so ``method.alpha=2`` is validated like every other key.

Layers, bottom up: :mod:`igt.config.base` (value checks, search spaces, :class:`MethodConfig`),
:mod:`igt.config.methods` (each built-in method's options), :mod:`igt.config.run` (the sections
and :class:`RunConfig`). None imports torch.
"""

from igt.config.base import (
    METHOD_CONFIGS, MethodConfig, SearchSpace, check_at_least, check_choice, check_fraction, check_non_negative,
    check_positive, reject,
)
from igt.config.methods import (
    METHOD_OPTIONS, DIRConfig, FingerprintConfig, GREAConfig, GSATConfig, IGTConfig, RandomForestConfig, SVMConfig,
)
from igt.config.run import (
    POSTHOC_EXPLAINERS, SPMOTIF_BIASES, BackboneConfig, DataConfig, ExplainConfig, RunConfig, TrainConfig,
    method_config_class, preset_names, preset_overrides,
)

__all__ = [
    "METHOD_CONFIGS", "METHOD_OPTIONS", "POSTHOC_EXPLAINERS", "SPMOTIF_BIASES", "BackboneConfig", "DIRConfig",
    "DataConfig", "ExplainConfig", "FingerprintConfig", "GREAConfig", "GSATConfig", "IGTConfig", "MethodConfig",
    "RandomForestConfig", "RunConfig", "SVMConfig", "SearchSpace", "TrainConfig", "check_at_least", "check_choice",
    "check_fraction", "check_non_negative", "check_positive", "method_config_class", "preset_names",
    "preset_overrides", "reject",
]
