"""Methods registry: ``igt train --model NAME`` resolves NAME here (or as an ERM backbone).

One entry per method carries both its options dataclass and its module, registered in one call
(:func:`register_method`). The built-in options live in :mod:`igt.config.methods`, so that
``method:`` sections parse without torch; a plug-in's options are added to the config layer's
table (``igt.config.METHOD_CONFIGS``) when it registers here.
"""

from __future__ import annotations

from dataclasses import dataclass

from igt.config import (
    METHOD_CONFIGS, DIRConfig, GREAConfig, GSATConfig, IGTConfig, MethodConfig, RandomForestConfig, RunConfig, SVMConfig,
)
from igt.data.task import FeatureSpec, TaskSpec
from igt.methods.base import Method, MethodOutput
from igt.methods.dir import DIR
from igt.methods.erm import ERM
from igt.methods.fingerprint import FingerprintModel
from igt.methods.grea import GREA
from igt.methods.gsat import GSAT
from igt.methods.igt import IGT
from igt.registry import Registry

@dataclass(frozen=True)
class MethodEntry:
    """A registered method: its options and the module built from them."""

    config: type[MethodConfig]
    model: type[Method]


METHODS: Registry[MethodEntry] = Registry("method")


def register_method(name: str, config: type[MethodConfig], model: type[Method]) -> None:
    """Register method ``name`` (``--model name``, ``method.name: name``) with its options class."""
    METHODS.register(name)(MethodEntry(config, model))
    if name not in METHOD_CONFIGS:  # a plug-in; the built-in options are registered by igt.config.methods
        METHOD_CONFIGS.register(name)(config)
    elif METHOD_CONFIGS.get(name) is not config:
        raise ValueError(f"method {name!r}: options class {config.__name__} differs from the registered one")


register_method("erm", MethodConfig, ERM)
register_method("igt-n", IGTConfig, IGT)
register_method("igt-vn", IGTConfig, IGT)
register_method("grea", GREAConfig, GREA)
register_method("gsat", GSATConfig, GSAT)
register_method("dir", DIRConfig, DIR)
register_method("rf", RandomForestConfig, FingerprintModel)
register_method("svm", SVMConfig, FingerprintModel)


def build_method(run: RunConfig, task: TaskSpec, features: FeatureSpec) -> Method:
    """Instantiate the method of ``run`` with a factory for its backbone(s)."""
    from igt.nn.backbones import build_backbone

    method_cls = METHODS.get(run.method.name).model
    return method_cls(run.method, task, lambda: build_backbone(run.backbone, features, run.data))


__all__ = ["METHODS", "Method", "MethodEntry", "MethodOutput", "build_method", "register_method"]
