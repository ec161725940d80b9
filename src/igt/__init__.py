"""igt: invariant graph rationalization with graph transformers.

The Python API (:mod:`igt.api`) is re-exported here and loads on first use, so ``import igt``
stays light (no torch): ``igt.load_dataset``, ``igt.fit``, ``igt.load_run``, ``igt.Run``.
"""

from igt.runtime import pin_cpu_kernels

# Before anything imports torch: the same seed gives the same run on every x86 CPU (igt.runtime).
pin_cpu_kernels()

from igt.version import __version__  # noqa: E402  (after the kernel pinning above)

#: The public API, imported from :mod:`igt.api` when first used. Training is ``igt.fit``:
#: ``igt.train`` is the package of the training loop.
_API = ("load_dataset", "fit", "load_run", "Run")
__all__ = ["__version__", "load_dataset", "fit", "load_run", "Run"]


def __getattr__(name: str):
    if name in _API:
        from igt import api

        return getattr(api, name)
    raise AttributeError(f"module 'igt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
