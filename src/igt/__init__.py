"""igt: invariant graph rationalization with graph transformers.

The Python API (:mod:`igt.api`) is re-exported here and loads on first use, so ``import igt``
stays light (no torch): ``igt.load_dataset``, ``igt.train``, ``igt.load_run``, ``igt.Run``.
"""

from igt.runtime import pin_cpu_kernels

# Before anything imports torch: the same seed gives the same run on every x86 CPU (igt.runtime).
pin_cpu_kernels()

__version__ = "0.1.0"

#: The public API, imported from :mod:`igt.api` when first used. ``igt.train`` is the package
#: :mod:`igt.train` made callable (it calls :func:`igt.api.train`), so ``igt.train(...)`` works
#: whether or not ``igt.train.run`` was imported first.
_API = ("load_dataset", "load_run", "Run")
__all__ = ["__version__", "load_dataset", "train", "load_run", "Run"]


def __getattr__(name: str):
    if name in _API:
        from igt import api

        return getattr(api, name)
    if name == "train":
        import importlib

        return importlib.import_module("igt.train")
    raise AttributeError(f"module 'igt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
