"""Methods registry: ``igt train --model NAME`` resolves NAME here (or as an ERM backbone)."""

from __future__ import annotations

from igt.config import RunConfig
from igt.data.task import FeatureSpec, TaskSpec
from igt.methods.base import Method, MethodOutput
from igt.methods.dir import DIR
from igt.methods.erm import ERM
from igt.methods.fingerprint import FingerprintModel
from igt.methods.grea import GREA
from igt.methods.gsat import GSAT
from igt.methods.igt import IGT
from igt.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")
METHODS.register("erm")(ERM)
METHODS.register("igt-n")(IGT)
METHODS.register("igt-vn")(IGT)
METHODS.register("grea")(GREA)
METHODS.register("gsat")(GSAT)
METHODS.register("dir")(DIR)
METHODS.register("rf")(FingerprintModel)
METHODS.register("svm")(FingerprintModel)


def build_method(run: RunConfig, task: TaskSpec, features: FeatureSpec) -> Method:
    """Instantiate the method of ``run`` with a factory for its backbone(s)."""
    from igt.nn.backbones import build_backbone

    method_cls = METHODS.get(run.method.name)
    return method_cls(run.method, task, lambda: build_backbone(run.backbone, features, run.data))


__all__ = ["METHODS", "Method", "MethodOutput", "build_method"]
