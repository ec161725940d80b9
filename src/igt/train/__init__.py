"""Training: losses, metrics, checkpoints, the loop (:mod:`igt.train.trainer`) and run folders
(:mod:`igt.train.run`).

The package itself is callable: ``igt.train(dataset, model=...)`` is :func:`igt.api.train`
(a package and a function cannot share the name ``igt.train`` otherwise: importing
``igt.train.run`` would replace the function by the package).
"""

import sys
import types


class _CallableTrainPackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        """:func:`igt.api.train`."""
        from igt.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableTrainPackage
